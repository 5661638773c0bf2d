import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Tensor } from '@tensorflow/tfjs';
import type { ResolveOptions, Tf } from '../backend/resolve.js';
import type { Dataset } from '../data/dataset.js';
import { InputError, isOutOfMemory } from '../errors.js';
import { assertFileNotLfsPointer, assertNotLfsPointer, readFileHead } from '../data/lfs.js';
import { formatBytes } from '../measure/metrics.js';
import {
  checkedWidth,
  chooseHead,
  chosenHeadNote,
  firstLine,
  readHeadOutput,
  type Head,
  type LayoutSetting,
  type LoadedModel,
  type TeacherOptions,
} from './model.js';
import { fromFloat16, toFloat16 } from './float16.js';
import { readOnnxSummary, type OnnxNode, type OnnxSummary, type OnnxValueInfo } from './onnx-proto.js';
import { INFERENCE_BATCH } from './predict.js';
import { findOnnxRuntime, missingRuntimeMessage, openSession, type OrtElementType, type OrtModule, type OrtSession, type OrtTensor } from './onnx-runtime.js';

// ONNX teachers: the forward pass runs in onnxruntime-node, the student trains in TF.js as with
// any teacher. An OnnxTeacher is a LoadedModel whose predictAsync takes and returns TF.js tensors,
// so that the soft-target pass and timing treat it like any other; between the two runtimes the
// data crosses as host arrays (transposed to NCHW where the input is laid out so).

/** TensorProto.DataType values as onnxruntime names the element types. */
const ELEMENT_TYPES: Record<number, OrtElementType> = {
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
const INTEGER_RANGES: Partial<Record<OrtElementType, [number, number]>> = {
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
const ELEMENT_BYTES: Partial<Record<OrtElementType, number>> = {
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

/** A LoadedModel whose forward pass runs in onnxruntime. */
export interface OnnxTeacher extends LoadedModel {
  format: 'onnx';
  predictAsync(x: Tensor): Promise<Tensor>;
  feed: OnnxFeed;
}

export function isOnnxTeacher(model: LoadedModel): model is OnnxTeacher {
  return model.format === 'onnx';
}

/** What loading an ONNX teacher needs beyond the config: the data it will be fed, and where onnxruntime-node may be. */
export interface OnnxLoadContext {
  /** The train split's sample shape (NHWC for images) and file, to lay out and check the input. */
  data: { sampleShape: readonly number[]; source: string };
  /** Folders whose node_modules may hold onnxruntime-node (workspace, config folder). */
  searchFrom: string[];
  /** Seam for tests, as for the TF.js backends. */
  importPackage?: ResolveOptions['importPackage'];
  /** onnxruntime's intra-op threads (default: every core). */
  threads?: number;
  /** Seam for tests: FILL_BUDGET_BYTES and FILL_LIMIT_BYTES. */
  fillBytes?: { budget: number; limit: number };
}

/**
 * Whether a teacher file is ONNX, by content: a model.json starts with "{" (after any byte-order
 * mark or whitespace); anything else is read as ONNX, whose reader says precisely what is wrong
 * when it is neither. A file that cannot be read goes to the loader its name suggests.
 */
export async function isOnnxFile(file: string): Promise<boolean> {
  const head = await readFileHead(file, 64);
  if (!head) return path.extname(file).toLowerCase() === '.onnx';
  const first = head
    .toString('latin1')
    .replace(/^\xef\xbb\xbf/, '')
    .trimStart()[0];
  if (first === '{') return false;
  // An empty or whitespace-only model.json is still the TF.js loader's to refuse.
  return first !== undefined || path.extname(file).toLowerCase() === '.onnx';
}

/**
 * Loads an ONNX teacher into an onnxruntime session (CUDA where its provider loads, else CPU with
 * every core), picks its data input and output (`teacherInput`, `teacherHead`), decides the input's
 * layout (`teacherLayout`) and what the output holds (`teacherOutput`, or a Softmax at its end).
 * Every problem with the file, its inputs and outputs or the missing runtime is an InputError.
 */
export async function loadOnnxTeacher(tf: Tf, file: string, options: TeacherOptions, context: OnnxLoadContext): Promise<OnnxTeacher> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (error) {
    throw new InputError(file, `cannot read the ONNX teacher (${(error as NodeJS.ErrnoException).code ?? error}).`);
  }
  assertNotLfsPointer(file, bytes);
  const summary = readOnnxSummary(bytes, file);
  const external = await readExternalData(file, summary);
  const runtime = await findOnnxRuntime(context.searchFrom, context.importPackage).catch((error: unknown) => {
    throw new InputError(file, `is an ONNX model, but onnxruntime-node does not load here: ${firstLine(error)}.`);
  });
  if (!runtime) throw new InputError(file, missingRuntimeMessage(context.searchFrom));
  let opened;
  try {
    // Weights in external files are found by onnxruntime beside the model, so it gets the path.
    opened = await openSession(runtime, external.files.length > 0 ? file : bytes, context.threads);
  } catch (error) {
    throw new InputError(file, `onnxruntime-node ${runtime.version} cannot load it: ${firstLine(error)}`);
  }
  const { session } = opened;
  try {
    const notes = [`runs in ${opened.runtime.label}`, ...opened.notes];
    const feed = chooseFeed(summary, session, options, context.data, file, notes);
    const fills = fillInputs(summary, session, feed, options.inputFill ?? {}, file);
    feed.maxRows = rowsForFills(fills, feed, context.fillBytes ?? { budget: FILL_BUDGET_BYTES, limit: FILL_LIMIT_BYTES }, summary);
    if (feed.maxRows !== undefined)
      notes.push(`inputs filled by teacherInputFill take ${formatBytes(fillBytesPerRow(fills))} a row: at most ${feed.maxRows} rows a call`);
    const run = runner(runtime.ort, session, feed, fills, file);
    const { head, heads } = chooseOutput(summary, session, options.head, file);
    let width = lastKnown(head);
    if (width === null) {
      const probed = await run.raw(new Float32Array(feed.dims.reduce((a, b) => a * b, 1)), 1, head.key);
      width = probed.dims[probed.dims.length - 1] ?? null;
      head.shape = [null, ...probed.dims.slice(1)];
      notes.push(`width of output ${head.key} found by running the teacher once on zeros (the model does not declare it)`);
    }
    const checked = checkedWidth(head, width, file);
    if (heads.length > 1) notes.unshift(chosenHeadNote(head, checked, heads, heads.map(lastKnown)));
    const outputInfo = summary.outputs.find((o) => o.name === head.key);
    const outputType = ELEMENT_TYPES[outputInfo?.elemType ?? 1];
    if (!['float32', 'float64', 'float16'].includes(outputType)) {
      throw new InputError(
        file,
        `output ${head.key} holds ${outputType ?? `type ${outputInfo?.elemType}`} values, not scores: distill-gate distills logits or probabilities (pick another output with teacherHead).`,
      );
    }
    const reading = readHeadOutput(options.output ?? 'auto', head.key, checked, outputOp(summary, head.key), notes);
    // The soft targets depend on the bytes and on how the data is fed: which input, which layout,
    // what the other inputs hold.
    const fingerprint = createHash('sha256').update('onnx\n').update(bytes);
    for (const digest of external.digests) fingerprint.update(digest);
    fingerprint.update(JSON.stringify({ input: feed.name, layout: feed.layout, fills: options.inputFill ?? {} }));
    const inputShape = feed.layout === 'nchw' ? [feed.dims[1], feed.dims[2], feed.dims[0]] : feed.dims;
    // A timing loop feeds one tensor many times: TF.js tensors are immutable, so its host copy
    // (transposed where the layout asks) is made once, and timing measures onnxruntime's run.
    const hostInputs = new WeakMap<Tensor, Float32Array>();
    const predictAsync = async (x: Tensor): Promise<Tensor> => {
      let values = hostInputs.get(x);
      if (!values) {
        values = (await x.data()) as Float32Array;
        if (feed.layout === 'nchw') values = toNchw(values, x.shape[0], inputShape);
        hostInputs.set(x, values);
      }
      const rows = x.shape[0];
      const scores = await run.scores(values, rows, head.key, checked);
      return tf.tensor2d(reading.oneUnit ? asTwoClasses(scores, reading.oneUnit) : scores, [rows, reading.outputWidth]);
    };
    const teacher: OnnxTeacher = {
      format: 'onnx',
      inputShape,
      outputWidth: reading.outputWidth,
      output: reading.output,
      ...(reading.oneUnit ? { oneUnit: reading.oneUnit } : {}),
      ...onnxWeights(summary),
      predict: () => {
        throw new Error('an ONNX teacher runs in onnxruntime, asynchronously: call predictAsync (a bug in distill-gate)');
      },
      predictAsync,
      runtime: opened.runtime,
      fingerprint: fingerprint.digest('hex'),
      head: head.key,
      teacherOptions: options,
      feed,
      notes,
      dispose: () => void session.release().catch(() => {}),
    };
    return teacher;
  } catch (error) {
    await session.release().catch(() => {});
    throw error;
  }
}

/**
 * The files of weights stored outside the model file, each hashed as a stream so that they count
 * in the fingerprint (external data exists for models past protobuf's 2 GB, which one readFile
 * cannot hold); refused when a path leaves the model's folder.
 */
async function readExternalData(file: string, summary: OnnxSummary): Promise<{ files: string[]; digests: string[] }> {
  const dir = path.dirname(path.resolve(file));
  const files = [...new Set(summary.initializers.flatMap((i) => (i.externalFile !== undefined ? [i.externalFile] : [])))];
  const digests: string[] = [];
  for (const location of files) {
    const resolved = path.resolve(dir, location);
    // Model files come from pull requests: a weight file outside the model's folder is refused.
    if (location === '' || path.relative(dir, resolved).startsWith('..') || path.isAbsolute(location)) {
      throw new InputError(file, `an initializer's external data location "${location}" leaves the model's folder; keep weight files beside the .onnx file.`);
    }
    // External weight files are what LFS tracks most: a pointer here is named, not fed to onnxruntime.
    await assertFileNotLfsPointer(resolved);
    try {
      digests.push(await hashFile(resolved));
    } catch (error) {
      throw new InputError(resolved, `external weight data of ${path.basename(file)} cannot be read (${(error as NodeJS.ErrnoException).code ?? error}).`);
    }
  }
  return { files, digests };
}

async function hashFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

const describeDims = (dims: ReadonlyArray<number | string | null> | undefined) => (dims ? `[${dims.map((d) => d ?? '?').join(', ')}]` : '[unknown rank]');

function describeValue(info: OnnxValueInfo | undefined, name: string): string {
  return `${name} (${ELEMENT_TYPES[info?.elemType ?? 0] ?? 'non-tensor'} ${describeDims(info?.shape)})`;
}

/** The data input (`teacherInput`, or the only input), its layout and the dims it is fed with; InputErrors listing the inputs otherwise. */
function chooseFeed(
  summary: OnnxSummary,
  session: OrtSession,
  options: TeacherOptions,
  data: OnnxLoadContext['data'],
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
    throw new InputError(file, `input ${describeValue(declared, name)} takes ${type ?? 'non-tensor values'}, which numeric data cannot feed.`);
  }
  const shape = declared?.shape;
  if (!shape || shape.length < 2) {
    throw new InputError(file, `input ${describeValue(declared, name)} has no batch dimension and features: distill-gate feeds [batch, ...features].`);
  }
  const batch = shape[0];
  const fixedBatch = typeof batch === 'number' && batch > 0 ? batch : undefined;
  const { layout, dims } = chooseLayout(shape.slice(1), data.sampleShape, options.layout ?? 'auto', { file, input: name, source: data.source });
  if (layout === 'nchw') {
    notes.push(
      `input ${name} ${describeDims(shape)} is NCHW: fed the data's [${data.sampleShape.join(', ')}] samples transposed${options.layout === 'nchw' ? ' (teacherLayout: nchw)' : ''}`,
    );
  } else if (layout === 'nhwc' && options.layout !== 'nhwc') notes.push(`input ${name} ${describeDims(shape)} is NHWC, as the data: fed as it is`);
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
  const fits = (want: readonly number[]) => want.length === dims.length && dims.every((d, i) => typeof d !== 'number' || d === want[i]);
  const chw = sample.length === 3 ? [sample[2], sample[0], sample[1]] : undefined;
  const takes = `input ${where.input} takes [batch, ${dims.map((d) => d ?? '?').join(', ')}]`;
  if (setting !== 'auto' && dims.length !== 3) {
    throw new InputError(`teacherLayout: ${setting}`, `applies to rank-4 (image) inputs; ${takes} in ${where.file}. Remove teacherLayout.`);
  }
  if (setting === 'nchw' || (setting === 'auto' && chw && fits(chw))) {
    if (chw && fits(chw)) return { layout: 'nchw', dims: chw };
    throw new InputError(
      where.file,
      `${takes}, read as NCHW (teacherLayout: nchw), but samples have shape [${sample.join(', ')}] in ${where.source}, whose (C, H, W) is [${chw?.join(', ') ?? 'not an image'}].`,
    );
  }
  if (fits(sample)) return { layout: dims.length === 3 ? 'nhwc' : 'none', dims: [...sample] };
  const values = (shape: ReadonlyArray<number | string | null>) => shape.reduce<number>((a, b) => a * (typeof b === 'number' ? b : NaN), 1);
  const sameCount = values(dims) === values(sample);
  throw new InputError(
    where.file,
    `${takes} but samples have shape [${sample.join(', ')}] in ${where.source}` +
      (chw && dims.length === 3 ? ` (neither NCHW [${chw.join(', ')}] nor NHWC [${sample.join(', ')}])` : '') +
      (sameCount ? `: the same ${values(sample)} values in another shape; reshape the data to the teacher's input` : ': the teacher and the data do not fit') +
      (setting === 'nhwc' ? ' (teacherLayout: nhwc)' : '') +
      '.',
  );
}

/** The teacher's outputs as heads, and the one `teacherHead` names (or the only one). */
function chooseOutput(summary: OnnxSummary, session: OrtSession, wanted: string | undefined, file: string): { head: Head; heads: Head[] } {
  const heads: Head[] = session.outputNames.map((name) => {
    const shape = summary.outputs.find((o) => o.name === name)?.shape;
    return { key: name, aliases: [], shape: shape?.map((d) => (typeof d === 'number' ? d : null)) };
  });
  const index = chooseHead(heads, file, wanted, () => heads.map(lastKnown));
  return { head: heads[index], heads };
}

function lastKnown(head: Head): number | null {
  return head.shape?.[head.shape.length - 1] ?? null;
}

/**
 * The teacher's parameters and weight bytes: its initializers, and the tensors of Constant nodes
 * and subgraphs (paddle2onnx writes every weight as a Constant node). Parameters count floating
 * point tensors only (float32, float16, double, bfloat16); bytes count every tensor.
 */
export function onnxWeights(summary: Pick<OnnxSummary, 'initializers' | 'constants'>): { params: number; bytes: number } {
  const tensors = [...summary.initializers, ...summary.constants];
  return {
    params: tensors.filter((i) => [1, 10, 11, 16].includes(i.dataType)).reduce((sum, i) => sum + i.dims.reduce((a, b) => a * b, 1), 0),
    bytes: tensors.reduce((sum, i) => sum + i.bytes, 0),
  };
}

/**
 * 'softmax' or 'sigmoid' when the node producing `output` is one, looking through Identity nodes
 * and into subgraphs: an If's output is its branches' (the same op in every branch), a Loop's or
 * a Scan's its body's output at the same place (a Loop's body outputs its condition first).
 */
export function outputOp(summary: Pick<OnnxSummary, 'nodes'>, output: string): string | undefined {
  return graphOutputOp(summary.nodes, output, 0);
}

function graphOutputOp(nodes: OnnxNode[], output: string, depth: number): string | undefined {
  if (depth > 8) return undefined;
  const producer = new Map(nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
  let name = output;
  let node = producer.get(name);
  for (let hops = 0; node && node.op === 'Identity' && hops < 8; hops++) {
    name = node.inputs[0] ?? '';
    node = producer.get(name);
  }
  if (node?.op === 'Softmax') return 'softmax';
  if (node?.op === 'Sigmoid') return 'sigmoid';
  if (!node?.subgraphs || !['If', 'Loop', 'Scan'].includes(node.op)) return undefined;
  const place = node.outputs.indexOf(name) + (node.op === 'Loop' ? 1 : 0);
  const ops = node.subgraphs.map(({ graph }) => (graph.outputs[place] === undefined ? undefined : graphOutputOp(graph.nodes, graph.outputs[place], depth + 1)));
  return ops.length > 0 && ops.every((op) => op !== undefined && op === ops[0]) ? ops[0] : undefined;
}

/** One tensor per other input, filled with its `teacherInputFill` value; dims shared by name with the data input take the fed sizes. */
interface FillInput {
  name: string;
  type: OrtElementType;
  value: number;
  /** The batch, or a fixed size. */
  dims: Array<number | 'batch'>;
}

function fillInputs(summary: OnnxSummary, session: OrtSession, feed: OnnxFeed, fill: Record<string, number>, file: string): FillInput[] {
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
      if (type === undefined || type === 'string' || (range && !(Number.isInteger(value) && value >= range[0] && value <= range[1]))) {
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
function fillBytesPerRow(fills: readonly FillInput[]): number {
  return fills.reduce((sum, f) => sum + (f.dims.includes('batch') ? fillBytes(f, 1) : 0), 0);
}

/** Bytes one filled input takes in a call of `rows` rows. */
function fillBytes(fill: FillInput, rows: number): number {
  return fill.dims.reduce<number>((product, d) => product * (d === 'batch' ? rows : d), 1) * (ELEMENT_BYTES[fill.type] ?? 8);
}

/**
 * The most rows one call may take so that the filled inputs stay within `budget`, or undefined
 * when they do not bound it (none grows with the batch, the batch is fixed, or 512 rows fit).
 * A filled input that takes more than `limit` in the smallest call the model allows (one row, or
 * its fixed batch) is refused: an InputError naming it, its shape and its size.
 */
function rowsForFills(
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
function filledArray(type: OrtElementType, value: number, length: number): ArrayBufferView {
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

/** Runs the session on rows of host data: the data input converted to its type, the fills, and a fixed batch padded to. */
function runner(ort: OrtModule, session: OrtSession, feed: OnnxFeed, fills: FillInput[], file: string) {
  const rowSize = feed.dims.reduce((a, b) => a * b, 1);
  const tensor = (type: OrtElementType, values: Float32Array, dims: number[]): OrtTensor => new ort.Tensor(type, converted(values, type), dims);
  /** One session run on `rows` rows (exactly the fixed batch where there is one), returning the output tensor. */
  const raw = async (values: Float32Array, rows: number, output: string): Promise<OrtTensor> => {
    const feeds: Record<string, OrtTensor> = { [feed.name]: tensor(feed.type, values, [rows, ...feed.dims]) };
    for (const f of fills) {
      const dims = f.dims.map((d) => (d === 'batch' ? rows : d));
      feeds[f.name] = new ort.Tensor(
        f.type,
        filledArray(
          f.type,
          f.value,
          dims.reduce((a, b) => a * b, 1),
        ),
        dims,
      );
    }
    try {
      const result = await session.run(feeds, [output]);
      return result[output];
    } catch (error) {
      // Out of memory is the caller's to retry with fewer rows.
      if (isOutOfMemory(error)) throw error;
      throw new InputError(file, `onnxruntime failed to run it on a batch of [${rows}, ${feed.dims.join(', ')}] at input ${feed.name}: ${firstLine(error)}`);
    }
  };
  return {
    raw: async (values: Float32Array, rows: number, output: string) =>
      raw(feed.fixedBatch ? padded(values, feed.fixedBatch * rowSize) : values, feed.fixedBatch ?? rows, output),
    /** The output's scores for `rows` rows as float32, row-major: [rows, width]. */
    scores: async (values: Float32Array, rows: number, output: string, width: number): Promise<Float32Array> => {
      // A fixed batch is what every call takes; a free one is split where the filled inputs would outgrow their budget.
      const step = feed.fixedBatch ?? Math.min(rows, feed.maxRows ?? rows);
      const out = new Float32Array(rows * width);
      for (let start = 0; start < rows; start += step) {
        const count = Math.min(step, rows - start);
        const slice = values.subarray(start * rowSize, (start + count) * rowSize);
        // A fixed batch pads the last call to it; a free one runs the rows left.
        const batch = feed.fixedBatch ?? count;
        const result = await raw(feed.fixedBatch ? padded(slice, batch * rowSize) : slice, batch, output);
        if (result.dims.length !== 2 || result.dims[0] !== batch || result.dims[1] !== width) {
          throw new InputError(
            file,
            `output ${output} came back with shape [${result.dims.join(', ')}] for a batch of ${batch}; expected [${batch}, ${width}].`,
          );
        }
        out.set(asFloat32(result).subarray(0, count * width), start * width);
      }
      return out;
    },
  };
}

/** `values` followed by zeros up to `length`: a short batch for a model with a fixed batch size. */
function padded(values: Float32Array, length: number): Float32Array {
  if (values.length === length) return values;
  const out = new Float32Array(length);
  out.set(values);
  return out;
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
function converted(values: Float32Array, type: OrtElementType): ArrayBufferView {
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

function asFloat32(tensor: OrtTensor): Float32Array {
  const data = tensor.data;
  if (data instanceof Float32Array) return data;
  if (tensor.type === 'float16' && data instanceof Uint16Array) return fromFloat16(data);
  return Float32Array.from(data as ArrayLike<number>);
}

/** A one-unit head's values as two classes: probabilities [1 - p, p], or logits [0, z]. */
function asTwoClasses(values: Float32Array, kind: 'logits' | 'probabilities'): Float32Array {
  const out = new Float32Array(values.length * 2);
  for (let i = 0; i < values.length; i++) {
    out[2 * i] = kind === 'probabilities' ? 1 - values[i] : 0;
    out[2 * i + 1] = values[i];
  }
  return out;
}

/**
 * Integer and boolean inputs (token ids, say) take whole numbers in their type's range: every value
 * of `split` is checked before any runs, and the first that does not fit is an InputError naming
 * its row. Float inputs take anything.
 */
export async function checkOnnxFeed(teacher: OnnxTeacher, split: Dataset): Promise<void> {
  const range = INTEGER_RANGES[teacher.feed.type];
  if (!range) return;
  const rowSize = split.sampleShape.reduce((a, b) => a * b, 1);
  for (let start = 0; start < split.size; start += split.chunkRows) {
    const count = Math.min(split.chunkRows, split.size - start);
    const rows = await split.read(start, count);
    for (let i = 0; i < rows.length; i++) {
      const v = rows[i];
      if (!Number.isInteger(v) || v < range[0] || v > range[1]) {
        const row = start + Math.floor(i / rowSize);
        throw new InputError(
          `${split.source} row ${row}`,
          `value ${v} (feature ${i % rowSize}) cannot feed the teacher's ${teacher.feed.type} input ${teacher.feed.name}, which takes whole numbers in [${range[0]}, ${range[1]}] (token or category ids?).`,
        );
      }
    }
  }
}
