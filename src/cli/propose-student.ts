import { readFile } from 'node:fs/promises';
import type { LayerSpec } from '../config/schema.js';
import { readModelArtifacts } from '../models/artifacts.js';
import type { LoadedModel } from '../models/loaded-model.js';
import { readOnnxSummary } from '../models/onnx-proto.js';

// `distill-gate init`'s proposal: a student and a training length from what the teacher and the
// data are, by rules simple enough to state in one line each (the command's help repeats them):
//
// - Flat inputs (one dimension, e.g. [64]): one hidden dense layer (relu) a quarter as wide as the
//   teacher's first hidden layer, at least 16 units (64 where that width cannot be read), then a
//   dense layer of one unit per class (logits; `export.output: auto` adds the teacher's softmax).
// - Image inputs (three dimensions, [height, width, channels]): conv2d (3x3, relu, same padding)
//   with a quarter of the teacher's first convolution's filters (at least 8; 16 where they cannot
//   be read), a 2x2 max pooling where both sides are at least 4, conv2d with twice the filters,
//   global average pooling, then the dense layer of one unit per class.
// - Any other shape: flatten, then the flat rule.
// - Epochs: enough for about 20,000 samples seen, ceil(20000 / train rows), between 3 and 30;
//   batch size 64 (or the train rows, when fewer).
//
// The teacher's first width is read from the model itself: a LayersModel's first layer with
// units or filters; a GraphModel's or an ONNX model's first weight that reads the input (a 2-D
// weight with a side as wide as a flat input, a 4-D kernel with a side as deep as an image's
// channels).

/** The fraction of the teacher's first width the student's hidden layer gets. */
export const WIDTH_FRACTION = 1 / 4;
export const MIN_DENSE_UNITS = 16;
/** The hidden width when the teacher's first width cannot be read. */
export const DEFAULT_DENSE_UNITS = 64;
export const MIN_CONV_FILTERS = 8;
export const DEFAULT_CONV_FILTERS = 16;
/** Samples the proposed training sees, about: epochs = ceil(this / train rows), clamped below. */
export const SAMPLES_SEEN = 20_000;
export const MIN_EPOCHS = 3;
export const MAX_EPOCHS = 30;
export const BATCH_SIZE = 64;

/** One line each, for the command's help and its output. */
export const STUDENT_RULE = [
  `flat inputs: dense (relu) at ${WIDTH_FRACTION * 100}% of the teacher's first hidden width (at least ${MIN_DENSE_UNITS}; ${DEFAULT_DENSE_UNITS} when unreadable), then dense of one unit per class`,
  `image inputs [h, w, c]: conv2d 3x3 relu at ${WIDTH_FRACTION * 100}% of the teacher's first filters (at least ${MIN_CONV_FILTERS}; ${DEFAULT_CONV_FILTERS} when unreadable), 2x2 max pooling, conv2d with twice the filters, global average pooling, dense of one unit per class`,
  'other shapes: flatten, then the flat rule',
  `epochs: ceil(${SAMPLES_SEEN} / train rows) between ${MIN_EPOCHS} and ${MAX_EPOCHS}; batch size ${BATCH_SIZE} (or the train rows when fewer)`,
];

export interface StudentProposal {
  layers: LayerSpec[];
  /** How the layers were chosen, for the command's output and the config's comment. */
  why: string;
}

/**
 * The student for a teacher with this input shape (no batch dimension) and this many classes;
 * `firstWidth` is the teacher's first hidden width or filters where they could be read.
 */
export function proposeStudent(
  inputShape: readonly number[],
  classes: number,
  firstWidth: number | undefined,
): StudentProposal {
  const output: LayerSpec = { type: 'dense', units: classes };
  if (inputShape.length === 3) {
    const [height, width] = inputShape;
    const filters =
      firstWidth === undefined
        ? DEFAULT_CONV_FILTERS
        : Math.max(MIN_CONV_FILTERS, Math.round(firstWidth * WIDTH_FRACTION));
    const pool = Math.min(height, width) >= 4;
    const conv = (n: number): LayerSpec => ({
      type: 'conv2d',
      filters: n,
      kernelSize: 3,
      padding: 'same',
      activation: 'relu',
    });
    return {
      layers: [
        conv(filters),
        ...(pool ? [{ type: 'maxPooling2d' as const, poolSize: 2 }] : []),
        conv(filters * 2),
        { type: 'globalAveragePooling2d' },
        output,
      ],
      why:
        firstWidth === undefined
          ? `image input: a small conv stack of ${filters} and ${filters * 2} filters (the teacher's first filters could not be read)`
          : `image input: a small conv stack of ${filters} and ${filters * 2} filters (${WIDTH_FRACTION * 100}% of the teacher's first ${firstWidth}, at least ${MIN_CONV_FILTERS})`,
    };
  }
  const units =
    firstWidth === undefined ? DEFAULT_DENSE_UNITS : Math.max(MIN_DENSE_UNITS, Math.round(firstWidth * WIDTH_FRACTION));
  const flatten: LayerSpec[] = inputShape.length === 1 ? [] : [{ type: 'flatten' }];
  return {
    layers: [...flatten, { type: 'dense', units, activation: 'relu' }, output],
    why:
      (flatten.length ? `input of rank ${inputShape.length}, flattened: ` : '') +
      (firstWidth === undefined
        ? `one hidden layer of ${units} units (the teacher's first hidden width could not be read)`
        : `one hidden layer of ${units} units (${WIDTH_FRACTION * 100}% of the teacher's first hidden width ${firstWidth}, at least ${MIN_DENSE_UNITS})`),
  };
}

/** Epochs and batch size for this many train rows (the rule in STUDENT_RULE). */
export function proposeTraining(trainRows: number): { epochs: number; batchSize: number } {
  const epochs = Math.min(MAX_EPOCHS, Math.max(MIN_EPOCHS, Math.ceil(SAMPLES_SEEN / Math.max(trainRows, 1))));
  return { epochs, batchSize: Math.min(BATCH_SIZE, trainRows) };
}

/**
 * The teacher's first hidden width (dense units) or first filters (convolution), read from the
 * loaded model (LayersModel) or from its weights' shapes (GraphModel, ONNX); undefined where none
 * reads the input.
 */
export async function teacherFirstWidth(teacher: LoadedModel, file: string): Promise<number | undefined> {
  if (teacher.layers) {
    for (const layer of teacher.layers.layers) {
      const config = layer.getConfig() as { units?: unknown; filters?: unknown };
      const width =
        typeof config.units === 'number'
          ? config.units
          : typeof config.filters === 'number'
            ? config.filters
            : undefined;
      if (width !== undefined) return width;
    }
    return undefined;
  }
  const shapes =
    teacher.format === 'onnx'
      ? readOnnxSummary(await readFile(file), file).initializers.map((init) => init.dims)
      : ((await readModelArtifacts(file)).artifacts.weightSpecs ?? []).map((spec) => spec.shape);
  return widthReadingInput(shapes, teacher.inputShape, teacher.format === 'onnx' ? 'onnx' : 'tfjs');
}

/**
 * The output side of the first weight that reads the input: a 2-D weight with one side as wide
 * as a flat input ([in, out] in TF.js and in an ONNX MatMul, [out, in] in an ONNX Gemm), or a 4-D
 * kernel with its input channels as deep as an image's ([kh, kw, in, out] in TF.js, [out, in, kh,
 * kw] in ONNX: `layout`).
 */
export function widthReadingInput(
  shapes: readonly (readonly number[])[],
  inputShape: readonly (number | null)[],
  layout: 'tfjs' | 'onnx',
): number | undefined {
  const flat = inputShape.length === 1 ? inputShape[0] : undefined;
  const channels = inputShape.length === 3 ? inputShape[2] : undefined;
  for (const shape of shapes) {
    if (flat && shape.length === 2) {
      if (shape[0] === flat) return shape[1];
      if (shape[1] === flat) return shape[0];
    }
    if (channels && shape.length === 4) {
      const [inputSide, outputSide] = layout === 'onnx' ? [1, 0] : [2, 3];
      if (shape[inputSide] === channels) return shape[outputSide];
    }
  }
  return undefined;
}
