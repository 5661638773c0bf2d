// How an ONNX teacher's data input is chosen and fed: its element type, its layout (NHWC as the
// data comes, or NCHW as PyTorch exports), and the float32 rows converted to what the input takes.
import { InputError } from '../errors.js';
import type { LayoutSetting, TeacherOptions } from './loaded-model.js';
import { toFloat16 } from './float16.js';
import type { OnnxSummary, OnnxValueInfo } from './onnx-proto.js';
import type { OrtElementType, OrtSession } from './onnx-runtime.js';

/** TensorProto.DataType values as onnxruntime names the element types. */
export const ELEMENT_TYPES: Record<number, OrtElementType> = {
  1: 'float32',
  2: 'uint8',
  3: 'int8',
  4: 'uint16',
  5: 'int16',
  6: 'int32',
  7: 'int64',
  8: 'string',
  9: 'bool',
  10: 'float16',
  11: 'float64',
  12: 'uint32',
  13: 'uint64',
};

/** Whole numbers each integer input takes (int64 as far as float32 data holds integers exactly). */
export const INTEGER_RANGES: Partial<Record<OrtElementType, [number, number]>> = {
  bool: [0, 1],
  int8: [-128, 127],
  uint8: [0, 255],
  int16: [-32768, 32767],
  uint16: [0, 65535],
  int32: [-(2 ** 31), 2 ** 31 - 1],
  uint32: [0, 2 ** 32 - 1],
  int64: [-(2 ** 53), 2 ** 53],
  uint64: [0, 2 ** 53],
};

/** How the data input is fed: its name and type, the layout, the dims it is fed with, and a fixed batch size. */
export interface OnnxFeed {
  name: string;
  type: OrtElementType;
  /** nchw: samples are transposed from the data's NHWC; nhwc or none: fed as they are. */
  layout: 'nchw' | 'nhwc' | 'none';
  /** The input's dims after the batch, as fed (the data's shape, transposed for nchw). */
  dims: number[];
  /** The batch size the model fixes (every call is padded to it), or undefined for a free batch dimension. */
  fixedBatch?: number;
  /**
   * With a free batch dimension: the most rows one call takes, where the inputs filled by
   * `teacherInputFill` grow with the batch and would otherwise outgrow FILL_BUDGET_BYTES.
   */
  maxRows?: number;
}

export const describeDims = (dims: ReadonlyArray<number | string | null> | undefined) =>
  dims ? `[${dims.map((d) => d ?? '?').join(', ')}]` : '[unknown rank]';

export function describeValue(info: OnnxValueInfo | undefined, name: string): string {
  return `${name} (${ELEMENT_TYPES[info?.elemType ?? 0] ?? 'non-tensor'} ${describeDims(info?.shape)})`;
}

/** The train split's sample shape (NHWC for images) and file, to lay out and check the input. */
export interface FedData {
  sampleShape: readonly number[];
  source: string;
}

/** The data input (`teacherInput`, or the only input), its layout and the dims it is fed with; InputErrors listing the inputs otherwise. */
export function chooseFeed(
  summary: OnnxSummary,
  session: OrtSession,
  options: TeacherOptions,
  data: FedData,
  file: string,
  notes: string[],
): OnnxFeed {
  const info = (name: string) => summary.inputs.find((i) => i.name === name);
  const list = () => session.inputNames.map((n) => describeValue(info(n), n)).join(', ');
  let name: string;
  if (options.input !== undefined) {
    if (!session.inputNames.includes(options.input))
      throw new InputError(`teacherInput "${options.input}"`, `is not an input of ${file}; its inputs: ${list()}.`);
    name = options.input;
  } else if (session.inputNames.length === 1) {
    name = session.inputNames[0];
  } else {
    throw new InputError(
      file,
      `has ${session.inputNames.length} inputs: ${list()}. Set teacherInput to the one the data feeds (e.g. teacherInput: ${session.inputNames[0]}), and teacherInputFill to a value for each other.`,
    );
  }
  const declared = info(name);
  const type = ELEMENT_TYPES[declared?.elemType ?? 0];
  if (type === undefined || type === 'string') {
    throw new InputError(
      file,
      `input ${describeValue(declared, name)} takes ${type ?? 'non-tensor values'}, which numeric data cannot feed.`,
    );
  }
  const shape = declared?.shape;
  if (!shape || shape.length < 2) {
    throw new InputError(
      file,
      `input ${describeValue(declared, name)} has no batch dimension and features: distill-gate feeds [batch, ...features].`,
    );
  }
  const batch = shape[0];
  const fixedBatch = typeof batch === 'number' && batch > 0 ? batch : undefined;
  const { layout, dims } = chooseLayout(shape.slice(1), data.sampleShape, options.layout ?? 'auto', {
    file,
    input: name,
    source: data.source,
  });
  if (layout === 'nchw') {
    notes.push(
      `input ${name} ${describeDims(shape)} is NCHW: fed the data's [${data.sampleShape.join(', ')}] samples transposed${options.layout === 'nchw' ? ' (teacherLayout: nchw)' : ''}`,
    );
  } else if (layout === 'nhwc' && options.layout !== 'nhwc')
    notes.push(`input ${name} ${describeDims(shape)} is NHWC, as the data: fed as it is`);
  if (fixedBatch !== undefined && fixedBatch > 1)
    notes.push(
      `input ${name} fixes the batch at ${fixedBatch}: every call is fed ${fixedBatch} rows (a shorter batch padded with zeros, whose outputs are dropped)`,
    );
  if (type !== 'float32') notes.push(`input ${name} takes ${type}: the data is converted`);
  return { name, type, layout, dims, fixedBatch };
}

/**
 * The layout of the data input: a rank-4 input whose dims after the batch are the data's
 * (C, H, W) is NCHW (PyTorch's) and is fed the data transposed; one whose dims are the data's
 * (H, W, C) is fed it as it is. With one channel both read the same values; where both match
 * (C = H = W), NCHW is taken, as the exporters that write ONNX mostly lay images out so, and the
 * log says how to change it. `setting` forces it; any mismatch is an InputError showing both shapes.
 */
export function chooseLayout(
  dims: ReadonlyArray<number | string | null>,
  sample: readonly number[],
  setting: LayoutSetting,
  where: { file: string; input: string; source: string },
): { layout: OnnxFeed['layout']; dims: number[] } {
  const fits = (want: readonly number[]) =>
    want.length === dims.length && dims.every((d, i) => typeof d !== 'number' || d === want[i]);
  const chw = sample.length === 3 ? [sample[2], sample[0], sample[1]] : undefined;
  const takes = `input ${where.input} takes [batch, ${dims.map((d) => d ?? '?').join(', ')}]`;
  if (setting !== 'auto' && dims.length !== 3) {
    throw new InputError(
      `teacherLayout: ${setting}`,
      `applies to rank-4 (image) inputs; ${takes} in ${where.file}. Remove teacherLayout.`,
    );
  }
  if (setting === 'nchw' || (setting === 'auto' && chw && fits(chw))) {
    if (chw && fits(chw)) return { layout: 'nchw', dims: chw };
    throw new InputError(
      where.file,
      `${takes}, read as NCHW (teacherLayout: nchw), but samples have shape [${sample.join(', ')}] in ${where.source}, whose (C, H, W) is [${chw?.join(', ') ?? 'not an image'}].`,
    );
  }
  if (fits(sample)) return { layout: dims.length === 3 ? 'nhwc' : 'none', dims: [...sample] };
  const values = (shape: ReadonlyArray<number | string | null>) =>
    shape.reduce<number>((a, b) => a * (typeof b === 'number' ? b : NaN), 1);
  const sameCount = values(dims) === values(sample);
  throw new InputError(
    where.file,
    `${takes} but samples have shape [${sample.join(', ')}] in ${where.source}` +
      (chw && dims.length === 3 ? ` (neither NCHW [${chw.join(', ')}] nor NHWC [${sample.join(', ')}])` : '') +
      (sameCount
        ? `: the same ${values(sample)} values in another shape; reshape the data to the teacher's input`
        : ': the teacher and the data do not fit') +
      (setting === 'nhwc' ? ' (teacherLayout: nhwc)' : '') +
      '.',
  );
}

/** NHWC rows (the data's layout) as NCHW rows (PyTorch's): a transpose, not a reshape. */
export function toNchw(values: Float32Array, rows: number, [height, width, channels]: readonly number[]): Float32Array {
  const out = new Float32Array(values.length);
  const plane = height * width;
  const row = plane * channels;
  for (let n = 0; n < rows; n++) {
    const base = n * row;
    for (let p = 0; p < plane; p++) {
      for (let c = 0; c < channels; c++) out[base + c * plane + p] = values[base + p * channels + c];
    }
  }
  return out;
}

/** float32 data as the typed array onnxruntime-node takes for `type` (integers already checked whole; see checkOnnxFeed). */
export function converted(values: Float32Array, type: OrtElementType): ArrayBufferView {
  switch (type) {
    case 'float32':
      return values;
    case 'float64':
      return Float64Array.from(values);
    case 'float16':
      return toFloat16(values);
    case 'int64':
      return BigInt64Array.from(values, (v) => BigInt(v));
    case 'uint64':
      return BigUint64Array.from(values, (v) => BigInt(v));
    case 'int32':
      return Int32Array.from(values);
    case 'uint32':
      return Uint32Array.from(values);
    case 'int16':
      return Int16Array.from(values);
    case 'uint16':
      return Uint16Array.from(values);
    case 'int8':
      return Int8Array.from(values);
    case 'uint8':
    case 'bool':
      return Uint8Array.from(values);
    default:
      throw new Error(`no conversion of float32 data to ${type}`);
  }
}
