import type { Tensor } from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveBackend, type Tf } from '../../src/backend/resolve.js';
import { inMemoryDataset, type Dataset } from '../../src/data/dataset.js';
import { distillationLoss } from '../../src/distill/loss.js';
import { permutation, seededRandom } from '../../src/distill/random.js';
import { distill } from '../../src/distill/train.js';
import { buildStudent } from '../../src/models/student.js';
import { synthetic } from '../../fixtures/generate.js';

let tf: Tf;
beforeAll(async () => {
  ({ tf } = await resolveBackend('cpu'));
});

function softmax(v: number[]): number[] {
  const m = Math.max(...v);
  const e = v.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

describe('distillation loss', () => {
  const t = [
    [2, 0.5, -1],
    [0, 1, 3],
  ];
  const s = [
    [1, 1, 0],
    [0.2, -0.3, 2],
  ];
  const T = 2;
  const kl = (ti: number[], si: number[]) => {
    const p = softmax(ti.map((x) => x / T));
    const q = softmax(si.map((x) => x / T));
    return p.reduce((sum, pi, c) => sum + pi * Math.log(pi / q[c]), 0);
  };
  const meanKl = (kl(t[0], s[0]) + kl(t[1], s[1])) / 2;
  const ce = (-Math.log(softmax(s[0])[0]) - Math.log(softmax(s[1])[2])) / 2;

  it('is alpha * T^2 * KL + (1 - alpha) * CE, alpha weighting the distillation term', () => {
    const loss = distillationLoss(tf, tf.tensor2d(s), tf.tensor2d(t), tf.tensor1d([0, 2], 'int32'), {
      temperature: T,
      alpha: 0.7,
    });
    expect(loss.dataSync()[0]).toBeCloseTo(0.7 * T * T * meanKl + 0.3 * ce, 5);
  });

  it('drops the hard term without labels', () => {
    const loss = distillationLoss(tf, tf.tensor2d(s), tf.tensor2d(t), undefined, { temperature: T, alpha: 0.7 });
    expect(loss.dataSync()[0]).toBeCloseTo(T * T * meanKl, 5);
  });

  it('treats teacher log-probabilities like logits (a softmax teacher)', () => {
    const logProbs = t.map((row) => softmax(row).map(Math.log));
    const a = distillationLoss(tf, tf.tensor2d(s), tf.tensor2d(logProbs), undefined, { temperature: T, alpha: 1 });
    expect(a.dataSync()[0]).toBeCloseTo(T * T * meanKl, 5);
  });

  it('is zero when the student matches the teacher', () => {
    const loss = distillationLoss(tf, tf.tensor2d(t), tf.tensor2d(t), undefined, { temperature: 4, alpha: 1 });
    expect(loss.dataSync()[0]).toBeCloseTo(0, 6);
  });
});

describe('seeded randomness', () => {
  it('repeats for a seed and differs between seeds', () => {
    expect(Array.from(permutation(20, seededRandom(3)))).toEqual(Array.from(permutation(20, seededRandom(3))));
    expect(Array.from(permutation(20, seededRandom(3)))).not.toEqual(Array.from(permutation(20, seededRandom(4))));
    expect(Array.from(permutation(20, seededRandom(3))).sort((a, b) => a - b)).toEqual([...Array(20).keys()]);
  });
});

describe('KD loop', () => {
  const { x, y } = synthetic(96, 5, 8, 4);
  const train: Dataset = inMemoryDataset('mem', x, [8], { y, source: 'mem' });
  const teacherLogits = new Float32Array(96 * 4).map((_, i) => (y[Math.floor(i / 4)] === i % 4 ? 3 : 0));
  const settings = { temperature: 2, alpha: 0.5, epochs: 50, batchSize: 16, learningRate: 0.01, seed: 3 };
  const layers = [
    { type: 'dense' as const, units: 16, activation: 'relu' },
    { type: 'dropout' as const, rate: 0.2 },
    { type: 'batchNormalization' as const },
    { type: 'dense' as const, units: 4 },
  ];

  for (const [kind, studentLayers] of [
    ['autodiff', layers],
    ['kernel', [layers[0], layers[3]]],
    ['dense', [layers[0], layers[3]]],
  ] as const) {
    it(`keeps the live tensor count and RSS flat across 50 epochs, and lowers the loss (${kind} step)`, async () => {
      const student = await buildStudent(tf, { layers: [...studentLayers] }, [8], 3);
      const counts: number[] = [];
      const rss: number[] = [];
      const result = await distill(tf, student, train, {
        settings,
        teacherLogits,
        step: kind,
        onEpoch: (p) => {
          counts.push(p.tensors);
          (globalThis as { gc?: () => void }).gc?.();
          rss.push(process.memoryUsage().rss);
        },
      });
      expect(result.epochsCompleted).toBe(50);
      const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
      console.log(
        `50 epochs: tensors ${counts[0]} at epoch 1, ${counts[49]} at epoch 50; RSS ${mib(rss[0])} MiB at epoch 1, ${mib(rss[9])} MiB at epoch 10, ${mib(rss[49])} MiB at epoch 50`,
      );
      // Compared from epoch 10, once the allocator and JIT have warmed up.
      expect(rss[49] - rss[9]).toBeLessThan(8 * 2 ** 20);
      // Nothing may accumulate from one epoch to the next.
      expect(new Set(counts.slice(1)).size).toBe(1);
      expect(result.loss[49]).toBeLessThan(result.loss[0] * 0.5);
      student.dispose();
    });
  }

  it('gives the same losses and weights for the same seed, and different ones for another', async () => {
    const run = async (seed: number) => {
      const student = await buildStudent(tf, { layers }, [8], seed);
      const result = await distill(tf, student, train, { settings: { ...settings, epochs: 3, seed }, teacherLogits });
      const weights = Array.from(student.layers!.getWeights()[0].dataSync());
      student.dispose();
      return { loss: result.loss, weights };
    };
    const [a, b, c] = [await run(3), await run(3), await run(4)];
    expect(a).toEqual(b);
    expect(a.loss).not.toEqual(c.loss);
  });

  it('stops with a reason when the loss becomes non-finite', async () => {
    const student = await buildStudent(tf, { layers: [{ type: 'dense', units: 4 }] }, [8], 1);
    const poisoned = teacherLogits.slice();
    poisoned[0] = NaN;
    const result = await distill(tf, student, train, { settings: { ...settings, epochs: 5 }, teacherLogits: poisoned });
    expect(result.epochsCompleted).toBe(1);
    expect(result.stoppedBecause).toMatch(/the loss became NaN in epoch 1/);
    student.dispose();
  });

  it("blames a NaN loss on the teacher's outputs when they are not finite, not on the learning rate", async () => {
    const student = await buildStudent(tf, { layers: [{ type: 'dense', units: 4 }] }, [8], 1);
    const poisoned = teacherLogits.slice();
    poisoned.fill(NaN, 4 * 3, 4 * 5);
    const result = await distill(tf, student, train, { settings: { ...settings, epochs: 5 }, teacherLogits: poisoned });
    expect(result.nonFiniteInput).toBe('teacher outputs');
    expect(result.stoppedBecause).toBe(
      `the loss became NaN in epoch 1 because the teacher's outputs are not finite (NaN or Infinity) on 2 of ${train.size} training rows (the first is row 3), not because of the learning rate; check the teacher and the data it is fed`,
    );
    student.dispose();
  });

  it("blames a NaN loss on the student's weights when they were not finite before training", async () => {
    const student = await buildStudent(tf, { layers: [{ type: 'dense', units: 4, name: 'head' }] }, [8], 1);
    const [kernel] = student.layers!.getWeights();
    const broken = tf.tensor1d([0, NaN, 0, 0]);
    student.layers!.setWeights([kernel, broken]);
    broken.dispose();
    const result = await distill(tf, student, train, { settings: { ...settings, epochs: 5 }, teacherLogits });
    expect(result.nonFiniteInput).toBe('student weights');
    expect(result.stoppedBecause).toMatch(
      /^the loss became NaN in epoch 1 because the student's initial weights are not finite \(NaN or Infinity in head\/bias\), not because of the learning rate/,
    );
    student.dispose();
  });

  it('stops between batches when aborted, keeping the epochs done', async () => {
    const student = await buildStudent(tf, { layers: [{ type: 'dense', units: 4 }] }, [8], 1);
    const controller = new AbortController();
    const result = await distill(tf, student, train, {
      settings: { ...settings, epochs: 10 },
      teacherLogits,
      signal: controller.signal,
      onEpoch: (p) => p.epoch === 2 && controller.abort(new Error('received SIGTERM')),
    });
    expect(result.epochsCompleted).toBe(2);
    expect(result.loss).toHaveLength(2);
    expect(result.stoppedBecause).toBe('received SIGTERM');
    student.dispose();
  });
});

describe('the kernel step: probe in its memory, weights back into TF.js once', () => {
  const { x, y } = synthetic(96, 5, 8, 4);
  const train: Dataset = inMemoryDataset('mem', x, [8], { y, source: 'mem' });
  const teacherLogits = new Float32Array(96 * 4).map((_, i) => (y[Math.floor(i / 4)] === i % 4 ? 3 : 0));
  const settings = { temperature: 2, alpha: 0.5, epochs: 4, batchSize: 16, learningRate: 0.01, seed: 3 };
  const layers = [
    { type: 'dense' as const, units: 16, activation: 'relu' },
    { type: 'dropout' as const, rate: 0.2 },
    { type: 'batchNormalization' as const },
    { type: 'dense' as const, units: 4 },
  ];
  const probeRows = 40;
  const probeX = x.subarray(0, probeRows * 8);
  const argmaxes = (logits: Float32Array) =>
    Array.from({ length: probeRows }, (_, r) => {
      const row = Array.from(logits.subarray(r * 4, r * 4 + 4));
      return row.indexOf(Math.max(...row));
    });
  const weightsOf = (student: Awaited<ReturnType<typeof buildStudent>>) =>
    student.layers!.getWeights().map((w) => Array.from(w.dataSync()));

  it("answers the probe from the kernel as TF.js's inference does, and changes nothing in training", async () => {
    const withPredict = await buildStudent(tf, { layers }, [8], 3);
    const fromKernel: number[][] = [];
    const fromTfjs: number[][] = [];
    const ours = await distill(tf, withPredict, train, {
      settings,
      teacherLogits,
      step: 'kernel',
      probe: async (predict) => {
        fromKernel.push(argmaxes(predict!(probeX, probeRows)));
        return 0;
      },
    });
    // TF.js's inference on the student as `epochs` epochs leave it, written back when training ends.
    for (let epochs = 1; epochs <= settings.epochs; epochs++) {
      const reference = await buildStudent(tf, { layers }, [8], 3);
      const result = await distill(tf, reference, train, {
        settings: { ...settings, epochs },
        teacherLogits,
        step: 'kernel',
      });
      fromTfjs.push(
        argmaxes(
          tf.tidy(
            () => (reference.layers!.predict(tf.tensor2d(probeX, [probeRows, 8])) as Tensor).dataSync() as Float32Array,
          ),
        ),
      );
      if (epochs === settings.epochs) {
        expect(result.loss).toEqual(ours.loss);
        expect(weightsOf(reference)).toEqual(weightsOf(withPredict));
      }
      reference.dispose();
    }
    expect(fromKernel).toEqual(fromTfjs);
    withPredict.dispose();
  });

  it('writes the trained weights into the student when aborted, as after the same epochs run to the end', async () => {
    const aborted = await buildStudent(tf, { layers }, [8], 3);
    const initial = weightsOf(aborted);
    const controller = new AbortController();
    const result = await distill(tf, aborted, train, {
      settings: { ...settings, epochs: 10 },
      teacherLogits,
      step: 'kernel',
      signal: controller.signal,
      onEpoch: (p) => p.epoch === 2 && controller.abort(new Error('received SIGTERM')),
    });
    expect(result.epochsCompleted).toBe(2);
    const full = await buildStudent(tf, { layers }, [8], 3);
    await distill(tf, full, train, { settings: { ...settings, epochs: 2 }, teacherLogits, step: 'kernel' });
    expect(weightsOf(aborted)).toEqual(weightsOf(full));
    expect(weightsOf(aborted)).not.toEqual(initial);
    aborted.dispose();
    full.dispose();
  });
});

describe('out of memory', () => {
  const { x, y } = synthetic(64, 5, 8, 4);
  const train: Dataset = inMemoryDataset('mem', x, [8], { y, source: 'mem' });
  const teacherLogits = new Float32Array(64 * 4);

  // The TF.js steps, whose ops allocate device memory: a Dense stack (the dense step) and a
  // student autodiff trains. The kernel's memory is sized once, before training.
  const students = {
    dense: [{ type: 'dense' as const, units: 4 }],
    autodiff: [
      { type: 'dropout' as const, rate: 0.1 },
      { type: 'dense' as const, units: 4 },
    ],
  };

  for (const [kind, layers] of Object.entries(students)) {
    it(`halves the batch size and retries the same rows, down to a floor, and says so (${kind} step)`, async () => {
      const student = await buildStudent(tf, { layers }, [8], 1);
      const seen: number[] = [];
      // A device that cannot hold more than 16 rows at once: the student's matmul fails above that.
      const restore = onStudentMatMul(tf, 8, (rows) => {
        seen.push(rows);
        if (rows > 16) throw new Error('OOM when allocating tensor with shape[64,4]');
      });
      const before = tf.memory().numTensors;
      try {
        const result = await distill(tf, student, train, {
          settings: { temperature: 2, alpha: 1, epochs: 2, batchSize: 64, learningRate: 0.01, seed: 1 },
          teacherLogits,
          step: kind as 'dense' | 'autodiff',
        });
        expect(result.epochsCompleted).toBe(2);
        expect(result.batchSize).toBe(16);
        expect(result.notes).toEqual([
          'Out of memory at batch size 64 in epoch 1; continued with 32.',
          'Out of memory at batch size 32 in epoch 1; continued with 16.',
        ]);
        expect(seen.slice(0, 3)).toEqual([64, 32, 16]);
        // Every row still trained: 4 batches of 16 per epoch after the two failed tries.
        expect(seen.filter((r) => r === 16)).toHaveLength(8);
      } finally {
        restore();
      }
      // The dense step's failed attempts leak nothing. Under autodiff, TF.js keeps the tensors the
      // forward pass saved for backprop when it throws (its tape is dropped, they are not): a few
      // per failed attempt, never more as training goes on.
      if (kind === 'dense') expect(tf.memory().numTensors).toBe(before);
      else expect(tf.memory().numTensors - before).toBeLessThanOrEqual(2 * 8);
      student.dispose();
    });
  }

  it("gives up below the floor with the backend's error", async () => {
    const student = await buildStudent(tf, { layers: students.dense }, [8], 1);
    const restore = onStudentMatMul(tf, 8, () => {
      throw new Error('OOM when allocating tensor');
    });
    try {
      await expect(
        distill(tf, student, train, {
          settings: { temperature: 2, alpha: 1, epochs: 1, batchSize: 32, learningRate: 0.01, seed: 1 },
          teacherLogits,
          step: 'dense',
        }),
      ).rejects.toThrow(/OOM/);
    } finally {
      restore();
    }
    student.dispose();
  });
});

/**
 * Calls `spy` with the batch's row count at every forward matmul of a layer whose input has
 * `inputWidth` columns, from inside the backend's kernel call: a spy that throws is a device
 * failing there. Returns the function that removes the spy.
 */
function onStudentMatMul(tf: Tf, inputWidth: number, spy: (rows: number) => void): () => void {
  const engine = tf.engine() as unknown as {
    runKernel: (name: string, inputs: Record<string, Tensor>, attrs: object) => unknown;
  };
  const runKernel = engine.runKernel;
  engine.runKernel = function (name, inputs, attrs) {
    const a = inputs.a;
    // Matmul ops hand the kernel a as [batch, rows, columns].
    if (
      (name === '_FusedMatMul' || name === 'BatchMatMul') &&
      a?.shape.at(-1) === inputWidth &&
      !(attrs as { transposeA?: boolean }).transposeA
    )
      spy(a.shape.at(-2)!);
    return runKernel.call(this, name, inputs, attrs);
  };
  return () => {
    delete (engine as Partial<typeof engine>).runKernel;
  };
}

describe('KD loop over a streamed split', () => {
  it('visits every row each epoch, chunk by chunk, and repeats for the same seed', async () => {
    const { mkdtemp, writeFile } = await import('node:fs/promises');
    const os = await import('node:os');
    const path = await import('node:path');
    const { encodeNpy } = await import('../../src/data/npy.js');
    const { loadSplit } = await import('../../src/data/dataset.js');
    const { x, y } = synthetic(100, 9, 8, 4);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-stream-'));
    await writeFile(path.join(dir, 'x.npy'), encodeNpy(x, [100, 8]));
    await writeFile(path.join(dir, 'y.npy'), encodeNpy(y, [100]));
    const train = await loadSplit({ x: path.join(dir, 'x.npy'), y: path.join(dir, 'y.npy') }, 'train', {
      streamAboveBytes: 0,
      chunkRows: 30,
    });
    const teacherLogits = new Float32Array(100 * 4).map((_, i) => (y[Math.floor(i / 4)] === i % 4 ? 3 : 0));
    const run = async () => {
      const student = await buildStudent(
        tf,
        {
          layers: [
            { type: 'dense', units: 6, activation: 'relu' },
            { type: 'dense', units: 4 },
          ],
        },
        [8],
        2,
      );
      let rows = 0;
      const restore = onStudentMatMul(tf, 8, (n) => (rows += n));
      // Rows are counted at the dense step's matmuls; which rows each epoch visits is the loop's.
      const result = await distill(tf, student, train, {
        settings: { temperature: 2, alpha: 0.5, epochs: 6, batchSize: 16, learningRate: 0.02, seed: 4 },
        teacherLogits,
        step: 'dense',
      }).finally(restore);
      student.dispose();
      return { loss: result.loss, rows };
    };
    const [a, b] = [await run(), await run()];
    expect(a.rows).toBe(6 * 100);
    expect(a.loss).toEqual(b.loss);
    expect(a.loss[5]).toBeLessThan(a.loss[0]);
  });
});
