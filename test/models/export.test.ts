import { mkdtemp, readFile, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { writeModelArtifacts } from '../../src/models/artifacts.js';
import {
  dequantize,
  describeClipped,
  exportArtifacts,
  type ClippedWeight,
  exportPlan,
  quantizeAffineUint8,
  quantizedBytes,
  quantizeWeights,
  saveToMemory,
  SOFTMAX_LAYER,
} from '../../src/models/export.js';
import { fromFloat16, toFloat16 } from '../../src/models/float16.js';
import { randomArray } from '../helpers.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** What stock TF.js makes of one manifest entry and its bytes: the decoder tf.loadLayersModel uses. */
function decodedByTf(spec: tf.io.WeightsManifestEntry, bytes: Uint8Array): Float32Array {
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const decoded = tf.io.decodeWeights(buffer, [spec]);
  const values = decoded[spec.name].dataSync() as Float32Array;
  decoded[spec.name].dispose();
  return values;
}

const spec = (name: string, n: number): tf.io.WeightsManifestEntry => ({ name, shape: [n], dtype: 'float32' });

describe('float16 weights', () => {
  it("round to the nearest half (ties to even), and decode exactly as TF.js's float16 decoder does", () => {
    const values = Float32Array.from([
      ...randomArray(2000, 3, 8),
      0,
      -0,
      1,
      65504, // the largest half
      70000, // beyond it: Infinity
      2 ** -24, // the smallest subnormal
      2 ** -26, // below half of it: 0
      3 * 2 ** -25, // halfway between two subnormals: to the even one, 2^-23
      1 + 2 ** -11, // halfway between 1 and the next half: to even, 1
      1 + 3 * 2 ** -11, // halfway: to even, 1 + 2^-9
      6e-5, // a subnormal half
    ]);
    const halves = toFloat16(values);
    const mine = fromFloat16(halves);
    const theirs = decodedByTf(
      { ...spec('w', values.length), quantization: { dtype: 'float16' } },
      new Uint8Array(halves.buffer),
    );
    expect(Array.from(mine)).toEqual(Array.from(theirs));
    const tail = Array.from(mine.slice(2000));
    expect(tail.slice(0, 7)).toEqual([0, -0, 1, 65504, Infinity, 2 ** -24, 0]);
    expect(tail.slice(7)).toEqual([2 ** -23, 1, 1 + 2 ** -9, Math.round(Math.fround(6e-5) * 2 ** 24) * 2 ** -24]);
    // Within half a unit in the last place of float16 (11 significant bits) for normal halves.
    for (let i = 0; i < 2000; i++) {
      if (Math.abs(values[i]) < 2 ** -14) continue;
      expect(Math.abs(mine[i] - values[i])).toBeLessThanOrEqual(Math.abs(values[i]) * 2 ** -11);
    }
  });
});

describe('uint8 weights, affine per tensor', () => {
  it('dequantize as TF.js decodes them, within half a step of the float32 value, with 0 kept exact', () => {
    const values = Float32Array.from([...randomArray(999, 5, 0.3), 0]);
    const { quantized, scale, min } = quantizeAffineUint8(values);
    const entry = { ...spec('kernel', values.length), quantization: { dtype: 'uint8' as const, scale, min } };
    const mine = dequantize(entry, quantized);
    expect(Array.from(mine)).toEqual(Array.from(decodedByTf(entry, quantized)));
    let lowest = Infinity;
    let highest = -Infinity;
    for (const v of values) [lowest, highest] = [Math.min(lowest, v), Math.max(highest, v)];
    expect(scale).toBeCloseTo((highest - lowest) / 255, 12);
    for (let i = 0; i < values.length; i++) expect(Math.abs(mine[i] - values[i])).toBeLessThanOrEqual(scale / 2 + 1e-7);
    expect(mine[999]).toBe(0);
  });

  it('stores a constant tensor (a zero bias) as its value, and leaves a range without 0 un-nudged', () => {
    const zeros = quantizeAffineUint8(new Float32Array(4));
    expect(zeros).toEqual({ quantized: new Uint8Array(4), scale: 1, min: 0, clipped: 0 });
    const positive = quantizeAffineUint8(Float32Array.from([1, 2, 3]));
    expect(positive.min).toBe(1);
    expect(Array.from(positive.quantized)).toEqual([0, 128, 255]);
  });

  it('records the quantization in the manifest entries, leaves int32 weights alone, and shrinks the bytes 4x', () => {
    const data = new Uint8Array([
      ...new Uint8Array(Float32Array.from([0.5, -0.25, 1]).buffer),
      ...new Uint8Array(Int32Array.from([7]).buffer),
    ]);
    const specs: tf.io.WeightsManifestEntry[] = [spec('w', 3), { name: 'step', shape: [1], dtype: 'int32' }];
    const { weightSpecs, weightData } = quantizeWeights(specs, data, 'uint8');
    expect(weightSpecs[0].quantization).toMatchObject({
      dtype: 'uint8',
      scale: expect.any(Number),
      min: expect.any(Number),
    });
    expect(weightSpecs[1]).toEqual(specs[1]);
    expect(weightData.byteLength).toBe(3 + 4);
    expect(quantizedBytes(specs, 'uint8')).toBe(7);
    expect(quantizedBytes(specs, 'float16')).toBe(10);
    expect(quantizedBytes(specs, 'none')).toBe(16);
  });
});

describe('weights that do not fit the shipped format', () => {
  const bytesOf = (values: Float32Array) => new Uint8Array(values.buffer.slice(0));
  /** Each weight of `quantizeWeights`' output as stock TF.js decodes it. */
  const decodedAll = (weightSpecs: tf.io.WeightsManifestEntry[], weightData: ArrayBuffer) => {
    const decoded = tf.io.decodeWeights(weightData, weightSpecs);
    const values = Object.fromEntries(Object.entries(decoded).map(([name, t]) => [name, Array.from(t.dataSync())]));
    tf.dispose(Object.values(decoded));
    return values;
  };

  it('are clipped to float16 range (±65,504) instead of shipping as Infinity, and reported by name', () => {
    const values = Float32Array.from([1, 70000, -1e6, 65504, 0.5]);
    const { weightSpecs, weightData, clipped } = quantizeWeights([spec('dense/kernel', 5)], bytesOf(values), 'float16');
    expect(decodedAll(weightSpecs, weightData)['dense/kernel']).toEqual([1, 65504, -65504, 65504, 0.5]);
    expect(clipped).toEqual([{ name: 'dense/kernel', count: 2, range: [-65504, 65504], why: 'float16 range' }]);
    expect(describeClipped(clipped, 'float16')).toBe(
      "export.quantize float16: 2 weight values in dense/kernel (2) did not fit and were clipped to float16's largest value, ±65,504 (beyond it they would ship as Infinity and the student would output NaN).",
    );
    const reported: ClippedWeight[][] = [];
    const artifacts = {
      modelTopology: {},
      weightSpecs: [spec('dense/kernel', 5)],
      weightData: bytesOf(values).buffer as ArrayBuffer,
    };
    exportArtifacts(artifacts, { quantize: 'float16', output: 'logits' }, 'logits', (c) => reported.push(c));
    expect(reported).toEqual([clipped]);
  });

  it('keep a uint8 range that spans float32 to the steps that dequantize finite, as TF.js computes them', () => {
    // The range holds 0, so min is nudged to a whole step: the top step then dequantizes above float32's largest value.
    const values = Float32Array.from([-3.4e38, 0, 3.4e38, 1e38]);
    const { weightSpecs, weightData, clipped } = quantizeWeights([spec('w', 4)], bytesOf(values), 'uint8');
    const loaded = decodedAll(weightSpecs, weightData).w;
    expect(loaded.every(Number.isFinite)).toBe(true);
    expect(loaded[1]).toBe(0);
    expect(clipped).toMatchObject([{ name: 'w', count: 1, why: 'uint8 dequantization' }]);
    expect(clipped[0].range[1]).toBe(loaded[2]);
    // Ordinary ranges clip nothing.
    expect(quantizeWeights([spec('w', 3)], bytesOf(Float32Array.from([0.5, -0.25, 1])), 'uint8').clipped).toEqual([]);
  });
});

/** A small student: 6 features -> 8 relu -> 4 logits, seeded. */
function student(): tf.LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.dense({
        inputShape: [6],
        units: 8,
        activation: 'relu',
        kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
      }),
      tf.layers.dense({
        units: 4,
        kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }),
        biasInitializer: tf.initializers.constant({ value: 0.1 }),
      }),
    ],
  });
}

/** Reads student/ from disk and loads it with nothing but stock TF.js: how an app would. */
async function loadAsAnAppWould(dir: string): Promise<tf.LayersModel> {
  const json = JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8'));
  const group = json.weightsManifest[0];
  const shard = await readFile(path.join(dir, group.paths[0]));
  return tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: json.modelTopology,
      weightSpecs: group.weights,
      weightData: shard.buffer.slice(shard.byteOffset, shard.byteOffset + shard.byteLength),
    }),
  );
}

describe('the shipped student', () => {
  const x = tf.tensor2d(randomArray(20 * 6, 9, 2), [20, 6]);

  it('loads with stock tf.loadLayersModel from student/, and answers softmax of its own dequantized logits', async () => {
    const model = student();
    const before = tf.memory().numTensors;
    const artifacts = await saveToMemory(tf, model);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-export-'));
    for (const quantize of ['uint8', 'float16'] as const) {
      const shipped = exportArtifacts(artifacts, { quantize, output: 'probabilities' }, 'logits');
      const out = path.join(dir, quantize);
      const { bytes } = await writeModelArtifacts(out, shipped);
      expect(bytes).toBe(quantizedBytes(artifacts.weightSpecs!, quantize));
      expect((await stat(path.join(out, 'group1-shard1of1.bin'))).size).toBe(bytes);
      const loaded = await loadAsAnAppWould(out);
      // Our own evaluation: the float32 student with every weight replaced by its dequantized value.
      const shard = new Uint8Array(shipped.weightData as ArrayBuffer);
      let offset = 0;
      const dequantized = shipped.weightSpecs!.map((entry) => {
        const size = entry.shape.reduce((a, b) => a * b, 1) * (quantize === 'uint8' ? 1 : 2);
        const values = dequantize(entry, shard.subarray(offset, offset + size));
        offset += size;
        return tf.tensor(values, entry.shape);
      });
      const reference = student();
      reference.setWeights(dequantized);
      const expected = tf.tidy(() => tf.softmax(reference.predict(x) as tf.Tensor).arraySync() as number[][]);
      const got = tf.tidy(() => (loaded.predict(x) as tf.Tensor).arraySync() as number[][]);
      expect(
        got
          .flat()
          .map((v, i) => Math.abs(v - expected.flat()[i]))
          .every((d) => d < 1e-6),
      ).toBe(true);
      expect(got.every((row) => Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-5)).toBe(true);
      // Quantizing changed the answers a little: this is not the float32 student under another name.
      const float = tf.tidy(() => tf.softmax(model.predict(x) as tf.Tensor).arraySync() as number[][]);
      expect(float.flat().some((v, i) => v !== got.flat()[i])).toBe(true);
      tf.dispose(dequantized);
      reference.dispose();
      loaded.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });

  it('appends the softmax only where the plan wants probabilities and the student gives logits; logits otherwise', async () => {
    const model = student();
    const artifacts = await saveToMemory(tf, model);
    const lastLayer = (a: tf.io.ModelArtifacts) => {
      const layers = (
        a.modelTopology as { config: { layers: Array<{ class_name: string; config: { name: string } }> } }
      ).config.layers;
      return layers[layers.length - 1];
    };
    expect(
      lastLayer(exportArtifacts(artifacts, { quantize: 'none', output: 'probabilities' }, 'logits')).config.name,
    ).toBe(SOFTMAX_LAYER);
    expect(lastLayer(exportArtifacts(artifacts, { quantize: 'none', output: 'logits' }, 'logits')).class_name).toBe(
      'Dense',
    );
    expect(
      lastLayer(exportArtifacts(artifacts, { quantize: 'none', output: 'probabilities' }, 'probabilities')).class_name,
    ).toBe('Dense');
    // float32 and logits: the trained student's own bytes.
    expect(exportArtifacts(artifacts, { quantize: 'none', output: 'logits' }, 'logits').weightData).toEqual(
      artifacts.weightData,
    );
    model.dispose();
  });

  it("wires the softmax after a functional model's output", async () => {
    const input = tf.input({ shape: [6] });
    const hidden = tf.layers.dense({ units: 5, activation: 'relu' }).apply(input) as tf.SymbolicTensor;
    const output = tf.layers.dense({ units: 3 }).apply(hidden) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: output });
    const shipped = exportArtifacts(
      await saveToMemory(tf, model),
      { quantize: 'none', output: 'probabilities' },
      'logits',
    );
    const loaded = await tf.loadLayersModel(tf.io.fromMemory(shipped));
    const [got, expected] = tf.tidy(() => [
      (loaded.predict(x) as tf.Tensor).arraySync() as number[][],
      tf.softmax(model.predict(x) as tf.Tensor).arraySync() as number[][],
    ]);
    expect(got.flat().every((v, i) => Math.abs(v - expected.flat()[i]) < 1e-6)).toBe(true);
    loaded.dispose();
    model.dispose();
  });

  it("answers as the teacher does by default: probabilities for a softmax teacher, logits for a logits one; the config's output wins", () => {
    expect(exportPlan({ quantize: 'none', output: 'auto' }, 'probabilities')).toEqual({
      quantize: 'none',
      output: 'probabilities',
    });
    expect(exportPlan({ quantize: 'uint8', output: 'auto' }, 'logits')).toEqual({
      quantize: 'uint8',
      output: 'logits',
    });
    expect(exportPlan({ quantize: 'none', output: 'logits' }, 'probabilities').output).toBe('logits');
  });
});
