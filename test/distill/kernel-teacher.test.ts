// The teacher's pass in the training kernel (kernel-teacher.ts): which teachers it takes, and
// that the soft targets it gives are TF.js's to float32 reassociation. The kernel's convolutions
// sum in another order than XNNPACK's (im2col rows, Winograd tiles), so outputs differ by a few
// ulps of their magnitude: ~1e-6 of the largest, as the Winograd tests argue; 1e-4 is 100x that and
// orders below a wrong layer (a missed activation or a transposed kernel differs by O(1)).
import type { LayersModel } from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { resolveBackend, type Tf } from '../../src/backend/resolve.js';
import { inMemoryDataset } from '../../src/data/dataset.js';
import { attachKernelPass } from '../../src/distill/kernel-teacher.js';
import { runningKernelWorkers } from '../../src/distill/kernel-threads.js';
import { teacherLogits } from '../../src/distill/teacher-logits.js';
import { MIN_ROWS_FOR_WORKERS, predictLogitsInWorkers } from '../../src/distill/teacher-workers.js';
import { writeModelArtifacts } from '../../src/models/artifacts.js';
import { loadModel, wrapLayersModel } from '../../src/models/model.js';
import type { LoadedModel } from '../../src/models/loaded-model.js';
import { predictLogits } from '../../src/models/predict.js';
import { randomArray } from '../helpers.js';

const TOLERANCE = 1e-4;

/** The largest |a - b| over the largest |b|: logits near 0 make an elementwise ratio meaningless. */
function relativeToLargest(a: Float32Array, b: Float32Array): number {
  let [worst, largest] = [0, 0];
  for (let i = 0; i < b.length; i++)
    [worst, largest] = [Math.max(worst, Math.abs(a[i] - b[i])), Math.max(largest, Math.abs(b[i]))];
  return worst / largest;
}
let tf: Tf;
beforeAll(async () => {
  ({ tf } = await resolveBackend('wasm'));
});

const asTeacher = (model: LayersModel): LoadedModel =>
  wrapLayersModel(model, 0, { tf, where: 'teacher.json', options: {} });

/** A small conv teacher with every op family the kernel plans: conv (im2col and Winograd), BN, pools, dropout, dense. */
function convTeacher(head: 'softmax' | 'linear' | 'sigmoid', frozen = false): LayersModel {
  const seed = (s: number) => tf.initializers.glorotUniform({ seed: s });
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({
        inputShape: [8, 8, 3],
        filters: 8,
        kernelSize: 3,
        padding: 'same',
        kernelInitializer: seed(1),
      }),
      tf.layers.batchNormalization(),
      tf.layers.activation({ activation: 'relu' }),
      tf.layers.conv2d({ filters: 8, kernelSize: 3, activation: 'relu', kernelInitializer: seed(2) }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.dropout({ rate: 0.3 }),
      tf.layers.flatten(),
      tf.layers.dense({
        units: 5,
        activation: head,
        kernelInitializer: seed(3),
        kernelRegularizer: tf.regularizers.l2({ l2: 0.01 }),
      }),
    ],
  });
  // Moving statistics away from 0 and 1, so that inference-mode batch norm is really exercised.
  tf.tidy(() =>
    model.layers[1].setWeights([
      tf.tensor(randomArray(8, 4, 1).map((v) => 1 + 0.3 * v)),
      tf.tensor(randomArray(8, 5, 0.2)),
      tf.tensor(randomArray(8, 6, 0.5)),
      tf.tensor(randomArray(8, 7, 0.4).map((v) => 1 + Math.abs(v))),
    ]),
  );
  if (frozen) for (const layer of model.layers) layer.trainable = false;
  return model;
}

/** The same teacher's logits through TF.js and through its kernel pass. */
async function bothWays(model: LayersModel, rows = 37) {
  const plain = asTeacher(model);
  const kernel = asTeacher(model);
  const choice = attachKernelPass(tf, kernel, 'wasm');
  const dataset = inMemoryDataset('mem', randomArray(rows * 192, 9, 1), [8, 8, 3]);
  const expected = await predictLogits(tf, plain, dataset);
  const actual = await predictLogits(tf, kernel, dataset);
  return { choice, kernel, expected, actual };
}

describe("the teacher's pass in the training kernel", () => {
  afterAll(() => tf.disposeVariables());

  it.each(['softmax', 'linear', 'sigmoid'] as const)(
    'a %s head: the same logits as TF.js, to float32 reassociation',
    async (head) => {
      const { choice, kernel, expected, actual } = await bothWays(convTeacher(head));
      expect(choice).toEqual({
        attached: expect.stringMatching(/^in the training kernel \((simd128|relaxed-simd)(, \d+ threads)?, 6 ops\)$/),
      });
      expect(kernel.rowPass?.label).toMatch(/^kernel (simd128|relaxed-simd)$/);
      if (head !== 'sigmoid') expect(kernel.output).toBe(head === 'linear' ? 'logits' : 'probabilities');
      expect(actual.length).toBe(expected.length);
      expect(relativeToLargest(actual, expected)).toBeLessThan(TOLERANCE);
      kernel.dispose();
    },
  );

  it('takes frozen layers and regularisers, which change nothing in inference', async () => {
    const { choice, expected, actual } = await bothWays(convTeacher('softmax', true));
    expect(choice).toHaveProperty('attached');
    expect(relativeToLargest(actual, expected)).toBeLessThan(TOLERANCE);
  });

  it('leaves the teacher on TF.js, saying why, where the kernel cannot or should not run it', () => {
    const input = tf.input({ shape: [4] });
    const functional = asTeacher(
      tf.model({ inputs: input, outputs: tf.layers.dense({ units: 3 }).apply(input) as never }),
    );
    expect(attachKernelPass(tf, functional, 'wasm')).toEqual({
      notAttached: 'the kernel cannot run it: the model is not a Sequential stack',
    });
    const sequential = asTeacher(convTeacher('softmax'));
    expect(attachKernelPass(tf, sequential, 'webgpu')).toEqual({ notAttached: 'the teacher runs on webgpu' });
    expect(attachKernelPass(tf, sequential, 'tensorflow')).toHaveProperty('notAttached');
    const oneUnit = asTeacher(
      tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 1, activation: 'sigmoid' })] }),
    );
    expect(oneUnit.oneUnit).toBeDefined();
    expect(attachKernelPass(tf, oneUnit, 'wasm')).toEqual({
      notAttached: 'its one-unit head is widened to two classes on TF.js',
    });
    const mlp = asTeacher(
      tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 3, activation: 'relu' })] }),
    );
    expect(attachKernelPass(tf, mlp, 'wasm')).toEqual({
      notAttached: expect.stringMatching(/^a stack of dense layers/),
    });
    const elu = asTeacher(
      tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 3, activation: 'elu' })] }),
    );
    expect(attachKernelPass(tf, elu, 'wasm')).toEqual({ notAttached: expect.stringContaining('activation "elu"') });
    for (const model of [functional, sequential, oneUnit, mlp, elu]) expect(model.rowPass).toBeUndefined();
  });

  it('checks the kernel against TF.js before use, and stays on TF.js when they differ', () => {
    const model = convTeacher('linear');
    const teacher = asTeacher(model);
    // A predict that is not the model's (here, off by one): what a plan that misread a layer would look like.
    const predict = teacher.predict;
    teacher.predict = (x) => tf.tidy(() => predict(x).add(1));
    const choice = attachKernelPass(tf, teacher, 'wasm');
    expect(choice).toEqual({
      notAttached: expect.stringMatching(/^the kernel's output differs from TF.js's by 1\.00/),
    });
    expect(teacher.rowPass).toBeUndefined();
  });

  it('creates no tensor that outlives the check or the pass', async () => {
    const teacher = asTeacher(convTeacher('softmax'));
    const before = tf.memory().numTensors;
    attachKernelPass(tf, teacher, 'wasm');
    await predictLogits(tf, teacher, inMemoryDataset('mem', randomArray(20 * 192, 3, 1), [8, 8, 3]));
    expect(tf.memory().numTensors).toBe(before);
  });

  it('keys the soft-target cache by what computed them', async () => {
    const model = convTeacher('softmax');
    const plain = { ...asTeacher(model), fingerprint: 'f' };
    const kernel = { ...asTeacher(model), fingerprint: 'f' };
    attachKernelPass(tf, kernel, 'wasm');
    const train = inMemoryDataset('mem', randomArray(10 * 192, 2, 1), [8, 8, 3]);
    const cacheDir = path.join(process.env.TMPDIR ?? '/tmp', `dg-kernel-teacher-${process.pid}`);
    const [a, b] = [
      await teacherLogits(tf, plain, train, 'wasm', cacheDir),
      await teacherLogits(tf, kernel, train, 'wasm', cacheDir),
    ];
    expect([a.computedBy, b.computedBy]).toEqual(['wasm', kernel.rowPass?.label]);
    expect(a.cacheFile).not.toBe(b.cacheFile);
    expect((await teacherLogits(tf, kernel, train, 'wasm', cacheDir)).source).toBe('cache');
    // Another build of the kernel (a release that computes differently) does not reuse the entry.
    expect(kernel.rowPass?.build).toMatch(/^[0-9a-f]{12}$/);
    const rebuilt = { ...kernel, rowPass: { ...kernel.rowPass!, build: 'another' } };
    const c = await teacherLogits(tf, rebuilt, train, 'wasm', cacheDir);
    expect([c.source, c.computedBy]).toEqual(['computed', kernel.rowPass?.label]);
    expect(c.cacheFile).not.toBe(b.cacheFile);
  });

  it.each([2, 3, 5])(
    'splits each call over %i kernel threads: the same bits as one thread (rows are independent)',
    async (threads) => {
      const model = convTeacher('softmax');
      const [one, many] = [asTeacher(model), asTeacher(model)];
      expect(attachKernelPass(tf, one, 'wasm', { threads: 1 })).toHaveProperty('attached');
      expect(attachKernelPass(tf, many, 'wasm', { threads })).toEqual({
        attached: expect.stringContaining(`, ${threads} threads, 6 ops)`),
      });
      expect([one.rowPass?.threads, many.rowPass?.threads]).toEqual([1, threads]);
      // 61 rows: calls of rows * threads rows, the last one short and split unevenly.
      const dataset = inMemoryDataset('mem', randomArray(61 * 192, 12, 1), [8, 8, 3]);
      const [a, b] = [await predictLogits(tf, one, dataset), await predictLogits(tf, many, dataset)];
      expect(Buffer.from(b.buffer).equals(Buffer.from(a.buffer))).toBe(true);
      const before = runningKernelWorkers();
      expect(before).toBeGreaterThanOrEqual(threads - 1);
      many.dispose();
      await vi.waitFor(() => expect(runningKernelWorkers()).toBe(before - (threads - 1)));
    },
  );

  it('gives logits in worker threads bit-identical to one thread', async () => {
    const folder = await mkdtemp(path.join(os.tmpdir(), 'kernel-teacher-'));
    const model = convTeacher('softmax');
    await model.save(
      tf.io.withSaveHandler(async (artifacts) => {
        await writeModelArtifacts(folder, artifacts);
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    const modelJson = path.join(folder, 'model.json');
    const teacher = await loadModel(tf, modelJson, 'teacher');
    // Workers of their own only when the kernel's pass runs on one thread.
    expect(attachKernelPass(tf, teacher, 'wasm', { threads: 1 })).toHaveProperty('attached');
    const dataset = inMemoryDataset('mem', randomArray((MIN_ROWS_FOR_WORKERS + 300) * 192, 5, 1), [8, 8, 3]);
    const single = await predictLogits(tf, teacher, dataset);
    const parallel = await predictLogitsInWorkers(teacher, modelJson, 'wasm', dataset, 2);
    expect(Buffer.from(parallel.buffer).equals(Buffer.from(single.buffer))).toBe(true);
    teacher.dispose();
  });
});
