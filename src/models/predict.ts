import type { Tf } from '../backend/resolve.js';
import type { Dataset } from '../data/dataset.js';
import type { LoadedModel } from './model.js';

/** Inference batch: large enough to amortise call overhead, small enough for any device. */
export const INFERENCE_BATCH = 512;

/**
 * Runs `model` over the first `limit` rows of `dataset`, one predict call per batch (never the
 * default batch of 32), and returns logits row-major. A softmax model's probabilities are turned
 * into log-probabilities, which every consumer treats as logits.
 */
export async function predictLogits(tf: Tf, model: LoadedModel, dataset: Dataset, limit = dataset.size, batch = INFERENCE_BATCH): Promise<Float32Array> {
  const total = Math.min(limit, dataset.size);
  const out = new Float32Array(total * model.outputWidth);
  for (let start = 0; start < total; start += batch) {
    const count = Math.min(batch, total - start);
    const rows = await dataset.read(start, count);
    const logits = tf.tidy(() => {
      const x = tf.tensor(rows, [count, ...dataset.sampleShape]);
      const y = model.predict(x);
      return model.output === 'probabilities' ? tf.log(tf.maximum(y, 1e-12)) : y;
    });
    out.set((await logits.data()) as Float32Array, start * model.outputWidth);
    logits.dispose();
  }
  return out;
}
