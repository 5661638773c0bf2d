import type { Tensor } from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveBackend, type Tf } from '../../src/backend/resolve.js';
import { inMemoryDataset } from '../../src/data/dataset.js';
import type { LoadedModel } from '../../src/models/loaded-model.js';
import { isOutOfMemory } from '../../src/errors.js';
import { INFERENCE_BATCH, inferenceBatch, predictLogits } from '../../src/models/predict.js';

let tf: Tf;
beforeAll(async () => {
  ({ tf } = await resolveBackend('cpu'));
});

/** A model whose logits are [row sum, row index marker]; it records each call's batch and may refuse large ones. */
function fakeModel(failAbove = Infinity, message = 'memory access out of bounds'): LoadedModel & { calls: number[] } {
  const calls: number[] = [];
  return {
    calls,
    format: 'layers-model',
    inputShape: [],
    outputWidth: 2,
    output: 'logits',
    params: 0,
    bytes: 0,
    predict: (x: Tensor) => {
      const rows = x.shape[0];
      calls.push(rows);
      if (rows > failAbove) throw new Error(message);
      const flat = x.reshape([rows, -1]);
      return tf.concat([flat.sum(1, true), flat.max(1, true)], 1);
    },
    dispose: () => {},
  };
}

describe('inference batch from the input size and the backend', () => {
  it('gives image-sized inputs a small batch and small inputs the full 512', () => {
    // 224x224x3 float32 is 602,112 bytes a row; with 32x for activations, 13 rows fit 256 MiB.
    expect(inferenceBatch([224, 224, 3], 'wasm')).toBe(13);
    expect(inferenceBatch([224, 224, 3], 'cpu')).toBe(13);
    expect(inferenceBatch([64], 'wasm')).toBe(INFERENCE_BATCH);
    expect(inferenceBatch([28, 28, 1], 'wasm')).toBe(512);
    expect(inferenceBatch([32, 32, 3], 'wasm')).toBe(512);
    expect(inferenceBatch([64, 64, 3], 'wasm')).toBe(170);
    // GPU and native backends get a larger budget; the batch never drops below one row.
    expect(inferenceBatch([224, 224, 3], 'webgpu')).toBe(27);
    expect(inferenceBatch([4096, 4096, 3], 'wasm')).toBe(1);
    expect(inferenceBatch([], 'wasm')).toBe(512);
  });

  it('is what predictLogits uses by default', async () => {
    const model = fakeModel();
    const rows = 30;
    const width = 224 * 224 * 3;
    const x = new Float32Array(rows * width);
    for (let r = 0; r < rows; r++) x[r * width] = r;
    const logits = await predictLogits(tf, model, inMemoryDataset('images', x, [224, 224, 3]));
    expect(model.calls).toEqual([13, 13, 4]);
    for (let r = 0; r < rows; r++) expect(logits[2 * r]).toBe(r);
  });
});

describe('a predict call that runs out of memory', () => {
  const data = () =>
    inMemoryDataset(
      'd',
      Float32Array.from({ length: 23 * 3 }, (_, i) => i),
      [3],
    );
  const expected = Array.from({ length: 23 }, (_, r) => [3 * (3 * r) + 3, 3 * r + 2]).flat();

  it('is retried with half the rows, and the smaller batch is kept', async () => {
    const model = fakeModel(5);
    const before = tf.memory().numTensors;
    const logits = await predictLogits(tf, model, data(), 23, 16);
    expect(Array.from(logits)).toEqual(expected);
    expect(model.calls).toEqual([16, 8, 4, 4, 4, 4, 4, 3]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('fails as before when even one row does not fit, or the error is not about memory', async () => {
    await expect(predictLogits(tf, fakeModel(0), data(), 23, 4)).rejects.toThrow(/memory access out of bounds/);
    const other = fakeModel(2, 'Input tensor count mismatch');
    await expect(predictLogits(tf, other, data(), 23, 4)).rejects.toThrow(/Input tensor count mismatch/);
    expect(other.calls).toEqual([4]);
  });

  it('is recognised from the messages backends throw', () => {
    for (const message of [
      'RuntimeError: memory access out of bounds',
      'OOM when allocating tensor with shape[512,112,112,96]',
      'Aborted(Cannot enlarge memory arrays to size 4294967296 bytes)',
      'Array buffer allocation failed',
      'WebGPU: out of memory',
    ]) {
      expect(isOutOfMemory(new Error(message)), message).toBe(true);
    }
    expect(isOutOfMemory(new Error('Input tensor count mismatch'))).toBe(false);
  });
});

describe('a pass that is told to stop', () => {
  it('ends after the batch in flight and returns the rows done so far, leaving no tensors behind', async () => {
    const model = fakeModel();
    const stop = new AbortController();
    const counting: LoadedModel = {
      ...model,
      predict: (x: Tensor) => {
        // The second batch's call stops the pass: it still completes, the third never starts.
        if (model.calls.length === 1) stop.abort(new Error('received SIGINT'));
        return model.predict(x);
      },
    };
    const data = inMemoryDataset(
      'd',
      Float32Array.from({ length: 23 * 3 }, (_, i) => i),
      [3],
    );
    const before = tf.memory().numTensors;
    const logits = await predictLogits(tf, counting, data, 23, 4, stop.signal);
    expect(model.calls).toEqual([4, 4]);
    expect(Array.from(logits)).toEqual(Array.from(await predictLogits(tf, fakeModel(), data, 8, 4)));
    expect(tf.memory().numTensors).toBe(before);
  });
});
