import { createHash } from 'node:crypto';
import type { DataType, GraphModel, LayersModel, Tensor } from '@tensorflow/tfjs';
import type { Tf } from '../backend/resolve.js';
import { InputError } from '../errors.js';
import { readModelArtifacts, type LoadedArtifacts } from './artifacts.js';

import type { LoadedModel, OutputKind, OutputSetting, TeacherOptions } from './loaded-model.js';

/**
 * The student's TF.js LayersModel. A student always has one (loadModel refuses a GraphModel
 * student, and student.layers builds a Sequential): one without is a bug, named here.
 */
export function studentLayers(student: LoadedModel): LayersModel {
  if (!student.layers)
    throw new Error(`the student (a ${student.format} model) has no TF.js LayersModel to train, save or export`);
  return student.layers;
}

/**
 * Free input dimensions (other than the batch) are set to this for the one forward pass that finds
 * an output width the model.json does not give: image models with free height and width take 224.
 */
export const PROBE_FREE_DIM = 224;

export async function loadModel(
  tf: Tf,
  modelJsonPath: string,
  role: 'teacher' | 'student',
  options: TeacherOptions = {},
): Promise<LoadedModel> {
  const loaded = await readModelArtifacts(modelJsonPath);
  if (role === 'student' && loaded.format === 'graph-model') {
    throw new InputError(
      modelJsonPath,
      'is a GraphModel, which cannot be trained: a student given by `student.model` must be a LayersModel (tf.Model.save() output), or use `student.layers`.',
    );
  }
  const handler = tf.io.fromMemory(loaded.artifacts);
  const fingerprint = fingerprintOf(loaded);
  let model: GraphModel | LayersModel;
  try {
    model = loaded.format === 'graph-model' ? await tf.loadGraphModel(handler) : await tf.loadLayersModel(handler);
  } catch (error) {
    throw new InputError(
      modelJsonPath,
      `TF.js could not build the ${role} from it: ${firstLine(error)}. Check that every layer class is one TF.js knows and that the weights match the topology.`,
    );
  }
  try {
    if (loaded.format === 'graph-model')
      return { ...wrapGraphModel(tf, model as GraphModel, loaded, modelJsonPath, options), fingerprint };
    const layers = model as LayersModel;
    const wrapped =
      role === 'teacher'
        ? wrapLayersModel(layers, loaded.weightBytes, { tf, where: modelJsonPath, options })
        : wrapLayersModel(layers, loaded.weightBytes);
    return { ...wrapped, fingerprint };
  } catch (error) {
    model.dispose();
    throw error;
  }
}

/** One output of a teacher, as a user names it with `teacherHead`. */
export interface Head {
  /** Signature key, output node name, or output layer name. */
  key: string;
  /** Other names it answers to (the tensor name "Identity_1:0", the node name "Identity_1"). */
  aliases: string[];
  /** Full shape with the batch dimension where the model.json gives it; null for a free dimension. */
  shape?: (number | null)[];
}

interface TeacherContext {
  tf: Tf;
  /** The model.json, for messages. */
  where: string;
  options: TeacherOptions;
}

/**
 * Wraps a LayersModel. Without `teacher` (students) it predicts its first output as given. With
 * `teacher`, the head is chosen by name where there are several, and a one-unit head is distilled
 * as two classes (see `binaryHead`).
 */
export function wrapLayersModel(model: LayersModel, bytes: number, teacher?: TeacherContext): LoadedModel {
  const inputShape = model.inputs[0].shape.slice(1);
  const base = {
    format: 'layers-model' as const,
    inputShape,
    params: model.countParams(),
    bytes,
    layers: model,
    dispose: () => model.dispose(),
  };
  if (!teacher) {
    const outputShape = model.outputs[0].shape;
    return {
      ...base,
      outputWidth: outputShape[outputShape.length - 1] ?? 0,
      output: layersOutputKind(model),
      predict: (x) => model.predictOnBatch(x) as Tensor,
    };
  }
  const heads: Head[] = model.outputs.map((output, i) => ({
    key: model.outputNames[i],
    aliases: [output.name],
    shape: output.shape,
  }));
  const widths = () => heads.map(lastDimension);
  const index = chooseHead(heads, teacher.where, teacher.options.head, widths);
  const head = heads[index];
  const width = checkedWidth(head, lastDimension(head), teacher.where);
  const predictHead = (x: Tensor): Tensor => {
    const result = model.predictOnBatch(x);
    if (!Array.isArray(result)) return result;
    result.forEach((t, i) => i !== index && t.dispose());
    return result[index];
  };
  const lastOp = layerOutputOp(model.outputLayers[index]);
  const notes = heads.length > 1 ? [chosenHeadNote(head, width, heads, widths())] : [];
  return {
    ...base,
    ...readHead(teacher, head.key, width, lastOp, predictHead, notes),
    head: head.key,
    teacherOptions: teacher.options,
  };
}

function wrapGraphModel(
  tf: Tf,
  model: GraphModel,
  loaded: LoadedArtifacts,
  where: string,
  options: TeacherOptions,
): LoadedModel {
  const signature = loaded.artifacts.signature;
  const params = (loaded.artifacts.weightSpecs ?? []).reduce((sum, w) => sum + w.shape.reduce((a, b) => a * b, 1), 0);
  const input = graphInput(model, signature, where);
  const heads = graphHeads(model, signature);
  if (heads.length === 0)
    throw new InputError(where, 'has no output nodes: expected a GraphModel as written by tensorflowjs_converter.');
  const notes: string[] = [];
  // tensorflowjs_converter does not record shapes on the Identity nodes a graph ends with, so the
  // width comes from the signature, or else from running the model once on a zero batch.
  let probed: number[][] | undefined;
  const widthOf = (i: number): number | null => {
    const known = lastDimension(heads[i]);
    if (known !== null) return known;
    probed ??= probeGraph(
      tf,
      model,
      input,
      heads.map((h) => tensorName(h)),
      where,
    );
    return probed[i][probed[i].length - 1] ?? null;
  };
  const index = chooseHead(heads, where, options.head, () => heads.map((_, i) => widthOf(i)));
  const head = heads[index];
  const width = widthOf(index);
  if (probed) {
    notes.push(
      `width of head ${head.key} found by running the teacher once on zeros of shape [1, ${input.shape.map((d) => d ?? PROBE_FREE_DIM).join(', ')}] (the model.json's signature does not give it)`,
    );
    head.shape ??= probed[index];
  }
  const checked = checkedWidth(head, width, where);
  if (heads.length > 1)
    notes.unshift(
      chosenHeadNote(
        head,
        checked,
        heads,
        heads.map((_, i) => widthOf(i)),
      ),
    );
  const name = tensorName(head);
  const predictHead = (x: Tensor): Tensor => {
    const result = model.execute(x, [name]);
    return Array.isArray(result) ? result[0] : result;
  };
  const lastOp = graphOutputOp(loaded.artifacts.modelTopology, name);
  return {
    format: 'graph-model',
    inputShape: input.shape,
    params,
    bytes: loaded.weightBytes,
    ...readHead({ tf, where, options }, head.key, checked, lastOp, predictHead, notes),
    head: head.key,
    teacherOptions: options,
    dispose: () => model.dispose(),
  };
}

/** How the chosen head's output is read: its kind and width, and whether a one-unit head becomes two classes. */
export interface HeadReading {
  outputWidth: number;
  output: OutputKind;
  /** A one-unit head, distilled as two classes: a probability p as probabilities [1 - p, p], a logit z as logits [0, z]. */
  oneUnit?: OutputKind;
}

/**
 * What the chosen head outputs, from the `teacherOutput` setting or its last op ('softmax',
 * 'sigmoid' or undefined), with a note for the log where the reading is not the obvious one. A
 * head of one unit (a sigmoid binary classifier, or a single logit) would give a constant softmax
 * and a loss of 0, so it is distilled as two classes: a probability p becomes probabilities
 * [1 - p, p]; a logit z becomes logits [0, z], whose softmax is exactly [1 - sigmoid(z), sigmoid(z)].
 */
export function readHeadOutput(
  setting: OutputSetting,
  key: string,
  width: number,
  lastOp: string | undefined,
  notes: string[],
): HeadReading {
  const detected: OutputKind =
    lastOp === 'softmax' || (lastOp === 'sigmoid' && width === 1) ? 'probabilities' : 'logits';
  const kind = setting === 'auto' ? detected : setting;
  if (width !== 1) {
    if (lastOp === 'sigmoid' && setting === 'auto')
      notes.push(
        `head ${key} ends in a sigmoid over ${width} units (multi-label?); distilled as the logits of one ${width}-class softmax`,
      );
    return { outputWidth: width, output: kind };
  }
  const why =
    setting !== 'auto'
      ? `teacherOutput: ${setting}`
      : lastOp === 'sigmoid'
        ? 'it ends in a sigmoid'
        : 'it does not end in a sigmoid';
  if (kind === 'probabilities')
    notes.push(
      `head ${key} has one unit, read as a probability p (${why}): distilled as two classes, probabilities [1 - p, p]`,
    );
  else
    notes.push(
      `head ${key} has one unit, read as a logit z (${why}): distilled as two classes, logits [0, z] (probabilities [1 - sigmoid(z), sigmoid(z)])`,
    );
  return { outputWidth: 2, output: kind, oneUnit: kind };
}

/** The output kind of the chosen head, and its predict (a one-unit head widened to two classes, see readHeadOutput). */
function readHead(
  teacher: TeacherContext,
  key: string,
  width: number,
  lastOp: string | undefined,
  predictHead: (x: Tensor) => Tensor,
  notes: string[],
): Pick<LoadedModel, 'outputWidth' | 'output' | 'predict' | 'notes' | 'oneUnit'> {
  const { outputWidth, output, oneUnit } = readHeadOutput(teacher.options.output ?? 'auto', key, width, lastOp, notes);
  const { tf } = teacher;
  if (oneUnit === undefined) return { outputWidth, output, predict: predictHead, notes };
  return {
    outputWidth,
    output,
    oneUnit,
    predict: (x) =>
      tf.tidy(() => {
        const y = predictHead(x);
        return oneUnit === 'probabilities' ? tf.concat([tf.sub(1, y), y], 1) : tf.concat([tf.zerosLike(y), y], 1);
      }),
    notes,
  };
}

/** Index of the head named `wanted`, or the only head; an InputError listing the heads otherwise. */
export function chooseHead(
  heads: Head[],
  where: string,
  wanted: string | undefined,
  widths: () => (number | null)[],
): number {
  if (wanted === undefined) {
    if (heads.length === 1) return 0;
    throw new InputError(
      where,
      `has ${heads.length} outputs: ${listHeads(heads, widths())}. Set teacherHead to the one to distill (e.g. teacherHead: ${heads[0].key}).`,
    );
  }
  const bare = (name: string) => name.replace(/:0$/, '');
  const index = heads.findIndex((h) =>
    [h.key, ...h.aliases].some((name) => name === wanted || bare(name) === bare(wanted)),
  );
  if (index < 0)
    throw new InputError(
      `teacherHead "${wanted}"`,
      `is not an output of ${where}; its outputs: ${listHeads(heads, widths())}.`,
    );
  return index;
}

export function listHeads(heads: Head[], widths: (number | null)[]): string {
  return heads
    .map((h, i) => {
      const alias = h.aliases.find((a) => a !== h.key);
      return `${h.key} (${alias ? `${alias}, ` : ''}${widths[i] ?? '?'} wide)`;
    })
    .join(', ');
}

/** The head's width as the model.json gives it (its shape's last dimension), or null. */
export function lastDimension(head: Head): number | null {
  return head.shape?.[head.shape.length - 1] ?? null;
}

/** The log's note when a teacher has several outputs: which one is distilled, and the others. */
export function chosenHeadNote(head: Head, width: number, heads: Head[], widths: (number | null)[]): string {
  return `distilling head ${head.key} (${width} wide), one of ${heads.length} outputs: ${listHeads(heads, widths)}`;
}

export function checkedWidth(head: Head, width: number | null, where: string): number {
  const shape = head.shape;
  if (shape && shape.length !== 2) {
    throw new InputError(
      where,
      `head ${head.key} has shape [${shape.map((d) => d ?? 'None').join(', ')}]; distill-gate distills a [batch, classes] output (add a Flatten/Reshape, or pick another output with teacherHead).`,
    );
  }
  if (width === null || !(width > 0))
    throw new InputError(
      where,
      `the width of head ${head.key} is unknown: its signature does not give it and running the teacher did not either.`,
    );
  return width;
}

interface GraphTensorInfo {
  name?: string;
  dtype?: string;
  tensorShape?: { dim?: Array<{ size?: string | number }>; unknownRank?: boolean };
  resourceId?: number;
}
interface GraphSignature {
  inputs?: Record<string, GraphTensorInfo>;
  outputs?: Record<string, GraphTensorInfo>;
}

/** A signature's tensorShape as a shape (null for -1), or undefined where the rank is unknown. */
function signatureShape(info: GraphTensorInfo): (number | null)[] | undefined {
  const shape = info.tensorShape;
  if (!shape || shape.unknownRank || !Array.isArray(shape.dim)) return undefined;
  return shape.dim.map((d) => {
    const size = Number(d.size ?? 0);
    return Number.isFinite(size) && size >= 0 ? size : null;
  });
}

function graphInput(
  model: GraphModel,
  signature: GraphSignature | undefined,
  where: string,
): { shape: (number | null)[]; dtype: DataType } {
  const entries = Object.entries(signature?.inputs ?? {}).filter(
    ([, info]) => info.resourceId === undefined || info.resourceId === null,
  );
  const count = entries.length > 0 ? entries.length : model.inputs.length;
  if (count !== 1) {
    const names = entries.length > 0 ? entries.map(([key]) => key) : model.inputs.map((i) => i.name);
    throw new InputError(
      where,
      `has ${count} inputs (${names.join(', ')}); distill-gate feeds a teacher one input tensor.`,
    );
  }
  const fromSignature = entries.length === 1 ? signatureShape(entries[0][1]) : undefined;
  const fromGraph = model.inputs[0]?.shape?.map((d) => (d === -1 ? null : d));
  const full = fromSignature ?? fromGraph ?? [];
  return { shape: full.slice(1), dtype: model.inputs[0]?.dtype ?? 'float32' };
}

/** The graph's outputs: the signature's (in its order), else the nodes TF.js takes as outputs. */
function graphHeads(model: GraphModel, signature: GraphSignature | undefined): Head[] {
  const outputs = Object.entries(signature?.outputs ?? {});
  if (outputs.length > 0) {
    return outputs.map(([key, info]) => {
      const tensor = info.name ?? key;
      return { key, aliases: [tensor, tensor.replace(/:0$/, '')], shape: signatureShape(info) };
    });
  }
  return model.outputs.map((o) => ({
    key: o.name,
    aliases: [`${o.name}:0`],
    shape: o.shape?.map((d) => (d === -1 ? null : d)),
  }));
}

function tensorName(head: Head): string {
  return head.aliases[0] ?? head.key;
}

/** Shapes of every output after one forward pass on a zero batch of one row (all tensors disposed). */
function probeGraph(
  tf: Tf,
  model: GraphModel,
  input: { shape: (number | null)[]; dtype: DataType },
  names: string[],
  where: string,
): number[][] {
  try {
    return tf.tidy(() => {
      const x = tf.zeros([1, ...input.shape.map((d) => d ?? PROBE_FREE_DIM)], input.dtype);
      const result = model.execute(x, names);
      return (Array.isArray(result) ? result : [result]).map((t) => t.shape.slice());
    });
  } catch (error) {
    throw new InputError(
      where,
      `the model.json's signature does not give the output width, and running the teacher once on zeros of shape [1, ${input.shape.map((d) => d ?? PROBE_FREE_DIM).join(', ')}] failed: ${firstLine(error)}.`,
    );
  }
}

/** A softmax on the last layer (as its activation or as a Softmax/Activation layer) means probabilities. */
export function layersOutputKind(model: LayersModel): OutputKind {
  return layerOutputOp(model.layers[model.layers.length - 1]) === 'softmax' ? 'probabilities' : 'logits';
}

/** 'softmax' or 'sigmoid' when a layer ends in one, as its activation or as a Softmax/Activation layer. */
function layerOutputOp(layer: { getClassName(): string; getConfig(): unknown } | undefined): string | undefined {
  if (!layer) return undefined;
  const config = layer.getConfig() as { activation?: unknown };
  if (layer.getClassName() === 'Softmax' || config.activation === 'softmax') return 'softmax';
  if (config.activation === 'sigmoid') return 'sigmoid';
  return undefined;
}

/** 'softmax' or 'sigmoid' when the output node is one, looking through the Identity nodes converters end graphs with. */
function graphOutputOp(topology: unknown, outputName: string): string | undefined {
  const nodes = (topology as { node?: Array<{ name: string; op: string; input?: string[] }> })?.node ?? [];
  const byName = new Map(nodes.map((n) => [n.name, n]));
  let node = byName.get(outputName.split(':')[0]);
  for (let hops = 0; node && node.op === 'Identity' && hops < 8; hops++)
    node = byName.get((node.input?.[0] ?? '').split(':')[0]);
  if (node?.op === 'Softmax') return 'softmax';
  if (node?.op === 'Sigmoid') return 'sigmoid';
  return undefined;
}

function fingerprintOf(loaded: LoadedArtifacts): string {
  const hash = createHash('sha256')
    .update(JSON.stringify(loaded.artifacts.modelTopology))
    .update(JSON.stringify(loaded.artifacts.weightSpecs ?? []));
  const data = loaded.artifacts.weightData;
  for (const buffer of Array.isArray(data) ? data : data ? [data] : []) hash.update(new Uint8Array(buffer));
  return hash.digest('hex');
}

export function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0];
}
