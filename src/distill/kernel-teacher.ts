// The teacher's forward pass in the training kernel. A Sequential TF.js teacher that the kernel
// can plan (kernel-plan.ts, for inference) runs its passes over whole splits (the soft targets,
// the eval split's logits, augmented epochs, the base teacher's diff) through NetKernel.predict
// on plain arrays instead of TF.js's wasm or cpu backend: the same Winograd, fused multiply-add
// and im2col code the student trains with, and no per-op cost. Conv teachers run 1.2-2x faster
// than on the wasm backend at its best batch (bench/RESULTS.md, "The teacher's pass in the
// kernel"); stacks of dense layers stay on TF.js, whose matrix products are faster. GPU and
// native backends keep the teacher on TF.js, and timing always measures the teacher as shipped.
import type { Tf } from '../backend/resolve.js';
import type { LoadedModel, RowPass } from '../models/loaded-model.js';
import { inferenceBatch } from '../models/predict.js';
import { layOutKernelMemory } from './kernel-memory.js';
import { kernelBuild, type KernelModuleName } from './kernel-module.js';
import { planKernel, type KernelOp } from './kernel-plan.js';
import { passThreads } from './kernel-threads.js';
import { NetKernel } from './net-kernel.js';

/** The backends whose passes the kernel beats: TF.js's bundled ones, on this CPU. */
const KERNEL_PASS_BACKENDS = new Set(['wasm', 'cpu']);
/**
 * Bytes of one call's activations (outputs and im2col patches of every op) that keep the
 * kernel's buffers in cache: bench:conv's 32x32x3 teacher (~0.7 MB a row) runs fastest at 4-8
 * rows a call and 10% slower at 32; an MLP's rows are small, and 256 of them amortise the call.
 */
const CACHE_BYTES = 4 * 2 ** 20;
const MAX_ROWS = 256;
/** Rows of seeded inputs the kernel's pass is checked on against TF.js before it is used. */
const CHECK_ROWS = 4;
/** Largest difference from TF.js's output allowed on those rows, relative to the output's size: float32 reassociation is ~1e-6. */
const CHECK_TOLERANCE = 1e-3;

/** How a teacher's passes will run: in the kernel (`attached`), or why not. */
export type KernelPassChoice = { attached: string } | { notAttached: string };

/**
 * Gives `model` a `rowPass` that runs in the training kernel when that is faster and exact: a
 * TF.js Sequential model on the wasm or cpu backend whose every layer the kernel plans, with at
 * least one convolution over an image (see overAnImage), checked
 * on a few seeded rows against TF.js's own `predict`. Says what it chose and why, for the log.
 * `threads` (distill.threads) splits each call's rows over the kernel's worker threads; the
 * logits are the same bits whatever the count (rows are independent), so the soft-target cache
 * does not key on it.
 */
export function attachKernelPass(
  tf: Tf,
  model: LoadedModel,
  backend: string,
  { threads: setting = 'auto', module }: { threads?: number | 'auto'; module?: KernelModuleName } = {},
): KernelPassChoice {
  if (!KERNEL_PASS_BACKENDS.has(backend) || model.runtime) {
    return { notAttached: `the teacher runs on ${model.runtime?.label ?? backend}` };
  }
  if (!model.layers) return { notAttached: 'the kernel runs LayersModels only' };
  // A one-unit sigmoid head is widened to two classes by the loader's predict, not by the model.
  if (model.oneUnit) return { notAttached: 'its one-unit head is widened to two classes on TF.js' };
  const plan = planKernel(model.layers, 'inference');
  if ('unsupported' in plan) return { notAttached: `the kernel cannot run it: ${plan.unsupported}` };
  if (!plan.ops.some(overAnImage))
    return {
      notAttached: "a stack of dense layers: TF.js's XNNPACK runs wide matrix products faster than the kernel",
    };
  const classes = plan.ops[plan.ops.length - 1].output[2];
  if (classes !== model.outputWidth)
    return { notAttached: `its last layer has ${classes} units, the head ${model.outputWidth}` };
  const rows = passRows(plan.ops);
  const threads = passThreads(setting, rows, plan.ops);
  let kernel: NetKernel;
  try {
    // Each thread takes `rows` rows of a call: a cache-sized share.
    kernel = NetKernel.forInference(tf, plan.ops, rows * threads, module, threads);
  } catch (error) {
    if (error instanceof RangeError) return { notAttached: error.message };
    throw error;
  }
  const rowPass = kernelRowPass(kernel, plan.dropsSoftmax);
  const mismatch = differenceFromTf(tf, model, rowPass, backend);
  if (mismatch !== undefined) {
    kernel.dispose();
    return { notAttached: mismatch };
  }
  model.rowPass = rowPass;
  // The kernel's worker threads end with the teacher.
  const dispose = model.dispose.bind(model);
  model.dispose = () => {
    kernel.dispose();
    dispose();
  };
  const onThreads = threads > 1 ? `, ${threads} threads` : '';
  return { attached: `in the training kernel (${kernel.module}${onThreads}, ${plan.ops.length} ops)` };
}

/** The pass: the kernel's predict, and the softmax planKernel leaves off the last layer (the loss never needs it; a teacher's output does). */
function kernelRowPass(kernel: NetKernel, softmax: boolean): RowPass {
  return {
    label: `kernel ${kernel.module}`,
    build: kernelBuild(kernel.module),
    threads: kernel.threads,
    predict: (x, rows) => {
      const y = kernel.predict(x, rows);
      if (softmax) softmaxRows(y, y.length / rows);
      return y;
    },
  };
}

/**
 * A convolution over an image (more than one output position): where the kernel wins. Its
 * matrix products stream the whole weight matrix for every 4 rows, which a dense layer's 1024x1024
 * weights (4 MB) make slower than XNNPACK's cache-blocked ones; convolutions reuse small kernels
 * over many positions, and Winograd does them in fewer multiplies. A rule on shapes only, so a
 * teacher's soft targets always come from the same code.
 */
function overAnImage(op: KernelOp): boolean {
  return (op.type === 'conv' || op.type === 'depthwise') && op.output[0] * op.output[1] > 1;
}

/** Rows per kernel call: as many as keep one call's activations within CACHE_BYTES, 1 to MAX_ROWS. */
function passRows(ops: KernelOp[]): number {
  const terms = [{ scale: 1, weight: 1 }];
  const perRow =
    layOutKernelMemory(ops, terms, 2, 0, 1, false).end - layOutKernelMemory(ops, terms, 1, 0, 1, false).end;
  return Math.max(1, Math.min(MAX_ROWS, Math.floor(CACHE_BYTES / Math.max(1, perRow))));
}

/** Each row's softmax, in place, computed in double precision. */
function softmaxRows(y: Float32Array, classes: number): void {
  for (let row = 0; row < y.length; row += classes) {
    let max = -Infinity;
    for (let j = 0; j < classes; j++) max = Math.max(max, y[row + j]);
    let sum = 0;
    for (let j = 0; j < classes; j++) sum += Math.exp(y[row + j] - max);
    for (let j = 0; j < classes; j++) y[row + j] = Math.exp(y[row + j] - max) / sum;
  }
}

/**
 * Runs CHECK_ROWS seeded rows through the kernel and through TF.js's predict: undefined when they
 * agree, else what differs. A guard against a layer whose meaning the plan gets wrong: the pass
 * then stays on TF.js, slower but right.
 */
function differenceFromTf(tf: Tf, model: LoadedModel, rowPass: RowPass, backend: string): string | undefined {
  const shape = model.inputShape.map((d) => d ?? 1);
  // No more rows than the memory rule lets one call take (one, for a large image teacher).
  const rows = Math.min(CHECK_ROWS, inferenceBatch(shape, backend));
  const x = tf.tidy(() => tf.randomNormal([rows, ...shape], 0, 1, 'float32', 7).dataSync() as Float32Array);
  let expected: Float32Array;
  try {
    expected = tf.tidy(() => model.predict(tf.tensor(x, [rows, ...shape])).dataSync() as Float32Array);
  } catch (error) {
    // TF.js cannot run the teacher: leave it there, where the pass reports that as it always has.
    return `TF.js's own forward pass failed (${error instanceof Error ? error.message : String(error)})`;
  }
  const actual = rowPass.predict(x, rows);
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    scale = Math.max(scale, Math.abs(expected[i]));
    worst = Math.max(worst, Math.abs(expected[i] - actual[i]));
  }
  // NaN compares false: a NaN on either side is a difference.
  if (worst <= CHECK_TOLERANCE * (1 + scale)) return undefined;
  return `the kernel's output differs from TF.js's by ${worst.toPrecision(3)} on seeded rows (a bug in distill-gate; the pass stays on TF.js)`;
}
