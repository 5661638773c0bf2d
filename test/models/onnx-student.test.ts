import { beforeAll, describe, expect, it } from 'vitest';
import type { LayersModel } from '@tensorflow/tfjs';
import { resolveBackend, type Tf } from '../../src/backend/resolve.js';
import { inMemoryDataset } from '../../src/data/dataset.js';
import {
  checkOnnxStudent,
  DEFAULT_ONNX_MAX_ABS_DIFF,
  maxAbsDifference,
  ONNX_CHECK_ROWS,
  onnxExportProblem,
  onnxStudentModel,
  sampleRows,
} from '../../src/models/onnx-student.js';
import { studentToOnnx } from '../../src/models/onnx-student-convert.js';
import { wrapLayersModel } from '../../src/models/model.js';
import { readOnnxSummary } from '../../src/models/onnx-proto.js';
import { randomArray } from '../helpers.js';
import { onnxRuntime, withoutOnnxRuntime } from '../onnx-runtime.js';

let tf: Tf;
beforeAll(async () => {
  ({ tf } = await resolveBackend('cpu'));
});

type LayerArgs = Record<string, unknown> & { type: string };

/**
 * A sequential student of `layers` on `inputShape`, its weights seeded and every batch norm given
 * moving statistics far from the identity (as training leaves them), so that a fold gone wrong shows.
 */
function student(inputShape: number[], layers: LayerArgs[], seed = 1): LayersModel {
  const model = tf.sequential();
  layers.forEach(({ type, ...args }, i) => {
    const factory = tf.layers[type as 'dense'] as unknown as (
      a: Record<string, unknown>,
    ) => ReturnType<typeof tf.layers.dense>;
    model.add(factory({ ...args, ...(i === 0 ? { inputShape } : {}) }));
  });
  let s = seed;
  for (const layer of model.layers) {
    const isNorm = layer.getClassName() === 'BatchNormalization';
    const values = layer.getWeights().map((w) => {
      const n = w.size;
      const name = layer.weights[layer.getWeights().indexOf(w)].originalName;
      const random = randomArray(n, s++, 0.5);
      // Variances positive and away from 0; gammas around 1; means and betas around 0.
      if (isNorm && name.endsWith('moving_variance'))
        return tf.tensor(
          random.map((v) => 0.5 + Math.abs(v) * 2),
          w.shape,
        );
      if (isNorm && name.endsWith('gamma'))
        return tf.tensor(
          random.map((v) => 1 + v),
          w.shape,
        );
      return tf.tensor(random, w.shape);
    });
    layer.setWeights(values);
    for (const v of values) v.dispose();
  }
  return model;
}

/** The largest |onnxruntime − TF.js| over `rows` random rows. */
async function difference(model: LayersModel, inputShape: number[], rows = 16, appendSoftmax = false): Promise<number> {
  const bytes = studentToOnnx(model, { appendSoftmax });
  const width = inputShape.reduce((a, b) => a * b, 1);
  const data = inMemoryDataset('rows.npy', randomArray(rows * width, 42, 2), inputShape);
  const check = await checkOnnxStudent(tf, model, bytes, data, onnxRuntime, {
    output: appendSoftmax ? 'probabilities' : 'logits',
    appendSoftmax,
    searchedIn: ['.'],
  });
  expect(check.status, check.note).toBe('checked');
  expect(check.rows).toBe(rows);
  return check.maxAbsDiff!;
}

const image = [8, 8, 3];
const cases: Array<[string, number[], LayerArgs[]]> = [
  [
    'dense with relu, sigmoid, tanh and linear',
    [12],
    [
      { type: 'dense', units: 10, activation: 'relu' },
      { type: 'dense', units: 8, activation: 'sigmoid' },
      { type: 'dense', units: 6, activation: 'tanh' },
      { type: 'dense', units: 4 },
    ],
  ],
  [
    'dense ending in a softmax',
    [12],
    [
      { type: 'dense', units: 8, activation: 'relu' },
      { type: 'dense', units: 5, activation: 'softmax' },
    ],
  ],
  [
    'conv2d, valid and same, strided and dilated',
    image,
    [
      { type: 'conv2d', filters: 4, kernelSize: 3, activation: 'relu' },
      { type: 'conv2d', filters: 5, kernelSize: [2, 3], strides: 2, padding: 'same' },
      { type: 'flatten' },
      { type: 'dense', units: 4 },
    ],
  ],
  [
    'conv2d dilated',
    image,
    [
      { type: 'conv2d', filters: 4, kernelSize: 3, dilationRate: 2, padding: 'same', activation: 'relu' },
      { type: 'flatten' },
      { type: 'dense', units: 3 },
    ],
  ],
  [
    'depthwise conv with a multiplier',
    image,
    [
      { type: 'depthwiseConv2d', kernelSize: 3, depthMultiplier: 2, padding: 'same', activation: 'relu' },
      { type: 'globalAveragePooling2d' },
      { type: 'dense', units: 4 },
    ],
  ],
  [
    'separable conv',
    image,
    [
      {
        type: 'separableConv2d',
        filters: 6,
        kernelSize: 3,
        depthMultiplier: 2,
        strides: 2,
        padding: 'same',
        activation: 'relu',
      },
      { type: 'globalMaxPooling2d' },
      { type: 'dense', units: 4 },
    ],
  ],
  [
    'max and average pools, valid and same',
    image,
    [
      { type: 'conv2d', filters: 4, kernelSize: 1 },
      { type: 'maxPooling2d', poolSize: 2 },
      { type: 'averagePooling2d', poolSize: 3, strides: 1, padding: 'same' },
      { type: 'maxPooling2d', poolSize: 3, strides: 2, padding: 'same' },
      { type: 'flatten' },
      { type: 'dense', units: 4 },
    ],
  ],
  [
    'global pools on NHWC (no conv before them)',
    image,
    [{ type: 'globalAveragePooling2d' }, { type: 'dense', units: 4 }],
  ],
  [
    'flatten, reshape and dropout',
    image,
    [
      { type: 'reshape', targetShape: [16, 12] },
      { type: 'dense', units: 5, activation: 'relu' },
      { type: 'dropout', rate: 0.5 },
      { type: 'flatten' },
      { type: 'dense', units: 4 },
    ],
  ],
  [
    'batch norm folded into conv2d, depthwise, separable and dense',
    image,
    [
      { type: 'conv2d', filters: 4, kernelSize: 3 },
      { type: 'batchNormalization' },
      { type: 'activation', activation: 'relu' },
      { type: 'depthwiseConv2d', kernelSize: 3, padding: 'same' },
      { type: 'batchNormalization' },
      { type: 'separableConv2d', filters: 5, kernelSize: 3, padding: 'same', useBias: false },
      { type: 'batchNormalization', epsilon: 0.01 },
      { type: 'flatten' },
      { type: 'dense', units: 6 },
      { type: 'batchNormalization' },
      { type: 'dense', units: 4 },
    ],
  ],
  [
    'batch norm that cannot be folded (after an activation, first, on rank 3)',
    image,
    [
      { type: 'batchNormalization' },
      { type: 'conv2d', filters: 4, kernelSize: 3, activation: 'relu' },
      { type: 'batchNormalization', center: false },
      { type: 'reshape', targetShape: [36, 4] },
      { type: 'batchNormalization', scale: false },
      { type: 'flatten' },
      { type: 'dense', units: 5, activation: 'relu' },
      { type: 'batchNormalization' },
      { type: 'dense', units: 3 },
    ],
  ],
  [
    'activation layers: relu6, elu, selu, softplus, softsign, hardSigmoid, swish',
    [10],
    [
      { type: 'dense', units: 8, activation: 'relu6' },
      { type: 'activation', activation: 'elu' },
      { type: 'dense', units: 8, activation: 'selu' },
      { type: 'activation', activation: 'softplus' },
      { type: 'dense', units: 8, activation: 'softsign' },
      { type: 'dense', units: 8, activation: 'hardSigmoid' },
      { type: 'dense', units: 4, activation: 'swish' },
    ],
  ],
  [
    'a softmax over the channels of an NCHW conv',
    image,
    [{ type: 'conv2d', filters: 4, kernelSize: 3, activation: 'softmax' }, { type: 'flatten' }],
  ],
];

describe.skipIf(withoutOnnxRuntime)('the ONNX student computes what the TF.js student does', () => {
  it.each(cases)('%s', async (_, inputShape, layers) => {
    const model = student(inputShape, layers);
    const before = tf.memory().numTensors;
    const diff = await difference(model, inputShape);
    expect(tf.memory().numTensors).toBe(before);
    expect(diff).toBeLessThanOrEqual(DEFAULT_ONNX_MAX_ABS_DIFF);
    model.dispose();
  });

  it('appends the softmax that export.output asks for, and names the output by what it holds', async () => {
    const model = student([12], [{ type: 'dense', units: 5 }]);
    expect(await difference(model, [12], 16, true)).toBeLessThanOrEqual(DEFAULT_ONNX_MAX_ABS_DIFF);
    const outputs = (bytes: Uint8Array) => readOnnxSummary(bytes, 'student.onnx').outputs.map((o) => o.name);
    expect(outputs(studentToOnnx(model, { appendSoftmax: true }))).toEqual(['probabilities']);
    expect(outputs(studentToOnnx(model, { appendSoftmax: false }))).toEqual(['logits']);
    model.dispose();
  });

  it('runs the student in onnxruntime behind predictAsync, for timing it where it will run', async () => {
    const layers = student(image, [
      { type: 'conv2d', filters: 4, kernelSize: 3, activation: 'relu' },
      { type: 'flatten' },
      { type: 'dense', units: 3 },
    ]);
    const model = wrapLayersModel(layers, 0);
    const onnx = await onnxStudentModel(tf, onnxRuntime!, model, { output: 'probabilities' });
    expect(onnx.output).toBe('probabilities');
    expect(onnx.runtime?.label).toMatch(/^onnxruntime-node /);
    const x = tf.tensor(randomArray(4 * 192, 5), [4, ...image]);
    const before = tf.memory().numTensors;
    const y = await onnx.predictAsync!(x);
    const expected = tf.tidy(() => tf.softmax(layers.predict(x) as ReturnType<typeof tf.tensor>));
    expect(y.shape).toEqual([4, 3]);
    expect(maxAbsDifference(await y.data(), await expected.data())).toBeLessThanOrEqual(DEFAULT_ONNX_MAX_ABS_DIFF);
    y.dispose();
    expected.dispose();
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    onnx.dispose();
    layers.dispose();
  });

  it('finds an export that is wrong: a kernel read in the wrong order differs by far more than the tolerance', async () => {
    const model = student(image, [
      { type: 'conv2d', filters: 4, kernelSize: 3 },
      { type: 'flatten' },
      { type: 'dense', units: 3 },
    ]);
    const other = student(
      image,
      [{ type: 'conv2d', filters: 4, kernelSize: 3 }, { type: 'flatten' }, { type: 'dense', units: 3 }],
      7,
    );
    const data = inMemoryDataset('rows.npy', randomArray(8 * 192, 3, 2), image);
    const check = await checkOnnxStudent(tf, model, studentToOnnx(other, { appendSoftmax: false }), data, onnxRuntime, {
      output: 'logits',
      appendSoftmax: false,
      searchedIn: ['.'],
    });
    expect(check.maxAbsDiff).toBeGreaterThan(1000 * DEFAULT_ONNX_MAX_ABS_DIFF);
    model.dispose();
    other.dispose();
  });
});

describe('what the ONNX export writes and refuses', () => {
  it('writes opset 13, an NHWC input with a free batch, a Transpose before the first conv and one back before flatten', () => {
    const model = student(image, [
      { type: 'conv2d', filters: 4, kernelSize: 3 },
      { type: 'maxPooling2d', poolSize: 2 },
      { type: 'conv2d', filters: 4, kernelSize: 1 },
      { type: 'flatten' },
      { type: 'dense', units: 3 },
    ]);
    const proto = readOnnxSummary(studentToOnnx(model, { appendSoftmax: false }), 'student.onnx');
    expect(proto.opset).toBe(13);
    expect(proto.inputs).toEqual([{ name: 'input', elemType: 1, shape: ['batch', 8, 8, 3] }]);
    expect(proto.nodes.map((n) => n.op)).toEqual([
      'Transpose',
      'Conv',
      'MaxPool',
      'Conv',
      'Transpose',
      'Flatten',
      'Gemm',
      'Identity',
    ]);
    model.dispose();
  });

  it('folds a batch norm after a layer without an activation: no BatchNormalization node', () => {
    const model = student(
      [6],
      [{ type: 'dense', units: 4 }, { type: 'batchNormalization' }, { type: 'dense', units: 2 }],
    );
    const ops = readOnnxSummary(studentToOnnx(model, { appendSoftmax: false }), 'student.onnx').nodes.map((n) => n.op);
    expect(ops).toEqual(['Gemm', 'Gemm', 'Identity']);
    model.dispose();
    const unfoldable = student(
      [6],
      [{ type: 'dense', units: 4, activation: 'relu' }, { type: 'batchNormalization' }, { type: 'dense', units: 2 }],
    );
    const kept = readOnnxSummary(studentToOnnx(unfoldable, { appendSoftmax: false }), 'student.onnx').nodes.map(
      (n) => n.op,
    );
    expect(kept).toEqual(['Gemm', 'Relu', 'BatchNormalization', 'Gemm', 'Identity']);
    unfoldable.dispose();
  });

  it('names the first layer it cannot write', () => {
    const model = student([6, 4], [{ type: 'layerNormalization' }, { type: 'flatten' }, { type: 'dense', units: 2 }]);
    const problem = onnxExportProblem(model);
    expect(problem?.layer).toMatch(/LayerNormalization/);
    expect(problem?.reason).toMatch(/writes dense, conv2d/);
    model.dispose();
  });

  it('refuses a student with branches', () => {
    const input = tf.input({ shape: [4] });
    const a = tf.layers.dense({ units: 3 }).apply(input) as ReturnType<typeof tf.input>;
    const b = tf.layers.dense({ units: 3 }).apply(input) as ReturnType<typeof tf.input>;
    const model = tf.model({ inputs: input, outputs: tf.layers.add().apply([a, b]) as ReturnType<typeof tf.input> });
    expect(onnxExportProblem(model)?.reason).toMatch(/chain of layers/);
    model.dispose();
  });

  it('samples rows evenly over the split, all of them when there are fewer', () => {
    expect(sampleRows(4, ONNX_CHECK_ROWS)).toEqual([0, 1, 2, 3]);
    expect(sampleRows(1000, 4)).toEqual([0, 250, 500, 750]);
  });

  it('counts a value non-finite on one side only as an infinite difference, the same on both as none', () => {
    expect(maxAbsDifference([1, NaN, Infinity], [1.5, NaN, Infinity])).toBe(0.5);
    expect(maxAbsDifference([1, NaN], [1, 2])).toBe(Infinity);
  });

  it('says the check was skipped, and why, without onnxruntime-node; the file is still made', async () => {
    const model = student([6], [{ type: 'dense', units: 2 }]);
    const bytes = studentToOnnx(model, { appendSoftmax: false });
    expect(bytes.length).toBeGreaterThan(0);
    const data = inMemoryDataset('rows.npy', randomArray(12, 1), [6]);
    const check = await checkOnnxStudent(tf, model, bytes, data, undefined, {
      output: 'logits',
      appendSoftmax: false,
      searchedIn: ['/work'],
    });
    expect(check.status).toBe('skipped');
    expect(check.note).toMatch(/onnxruntime-node is not installed in \/work.*npm install --no-save onnxruntime-node/);
    expect(check.maxAbsDiff).toBeUndefined();
    model.dispose();
  });
});
