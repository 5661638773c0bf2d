import type { io, LayersModel } from '@tensorflow/tfjs';
import type { Tf } from '../backend/resolve.js';
import type { ExportSettings } from '../config/schema.js';
import type { OutputKind } from './model.js';
import { fromFloat16, toFloat16 } from './float16.js';

/**
 * The student as it ships: weights quantized the way tensorflowjs_converter quantizes them (and
 * recorded in the weights manifest the same way, so that stock `tf.loadLayersModel` dequantizes
 * them on load), and a final softmax when the teacher it replaces outputs probabilities. Training
 * and measuring work on the float32 logits student; only student/ and the `quantized.*` metrics
 * see what is built here.
 */

type WeightsManifestEntry = io.WeightsManifestEntry;
export type Quantization = ExportSettings['quantize'];

/** What student/ holds: how its weights are stored and what its output is. Recorded in report.json's `export`. */
export interface ExportPlan {
  quantize: Quantization;
  output: OutputKind;
}

/** The export a config asks for: `output: auto` answers as the teacher does, so that swapping the student in changes no number the app reads. */
export function exportPlan(settings: ExportSettings, teacherOutput: OutputKind): ExportPlan {
  return { quantize: settings.quantize, output: settings.output === 'auto' ? teacherOutput : settings.output };
}

/** A LayersModel's topology and float32 weights, in memory, as `model.save` hands them to a handler. */
export async function saveToMemory(tf: Tf, model: LayersModel): Promise<io.ModelArtifacts> {
  let saved: io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      saved = artifacts;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return saved!;
}

/**
 * The artifacts to write for `plan`, from the student's float32 artifacts. `studentOutput` is what
 * the trained student outputs (logits, unless its own last layer has a softmax): a softmax is
 * appended only when the plan wants probabilities and the student gives logits.
 */
export function exportArtifacts(artifacts: io.ModelArtifacts, plan: ExportPlan, studentOutput: OutputKind): io.ModelArtifacts {
  const topology = plan.output === 'probabilities' && studentOutput === 'logits' ? withSoftmaxOutput(artifacts.modelTopology) : artifacts.modelTopology;
  const { weightSpecs, weightData } = quantizeWeights(artifacts.weightSpecs ?? [], weightBytes(artifacts), plan.quantize);
  return { ...artifacts, modelTopology: topology, weightSpecs, weightData };
}

/** Weight bytes the student occupies when stored with `quantize`: float32 entries shrink to 2 or 1 bytes an element. */
export function quantizedBytes(specs: readonly WeightsManifestEntry[], quantize: Quantization): number {
  const perElement = quantize === 'float16' ? 2 : quantize === 'uint8' ? 1 : 4;
  let bytes = 0;
  for (const spec of specs) {
    const elements = spec.shape.reduce((a, b) => a * b, 1);
    bytes += elements * (spec.dtype === 'float32' ? perElement : 4);
  }
  return bytes;
}

function weightBytes(artifacts: io.ModelArtifacts): Uint8Array {
  const data = artifacts.weightData;
  const buffers = Array.isArray(data) ? data : data ? [data] : [];
  return new Uint8Array(Buffer.concat(buffers.map((b) => Buffer.from(b))));
}

/** The name of the softmax layer appended to a student whose teacher outputs probabilities. */
export const SOFTMAX_LAYER = 'distill_gate_softmax';

/**
 * The topology with an Activation(softmax) layer after its output: appended to a Sequential's
 * layer list, or wired after the output layer of a functional model. The weights are unchanged
 * (the layer has none), so the float32 and quantized manifests serve both topologies.
 */
export function withSoftmaxOutput(topology: io.ModelArtifacts['modelTopology']): io.ModelArtifacts['modelTopology'] {
  const copy = structuredClone(topology) as { class_name?: string; config?: Record<string, unknown> } & Record<string, unknown>;
  // model.save() nests the Keras model under model_config; hand-written topologies may not.
  const model = (copy.model_config ?? copy) as { class_name: string; config: { layers: unknown[]; output_layers?: unknown[] } };
  const layer = { class_name: 'Activation', config: { name: SOFTMAX_LAYER, trainable: false, dtype: 'float32', activation: 'softmax' } };
  if (model.class_name === 'Sequential') {
    model.config.layers.push(layer);
  } else {
    const outputs = model.config.output_layers as Array<[string, number, number]>;
    if (!outputs || outputs.length !== 1) throw new Error('a student with several outputs cannot be given a softmax output');
    const [name, node, tensor] = outputs[0];
    model.config.layers.push({ ...layer, name: SOFTMAX_LAYER, inbound_nodes: [[[name, node, tensor, {}]]] });
    model.config.output_layers = [[SOFTMAX_LAYER, 0, 0]];
  }
  return copy as io.ModelArtifacts['modelTopology'];
}

/**
 * Quantizes every float32 weight; other dtypes (int32 counters) stay as they are. `none` returns
 * the data unchanged. The manifest entries carry `quantization` as tensorflowjs_converter writes
 * it: `{ dtype: 'float16' }`, or `{ dtype: 'uint8', scale, min }` per tensor.
 */
export function quantizeWeights(
  specs: readonly WeightsManifestEntry[],
  data: Uint8Array,
  quantize: Quantization,
): { weightSpecs: WeightsManifestEntry[]; weightData: ArrayBuffer } {
  if (quantize === 'none') return { weightSpecs: [...specs], weightData: copyOf(data) };
  const out: Uint8Array[] = [];
  const weightSpecs: WeightsManifestEntry[] = [];
  let offset = 0;
  for (const spec of specs) {
    const elements = spec.shape.reduce((a, b) => a * b, 1);
    const bytes = elements * 4;
    const raw = data.subarray(offset, offset + bytes);
    offset += bytes;
    if (spec.dtype !== 'float32' || spec.quantization) {
      weightSpecs.push(spec);
      out.push(raw);
      continue;
    }
    const values = new Float32Array(copyOf(raw));
    if (quantize === 'float16') {
      weightSpecs.push({ ...spec, quantization: { dtype: 'float16' } });
      out.push(new Uint8Array(toFloat16(values).buffer));
    } else {
      const { quantized, scale, min } = quantizeAffineUint8(values);
      weightSpecs.push({ ...spec, quantization: { dtype: 'uint8', scale, min } });
      out.push(quantized);
    }
  }
  return { weightSpecs, weightData: copyOf(Buffer.concat(out)) };
}

function copyOf(bytes: Uint8Array): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

/**
 * Affine uint8 quantization of one tensor, as tensorflowjs_converter does it: scale = (max - min)
 * / 255, and where the range holds 0, min nudged to a multiple of scale so that 0 stays exactly
 * 0 after dequantizing (zero biases, padding). A constant tensor gets scale 1 and stores its value
 * as min. Values round to the nearest step; dequantized, each is `q * scale + min`.
 */
export function quantizeAffineUint8(values: Float32Array): { quantized: Uint8Array; scale: number; min: number } {
  let low = Infinity;
  let high = -Infinity;
  for (const v of values) {
    if (v < low) low = v;
    if (v > high) high = v;
  }
  const quantized = new Uint8Array(values.length);
  if (values.length === 0 || low === high) return { quantized, scale: 1, min: values.length === 0 ? 0 : low };
  const scale = (high - low) / 255;
  const min = low <= 0 && 0 <= high ? Math.round(low / scale) * scale : low;
  for (let i = 0; i < values.length; i++) quantized[i] = Math.min(255, Math.max(0, Math.round((values[i] - min) / scale)));
  return { quantized, scale, min };
}

/** The values a manifest entry's bytes hold once dequantized, computed as TF.js's decodeWeights does (in float32). */
export function dequantize(spec: WeightsManifestEntry, bytes: Uint8Array): Float32Array {
  const q = spec.quantization;
  if (!q) return new Float32Array(copyOf(bytes));
  if (q.dtype === 'float16') return fromFloat16(new Uint16Array(copyOf(bytes)));
  const values = new Float32Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) values[i] = bytes[i] * q.scale! + q.min!;
  return values;
}
