import type { Tensor } from '@tensorflow/tfjs';
import type { Tf } from '../backend/resolve.js';
import type { Dataset } from '../data/dataset.js';
import { isOutOfMemory } from '../errors.js';
import { eventLoopPauser } from '../run-control.js';
import type { LoadedModel } from './loaded-model.js';

/** Largest inference batch: beyond this, call overhead is already amortised for any model. */
export const INFERENCE_BATCH = 512;

/**
 * Bytes the activations of one inference batch may take, per backend. Estimates, chosen so that a
 * batch never comes near a backend's limit and peak memory stays a small multiple of the input:
 * - wasm: one wasm32 heap per thread, capped at 4 GiB, that TF.js grows and never shrinks; the
 *   teacher's weights live there too, and each teacher worker thread has its own heap. 256 MiB
 *   keeps even 8 workers' heaps well inside a CI runner's memory.
 * - cpu: tensors are JS typed arrays, all counted in the process's RSS; 256 MiB likewise.
 * - native TensorFlow and GPU backends: native memory or device memory, usually several GiB, but
 *   WebGPU caps one buffer at 256 MiB by default; 512 MiB keeps the largest tensor below that.
 */
export const INFERENCE_BUDGET_BYTES: Record<string, number> = {
  wasm: 256 * 2 ** 20,
  cpu: 256 * 2 ** 20,
};
export const DEFAULT_INFERENCE_BUDGET_BYTES = 512 * 2 ** 20;

/**
 * Live activation bytes per input byte during one forward pass of a conv net. MobileNetV2 at
 * 224x224x3 (150,528 floats in) has layers of 112x112x96 (1.2M floats, 8x the input); while
 * one runs, its input, its output and a residual branch are alive (~24x the input), and
 * XNNPACK's scratch buffers add more. 32 covers that; an MLP's activations are a few times its
 * input, so it overestimates them, which only matters for inputs of thousands of features.
 */
export const ACTIVATION_FACTOR = 32;

/**
 * Rows per inference call for samples of `sampleShape` on `backend`:
 * clamp(floor(budget / (bytesPerRow * ACTIVATION_FACTOR)), 1, 512). At float32, 64 features
 * (8 KiB of activations a row) and 28x28x1 (100 KiB) get 512; 64x64x3 gets 170; 224x224x3
 * (19 MB a row) gets 13 on wasm, where 512 rows would need 10 GB of its 4 GiB heap.
 */
export function inferenceBatch(sampleShape: readonly number[], backend: string, bytesPerElement = 4): number {
  const rowBytes = Math.max(1, sampleShape.reduce((a, b) => a * b, 1) * bytesPerElement);
  const budget = INFERENCE_BUDGET_BYTES[backend] ?? DEFAULT_INFERENCE_BUDGET_BYTES;
  return Math.max(1, Math.min(INFERENCE_BATCH, Math.floor(budget / (rowBytes * ACTIVATION_FACTOR))));
}

/**
 * Bytes of activations per call at which a pass over many rows runs fastest on TF.js's wasm
 * backend: XNNPACK's operators stream each activation through the cache, and a batch whose
 * activations outgrow it runs 2x slower per row (`bench/RESULTS.md`, "inference batch": the
 * 32x32x3 conv teacher of bench:conv at 512 rows 1.07 ms a row, at 16-32 rows 0.45 ms; the
 * example MLP teacher at 512 rows 17 us, at 32-128 14.5 us). The cpu backend does not care
 * (within 10% from 32 to 512 rows) and GPU backends want large batches: no cap there.
 */
export const PASS_CACHE_BYTES: Record<string, number> = { wasm: 4 * 2 ** 20 };
/** Fewest rows per call of a cache-sized pass: below this TF.js's per-call cost shows. */
export const PASS_MIN_BATCH = 16;

/**
 * Rows per call for a pass over a whole split (the teacher's soft targets, agreement): the
 * memory rule's batch (`inferenceBatch`), cut on wasm to keep a call's activations in cache.
 */
export function passBatch(sampleShape: readonly number[], backend: string, bytesPerElement = 4): number {
  const memoryBatch = inferenceBatch(sampleShape, backend, bytesPerElement);
  const cache = PASS_CACHE_BYTES[backend];
  if (cache === undefined) return memoryBatch;
  const rowBytes = Math.max(1, sampleShape.reduce((a, b) => a * b, 1) * bytesPerElement);
  return Math.min(memoryBatch, Math.max(PASS_MIN_BATCH, Math.floor(cache / (rowBytes * ACTIVATION_FACTOR))));
}

/**
 * Runs `model` over the first `limit` rows of `dataset`, one predict call per batch (never the
 * default batch of 32), and returns logits row-major. A softmax model's probabilities are turned
 * into log-probabilities, which every consumer treats as logits. The batch is chosen from the
 * sample size and the backend (`inferenceBatch`); a call that still runs out of memory is retried
 * with half the rows, down to one, and the smaller batch is kept for the rest of the pass.
 * When `stop` aborts, the pass ends after the batch in flight and returns the rows done so far
 * (a shorter array): a large teacher's pass must not outlive a cancel or the time budget.
 * `onRows` is told the rows done after each batch (progress). A model with a `rowPass` (a
 * teacher the training kernel runs) is run through it, with no tensor at all.
 */
export async function predictLogits(
  tf: Tf,
  model: LoadedModel,
  dataset: Dataset,
  limit = dataset.size,
  batch = passBatch(dataset.sampleShape, tf.getBackend()),
  stop?: AbortSignal,
  onRows?: (done: number) => void,
): Promise<Float32Array> {
  const total = Math.min(limit, dataset.size);
  const out = new Float32Array(total * model.outputWidth);
  let size = Math.max(1, batch);
  // Lets signal handlers and the budget's timers run between batches.
  const pause = eventLoopPauser();
  for (let start = 0; start < total;) {
    if (stop) {
      await pause();
      if (stop.aborted) return out.subarray(0, start * model.outputWidth);
    }
    const count = Math.min(size, total - start);
    const rows = await dataset.read(start, count);
    if (model.rowPass) {
      const y = model.rowPass.predict(rows, count);
      out.set(model.output === 'probabilities' ? logOfProbabilities(y) : y, start * model.outputWidth);
      start += count;
      onRows?.(start);
      continue;
    }
    let logits;
    try {
      logits = model.predictAsync
        ? await asLogits(tf, model, model.predictAsync.bind(model), tf.tensor(rows, [count, ...dataset.sampleShape]))
        : tf.tidy(() => {
            const x = tf.tensor(rows, [count, ...dataset.sampleShape]);
            const y = model.predict(x);
            return model.output === 'probabilities' ? tf.log(tf.maximum(y, 1e-12)) : y;
          });
    } catch (error) {
      // tidy has disposed the batch's tensors; try again with half as many rows.
      if (count > 1 && isOutOfMemory(error)) {
        size = Math.ceil(count / 2);
        continue;
      }
      throw error;
    }
    out.set(await logits.data(), start * model.outputWidth);
    logits.dispose();
    start += count;
    onRows?.(start);
  }
  return out;
}

/**
 * The logits of one asynchronous forward pass (an ONNX teacher's), which tidy cannot wrap: the
 * input, the output and the log are each disposed here, whether the pass succeeds or not.
 */
async function asLogits(
  tf: Tf,
  model: LoadedModel,
  predictAsync: (x: Tensor) => Promise<Tensor>,
  x: Tensor,
): Promise<Tensor> {
  let y: Tensor;
  try {
    y = await predictAsync(x);
  } finally {
    x.dispose();
  }
  if (model.output !== 'probabilities') return y;
  try {
    return tf.tidy(() => tf.log(tf.maximum(y, 1e-12)));
  } finally {
    y.dispose();
  }
}

/** log(max(p, 1e-12)) in place, as the tensor path computes it for a softmax or sigmoid head. */
function logOfProbabilities(p: Float32Array): Float32Array {
  for (let i = 0; i < p.length; i++) p[i] = Math.log(Math.max(p[i], 1e-12));
  return p;
}
