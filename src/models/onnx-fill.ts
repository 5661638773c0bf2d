// The other inputs of an ONNX teacher (masks, lengths, flags): each filled with its
// `teacherInputFill` value, and the rows per call their tensors leave room for.
import { InputError } from '../errors.js';
import { formatBytes } from '../format.js';
import { toFloat16 } from './float16.js';
import type { OnnxSummary } from './onnx-proto.js';
import { INFERENCE_BATCH } from './predict.js';
import type { OrtElementType, OrtSession } from './onnx-runtime.js';
import { describeValue, ELEMENT_TYPES, INTEGER_RANGES, type OnnxFeed } from './onnx-feed.js';

/**
 * Host bytes the inputs filled by `teacherInputFill` may take in one call: a free batch is split
 * into calls of fewer rows to stay within it (as the teacher's pass sizes its batches by memory).
 */
export const FILL_BUDGET_BYTES = 256 * 2 ** 20;

/**
 * The most one filled input may take in the smallest call the model allows (one row, or its fixed
 * batch): beyond it the teacher is refused, naming the input, its shape and the bytes it would
 * take, instead of failing on an allocation (a RangeError) or taking gigabytes a call.
 */
export const FILL_LIMIT_BYTES = 2 ** 30;

/** Bytes one element of each input type takes in the tensor handed to onnxruntime. */
export const ELEMENT_BYTES: Partial<Record<OrtElementType, number>> = {
  float32: 4,
  float64: 8,
  float16: 2,
  uint8: 1,
  int8: 1,
  bool: 1,
  uint16: 2,
  int16: 2,
  int32: 4,
  uint32: 4,
  int64: 8,
  uint64: 8,
};

/** One tensor per other input, filled with its `teacherInputFill` value; dims shared by name with the data input take the fed sizes. */
export interface FillInput {
  name: string;
  type: OrtElementType;
  value: number;
  /** The batch, or a fixed size. */
  dims: Array<number | 'batch'>;
}

export function fillInputs(
  summary: OnnxSummary,
  session: OrtSession,
  feed: OnnxFeed,
  fill: Record<string, number>,
  file: string,
): FillInput[] {
  for (const key of Object.keys(fill)) {
    if (!session.inputNames.includes(key) || key === feed.name) {
      throw new InputError(
        `teacherInputFill.${key}`,
        `is not another input of ${file}: its inputs other than ${feed.name} are ${session.inputNames.filter((n) => n !== feed.name).join(', ') || 'none'}.`,
      );
    }
  }
  const data = summary.inputs.find((i) => i.name === feed.name)?.shape ?? [];
  // A symbolic dimension the data input shares ("batch", "seq") has the size the data gives it.
  const fedSize = new Map<string, number | 'batch'>();
  data.forEach((d, i) => typeof d === 'string' && fedSize.set(d, i === 0 ? 'batch' : feed.dims[i - 1]));
  return session.inputNames
    .filter((name) => name !== feed.name)
    .map((name) => {
      const info = summary.inputs.find((i) => i.name === name);
      const value = fill[name];
      if (value === undefined) {
        throw new InputError(
          file,
          `input ${describeValue(info, name)} needs a value: distill-gate feeds the data to ${feed.name} only. Give every other input one value in teacherInputFill (e.g. teacherInputFill: { ${name}: 1 }).`,
        );
      }
      const type = ELEMENT_TYPES[info?.elemType ?? 0];
      const range = INTEGER_RANGES[type];
      if (
        type === undefined ||
        type === 'string' ||
        (range && !(Number.isInteger(value) && value >= range[0] && value <= range[1]))
      ) {
        throw new InputError(`teacherInputFill.${name}`, `${value} cannot fill input ${describeValue(info, name)}.`);
      }
      const dims = (info?.shape ?? []).map((d, i): number | 'batch' => {
        if (typeof d === 'number') return d;
        // A free first dimension is the batch, whatever an exporter named it.
        const shared = i === 0 ? 'batch' : typeof d === 'string' ? fedSize.get(d) : undefined;
        if (shared === undefined) {
          throw new InputError(
            file,
            `input ${describeValue(info, name)} has a free dimension ${i} that the data input ${feed.name} does not share, so its size is unknown; export the teacher with it fixed.`,
          );
        }
        return shared;
      });
      return { name, type, value, dims };
    });
}

/** Bytes the filled inputs take for each row of a call (those with a batch dimension). */
export function fillBytesPerRow(fills: readonly FillInput[]): number {
  return fills.reduce((sum, f) => sum + (f.dims.includes('batch') ? fillBytes(f, 1) : 0), 0);
}

/** Bytes one filled input takes in a call of `rows` rows. */
export function fillBytes(fill: FillInput, rows: number): number {
  return (
    fill.dims.reduce<number>((product, d) => product * (d === 'batch' ? rows : d), 1) * (ELEMENT_BYTES[fill.type] ?? 8)
  );
}

/**
 * The most rows one call may take so that the filled inputs stay within `budget`, or undefined
 * when they do not bound it (none grows with the batch, the batch is fixed, or 512 rows fit).
 * A filled input that takes more than `limit` in the smallest call the model allows (one row, or
 * its fixed batch) is refused: an InputError naming it, its shape and its size.
 */
export function rowsForFills(
  fills: readonly FillInput[],
  feed: OnnxFeed,
  { budget, limit }: { budget: number; limit: number },
  summary: OnnxSummary,
): number | undefined {
  const fewest = feed.fixedBatch ?? 1;
  for (const fill of fills) {
    const bytes = fillBytes(fill, fewest);
    if (bytes <= limit) continue;
    const declared = summary.inputs.find((i) => i.name === fill.name);
    const shape = fill.dims.map((d) => (d === 'batch' ? fewest : d));
    throw new InputError(
      `teacherInputFill.${fill.name}`,
      `filling input ${describeValue(declared, fill.name)} takes a tensor of [${shape.join(', ')}], ${formatBytes(bytes)} for ${fewest === 1 ? 'one row' : `the fixed batch of ${fewest}`}` +
        `, more than the ${formatBytes(limit)} distill-gate fills a call. Export the teacher with that input smaller, or with its large dimensions free and shared by name with the data input (${feed.name}).`,
    );
  }
  if (feed.fixedBatch !== undefined) return undefined;
  const perRow = fillBytesPerRow(fills);
  if (perRow === 0) return undefined;
  const rows = Math.max(1, Math.floor(budget / perRow));
  return rows >= INFERENCE_BATCH ? undefined : rows;
}

/** A typed array of `length` elements of `type`, each `value`: what one filled input holds, made without a float32 copy. */
export function filledArray(type: OrtElementType, value: number, length: number): ArrayBufferView {
  switch (type) {
    case 'float32':
      return new Float32Array(length).fill(value);
    case 'float64':
      return new Float64Array(length).fill(value);
    case 'float16':
      return new Uint16Array(length).fill(toFloat16(Float32Array.of(value))[0]);
    case 'int64':
      return new BigInt64Array(length).fill(BigInt(value));
    case 'uint64':
      return new BigUint64Array(length).fill(BigInt(value));
    case 'int32':
      return new Int32Array(length).fill(value);
    case 'uint32':
      return new Uint32Array(length).fill(value);
    case 'int16':
      return new Int16Array(length).fill(value);
    case 'uint16':
      return new Uint16Array(length).fill(value);
    case 'int8':
      return new Int8Array(length).fill(value);
    case 'uint8':
    case 'bool':
      return new Uint8Array(length).fill(value);
    default:
      throw new Error(`no fill of ${type} inputs`);
  }
}
