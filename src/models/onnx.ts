import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Tensor } from '@tensorflow/tfjs';
import type { ResolveOptions, Tf } from '../backend/resolve.js';
import type { Dataset } from '../data/dataset.js';
import { InputError, isOutOfMemory } from '../errors.js';
import { assertFileNotLfsPointer, assertNotLfsPointer, readFileHead } from '../data/lfs.js';
import { formatBytes } from '../format.js';
import { checkedWidth, chooseHead, chosenHeadNote, firstLine, readHeadOutput, type Head } from './model.js';
import { type LoadedModel, type TeacherOptions } from './loaded-model.js';
import { fromFloat16 } from './float16.js';
import { readOnnxSummary, type OnnxNode, type OnnxSummary } from './onnx-proto.js';
import {
  chooseFeed,
  converted,
  ELEMENT_TYPES,
  INTEGER_RANGES,
  toNchw,
  type FedData,
  type OnnxFeed,
} from './onnx-feed.js';
import {
  FILL_BUDGET_BYTES,
  FILL_LIMIT_BYTES,
  fillBytesPerRow,
  fillInputs,
  filledArray,
  rowsForFills,
  type FillInput,
} from './onnx-fill.js';
import {
  findOnnxRuntime,
  missingRuntimeMessage,
  openSession,
  type OrtElementType,
  type OrtModule,
  type OrtSession,
  type OrtTensor,
} from './onnx-runtime.js';

// ONNX teachers: the forward pass runs in onnxruntime-node, the student trains in TF.js as with
// any teacher. An OnnxTeacher is a LoadedModel whose predictAsync takes and returns TF.js tensors,
// so that the soft-target pass and timing treat it like any other; between the two runtimes the
// data crosses as host arrays (transposed to NCHW where the input is laid out so).

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
  data: FedData;
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
export async function loadOnnxTeacher(
  tf: Tf,
  file: string,
  options: TeacherOptions,
  context: OnnxLoadContext,
): Promise<OnnxTeacher> {
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
    feed.maxRows = rowsForFills(
      fills,
      feed,
      context.fillBytes ?? { budget: FILL_BUDGET_BYTES, limit: FILL_LIMIT_BYTES },
      summary,
    );
    if (feed.maxRows !== undefined)
      notes.push(
        `inputs filled by teacherInputFill take ${formatBytes(fillBytesPerRow(fills))} a row: at most ${feed.maxRows} rows a call`,
      );
    const run = runner(runtime.ort, session, feed, fills, file);
    const { head, heads } = chooseOutput(summary, session, options.head, file);
    let width = lastKnown(head);
    if (width === null) {
      const probed = await run.raw(new Float32Array(feed.dims.reduce((a, b) => a * b, 1)), 1, head.key);
      width = probed.dims[probed.dims.length - 1] ?? null;
      head.shape = [null, ...probed.dims.slice(1)];
      notes.push(
        `width of output ${head.key} found by running the teacher once on zeros (the model does not declare it)`,
      );
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
        throw new Error(
          'an ONNX teacher runs in onnxruntime, asynchronously: call predictAsync (a bug in distill-gate)',
        );
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
  const files = [
    ...new Set(summary.initializers.flatMap((i) => (i.externalFile !== undefined ? [i.externalFile] : []))),
  ];
  const digests: string[] = [];
  for (const location of files) {
    const resolved = path.resolve(dir, location);
    // Model files come from pull requests: a weight file outside the model's folder is refused.
    if (location === '' || path.relative(dir, resolved).startsWith('..') || path.isAbsolute(location)) {
      throw new InputError(
        file,
        `an initializer's external data location "${location}" leaves the model's folder; keep weight files beside the .onnx file.`,
      );
    }
    // External weight files are what LFS tracks most: a pointer here is named, not fed to onnxruntime.
    await assertFileNotLfsPointer(resolved);
    try {
      digests.push(await hashFile(resolved));
    } catch (error) {
      throw new InputError(
        resolved,
        `external weight data of ${path.basename(file)} cannot be read (${(error as NodeJS.ErrnoException).code ?? error}).`,
      );
    }
  }
  return { files, digests };
}

async function hashFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The teacher's outputs as heads, and the one `teacherHead` names (or the only one). */
function chooseOutput(
  summary: OnnxSummary,
  session: OrtSession,
  wanted: string | undefined,
  file: string,
): { head: Head; heads: Head[] } {
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
export function onnxWeights(summary: Pick<OnnxSummary, 'initializers' | 'constants'>): {
  params: number;
  bytes: number;
} {
  const tensors = [...summary.initializers, ...summary.constants];
  return {
    params: tensors
      .filter((i) => [1, 10, 11, 16].includes(i.dataType))
      .reduce((sum, i) => sum + i.dims.reduce((a, b) => a * b, 1), 0),
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
  const ops = node.subgraphs.map(({ graph }) =>
    graph.outputs[place] === undefined ? undefined : graphOutputOp(graph.nodes, graph.outputs[place], depth + 1),
  );
  return ops.length > 0 && ops.every((op) => op !== undefined && op === ops[0]) ? ops[0] : undefined;
}

/** Runs the session on rows of host data: the data input converted to its type, the fills, and a fixed batch padded to. */
function runner(ort: OrtModule, session: OrtSession, feed: OnnxFeed, fills: FillInput[], file: string) {
  const rowSize = feed.dims.reduce((a, b) => a * b, 1);
  const tensor = (type: OrtElementType, values: Float32Array, dims: number[]): OrtTensor =>
    new ort.Tensor(type, converted(values, type), dims);
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
      throw new InputError(
        file,
        `onnxruntime failed to run it on a batch of [${rows}, ${feed.dims.join(', ')}] at input ${feed.name}: ${firstLine(error)}`,
      );
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
