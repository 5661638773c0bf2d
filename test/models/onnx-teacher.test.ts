import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveBackend, type Tf } from '../../src/backend/resolve.js';
import { inMemoryDataset, loadSplit, type Dataset } from '../../src/data/dataset.js';
import { teacherLogits } from '../../src/distill/teacher-logits.js';
import { InputError } from '../../src/errors.js';
import { parseConfig } from '../../src/config/load.js';
import type { MeasureSettings } from '../../src/config/schema.js';
import { measureSpeed } from '../../src/measure/speed.js';
import { loadModel, wrapLayersModel } from '../../src/models/model.js';
import { type TeacherOptions } from '../../src/models/loaded-model.js';
import { fromFloat16 as fromHalf, toFloat16 as toHalf } from '../../src/models/float16.js';
import { checkOnnxFeed, isOnnxFile, loadOnnxTeacher, type OnnxTeacher } from '../../src/models/onnx.js';
import { chooseLayout, toNchw } from '../../src/models/onnx-feed.js';
import { PROBE_MODEL_BASE64 } from '../../src/models/onnx-runtime.js';
import { loadTeacher } from '../../src/models/pair.js';
import { predictLogits } from '../../src/models/predict.js';
import {
  CONV,
  CONV_TEACHER_ONNX,
  convTeacher,
  EXAMPLE_TEACHER_JSON,
  EXAMPLE_TEACHER_ONNX,
  mlpSpec,
  type DenseWeights,
} from '../../fixtures/onnx-models.js';
import { DataType, writeModel, type ModelSpec } from '../../src/models/onnx-writer.js';
import { EXAMPLE, maxRelativeError, randomArray } from '../helpers.js';
import { REPO, withoutOnnxRuntime } from '../onnx-runtime.js';

let tf: Tf;
let scratch: string;
beforeAll(async () => {
  ({ tf } = await resolveBackend('cpu'));
  scratch = await mkdtemp(path.join(os.tmpdir(), 'onnx-teacher-'));
});

const context = (sampleShape: number[], searchFrom = [REPO]) => ({
  data: { sampleShape, source: 'data/train_x.npy' },
  searchFrom,
});

/** Writes a model to the scratch folder and returns its path. */
async function written(name: string, bytes: Uint8Array | string): Promise<string> {
  const file = path.join(scratch, name);
  await writeFile(file, bytes);
  return file;
}

async function loadError(
  file: string,
  sampleShape: number[],
  options: TeacherOptions = {},
  searchFrom = [REPO],
): Promise<InputError> {
  try {
    (await loadOnnxTeacher(tf, file, options, context(sampleShape, searchFrom))).dispose();
  } catch (error) {
    expect(error).toBeInstanceOf(InputError);
    return error as InputError;
  }
  throw new Error('expected an InputError');
}

/** A 4-feature, 3-class dense teacher with seeded weights, in ONNX, for the variants the tests write. */
const small: DenseWeights = { kernel: randomArray(12, 3), bias: randomArray(3, 4), inputs: 4, units: 3 };
const rows4 = inMemoryDataset('rows.npy', randomArray(40, 9, 2), [4]);

describe('telling ONNX from TF.js by content', () => {
  it('reads a model.json as TF.js and protobuf bytes as ONNX, whatever the name', async () => {
    expect(await isOnnxFile(EXAMPLE_TEACHER_JSON)).toBe(false);
    expect(await isOnnxFile(EXAMPLE_TEACHER_ONNX)).toBe(true);
    const copy = await written('teacher.json', await readFile(EXAMPLE_TEACHER_ONNX));
    expect(await isOnnxFile(copy)).toBe(true);
    const json = await written('teacher.onnx', `\ufeff  ${await readFile(EXAMPLE_TEACHER_JSON, 'utf8')}`);
    expect(await isOnnxFile(json)).toBe(false);
    // A missing file goes to the loader its name suggests, which says it cannot be read.
    expect(await isOnnxFile(path.join(scratch, 'missing.onnx'))).toBe(true);
    expect(await isOnnxFile(path.join(scratch, 'missing.json'))).toBe(false);
  });
});

describe('keys only ONNX teachers read', () => {
  it('are refused for a TF.js teacher, naming the key', async () => {
    const config = (extra: string) =>
      parseConfig(
        `teacher: ${EXAMPLE_TEACHER_JSON}\nstudent: { layers: [ { type: dense, units: 10 } ] }\ndata: { train: { x: a.npy }, eval: { x: b.npy } }\n${extra}`,
        '/cfg/c.yml',
      );
    await expect(loadTeacher(tf, config('teacherInput: pixels\n'))).rejects.toThrow(
      /^teacherInput: applies to ONNX teachers, and .*model\.json is a TF\.js model\.json; remove teacherInput\./,
    );
    await expect(loadTeacher(tf, config('teacherLayout: nchw\n'))).rejects.toThrow(
      /^teacherLayout: applies to ONNX teachers/,
    );
    await expect(loadTeacher(tf, config('teacherInputFill: { mask: 1 }\n'))).rejects.toThrow(
      /^teacherInputFill: applies to ONNX teachers/,
    );
    (await loadTeacher(tf, config('teacherLayout: auto\n'))).dispose();
  });
});

describe('NHWC to NCHW', () => {
  it('transposes each row: channel planes of height x width', () => {
    // One row of 2x2 pixels, 3 channels: pixel p has values (10p, 10p+1, 10p+2).
    const nhwc = Float32Array.from([0, 1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32]);
    expect(Array.from(toNchw(nhwc, 1, [2, 2, 3]))).toEqual([0, 10, 20, 30, 1, 11, 21, 31, 2, 12, 22, 32]);
    // With one channel the two layouts hold the same values in the same order.
    expect(Array.from(toNchw(Float32Array.from([1, 2, 3, 4]), 1, [2, 2, 1]))).toEqual([1, 2, 3, 4]);
  });
});

describe('choosing the layout of a rank-4 input', () => {
  const where = { file: 'teacher.onnx', input: 'pixels', source: 'train_x.npy' };
  it('reads an input whose dims are the data (C, H, W) as NCHW, and one whose dims are (H, W, C) as NHWC', () => {
    expect(chooseLayout([3, 32, 32], [32, 32, 3], 'auto', where)).toEqual({ layout: 'nchw', dims: [3, 32, 32] });
    expect(chooseLayout([32, 32, 3], [32, 32, 3], 'auto', where)).toEqual({ layout: 'nhwc', dims: [32, 32, 3] });
    // Free height and width: the channels decide, and the data gives the sizes.
    expect(chooseLayout([3, 'height', null], [24, 16, 3], 'auto', where)).toEqual({
      layout: 'nchw',
      dims: [3, 24, 16],
    });
    expect(chooseLayout([1, 28, 28], [28, 28, 1], 'auto', where).layout).toBe('nchw');
    // Both fit (C = H = W): NCHW, unless the config says otherwise.
    expect(chooseLayout([4, 4, 4], [4, 4, 4], 'auto', where).layout).toBe('nchw');
    expect(chooseLayout([4, 4, 4], [4, 4, 4], 'nhwc', where).layout).toBe('nhwc');
    expect(chooseLayout([64], [64], 'auto', where)).toEqual({ layout: 'none', dims: [64] });
  });

  it('refuses shapes that fit in neither layout, showing both, and a forced layout that does not fit', () => {
    expect(() => chooseLayout([3, 32, 32], [28, 28, 1], 'auto', where)).toThrow(
      /teacher\.onnx: input pixels takes \[batch, 3, 32, 32\] but samples have shape \[28, 28, 1\] in train_x\.npy \(neither NCHW \[1, 28, 28\] nor NHWC \[28, 28, 1\]\)/,
    );
    expect(() => chooseLayout([3, 32, 32], [32, 32, 3], 'nhwc', where)).toThrow(/\(teacherLayout: nhwc\)/);
    expect(() => chooseLayout([32, 32, 3], [32, 32, 3], 'nchw', where)).toThrow(
      /read as NCHW \(teacherLayout: nchw\), but samples have shape \[32, 32, 3\]/,
    );
    expect(() => chooseLayout([64], [64], 'nchw', where)).toThrow(
      /^teacherLayout: nchw: applies to rank-4 \(image\) inputs/,
    );
    // The same number of values in another shape: the message says to reshape.
    expect(() => chooseLayout([784], [28, 28, 1], 'auto', where)).toThrow(
      /the same 784 values in another shape; reshape the data/,
    );
  });
});

describe('half-precision conversion', () => {
  it('round-trips values float16 holds exactly, rounds the others to nearest, and keeps the specials', () => {
    const exact = Float32Array.from([0, -0, 1, -2.5, 65504, 2 ** -14, 2 ** -24, 0.333251953125]);
    expect(Array.from(fromHalf(toHalf(exact)))).toEqual(Array.from(exact));
    expect(Array.from(toHalf(Float32Array.from([1, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 1e6, -1e6])))).toEqual([
      0x3c00, 0x3c00, 0x3c02, 0x7c00, 0xfc00,
    ]);
    expect(fromHalf(toHalf(Float32Array.from([NaN])))[0]).toBeNaN();
  });
});

describe.skipIf(withoutOnnxRuntime)('ONNX teachers in onnxruntime-node', () => {
  let evalSplit: Dataset;
  beforeAll(async () => {
    evalSplit = await loadSplit({ x: path.join(EXAMPLE, 'data/eval_x.npy') }, 'eval');
  });

  it("the example's teacher as ONNX gives the TF.js teacher's log-probabilities to 1e-5, and reads as probabilities from its Softmax", async () => {
    const onnx = await loadOnnxTeacher(tf, EXAMPLE_TEACHER_ONNX, {}, context([64]));
    const tfjs = await loadModel(tf, EXAMPLE_TEACHER_JSON, 'teacher');
    try {
      expect(onnx.output).toBe('probabilities');
      expect([onnx.outputWidth, onnx.params, onnx.bytes]).toEqual([10, tfjs.params, tfjs.bytes]);
      expect(onnx.inputShape).toEqual([64]);
      expect(onnx.runtime).toMatchObject({
        name: 'onnxruntime-node',
        provider: 'cpu',
        threads: os.availableParallelism(),
      });
      expect(onnx.notes?.[0]).toMatch(/^runs in onnxruntime-node \d+\.\d+\.\d+ \(cpu, \d+ threads?\)$/);
      const tensors = tf.memory().numTensors;
      const fromOnnx = await predictLogits(tf, onnx, evalSplit);
      const fromTfjs = await predictLogits(tf, tfjs, evalSplit);
      // Every tensor of the asynchronous pass (input, output, log) is freed.
      expect(tf.memory().numTensors).toBe(tensors);
      expect(fromOnnx.length).toBe(400 * 10);
      // float32 carries ~7 digits: log-probabilities near -30 agree to 1e-5 of their size, those
      // within 1 of zero to 1e-5 absolutely; the probabilities themselves to 1e-5 absolutely.
      const worst = (a: Float32Array, b: Float32Array, scale: (v: number) => number) =>
        Math.max(...a.map((v, i) => Math.abs(v - b[i]) / scale(b[i])));
      expect(worst(fromOnnx, fromTfjs, (v) => Math.max(1, Math.abs(v)))).toBeLessThan(1e-5);
      expect(worst(fromOnnx.map(Math.exp), fromTfjs.map(Math.exp), () => 1)).toBeLessThan(1e-5);
    } finally {
      onnx.dispose();
      tfjs.dispose();
    }
  });

  it('feeds an NCHW conv teacher the NHWC data transposed: its logits are those of the same network in TF.js', async () => {
    const { tfjs: weights } = convTeacher();
    const { height, width, channels, filters, kernel, classes } = CONV;
    const reference = tf.sequential({
      layers: [
        tf.layers.conv2d({
          inputShape: [height, width, channels],
          filters,
          kernelSize: kernel,
          padding: 'same',
          activation: 'relu',
        }),
        tf.layers.globalAveragePooling2d({}),
        tf.layers.dense({ units: classes }),
      ],
    });
    reference.setWeights([
      tf.tensor4d(weights.convKernel, [kernel, kernel, channels, filters]),
      tf.tensor1d(weights.convBias),
      tf.tensor2d(weights.dense.kernel, [filters, classes]),
      tf.tensor1d(weights.dense.bias),
    ]);
    const images = inMemoryDataset('images.npy', randomArray(6 * height * width * channels, 21), [
      height,
      width,
      channels,
    ]);
    const teacher = await loadOnnxTeacher(tf, CONV_TEACHER_ONNX, {}, context([height, width, channels]));
    try {
      expect(teacher.feed).toMatchObject({ name: 'pixels', layout: 'nchw', dims: [channels, height, width] });
      expect(teacher.inputShape).toEqual([height, width, channels]);
      expect(teacher.output).toBe('logits');
      expect(teacher.notes).toContain(
        "input pixels [batch, 3, 8, 8] is NCHW: fed the data's [8, 8, 3] samples transposed",
      );
      const onnx = await predictLogits(tf, teacher, images);
      const expected = tf.tidy(() =>
        (
          reference.predict(
            tf.tensor4d(randomArray(6 * height * width * channels, 21), [6, height, width, channels]),
          ) as ReturnType<typeof tf.tensor>
        ).dataSync(),
      );
      expect(Math.max(...onnx.map((v, i) => Math.abs(v - expected[i])))).toBeLessThan(1e-5);
      // The same values reshaped instead of transposed give other logits: the transpose matters.
      const reshaped = inMemoryDataset(
        'images.npy',
        toNchw(randomArray(6 * height * width * channels, 21), 6, [height, width, channels]),
        [height, width, channels],
      );
      const wrong = await predictLogits(tf, teacher, reshaped);
      expect(Math.max(...wrong.map((v, i) => Math.abs(v - expected[i])))).toBeGreaterThan(1e-2);
    } finally {
      teacher.dispose();
      reference.dispose();
    }
  });

  it('picks an output by teacherHead and an input by teacherInput, fills the other inputs, and lists them when unnamed', async () => {
    // Two inputs (x, and a mask multiplying it) and two outputs (logits, and their softmax).
    const spec = mlpSpec([small], { softmax: false, input: 'x', output: 'logits' });
    spec.nodes.unshift({ op: 'Mul', inputs: ['features', 'mask'], outputs: ['x'] });
    spec.nodes.push({
      op: 'Softmax',
      inputs: ['logits'],
      outputs: ['probabilities'],
      attributes: [{ name: 'axis', int: -1 }],
    });
    spec.inputs = [
      { name: 'features', elemType: DataType.FLOAT, shape: ['batch', 4] },
      // Its batch dimension named otherwise: a free first dimension is the batch all the same.
      { name: 'mask', elemType: DataType.FLOAT, shape: ['N', 4] },
    ];
    spec.outputs.push({ name: 'probabilities', elemType: DataType.FLOAT, shape: ['batch', 3] });
    const file = await written('two-by-two.onnx', writeModel(spec));
    expect((await loadError(file, [4])).message).toMatch(
      /has 2 inputs: features \(float32 \[batch, 4\]\), mask \(float32 \[N, 4\]\)\. Set teacherInput to the one the data feeds/,
    );
    expect((await loadError(file, [4], { input: 'feature' })).message).toMatch(
      /^teacherInput "feature": is not an input of .*two-by-two\.onnx; its inputs: features/,
    );
    expect((await loadError(file, [4], { input: 'features' })).message).toMatch(
      /input mask \(float32 \[N, 4\]\) needs a value: .*teacherInputFill: \{ mask: 1 \}/,
    );
    expect((await loadError(file, [4], { input: 'features', inputFill: { mask: 1 } })).message).toMatch(
      /has 2 outputs: logits \(3 wide\), probabilities \(3 wide\)\. Set teacherHead/,
    );
    expect((await loadError(file, [4], { input: 'features', inputFill: { mask: 1 }, head: 'prob' })).message).toMatch(
      /^teacherHead "prob": is not an output of .*; its outputs: logits \(3 wide\), probabilities \(3 wide\)/,
    );
    expect((await loadError(file, [4], { input: 'features', inputFill: { masks: 1 } })).message).toMatch(
      /^teacherInputFill\.masks: is not another input/,
    );
    const plain = await loadOnnxTeacher(
      tf,
      await written('plain.onnx', writeModel(mlpSpec([small], { softmax: false }))),
      {},
      context([4]),
    );
    const fromHead = async (head: string, fill: number) => {
      const teacher = await loadOnnxTeacher(
        tf,
        file,
        { input: 'features', inputFill: { mask: fill }, head },
        context([4]),
      );
      try {
        return {
          output: teacher.output,
          logits: await predictLogits(tf, teacher, rows4),
          fingerprint: teacher.fingerprint,
        };
      } finally {
        teacher.dispose();
      }
    };
    try {
      const expected = await predictLogits(tf, plain, rows4);
      const logits = await fromHead('logits', 1);
      expect(logits.output).toBe('logits');
      expect(maxRelativeError(logits.logits, expected)).toBeLessThan(1e-6);
      // Softmax output: probabilities, distilled as their logs (the logits up to a constant a row).
      const probabilities = await fromHead('probabilities', 1);
      expect(probabilities.output).toBe('probabilities');
      const shift = (a: Float32Array, row: number) => a[row * 3] - a[row * 3 + 1];
      expect(shift(probabilities.logits, 0)).toBeCloseTo(shift(expected, 0), 5);
      // The fill reaches the model: a zero mask leaves only the bias.
      const masked = await fromHead('logits', 0);
      expect(Array.from(masked.logits.subarray(0, 3))).toEqual(Array.from(small.bias));
      // Other logits, so other cached soft targets: the fill is part of the cache key.
      expect(masked.fingerprint).not.toBe(logits.fingerprint);
    } finally {
      plain.dispose();
    }
  });

  it('feeds a fixed batch dimension that batch size, padding the last call, with the logits of a free batch', async () => {
    const free = await loadOnnxTeacher(
      tf,
      await written('free.onnx', writeModel(mlpSpec([small], { softmax: false }))),
      {},
      context([4]),
    );
    const fixed = await loadOnnxTeacher(
      tf,
      await written('fixed.onnx', writeModel(mlpSpec([small], { softmax: false, batch: 4 }))),
      {},
      context([4]),
    );
    try {
      expect(fixed.feed.fixedBatch).toBe(4);
      expect(fixed.notes?.join('\n')).toMatch(/input input fixes the batch at 4: every call is fed 4 rows/);
      // 10 rows in batches of 3: each call is cut into calls of 4, the last padded.
      expect(Array.from(await predictLogits(tf, fixed, rows4, 10, 3))).toEqual(
        Array.from(await predictLogits(tf, free, rows4, 10)),
      );
    } finally {
      free.dispose();
      fixed.dispose();
    }
  });

  it('finds an output width the model does not declare by running it once on zeros', async () => {
    const spec = mlpSpec([small], { softmax: false });
    spec.outputs[0].shape = ['batch', 'classes'];
    const teacher = await loadOnnxTeacher(tf, await written('free-width.onnx', writeModel(spec)), {}, context([4]));
    try {
      expect(teacher.outputWidth).toBe(3);
      expect(teacher.notes).toContain(
        'width of output output found by running the teacher once on zeros (the model does not declare it)',
      );
    } finally {
      teacher.dispose();
    }
  });

  it('converts data for integer inputs, and refuses data that is not whole numbers, naming the row', async () => {
    const spec = mlpSpec([small], { softmax: false, input: 'x' });
    spec.nodes.unshift({
      op: 'Cast',
      inputs: ['ids'],
      outputs: ['x'],
      attributes: [{ name: 'to', int: DataType.FLOAT }],
    });
    spec.inputs = [{ name: 'ids', elemType: DataType.INT64, shape: ['batch', 4] }];
    const teacher = await loadOnnxTeacher(tf, await written('ids.onnx', writeModel(spec)), {}, context([4]));
    const plain = await loadOnnxTeacher(
      tf,
      await written('plain.onnx', writeModel(mlpSpec([small], { softmax: false }))),
      {},
      context([4]),
    );
    try {
      expect(teacher.feed.type).toBe('int64');
      const ids = inMemoryDataset(
        'ids.npy',
        Float32Array.from({ length: 40 }, (_, i) => (i * 7) % 11),
        [4],
      );
      await checkOnnxFeed(teacher, ids);
      expect(Array.from(await predictLogits(tf, teacher, ids))).toEqual(
        Array.from(await predictLogits(tf, plain, ids)),
      );
      const fractional = inMemoryDataset(
        'ids.npy',
        Float32Array.from({ length: 40 }, (_, i) => (i === 13 ? 2.5 : 1)),
        [4],
      );
      await expect(checkOnnxFeed(teacher, fractional)).rejects.toThrow(
        /^ids\.npy row 3: value 2\.5 \(feature 1\) cannot feed the teacher's int64 input ids, which takes whole numbers/,
      );
      await expect(checkOnnxFeed(plain as OnnxTeacher, fractional)).resolves.toBeUndefined();
    } finally {
      teacher.dispose();
      plain.dispose();
    }
  });

  it('reads weights stored as external data beside the model, fingerprints them, and refuses a location outside its folder', async () => {
    const folder = await mkdtemp(path.join(os.tmpdir(), 'onnx-external-'));
    const spec = mlpSpec([small], { softmax: false });
    spec.initializers[0].externalFile = 'weights.bin';
    const weight = spec.initializers[0].values as Float32Array;
    await writeFile(path.join(folder, 'teacher.onnx'), writeModel(spec));
    await writeFile(
      path.join(folder, 'weights.bin'),
      new Uint8Array(weight.buffer, weight.byteOffset, weight.byteLength),
    );
    const external = await loadOnnxTeacher(tf, path.join(folder, 'teacher.onnx'), {}, context([4]));
    const inline = await loadOnnxTeacher(
      tf,
      await written('inline.onnx', writeModel(mlpSpec([small], { softmax: false }))),
      {},
      context([4]),
    );
    try {
      expect(Array.from(await predictLogits(tf, external, rows4))).toEqual(
        Array.from(await predictLogits(tf, inline, rows4)),
      );
      expect(external.bytes).toBe(inline.bytes);
      // Other bytes in the weight file are another teacher for the cache.
      await writeFile(path.join(folder, 'weights.bin'), new Uint8Array(weight.map((w) => w + 1).buffer));
      const changed = await loadOnnxTeacher(tf, path.join(folder, 'teacher.onnx'), {}, context([4]));
      expect(changed.fingerprint).not.toBe(external.fingerprint);
      changed.dispose();
    } finally {
      external.dispose();
      inline.dispose();
    }
    spec.initializers[0].externalFile = '../weights.bin';
    await writeFile(path.join(folder, 'escaping.onnx'), writeModel(spec));
    expect((await loadError(path.join(folder, 'escaping.onnx'), [4])).message).toMatch(
      /an initializer's external data location "\.\.\/weights\.bin" leaves the model's folder; keep weight files beside the \.onnx file/,
    );
  });

  it('converts the data for a float16 input', async () => {
    const spec = mlpSpec([small], { softmax: false, input: 'x' });
    spec.nodes.unshift({
      op: 'Cast',
      inputs: ['half'],
      outputs: ['x'],
      attributes: [{ name: 'to', int: DataType.FLOAT }],
    });
    spec.inputs = [{ name: 'half', elemType: DataType.FLOAT16, shape: ['batch', 4] }];
    const teacher = await loadOnnxTeacher(tf, await written('half.onnx', writeModel(spec)), {}, context([4]));
    const plain = await loadOnnxTeacher(
      tf,
      await written('plain.onnx', writeModel(mlpSpec([small], { softmax: false }))),
      {},
      context([4]),
    );
    try {
      expect(teacher.feed.type).toBe('float16');
      // Values float16 holds exactly (multiples of 1/64 below 2) give the float32 teacher's logits.
      const exact = inMemoryDataset(
        'half.npy',
        Float32Array.from({ length: 40 }, (_, i) => ((i * 37) % 128) / 64 - 1),
        [4],
      );
      expect(
        maxRelativeError(await predictLogits(tf, teacher, exact), await predictLogits(tf, plain, exact)),
      ).toBeLessThan(1e-6);
    } finally {
      teacher.dispose();
      plain.dispose();
    }
  });

  it('distills a one-unit sigmoid head as two classes, as for TF.js teachers', async () => {
    const spec = mlpSpec([{ kernel: randomArray(4, 5), bias: randomArray(1, 6), inputs: 4, units: 1 }], {
      softmax: false,
      input: 'x',
      output: 'z',
    });
    spec.nodes.push({ op: 'Sigmoid', inputs: ['z'], outputs: ['p'] });
    spec.outputs = [{ name: 'p', elemType: DataType.FLOAT, shape: ['batch', 1] }];
    const teacher = await loadOnnxTeacher(tf, await written('sigmoid.onnx', writeModel(spec)), {}, context([4]));
    try {
      expect([teacher.outputWidth, teacher.output]).toEqual([2, 'probabilities']);
      expect(teacher.notes?.join('\n')).toMatch(
        /head p has one unit, read as a probability p \(it ends in a sigmoid\): distilled as two classes/,
      );
      const logits = await predictLogits(tf, teacher, rows4, 5);
      for (let row = 0; row < 5; row++)
        expect(Math.exp(logits[2 * row]) + Math.exp(logits[2 * row + 1])).toBeCloseTo(1, 6);
    } finally {
      teacher.dispose();
    }
  });

  it('keys cached soft targets on the ONNX bytes and the runtime, and never starts TF.js workers for it', async () => {
    const cacheDir = await mkdtemp(path.join(os.tmpdir(), 'onnx-cache-'));
    const original = writeModel(mlpSpec([small], { softmax: false }));
    const changed = writeModel(
      mlpSpec([{ ...small, bias: Float32Array.from([small.bias[0] + 1 / 64, small.bias[1], small.bias[2]]) }], {
        softmax: false,
      }),
    );
    const [a, sameBytes, b] = await Promise.all(
      [
        ['a.onnx', original],
        ['a-copy.onnx', original],
        ['b.onnx', changed],
      ].map(async ([name, bytes]) =>
        loadOnnxTeacher(tf, await written(name as string, bytes as Uint8Array), {}, context([4])),
      ),
    );
    try {
      expect(a.fingerprint).toBe(sameBytes.fingerprint);
      expect(a.fingerprint).not.toBe(b.fingerprint);
      // Enough rows that a TF.js teacher on cpu would get workers (workersFor): the ONNX one runs here.
      const many = inMemoryDataset('many.npy', randomArray(16_384 * 4, 8), [4]);
      const first = await teacherLogits(tf, a, many, 'cpu', cacheDir, a.fingerprint);
      expect([first.source, first.workers]).toEqual(['computed', 1]);
      expect(path.basename(first.cacheFile!)).toMatch(/^soft-targets-[0-9a-f]{32}\.f32$/);
      // The same bytes under another name hit the entry, on another TF.js backend too: the runtime computed them.
      const again = await teacherLogits(tf, sameBytes, many, 'wasm', cacheDir);
      expect([again.source, again.cacheFile]).toEqual(['cache', first.cacheFile]);
      const other = await teacherLogits(tf, b, many, 'cpu', cacheDir);
      expect(other.source).toBe('computed');
      expect(other.cacheFile).not.toBe(first.cacheFile);
    } finally {
      for (const t of [a, sameBytes, b]) t.dispose();
    }
  });

  it('is timed beside a TF.js student, through its asynchronous pass, leaving no tensor behind', async () => {
    const teacher = await loadOnnxTeacher(tf, EXAMPLE_TEACHER_ONNX, {}, context([64]));
    const student = wrapLayersModel(tf.sequential({ layers: [tf.layers.dense({ inputShape: [64], units: 10 })] }), 0);
    try {
      const tensors = tf.memory().numTensors;
      const settings: MeasureSettings = {
        warmup: 2,
        rounds: 5,
        throughputBatch: 32,
        topK: 5,
        speedBudgetSeconds: 1,
        inconclusive: 'pass',
      };
      const { metrics } = await measureSpeed(tf, teacher, student, evalSplit, settings);
      expect(metrics['speed.teacherMs']).toBeGreaterThan(0);
      expect(metrics['speed.teacherThroughput']).toBeGreaterThan(0);
      expect(metrics['speed.speedup']).toBeGreaterThan(0);
      expect(tf.memory().numTensors).toBe(tensors);
    } finally {
      teacher.dispose();
      student.dispose();
    }
  });

  describe('bad input exits 2 naming the culprit', () => {
    it('a file that is not ONNX', async () => {
      const png = await written('teacher.onnx', Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex'));
      const error = await loadError(png, [64]);
      expect(error.culprit).toBe(png);
      expect(error.message).toMatch(
        /is not an ONNX model \(.*\)\. Expected an ONNX ModelProto \(\.onnx, e\.g\. from torch\.onnx\.export/,
      );
      expect((await loadError(await written('text.onnx', 'not a model at all\n'), [64])).message).toMatch(
        /is not an ONNX model/,
      );
      expect((await loadError(await written('empty.onnx', ''), [64])).message).toMatch(
        /is not an ONNX model \(the file is empty\)/,
      );
    });

    it('a truncated file', async () => {
      const bytes = await readFile(EXAMPLE_TEACHER_ONNX);
      const file = await written('truncated.onnx', bytes.subarray(0, bytes.length >> 1));
      const error = await loadError(file, [64]);
      expect(error.culprit).toBe(file);
      expect(error.message).toMatch(
        /is truncated or corrupt: field 7 at byte \d+ declares \d+ bytes but only \d+ remain in the file \(433771 bytes read\)/,
      );
    });

    it('an input width that does not match the data', async () => {
      const error = await loadError(EXAMPLE_TEACHER_ONNX, [32]);
      expect(error.culprit).toBe(EXAMPLE_TEACHER_ONNX);
      expect(error.message).toMatch(
        /input input takes \[batch, 64\] but samples have shape \[32\] in data\/train_x\.npy: the teacher and the data do not fit/,
      );
    });

    it('an integer output, which holds no scores', async () => {
      const spec = mlpSpec([small], { softmax: false, output: 'logits' });
      spec.nodes.push({ op: 'ArgMax', inputs: ['logits'], outputs: ['class'], attributes: [{ name: 'axis', int: 1 }] });
      spec.outputs = [{ name: 'class', elemType: DataType.INT64, shape: ['batch', 1] }];
      expect((await loadError(await written('argmax.onnx', writeModel(spec)), [4])).message).toMatch(
        /output class holds int64 values, not scores/,
      );
    });

    it('a string input', async () => {
      const spec: ModelSpec = {
        nodes: [{ op: 'Identity', inputs: ['text'], outputs: ['out'] }],
        initializers: [],
        inputs: [{ name: 'text', elemType: 8, shape: ['batch', 4] }],
        outputs: [{ name: 'out', elemType: 8, shape: ['batch', 4] }],
      };
      expect((await loadError(await written('text-input.onnx', writeModel(spec)), [4])).message).toMatch(
        /input text \(string \[batch, 4\]\) takes string, which numeric data cannot feed/,
      );
    });

    it('onnxruntime-node missing: the install commands', async () => {
      const empty = await mkdtemp(path.join(os.tmpdir(), 'no-onnxruntime-'));
      const error = await loadError(EXAMPLE_TEACHER_ONNX, [64], {}, [empty]);
      expect(error.culprit).toBe(EXAMPLE_TEACHER_ONNX);
      expect(error.message).toContain(
        `is an ONNX model, which runs in onnxruntime-node; it is not installed in ${empty}.`,
      );
      expect(error.message).toContain(
        '`ONNXRUNTIME_NODE_INSTALL=skip npm install --no-save onnxruntime-node@1.30.0` (CPU)',
      );
      expect(error.message).toContain('on a GPU runner `npm install --no-save onnxruntime-node@1.30.0`');
    });
  });

  it("doctor's probe model is what the fixture writer writes for an Identity over one float", () => {
    const probe = writeModel({
      nodes: [{ op: 'Identity', inputs: ['x'], outputs: ['y'] }],
      initializers: [],
      inputs: [{ name: 'x', elemType: DataType.FLOAT, shape: [1] }],
      outputs: [{ name: 'y', elemType: DataType.FLOAT, shape: [1] }],
      producer: 'distill-gate doctor',
      graphName: 'probe',
    });
    expect(Buffer.from(probe).toString('base64')).toBe(PROBE_MODEL_BASE64);
  });
});

describe.skipIf(withoutOnnxRuntime)('inputs filled by teacherInputFill, sized by memory', () => {
  /** The small teacher with a second input, `extra`, of `shape` and `elemType`, that teacherInputFill fills. */
  async function withExtraInput(
    name: string,
    shape: Array<number | string>,
    elemType: number = DataType.FLOAT,
  ): Promise<string> {
    const spec = mlpSpec([small], { softmax: false, input: 'features', output: 'logits' });
    spec.inputs.push({ name: 'extra', elemType, shape });
    return written(name, writeModel(spec));
  }

  it('refuses a filled input that would take gigabytes a call, naming it, its shape and its size, before allocating it', async () => {
    const fixed = await withExtraInput('huge-fixed.onnx', [1, 3_000_000_000], DataType.INT64);
    const error = await loadError(fixed, [4], { input: 'features', inputFill: { extra: 1 } });
    expect(error.message).toBe(
      'teacherInputFill.extra: filling input extra (int64 [1, 3000000000]) takes a tensor of [1, 3000000000], 22.4 GiB for one row, more than the 1.0 GiB distill-gate fills a call. ' +
        'Export the teacher with that input smaller, or with its large dimensions free and shared by name with the data input (features).',
    );
    // A dimension that grows with the batch counts for one row: 4 GB of float32 a row is refused too.
    const perRow = await withExtraInput('huge-row.onnx', ['batch', 1_000_000_000]);
    expect((await loadError(perRow, [4], { input: 'features', inputFill: { extra: 0 } })).message).toMatch(
      /^teacherInputFill\.extra: filling input extra \(float32 \[batch, 1000000000\]\) takes a tensor of \[1, 1000000000\], 3\.7 GiB for one row/,
    );
  });

  it('splits a batch into calls whose filled inputs stay within the budget, with the logits of one call', async () => {
    const file = await withExtraInput('wide-fill.onnx', ['batch', 1000]);
    const plain = await loadOnnxTeacher(
      tf,
      await written('plain-fill.onnx', writeModel(mlpSpec([small], { softmax: false }))),
      {},
      context([4]),
    );
    // 4,000 bytes a row against a 16,000-byte budget: 4 rows a call.
    const teacher = await loadOnnxTeacher(
      tf,
      file,
      { input: 'features', inputFill: { extra: 1 } },
      { ...context([4]), fillBytes: { budget: 16_000, limit: 2 ** 20 } },
    );
    try {
      expect(teacher.feed.maxRows).toBe(4);
      expect(teacher.notes).toContain('inputs filled by teacherInputFill take 3.9 KiB a row: at most 4 rows a call');
      expect(Array.from(await predictLogits(tf, teacher, rows4, 10, 10))).toEqual(
        Array.from(await predictLogits(tf, plain, rows4, 10)),
      );
    } finally {
      teacher.dispose();
      plain.dispose();
    }
  });
});
