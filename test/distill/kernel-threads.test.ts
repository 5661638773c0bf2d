import { createHash } from 'node:crypto';
import type { Worker } from 'node:worker_threads';
import type { LayersModel } from '@tensorflow/tfjs';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { resolveBackend, type Tf } from '../../src/backend/resolve.js';
import type { LayerSpec } from '../../src/config/schema.js';
import { inMemoryDataset } from '../../src/data/dataset.js';
import { CONTROL, OP } from '../../src/distill/kernel/abi.js';
import { planKernel } from '../../src/distill/kernel-plan.js';
import {
  forwardWork,
  kernelThreads,
  MIN_WORK_PER_THREAD,
  passThreads,
  runningKernelWorkers,
} from '../../src/distill/kernel-threads.js';
import { KernelTrap, NetKernel } from '../../src/distill/net-kernel.js';
import { kdTargets, kdTerms } from '../../src/distill/targets.js';
import { distill } from '../../src/distill/train.js';
import { trainingStep } from '../../src/distill/training-step.js';
import { buildStudent } from '../../src/models/student.js';
import { maxRelativeError, randomArray } from '../helpers.js';

let tf: Tf;
beforeAll(async () => {
  ({ tf } = await resolveBackend('cpu'));
});

const classes = 4;
const settings = { temperature: 3, alpha: 0.7 };
const students: Record<string, { input: number[]; layers: LayerSpec[] }> = {
  'an MLP': {
    input: [10],
    layers: [
      { type: 'dense', units: 12, activation: 'relu' },
      { type: 'dense', units: classes },
    ],
  },
  'a conv student (im2col and Winograd, pooling)': {
    input: [6, 6, 2],
    layers: [
      { type: 'conv2d', filters: 8, kernelSize: 3, padding: 'same', activation: 'relu' },
      { type: 'conv2d', filters: 4, kernelSize: 3, activation: 'tanh' },
      { type: 'maxPooling2d', poolSize: 2 },
      { type: 'flatten' },
      { type: 'dense', units: classes },
    ],
  },
  'a conv + batchNormalization + dropout student': {
    input: [6, 6, 2],
    layers: [
      { type: 'conv2d', filters: 8, kernelSize: 3, padding: 'same', useBias: false },
      { type: 'batchNormalization', momentum: 0.9 },
      { type: 'activation', activation: 'relu' },
      { type: 'conv2d', filters: 4, kernelSize: 3, activation: 'tanh' },
      { type: 'maxPooling2d', poolSize: 2 },
      { type: 'dropout', rate: 0.3 },
      { type: 'flatten' },
      { type: 'dense', units: classes },
    ],
  },
};
const BN_DROPOUT = 'a conv + batchNormalization + dropout student';

/**
 * Trains `steps` batches (their row counts; at most maxRows) on `threads` threads, simd128; returns
 * the losses, the weights (moving statistics included), and the logits predict gives after.
 */
async function train(name: string, threads: number, maxRows: number, steps: number[], seed = 11) {
  const { input, layers } = students[name];
  const width = input.reduce((a, b) => a * b, 1);
  const x = randomArray(maxRows * width, 3, 2);
  const teacher = randomArray(maxRows * classes, 4, 3);
  const labels = Int32Array.from({ length: maxRows }, (_, i) => (i * 3) % classes);
  const rows = Array.from({ length: maxRows }, (_, i) => i);
  const batch = kdTargets(teacher, labels, rows, classes, settings);
  const student = await buildStudent(tf, { layers }, input, 5);
  const step = trainingStep(tf, student, {
    learningRate: 0.01,
    terms: kdTerms(settings, true),
    sampleShape: input,
    maxRows,
    kind: 'kernel',
    seed,
    kernelModule: 'simd128',
    threads,
  });
  expect(step.threads).toBe(threads);
  const losses = steps.map((count) => step.run(x, batch.targets, count) as number);
  const predicted = step.predict!(x, maxRows);
  step.sync();
  step.dispose();
  const weights = (student.layers as LayersModel).getWeights().map((w) => w.dataSync());
  student.dispose();
  return { losses, weights, predicted };
}

/** What `run` throws (undefined if it returns). */
function thrown(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  return undefined;
}

/** Polls until every kernel worker of this process has exited (their exit events are asynchronous). */
async function workersGone(): Promise<number> {
  for (let i = 0; i < 200 && runningKernelWorkers() > 0; i++) await new Promise((r) => setTimeout(r, 25));
  return runningKernelWorkers();
}

// Threads change only the order of float sums: each thread's share of BatchNormalization's
// per-channel sums, of the loss, and of every weight gradient, added in thread order. float32
// sums of at most a few hundred terms in another order differ by ~1e-6 relative; Adam's step
// (about the rate times the gradient's sign, early on) passes that on, except where a gradient
// is near zero. The bound is the one the kernel meets against TF.js autodiff (net-kernel.test.ts).
const WEIGHT_TOLERANCE = 2e-3;

describe('the data-parallel kernel step', () => {
  for (const name of Object.keys(students)) {
    it(`trains ${name} on 2 and 4 threads as on 1, to within float reassociation, and bit-identically on reruns`, async () => {
      // 13 rows: divisible by neither 2 nor 4; then a last short batch, and one smaller than 4.
      const steps = [13, 13, 13, 7, 3];
      const before = tf.memory().numTensors;
      const one = await train(name, 1, 13, steps);
      for (const threads of [2, 4]) {
        const ours = await train(name, threads, 13, steps);
        expect(maxRelativeError(ours.losses, one.losses), `${threads} threads: losses`).toBeLessThan(1e-5);
        ours.weights.forEach((w, i) =>
          expect(maxRelativeError(w, one.weights[i]), `${threads} threads: weight ${i}`).toBeLessThan(WEIGHT_TOLERANCE),
        );
        expect(maxRelativeError(ours.predicted, one.predicted), `${threads} threads: predict`).toBeLessThan(1e-3);
        const again = await train(name, threads, 13, steps);
        expect(again.losses).toEqual(ours.losses);
        again.weights.forEach((w, i) =>
          expect(Buffer.from(w.buffer).equals(Buffer.from(ours.weights[i].buffer))).toBe(true),
        );
      }
      expect(tf.memory().numTensors).toBe(before);
      expect(await workersGone()).toBe(0);
    });
  }

  it('trains the same function whatever the thread count: different dropout masks or per-thread statistics would not agree', async () => {
    // More threads than rows in a batch (threads with none), and as many threads as rows.
    const steps = [5, 5, 2];
    const one = await train(BN_DROPOUT, 1, 5, steps);
    for (const threads of [5, 8]) {
      const ours = await train(BN_DROPOUT, threads, 5, steps);
      expect(maxRelativeError(ours.losses, one.losses)).toBeLessThan(1e-5);
      ours.weights.forEach((w, i) => expect(maxRelativeError(w, one.weights[i])).toBeLessThan(WEIGHT_TOLERANCE));
    }
    // Other dropout masks (another seed) move the weights far more than reassociation does: the
    // bound tells masks apart.
    const other = await train(BN_DROPOUT, 1, 5, steps, 12);
    const moved = Math.max(...other.weights.map((w, i) => maxRelativeError(w, one.weights[i])));
    expect(moved).toBeGreaterThan(10 * WEIGHT_TOLERANCE);
    expect(await workersGone()).toBe(0);
  });

  it('runs one thread exactly as the single-threaded kernel did before threads (recorded)', async () => {
    // sha256 of the weights and losses the kernel before step_thread trained (commit 6a4bb56),
    // over the same batches: one thread must still run the same instructions. Recorded again once,
    // when the plan began to fuse an Activation layer into the batch normalisation before it: that
    // renumbered the ops, and the dropout op's index seeds its masks (with the old index the old
    // record held, bit for bit).
    const one = await train(BN_DROPOUT, 1, 20, [20, 20, 20, 13]);
    const hash = createHash('sha256');
    for (const w of one.weights) hash.update(new Uint8Array(w.buffer, w.byteOffset, w.byteLength));
    hash.update(new Uint8Array(Float32Array.from(one.losses).buffer));
    expect(hash.digest('hex').slice(0, 32)).toBe('7fc71c315301c6b6393bb5e139bb5494');
  });
});

describe('the kernel worker threads', () => {
  // Each test counts the workers it starts: those of the tests before must have exited.
  beforeEach(async () => {
    expect(await workersGone()).toBe(0);
  });

  const kernelOf = async (threads: number) => {
    const { input, layers } = students[BN_DROPOUT];
    const student = await buildStudent(tf, { layers }, input, 5);
    const plan = planKernel(student.layers as LayersModel);
    if (!('ops' in plan)) throw new Error(plan.unsupported);
    const kernel = new NetKernel(tf, plan.ops, kdTerms(settings, true), 8, 0.01, 1, 'simd128', threads);
    const x = randomArray(8 * 72, 3, 2);
    const labels = Int32Array.from({ length: 8 }, (_, i) => i % classes);
    const targets = kdTargets(randomArray(8 * classes, 4, 3), labels, [0, 1, 2, 3, 4, 5, 6, 7], classes, settings);
    return { kernel, student, run: () => kernel.run(x, targets.targets, 8) };
  };
  /** Points op 0's output of thread `thread`'s program past the end of the memory: its next step traps. */
  const breakProgram = (kernel: NetKernel, thread: number) => {
    const inside = kernel as unknown as { memory: WebAssembly.Memory; programs: Array<{ ops: number }> };
    new Uint32Array(inside.memory.buffer)[inside.programs[thread].ops / 4 + OP.fields.output.word] = 0xfffff000;
  };

  it('stop when the kernel is disposed, and none is left running', async () => {
    const { kernel, student, run } = await kernelOf(3);
    expect(runningKernelWorkers()).toBe(2);
    for (let i = 0; i < 3; i++) expect(Number.isFinite(run())).toBe(true);
    kernel.dispose();
    await kernel.threadsExited;
    expect(await workersGone()).toBe(0);
    expect(run).toThrow(/closed/);
    student.dispose();
  });

  for (const [where, thread] of [
    ['a worker', 1],
    ['the main thread', 0],
  ] as const) {
    it(`turn a trap in ${where} into a KernelTrap, with no thread left waiting`, async () => {
      const { kernel, student, run } = await kernelOf(2);
      run();
      breakProgram(kernel, thread);
      const caught = thrown(run);
      expect(caught).toBeInstanceOf(KernelTrap);
      if (thread === 1) expect((caught as Error).message).toMatch(/thread 1: .*memory access out of bounds/);
      else expect((caught as Error).message).toMatch(/memory access out of bounds/);
      await kernel.threadsExited;
      kernel.dispose();
      expect(await workersGone()).toBe(0);
      student.dispose();
    });
  }

  it('give up on a worker that died without a word, after Control.patience seconds, rather than hang', async () => {
    const { kernel, student, run } = await kernelOf(2);
    run();
    const inside = kernel as unknown as {
      memory: WebAssembly.Memory;
      control: { at: number; threads: { workers: Worker[] } };
    };
    // One second instead of the shipped 120, then the worker's isolate is ended under it, as an
    // out-of-memory kill would: no catch runs, nothing is posted, no abort is set.
    new Uint32Array(inside.memory.buffer)[inside.control.at / 4 + CONTROL.fields.patience.word] = 1;
    await inside.control.threads.workers[0].terminate();
    const started = performance.now();
    const caught = thrown(run);
    expect(caught).toBeInstanceOf(KernelTrap);
    expect((caught as Error).message).toMatch(/stopped without a word: none arrived where the others waited for 1 s/);
    expect(run).toThrow(/closed/);
    expect(performance.now() - started).toBeLessThan(30_000);
    kernel.dispose();
    student.dispose();
  });

  it('say which wait gave up: a pass whose worker died without a word', async () => {
    const { kernel, student } = await kernelOf(2);
    const inside = kernel as unknown as {
      memory: WebAssembly.Memory;
      control: { at: number; threads: { workers: Worker[] } };
    };
    new Uint32Array(inside.memory.buffer)[inside.control.at / 4 + CONTROL.fields.patience.word] = 1;
    await inside.control.threads.workers[0].terminate();
    expect(() => kernel.predict(randomArray(8 * 72, 3, 2), 8)).toThrow(
      /a kernel worker thread stopped without a word: none arrived where the others waited for 1 s/,
    );
    kernel.dispose();
    student.dispose();
  });

  it('are stopped when training is cancelled, and the run says how many threads trained', async () => {
    const rows = 96;
    const { input, layers } = students[BN_DROPOUT];
    const train = inMemoryDataset('x', randomArray(rows * 72, 3, 2), input);
    const student = await buildStudent(tf, { layers }, input, 5);
    const controller = new AbortController();
    const seen: Array<number | undefined> = [];
    const result = await distill(tf, student, train, {
      settings: { ...settings, epochs: 3, batchSize: 32, learningRate: 0.01, seed: 7, threads: 2 },
      teacherLogits: randomArray(rows * classes, 4, 3),
      onStep: (path) => seen.push(path.threads),
      onRows: (done) => {
        if (done >= 64) controller.abort(new Error('cancelled by the test'));
        expect(runningKernelWorkers()).toBe(1);
      },
      signal: controller.signal,
    });
    expect(seen).toEqual([2]);
    expect(result.stopKind).toBe('abort');
    expect(await workersGone()).toBe(0);
    // The student was written back: trained weights, not the initial ones.
    expect((student.layers as LayersModel).getWeights().every((w) => w.dataSync().every(Number.isFinite))).toBe(true);
    student.dispose();
  });
});

describe('distill.threads: auto', () => {
  const opsOf = async (input: number[], layers: LayerSpec[]) => {
    const student = await buildStudent(tf, { layers }, input, 5);
    const plan = planKernel(student.layers as LayersModel);
    student.dispose();
    if (!('ops' in plan)) throw new Error(plan.unsupported);
    return plan.ops;
  };

  it('takes the cores where the step is large, one thread per 16 rows at most, and one where it is small', async () => {
    const conv = await opsOf(
      [32, 32, 3],
      [
        { type: 'conv2d', filters: 16, kernelSize: 3, padding: 'same' },
        { type: 'flatten' },
        { type: 'dense', units: 10 },
      ],
    );
    expect(kernelThreads('auto', 64, conv, 4)).toBe(4);
    expect(kernelThreads('auto', 64, conv, 16)).toBe(4);
    expect(kernelThreads('auto', 256, conv, 16)).toBe(16);
    expect(kernelThreads('auto', 20, conv, 4)).toBe(1);
    // The reference MLP pair's student (64-32-10) at batch 64: ~0.45M multiply-adds a step.
    const mlp = await opsOf(
      [64],
      [
        { type: 'dense', units: 32, activation: 'relu' },
        { type: 'dense', units: 10 },
      ],
    );
    expect(3 * 64 * forwardWork(mlp)).toBeLessThan(MIN_WORK_PER_THREAD);
    expect(kernelThreads('auto', 64, mlp, 4)).toBe(1);
    // A number is taken as it is.
    expect(kernelThreads(3, 64, mlp, 4)).toBe(3);
    // A pass: no cap by rows (any split gives the same logits), only by the work of a call.
    // 4 rows of the conv net, ~0.6M multiply-adds each, are work for 2 threads; 64 rows for all 16
    // cores, where a step of 64 rows gets 4.
    expect(passThreads('auto', 4, conv, 16)).toBe(2);
    expect(passThreads('auto', 64, conv, 16)).toBe(16);
    expect(passThreads('auto', 4, mlp, 4)).toBe(1);
    expect(passThreads(3, 4, mlp, 4)).toBe(3);
  });
});
