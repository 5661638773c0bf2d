import { createHash } from 'node:crypto';
import type { GraphModel, LayersModel, Tensor } from '@tensorflow/tfjs';
import type { Tf } from '../backend/resolve.js';
import { InputError } from '../errors.js';
import { readModelArtifacts, type LoadedArtifacts, type ModelFormat } from './artifacts.js';

export type OutputKind = 'logits' | 'probabilities';

/** What the pipeline needs of a model, whichever format it was loaded from. */
export interface LoadedModel {
  format: ModelFormat;
  /** Input shape without the batch dimension (null for a free dimension). */
  inputShape: (number | null)[];
  outputWidth: number;
  output: OutputKind;
  params: number;
  bytes: number;
  /** One forward pass on one batch, in inference mode. */
  predict(x: Tensor): Tensor;
  /** Present for LayersModels, which the student always is. */
  layers?: LayersModel;
  /** sha256 of topology and weights, for content-addressed caches (set for models read from disk). */
  fingerprint?: string;
  dispose(): void;
}

export async function loadModel(tf: Tf, modelJsonPath: string, role: 'teacher' | 'student'): Promise<LoadedModel> {
  const loaded = await readModelArtifacts(modelJsonPath);
  if (role === 'student' && loaded.format === 'graph-model') {
    throw new InputError(modelJsonPath, 'is a GraphModel, which cannot be trained: a student given by `student.model` must be a LayersModel (tf.Model.save() output), or use `student.layers`.');
  }
  const handler = tf.io.fromMemory(loaded.artifacts);
  const fingerprint = fingerprintOf(loaded);
  try {
    if (loaded.format === 'graph-model') return { ...wrapGraphModel(await tf.loadGraphModel(handler), loaded), fingerprint };
    return { ...wrapLayersModel(await tf.loadLayersModel(handler), loaded.weightBytes), fingerprint };
  } catch (error) {
    if (error instanceof InputError) throw error;
    throw new InputError(modelJsonPath, `TF.js could not build the ${role} from it: ${firstLine(error)}. Check that every layer class is one TF.js knows and that the weights match the topology.`);
  }
}

export function wrapLayersModel(model: LayersModel, bytes: number): LoadedModel {
  const inputShape = model.inputs[0].shape.slice(1);
  const outputShape = model.outputs[0].shape;
  return {
    format: 'layers-model',
    inputShape,
    outputWidth: outputShape[outputShape.length - 1] ?? 0,
    output: layersOutputKind(model),
    params: model.countParams(),
    bytes,
    predict: (x) => model.predictOnBatch(x) as Tensor,
    layers: model,
    dispose: () => model.dispose(),
  };
}

function wrapGraphModel(model: GraphModel, loaded: LoadedArtifacts): LoadedModel {
  const input = model.inputs[0];
  const output = model.outputs[0];
  const params = (loaded.artifacts.weightSpecs ?? []).reduce((sum, w) => sum + w.shape.reduce((a, b) => a * b, 1), 0);
  return {
    format: 'graph-model',
    inputShape: (input.shape ?? []).slice(1).map((d) => (d === -1 ? null : d)),
    outputWidth: output.shape?.[output.shape.length - 1] ?? 0,
    output: graphOutputKind(loaded.artifacts.modelTopology, output.name),
    params,
    bytes: loaded.weightBytes,
    predict: (x) => {
      const result = model.predict(x);
      return (Array.isArray(result) ? result[0] : result instanceof Object && !('dataSync' in result) ? Object.values(result)[0] : result) as Tensor;
    },
    dispose: () => model.dispose(),
  };
}

/** A softmax on the last layer (as its activation or as a Softmax/Activation layer) means probabilities. */
export function layersOutputKind(model: LayersModel): OutputKind {
  const last = model.layers[model.layers.length - 1];
  const config = last.getConfig() as { activation?: unknown };
  if (last.getClassName() === 'Softmax' || config.activation === 'softmax') return 'probabilities';
  return 'logits';
}

function graphOutputKind(topology: unknown, outputName: string): OutputKind {
  const nodes = ((topology as { node?: Array<{ name: string; op: string; input?: string[] }> })?.node ?? []);
  const byName = new Map(nodes.map((n) => [n.name, n]));
  let node = byName.get(outputName.split(':')[0]);
  // Converters often end a graph with Identity nodes after the softmax.
  for (let hops = 0; node && node.op === 'Identity' && hops < 4; hops++) node = byName.get((node.input?.[0] ?? '').split(':')[0]);
  return node?.op === 'Softmax' ? 'probabilities' : 'logits';
}

function fingerprintOf(loaded: LoadedArtifacts): string {
  const hash = createHash('sha256').update(JSON.stringify(loaded.artifacts.modelTopology)).update(JSON.stringify(loaded.artifacts.weightSpecs ?? []));
  const data = loaded.artifacts.weightData;
  for (const buffer of Array.isArray(data) ? data : data ? [data] : []) hash.update(new Uint8Array(buffer));
  return hash.digest('hex');
}

export function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0];
}
