import type { io, LayersModel } from '@tensorflow/tfjs';
import type { Tf } from '../backend/resolve.js';
import type { ExportSettings } from '../config/schema.js';
import type { OutputKind } from './loaded-model.js';
import { fromFloat16, toFloat16 } from './float16.js';
import type { OnnxStudentCheck } from './onnx-student.js';

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
  /** `onnx`: student/ also holds student.onnx (onnx-student.ts); absent for TF.js alone. */
  format?: 'onnx';
  /** student.onnx's check in onnxruntime against the TF.js student, set by the measuring stage. */
  onnx?: OnnxStudentCheck;
}

/** The export a config asks for: `output: auto` answers as the teacher does, so that swapping the student in changes no number the app reads. */
export function exportPlan(
  settings: Pick<ExportSettings, 'quantize' | 'output' | 'format'>,
  teacherOutput: OutputKind,
): ExportPlan {
  return {
    quantize: settings.quantize,
    output: settings.output === 'auto' ? teacherOutput : settings.output,
    ...(settings.format === 'onnx' ? { format: 'onnx' as const } : {}),
  };
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
  if (!saved) throw new Error('model.save returned without handing its artifacts to the save handler');
  return saved;
}

/**
 * The artifacts to write for `plan`, from the student's float32 artifacts. `studentOutput` is what
 * the trained student outputs (logits, unless its own last layer has a softmax): a softmax is
 * appended only when the plan wants probabilities and the student gives logits.
 */
export function exportArtifacts(
  artifacts: io.ModelArtifacts,
  plan: ExportPlan,
  studentOutput: OutputKind,
  /** Told the weights that had to be clipped to fit the quantized format, when any had to. */
  onClipped?: (clipped: ClippedWeight[]) => void,
): io.ModelArtifacts {
  const topology =
    plan.output === 'probabilities' && studentOutput === 'logits'
      ? withSoftmaxOutput(artifacts.modelTopology)
      : artifacts.modelTopology;
  const { weightSpecs, weightData, clipped } = quantizeWeights(
    artifacts.weightSpecs ?? [],
    weightBytes(artifacts),
    plan.quantize,
  );
  if (clipped.length > 0) onClipped?.(clipped);
  return { ...artifacts, modelTopology: topology, weightSpecs, weightData };
}

/** The largest finite float16 value: beyond it (from 65,520 on) a weight would ship as Infinity. */
export const FLOAT16_MAX = 65504;

/** A weight some of whose values did not fit the quantized format and were clipped to the nearest value that does. */
export interface ClippedWeight {
  name: string;
  /** How many of its values were clipped. */
  count: number;
  /** The values it could ship, [low, high], after clipping. */
  range: [number, number];
  /** What forced it: float16's range, or a uint8 range whose dequantized values leave float32's. */
  why: 'float16 range' | 'uint8 dequantization';
}

/** One line a reader can act on: which weights were clipped, how many values, to what. */
export function describeClipped(clipped: readonly ClippedWeight[], quantize: Quantization): string {
  const count = clipped.reduce((sum, c) => sum + c.count, 0);
  const names = clipped
    .slice(0, 3)
    .map((c) => `${c.name} (${c.count})`)
    .join(', ');
  const more = clipped.length > 3 ? ` and ${clipped.length - 3} more` : '';
  const limit =
    quantize === 'float16'
      ? `float16's largest value, ±${FLOAT16_MAX.toLocaleString('en-US')} (beyond it they would ship as Infinity and the student would output NaN)`
      : "the largest uint8 steps that dequantize within float32's range (the next would load as Infinity and the student would output NaN)";
  return `export.quantize ${quantize}: ${count} weight value${count === 1 ? '' : 's'} in ${names}${more} did not fit and ${count === 1 ? 'was' : 'were'} clipped to ${limit}.`;
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
  const copy = structuredClone(topology) as { class_name?: string; config?: Record<string, unknown> } & Record<
    string,
    unknown
  >;
  // model.save() nests the Keras model under model_config; hand-written topologies may not.
  const model = (copy.model_config ?? copy) as {
    class_name: string;
    config: { layers: unknown[]; output_layers?: unknown[] };
  };
  const layer = {
    class_name: 'Activation',
    config: { name: SOFTMAX_LAYER, trainable: false, dtype: 'float32', activation: 'softmax' },
  };
  if (model.class_name === 'Sequential') {
    model.config.layers.push(layer);
  } else {
    const outputs = model.config.output_layers as Array<[string, number, number]>;
    if (!outputs || outputs.length !== 1)
      throw new Error('a student with several outputs cannot be given a softmax output');
    const [name, node, tensor] = outputs[0];
    model.config.layers.push({ ...layer, name: SOFTMAX_LAYER, inbound_nodes: [[[name, node, tensor, {}]]] });
    model.config.output_layers = [[SOFTMAX_LAYER, 0, 0]];
  }
  return copy;
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
): { weightSpecs: WeightsManifestEntry[]; weightData: ArrayBuffer; clipped: ClippedWeight[] } {
  if (quantize === 'none') return { weightSpecs: [...specs], weightData: copyOf(data), clipped: [] };
  const out: Uint8Array[] = [];
  const weightSpecs: WeightsManifestEntry[] = [];
  const clipped: ClippedWeight[] = [];
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
      const count = clipToFloat16(values);
      if (count > 0) clipped.push({ name: spec.name, count, range: [-FLOAT16_MAX, FLOAT16_MAX], why: 'float16 range' });
      weightSpecs.push({ ...spec, quantization: { dtype: 'float16' } });
      out.push(new Uint8Array(toFloat16(values).buffer));
    } else {
      const { quantized, scale, min, clipped: count } = quantizeAffineUint8(values);
      if (count > 0) {
        const steps = quantized.reduce((r, q) => [Math.min(r[0], q), Math.max(r[1], q)], [255, 0]);
        clipped.push({
          name: spec.name,
          count,
          range: [Math.fround(steps[0] * scale + min), Math.fround(steps[1] * scale + min)],
          why: 'uint8 dequantization',
        });
      }
      weightSpecs.push({ ...spec, quantization: { dtype: 'uint8', scale, min } });
      out.push(quantized);
    }
  }
  return { weightSpecs, weightData: copyOf(Buffer.concat(out)), clipped };
}

/**
 * Clips finite values beyond float16's range to ±FLOAT16_MAX in place, and returns how many: one
 * would otherwise round to ±Infinity, and a single Infinity weight makes the student output NaN.
 * NaN and ±Infinity, which no format can fix, are left as they are.
 */
function clipToFloat16(values: Float32Array): number {
  let count = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v) || Math.abs(v) <= FLOAT16_MAX) continue;
    values[i] = Math.sign(v) * FLOAT16_MAX;
    count++;
  }
  return count;
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
export function quantizeAffineUint8(values: Float32Array): {
  quantized: Uint8Array;
  scale: number;
  min: number;
  clipped: number;
} {
  let low = Infinity;
  let high = -Infinity;
  for (const v of values) {
    if (v < low) low = v;
    if (v > high) high = v;
  }
  const quantized = new Uint8Array(values.length);
  if (values.length === 0 || low === high)
    return { quantized, scale: 1, min: values.length === 0 ? 0 : low, clipped: 0 };
  const scale = (high - low) / 255;
  const min = low <= 0 && 0 <= high ? Math.round(low / scale) * scale : low;
  // TF.js dequantizes q * scale + min in float64 and stores it in float32: where the range spans
  // nearly all of float32's (min nudged for 0, or rounding at the ends), the outer steps would load
  // as ±Infinity. Values are kept to the steps that load finite, and those clipped are counted.
  let first = 0;
  let last = 255;
  while (first < last && !Number.isFinite(Math.fround(first * scale + min))) first++;
  while (last > first && !Number.isFinite(Math.fround(last * scale + min))) last--;
  let clipped = 0;
  for (let i = 0; i < values.length; i++) {
    const q = Math.min(255, Math.max(0, Math.round((values[i] - min) / scale)));
    const kept = Math.min(last, Math.max(first, q));
    if (kept !== q) clipped++;
    quantized[i] = kept;
  }
  return { quantized, scale, min, clipped };
}

/** The values a manifest entry's bytes hold once dequantized, computed as TF.js's decodeWeights does (in float32). */
export function dequantize(spec: WeightsManifestEntry, bytes: Uint8Array): Float32Array {
  const q = spec.quantization;
  if (!q) return new Float32Array(copyOf(bytes));
  if (q.dtype === 'float16') return fromFloat16(new Uint16Array(copyOf(bytes)));
  const { scale, min } = q;
  if (scale === undefined || min === undefined)
    throw new Error(`weight ${spec.name}: ${q.dtype} quantization without its scale and min`);
  const values = new Float32Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) values[i] = bytes[i] * scale + min;
  return values;
}
