import type { LayersModel, Tensor } from '@tensorflow/tfjs';
import type { Tf } from '../backend/resolve.js';
import type { Dataset } from '../data/dataset.js';
import { locatedCulprit } from '../config/locate.js';
import { InputError } from '../errors.js';
import type { StageMetrics } from '../measure/metrics.js';
import type { LoadedModel, OutputKind } from './model.js';
import type { StudentSource } from './student.js';
import {
  availableCores,
  findOnnxRuntime,
  INSTALL_ONNXRUNTIME_CPU,
  INSTALL_ONNXRUNTIME_CUDA,
  openSession,
  type OnnxRuntime,
  type OrtSession,
} from './onnx-runtime.js';
import { DataType, writeModel, type Attribute, type InitializerSpec, type NodeSpec } from './onnx-writer.js';
import { inferenceBatch } from './predict.js';

/**
 * The student as an ONNX model (`export.format: onnx`), written from the trained TF.js weights
 * with the same small writer the fixtures use, for apps that run onnxruntime (a PyTorch shop's
 * serving stack): an ONNX teacher in, an ONNX student out.
 *
 * Layout. TF.js students are NHWC, and so are the rows the run feeds them (the .npy, the CSV, the
 * teacher's input as the data gives it). The ONNX student keeps that input: `input` is NHWC, so
 * that an app swapping model.json for student.onnx feeds the same buffers, and the check below
 * feeds onnxruntime the very rows TF.js saw. ONNX's Conv and pooling ops take NCHW only, so the
 * graph transposes to NCHW before the first of them and back to NHWC where an op's meaning
 * depends on the order of the features (Flatten and Reshape, whose order the dense weights after
 * them were trained on; a Dense on a rank-4 tensor, which acts on its last axis). The converter
 * tracks the layout, so a run of convolutions and pools shares one Transpose each way.
 *
 * Batch norm is folded into the conv or dense before it when that layer has no activation
 * (w' = w·γ/√(σ²+ε), b' = (b − μ)·γ/√(σ²+ε) + β, per output channel); otherwise it is a
 * BatchNormalization node (NCHW, channels on axis 1), or Mul and Add on the last axis of a rank-3
 * tensor. Dropout is the identity at inference and writes no node. The final softmax follows
 * `export.output` exactly as the TF.js export does (exportArtifacts in export.ts): appended only
 * when the plan wants probabilities and the student gives logits.
 */

/** The file beside model.json in student/. */
export const ONNX_STUDENT_FILE = 'student.onnx';
/** The default domain's opset: 13 has Softmax over one axis (TF.js's semantics) and is read by every onnxruntime of the last years. */
export const ONNX_STUDENT_OPSET = 13;
/** The graph's input, NHWC (or the student's own rank) with a free batch dimension. */
export const ONNX_STUDENT_INPUT = 'input';

/**
 * Rows of the eval split the check runs through both runtimes: evenly spaced over the split. An
 * export bug (a kernel in the wrong order, a padding off by one, a fold gone wrong) changes every
 * row's outputs, so a few rows would show it; 256 cover the range of the inputs and take well
 * under a second for a student small enough to distill.
 */
export const ONNX_CHECK_ROWS = 256;

/**
 * The default gate of an ONNX export (`export.format: onnx`): `export.onnxMaxAbsDiff <= 1e-4`, the
 * largest difference between student.onnx in onnxruntime and the TF.js student on the eval rows
 * checked, in the units of the output (logits, or probabilities where the file outputs them). Both
 * compute the same float32 function in another order of summation (im2col or direct convolution,
 * fused or not): over the few hundred to few thousand terms of a small student's dot products
 * that differs by ~1e-6 for logits of magnitude ~10, so 1e-4 leaves two orders of margin, while
 * any export bug (a kernel transposed, a padding off by one, a batch norm folded wrong, NCHW read
 * as NHWC) moves the outputs by 1e-2 to 1. Students with logits in the thousands should set their
 * own gate (a relative error would be the measure there).
 */
export const DEFAULT_ONNX_MAX_ABS_DIFF = 1e-4;

export type OnnxOutput = 'logits' | 'probabilities';

/** What the ONNX student outputs: probabilities when the TF.js export's would (its own softmax, or one appended for `export.output`). */
export function onnxOutputKind(planOutput: OutputKind, studentOutput: OutputKind): OnnxOutput {
  return planOutput === 'probabilities' || studentOutput === 'probabilities' ? 'probabilities' : 'logits';
}

/** A layer the ONNX export cannot write: `layer` names it (its name and class), `reason` says why. */
export class OnnxExportError extends Error {
  constructor(
    readonly layer: string,
    readonly reason: string,
    /** Its place among the student's layers (the InputLayer not counted): `student.layers[index]` of a config's stack. */
    readonly index?: number,
  ) {
    super(`${layer}: ${reason}`);
  }
}

/** Why `model` cannot be written as ONNX, or undefined when it can: the run asks before training, so that it fails in seconds. */
export function onnxExportProblem(model: LayersModel): OnnxExportError | undefined {
  try {
    studentToOnnx(model, { appendSoftmax: false });
    return undefined;
  } catch (error) {
    if (error instanceof OnnxExportError) return error;
    throw error;
  }
}

/**
 * Refuses, before any training, a student that `export.format: onnx` cannot write: the error names
 * the layer where the config's stack has it (`file:line:column student.layers[3] (layerNormalization)`),
 * or the student's model.json.
 */
export function refuseUnexportable(student: LayersModel, source: StudentSource): void {
  const problem = onnxExportProblem(student);
  if (!problem) return;
  const culprit =
    'layers' in source && problem.index !== undefined && problem.index < source.layers.length
      ? locatedCulprit(source, `student.layers[${problem.index}] (${source.layers[problem.index].type})`, ['layers', problem.index], ['layers'])
      : 'model' in source
        ? source.model
        : `student ${problem.layer}`;
  throw new InputError(
    culprit,
    `export.format onnx cannot write this layer: ${problem.reason}. Use export.format tfjs, or a student of the layers the ONNX export writes (docs/onnx.md).`,
  );
}

/**
 * The ONNX model of a trained TF.js student, as bytes: its layers in order (a chain, one input and
 * one output), float32 weights. `appendSoftmax` adds a final Softmax over the classes. Throws
 * OnnxExportError naming the first layer it cannot write.
 */
export function studentToOnnx(model: LayersModel, { appendSoftmax }: { appendSoftmax: boolean }): Uint8Array {
  const inputShape = model.inputs[0]?.shape;
  if (model.inputs.length !== 1 || model.outputs.length !== 1 || !inputShape) {
    throw new OnnxExportError(
      model.name,
      `the ONNX export writes a student of one input and one output (this one has ${model.inputs.length} and ${model.outputs.length})`,
    );
  }
  const graph = new GraphBuilder(inputShape.slice(1).map((d) => d ?? -1));
  const layers = chain(model);
  for (let i = 0; i < layers.length; i++) {
    const next = layers[i + 1];
    try {
      const folded = graph.layer(layers[i], next?.getClassName() === 'BatchNormalization' ? next : undefined);
      if (folded) i++;
    } catch (error) {
      if (error instanceof OnnxExportError && error.index === undefined) throw new OnnxExportError(error.layer, error.reason, i);
      throw error;
    }
  }
  if (appendSoftmax) graph.softmax();
  const outputName = appendSoftmax || lastActivation(layers) === 'softmax' ? 'probabilities' : 'logits';
  graph.toNhwc();
  graph.emit('Identity', [graph.current], {}, outputName);
  const outputShape = model.outputs[0].shape.slice(1);
  return writeModel({
    nodes: graph.nodes,
    initializers: graph.initializers,
    inputs: [{ name: ONNX_STUDENT_INPUT, elemType: DataType.FLOAT, shape: ['batch', ...graph.inputShape] }],
    outputs: [{ name: outputName, elemType: DataType.FLOAT, shape: ['batch', ...outputShape.map((d) => d ?? 'free')] }],
    graphName: 'distill_gate_student',
    opset: ONNX_STUDENT_OPSET,
    producer: 'distill-gate',
  });
}

type Layer = LayersModel['layers'][number];
type LayerConfig = Record<string, unknown>;

/** The model's layers in order, refusing anything but a chain (each layer fed by the one before). */
function chain(model: LayersModel): Layer[] {
  const layers = model.layers.filter((layer) => layer.getClassName() !== 'InputLayer');
  layers.forEach((layer, i) => {
    const inbound = layer.inboundNodes.flatMap((node) => node.inboundLayers);
    const previous = i === 0 ? undefined : layers[i - 1];
    const fedByPrevious = previous ? inbound.length === 1 && inbound[0] === previous : inbound.every((l) => l.getClassName() === 'InputLayer');
    if (layer.inboundNodes.length !== 1 || !fedByPrevious) {
      throw new OnnxExportError(describe(layer), 'the ONNX export writes a chain of layers, each fed by the one before it (no branches, no shared layers)', i);
    }
  });
  return layers;
}

function describe(layer: Layer): string {
  return `${layer.name} (${layer.getClassName()})`;
}

function lastActivation(layers: Layer[]): string | undefined {
  const last = layers.at(-1);
  return last ? activationOf(last) : undefined;
}

function activationOf(layer: Layer): string | undefined {
  const config = layer.getConfig() as LayerConfig;
  if (layer.getClassName() === 'Softmax') return 'softmax';
  return typeof config.activation === 'string' ? config.activation : undefined;
}

/** A layer's weights by their short name (kernel, bias, depthwise_kernel, gamma, moving_mean, ...), as float32 values. */
function weightsOf(layer: Layer): Map<string, { values: Float32Array; shape: number[] }> {
  const found = new Map<string, { values: Float32Array; shape: number[] }>();
  for (const w of layer.weights) {
    const short = w.originalName.split('/').at(-1)!;
    // read() hands back the variable itself: its values are copied, and nothing is disposed.
    found.set(short, { values: Float32Array.from(w.read().dataSync() as Float32Array), shape: w.shape.map((d) => d ?? 0) });
  }
  return found;
}

function pair(value: unknown, fallback: number): [number, number] {
  if (Array.isArray(value)) return [Number(value[0] ?? fallback), Number(value[1] ?? value[0] ?? fallback)];
  if (typeof value === 'number') return [value, value];
  return [fallback, fallback];
}

/** ONNX pads [top, left, bottom, right] for TF's `same` (the extra pixel at the end) or `valid`. */
function spatialPads(padding: unknown, size: [number, number], kernel: [number, number], strides: [number, number], dilations: [number, number]): number[] {
  if (padding === 'valid') return [0, 0, 0, 0];
  const begin: number[] = [];
  const end: number[] = [];
  for (let i = 0; i < 2; i++) {
    const out = Math.ceil(size[i] / strides[i]);
    const total = Math.max((out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - size[i], 0);
    begin.push(Math.floor(total / 2));
    end.push(total - Math.floor(total / 2));
  }
  return [...begin, ...end];
}

/** Folded batch norm: per channel, y = x·scale + shift. */
interface Affine {
  scale: Float64Array;
  shift: Float64Array;
}

const ACTIVATIONS = ['linear', 'relu', 'relu6', 'sigmoid', 'tanh', 'softmax', 'elu', 'selu', 'softplus', 'softsign', 'hardSigmoid', 'swish'];

/** The graph as it is built: nodes, weights, the value the next node reads and its layout. */
class GraphBuilder {
  readonly nodes: NodeSpec[] = [];
  readonly initializers: InitializerSpec[] = [];
  /** The name of the value the last node wrote. */
  current = ONNX_STUDENT_INPUT;
  /** NHWC as TF.js holds it, or NCHW after a Transpose for Conv and pooling (rank-4 values only). */
  layout: 'nhwc' | 'nchw' = 'nhwc';
  /** The current value's shape without the batch, in TF.js's (NHWC) order whatever the layout. */
  shape: number[];
  private counter = 0;

  constructor(readonly inputShape: number[]) {
    if (inputShape.some((d) => d < 0))
      throw new OnnxExportError('input', `the student's input shape [${inputShape.join(', ')}] has a free dimension; the ONNX export needs a fixed one`);
    this.shape = [...inputShape];
  }

  emit(op: string, inputs: string[], attributes: Record<string, number | number[] | string> = {}, output?: string): string {
    const name = output ?? `${op.toLowerCase()}_${this.counter++}`;
    const attrs: Attribute[] = Object.entries(attributes).map(([key, value]) =>
      typeof value === 'string'
        ? { name: key, string: value }
        : Array.isArray(value)
          ? { name: key, ints: value }
          : Number.isInteger(value) && key !== 'epsilon' && key !== 'alpha' && key !== 'beta'
            ? { name: key, int: value }
            : { name: key, float: value },
    );
    this.nodes.push({ op, inputs, outputs: [name], name, ...(attrs.length ? { attributes: attrs } : {}) });
    this.current = name;
    return name;
  }

  weight(name: string, dims: number[], values: Float32Array | BigInt64Array): string {
    const unique = `${name}_${this.counter++}`;
    this.initializers.push({ name: unique, dims, values });
    return unique;
  }

  toNchw(): void {
    if (this.layout === 'nchw' || this.shape.length !== 3) return;
    this.emit('Transpose', [this.current], { perm: [0, 3, 1, 2] });
    this.layout = 'nchw';
  }

  toNhwc(): void {
    if (this.layout === 'nhwc') return;
    this.emit('Transpose', [this.current], { perm: [0, 2, 3, 1] });
    this.layout = 'nhwc';
  }

  /** Softmax over the classes (TF.js's last axis): axis 1 of an NCHW value. */
  softmax(): void {
    this.emit('Softmax', [this.current], { axis: this.layout === 'nchw' ? 1 : -1 });
  }

  /** Writes one layer; returns true when it folded `batchNorm` (the layer after it) into its weights. */
  layer(layer: Layer, batchNorm: Layer | undefined): boolean {
    const config = layer.getConfig() as LayerConfig;
    const kind = layer.getClassName();
    const outputShape = (layer.outputShape as (number | null)[]).slice(1).map((d) => d ?? -1);
    if (config.dataFormat !== undefined && config.dataFormat !== 'channelsLast') {
      throw new OnnxExportError(describe(layer), `dataFormat ${String(config.dataFormat)}: the ONNX export writes channelsLast students (TF.js's default)`);
    }
    const activation = activationOf(layer) ?? 'linear';
    if (!ACTIVATIONS.includes(activation)) {
      throw new OnnxExportError(describe(layer), `activation ${activation} is not one the ONNX export writes (${ACTIVATIONS.join(', ')})`);
    }
    // A batch norm after a layer with an activation normalizes the activation's output: not foldable.
    const fold =
      batchNorm && activation === 'linear' && ['Dense', 'Conv2D', 'DepthwiseConv2D', 'SeparableConv2D'].includes(kind) ? foldable(batchNorm) : undefined;
    switch (kind) {
      case 'Dense':
        this.dense(layer, fold);
        break;
      case 'Conv2D':
      case 'DepthwiseConv2D':
      case 'SeparableConv2D':
        this.conv(layer, kind, config, fold);
        break;
      case 'MaxPooling2D':
      case 'AveragePooling2D': {
        this.toNchw();
        const kernel = pair(config.poolSize, 2);
        const strides = pair(config.strides ?? config.poolSize, 2);
        const pads = spatialPads(config.padding, [this.shape[0], this.shape[1]], kernel, strides, [1, 1]);
        this.emit(kind === 'MaxPooling2D' ? 'MaxPool' : 'AveragePool', [this.current], { kernel_shape: kernel, strides, pads });
        break;
      }
      case 'GlobalAveragePooling2D':
      case 'GlobalMaxPooling2D':
        if (config.keepDims === true) throw new OnnxExportError(describe(layer), 'keepDims is not written by the ONNX export');
        if (this.layout === 'nchw') {
          this.emit(kind === 'GlobalAveragePooling2D' ? 'GlobalAveragePool' : 'GlobalMaxPool', [this.current]);
          this.emit('Flatten', [this.current], { axis: 1 });
        } else {
          this.emit(kind === 'GlobalAveragePooling2D' ? 'ReduceMean' : 'ReduceMax', [this.current], { axes: [1, 2], keepdims: 0 });
        }
        this.layout = 'nhwc';
        break;
      case 'Flatten':
        this.toNhwc();
        this.emit('Flatten', [this.current], { axis: 1 });
        break;
      case 'Reshape': {
        this.toNhwc();
        // 0 copies the batch dimension from the input (opset 13 has no allowzero).
        const shape = BigInt64Array.from([0, ...outputShape].map((d) => BigInt(d)));
        this.emit('Reshape', [this.current, this.weight('shape', [shape.length], shape)]);
        break;
      }
      case 'Dropout':
        break;
      case 'BatchNormalization':
        this.batchNorm(layer);
        break;
      case 'Activation':
      case 'Softmax':
        break;
      case 'ReLU': {
        const max = config.maxValue;
        if (typeof max === 'number') this.clip(0, max);
        else this.emit('Relu', [this.current]);
        break;
      }
      case 'LeakyReLU':
        this.emit('LeakyRelu', [this.current], { alpha: Number(config.alpha ?? 0.3) });
        break;
      default:
        throw new OnnxExportError(
          describe(layer),
          'the ONNX export writes dense, conv2d, depthwiseConv2d, separableConv2d, max and average pools (global too), flatten, reshape, dropout, batchNormalization and activation layers',
        );
    }
    if (kind === 'Softmax' && config.axis !== undefined && config.axis !== -1)
      throw new OnnxExportError(describe(layer), 'a softmax over an axis other than the last');
    this.activation(activation);
    this.shape = outputShape;
    return fold !== undefined;
  }

  private activation(name: string): void {
    switch (name) {
      case 'linear':
        return;
      case 'relu':
        this.emit('Relu', [this.current]);
        return;
      case 'relu6':
        this.clip(0, 6);
        return;
      case 'sigmoid':
        this.emit('Sigmoid', [this.current]);
        return;
      case 'tanh':
        this.emit('Tanh', [this.current]);
        return;
      case 'softmax':
        this.softmax();
        return;
      case 'elu':
        this.emit('Elu', [this.current], { alpha: 1 });
        return;
      case 'selu':
        // ONNX's defaults are Keras's (and TF.js's) constants.
        this.emit('Selu', [this.current]);
        return;
      case 'softplus':
        this.emit('Softplus', [this.current]);
        return;
      case 'softsign':
        this.emit('Softsign', [this.current]);
        return;
      case 'hardSigmoid':
        // TF.js: clip(0.2·x + 0.5, 0, 1), ONNX's default alpha and beta.
        this.emit('HardSigmoid', [this.current], { alpha: 0.2, beta: 0.5 });
        return;
      case 'swish': {
        const x = this.current;
        const gate = this.emit('Sigmoid', [x]);
        this.emit('Mul', [x, gate]);
        return;
      }
    }
  }

  private clip(min: number, max: number): void {
    this.emit('Clip', [this.current, this.weight('min', [], Float32Array.of(min)), this.weight('max', [], Float32Array.of(max))]);
  }

  private dense(layer: Layer, fold: Affine | undefined): void {
    this.toNhwc();
    const weights = weightsOf(layer);
    const kernel = weights.get('kernel')!;
    const [inputs, units] = kernel.shape;
    const bias = weights.get('bias')?.values ?? new Float32Array(units);
    const w = Float32Array.from(kernel.values);
    const b = Float32Array.from(bias);
    if (fold) {
      for (let j = 0; j < units; j++) {
        for (let i = 0; i < inputs; i++) w[i * units + j] = w[i * units + j] * fold.scale[j];
        b[j] = bias[j] * fold.scale[j] + fold.shift[j];
      }
    }
    const wName = this.weight('kernel', [inputs, units], w);
    const bName = this.weight('bias', [units], b);
    // Gemm takes rank 2; a Dense on a higher rank acts on the last axis, as MatMul broadcasts.
    if (this.shape.length === 1) this.emit('Gemm', [this.current, wName, bName]);
    else this.emit('Add', [this.emit('MatMul', [this.current, wName]), bName]);
  }

  private conv(layer: Layer, kind: string, config: LayerConfig, fold: Affine | undefined): void {
    this.toNchw();
    const weights = weightsOf(layer);
    const kernelSize = pair(config.kernelSize, 1);
    const strides = pair(config.strides, 1);
    const dilations = pair(config.dilationRate, 1);
    const pads = spatialPads(config.padding, [this.shape[0], this.shape[1]], kernelSize, strides, dilations);
    const channels = this.shape[2];
    const attributes = { kernel_shape: kernelSize, strides, dilations, pads };
    const [kh, kw] = kernelSize;
    if (kind === 'Conv2D') {
      // TF.js [kh, kw, in, out] -> ONNX [out, in, kh, kw].
      const kernel = weights.get('kernel')!;
      const out = kernel.shape[3];
      const bias = this.bias(weights.get('bias')?.values, out, fold);
      const w = new Float32Array(kernel.values.length);
      for (let y = 0; y < kh; y++)
        for (let x = 0; x < kw; x++)
          for (let c = 0; c < channels; c++)
            for (let o = 0; o < out; o++)
              w[((o * channels + c) * kh + y) * kw + x] = kernel.values[((y * kw + x) * channels + c) * out + o] * (fold ? fold.scale[o] : 1);
      this.emit('Conv', [this.current, this.weight('kernel', [out, channels, kh, kw], w), this.weight('bias', [out], bias)], { ...attributes, group: 1 });
      return;
    }
    // Depthwise: TF.js [kh, kw, in, multiplier] -> ONNX [in·multiplier, 1, kh, kw], group = in
    // (output channel c·multiplier + m, as TF.js orders them).
    const depthwise = weights.get('depthwise_kernel')!;
    const multiplier = depthwise.shape[3];
    const width = channels * multiplier;
    const separable = kind === 'SeparableConv2D';
    const dwScale = separable || !fold ? undefined : fold.scale;
    const dw = new Float32Array(depthwise.values.length);
    for (let y = 0; y < kh; y++)
      for (let x = 0; x < kw; x++)
        for (let c = 0; c < channels; c++)
          for (let m = 0; m < multiplier; m++) {
            const o = c * multiplier + m;
            dw[(o * kh + y) * kw + x] = depthwise.values[((y * kw + x) * channels + c) * multiplier + m] * (dwScale ? dwScale[o] : 1);
          }
    const dwInputs = [this.current, this.weight('depthwise_kernel', [width, 1, kh, kw], dw)];
    if (!separable) {
      dwInputs.push(this.weight('bias', [width], this.bias(weights.get('bias')?.values, width, fold)));
      this.emit('Conv', dwInputs, { ...attributes, group: channels });
      return;
    }
    this.emit('Conv', dwInputs, { ...attributes, group: channels });
    // Pointwise: TF.js [1, 1, in·multiplier, out] -> ONNX [out, in·multiplier, 1, 1].
    const pointwise = weights.get('pointwise_kernel')!;
    const out = pointwise.shape[3];
    const pw = new Float32Array(pointwise.values.length);
    for (let c = 0; c < width; c++) for (let o = 0; o < out; o++) pw[o * width + c] = pointwise.values[c * out + o] * (fold ? fold.scale[o] : 1);
    const bias = this.bias(weights.get('bias')?.values, out, fold);
    this.emit('Conv', [this.current, this.weight('pointwise_kernel', [out, width, 1, 1], pw), this.weight('bias', [out], bias)], {
      kernel_shape: [1, 1],
      strides: [1, 1],
      dilations: [1, 1],
      pads: [0, 0, 0, 0],
      group: 1,
    });
  }

  /** The bias, with a folded batch norm's shift: (b − μ)·scale + β, the mean already in `shift`. */
  private bias(bias: Float32Array | undefined, count: number, fold: Affine | undefined): Float32Array {
    const b = new Float32Array(count);
    for (let i = 0; i < count; i++) b[i] = (bias?.[i] ?? 0) * (fold ? fold.scale[i] : 1) + (fold ? fold.shift[i] : 0);
    return b;
  }

  private batchNorm(layer: Layer): void {
    const { gamma, beta, mean, variance, epsilon, channels } = batchNormParams(layer);
    const rank = this.shape.length + 1;
    if (rank === 3) {
      // [N, L, C]: channels last, where BatchNormalization wants them on axis 1.
      const { scale, shift } = foldable(layer);
      this.emit('Add', [
        this.emit('Mul', [this.current, this.weight('bn_scale', [channels], Float32Array.from(scale))]),
        this.weight('bn_shift', [channels], Float32Array.from(shift)),
      ]);
      return;
    }
    if (rank === 4) this.toNchw();
    const names = [
      this.weight('bn_gamma', [channels], gamma),
      this.weight('bn_beta', [channels], beta),
      this.weight('bn_mean', [channels], mean),
      this.weight('bn_var', [channels], variance),
    ];
    this.emit('BatchNormalization', [this.current, ...names], { epsilon });
  }
}

function batchNormParams(layer: Layer) {
  const config = layer.getConfig() as LayerConfig;
  const axis = config.axis;
  const rank = (layer.outputShape as unknown[]).length;
  if (axis !== -1 && axis !== rank - 1 && !(Array.isArray(axis) && axis.length === 1 && (axis[0] === -1 || axis[0] === rank - 1))) {
    throw new OnnxExportError(describe(layer), 'a batch norm over an axis other than the last (the channels)');
  }
  const weights = weightsOf(layer);
  const mean = weights.get('moving_mean')!.values;
  const channels = mean.length;
  return {
    channels,
    mean,
    variance: weights.get('moving_variance')!.values,
    gamma: weights.get('gamma')?.values ?? new Float32Array(channels).fill(1),
    beta: weights.get('beta')?.values ?? new Float32Array(channels),
    epsilon: Number(config.epsilon ?? 1e-3),
  };
}

/** A batch norm as y = x·scale + shift per channel, computed in float64: scale = γ/√(σ²+ε), shift = β − μ·scale. */
function foldable(layer: Layer): Affine {
  const { gamma, beta, mean, variance, epsilon, channels } = batchNormParams(layer);
  const scale = new Float64Array(channels);
  const shift = new Float64Array(channels);
  for (let c = 0; c < channels; c++) {
    scale[c] = gamma[c] / Math.sqrt(variance[c] + epsilon);
    shift[c] = beta[c] - mean[c] * scale[c];
  }
  return { scale, shift };
}

/** The check of student.onnx in the run: report.json's `export.onnx`. */
export interface OnnxStudentCheck {
  /** student.onnx, in student/. */
  file: string;
  opset: number;
  /** The input's layout: NHWC as the data comes (rank-4 students), or the student's own shape. */
  inputLayout: 'nhwc' | 'as the data';
  output: OnnxOutput;
  /** `checked`: run in onnxruntime-node and compared; `skipped`: onnxruntime-node is not installed; `failed`: onnxruntime could not run the file. */
  status: 'checked' | 'skipped' | 'failed';
  /** Eval rows run through both, evenly spaced over the split. */
  rows?: number;
  /** The largest |ONNX − TF.js| over those rows and every output: the `export.onnxMaxAbsDiff` metric. */
  maxAbsDiff?: number;
  /** The onnxruntime it ran in, e.g. "onnxruntime-node 1.30.0 (cpu)". */
  runtime?: string;
  /** Why it was skipped or failed. */
  note?: string;
}

/**
 * Runs student.onnx (its bytes) in onnxruntime-node on the CPU provider, and the TF.js student
 * on the run's backend, over ONNX_CHECK_ROWS eval rows, and returns the largest absolute
 * difference of their outputs (logits, or probabilities where the file outputs them). Without
 * onnxruntime-node the check is `skipped` and says why; a file onnxruntime cannot load or run is
 * `failed`, with its message (a bug in the export). Tensors are freed batch by batch.
 */
export async function checkOnnxStudent(
  tf: Tf,
  student: LayersModel,
  bytes: Uint8Array,
  evalSet: Dataset,
  runtime: OnnxRuntime | undefined,
  { output, appendSoftmax, searchedIn }: { output: OnnxOutput; appendSoftmax: boolean; searchedIn: string[] },
): Promise<OnnxStudentCheck> {
  const base = {
    file: ONNX_STUDENT_FILE,
    opset: ONNX_STUDENT_OPSET,
    inputLayout: evalSet.sampleShape.length === 3 ? ('nhwc' as const) : ('as the data' as const),
    output,
  };
  if (!runtime) {
    return {
      ...base,
      status: 'skipped',
      note: `onnxruntime-node is not installed in ${searchedIn.join(' or ')}: student.onnx was written but not run. Install it to check it: \`${INSTALL_ONNXRUNTIME_CPU}\``,
    };
  }
  const label = `onnxruntime-node ${runtime.version} (cpu)`;
  let session: OrtSession;
  try {
    // The CPU provider, whatever is installed: it checks what the file computes, in float32 (a
    // GPU provider may use TF32 and differ by more than the export does).
    session = await runtime.ort.InferenceSession.create(bytes, {
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'all',
      intraOpNumThreads: availableCores(),
      logSeverityLevel: 3,
    });
  } catch (error) {
    return {
      ...base,
      status: 'failed',
      runtime: label,
      note: `onnxruntime cannot load student.onnx (${firstLine(error)}); this is a bug in distill-gate's ONNX export, please report it`,
    };
  }
  try {
    const rows = sampleRows(evalSet.size, ONNX_CHECK_ROWS);
    const batch = inferenceBatch(evalSet.sampleShape, tf.getBackend());
    let maxAbsDiff = 0;
    for (let start = 0; start < rows.length; start += batch) {
      const picked = rows.slice(start, start + batch);
      const x = await readRows(evalSet, picked);
      const shape = [picked.length, ...evalSet.sampleShape];
      const theirs = await session.run({ [session.inputNames[0]]: new runtime.ort.Tensor('float32', x, shape) });
      const onnx = theirs[session.outputNames[0]].data as Float32Array;
      const y = tf.tidy(() => {
        const out = student.predict(tf.tensor(x, shape)) as Tensor;
        return appendSoftmax ? tf.softmax(out) : out;
      });
      const reference = (await y.data()) as Float32Array;
      y.dispose();
      if (reference.length !== onnx.length) {
        return {
          ...base,
          status: 'failed',
          runtime: label,
          note: `student.onnx gives ${onnx.length / picked.length} outputs a row and TF.js ${reference.length / picked.length}; this is a bug in distill-gate's ONNX export, please report it`,
        };
      }
      maxAbsDiff = Math.max(maxAbsDiff, maxAbsDifference(reference, onnx));
    }
    return { ...base, status: 'checked', rows: rows.length, maxAbsDiff, runtime: label };
  } catch (error) {
    return {
      ...base,
      status: 'failed',
      runtime: label,
      note: `onnxruntime cannot run student.onnx (${firstLine(error)}); this is a bug in distill-gate's ONNX export, please report it`,
    };
  } finally {
    await session.release();
  }
}

/** student.onnx's bytes for the run's student and export plan: what student/ holds and the check runs. */
export function onnxStudentBytes(student: LoadedModel, plan: { output: OutputKind }): Uint8Array {
  return studentToOnnx(student.layers!, { appendSoftmax: appendsSoftmax(plan, student) });
}

/** As exportArtifacts decides for model.json: a softmax only when the plan wants probabilities and the student gives logits. */
function appendsSoftmax(plan: { output: OutputKind }, student: Pick<LoadedModel, 'output'>): boolean {
  return plan.output === 'probabilities' && student.output === 'logits';
}

/**
 * The measuring stage's part for `export.format: onnx`: student.onnx built from the trained
 * student and checked against it (`checkOnnxStudent`), logged, and its metric: the max abs
 * difference when checked, NaN when onnxruntime could not run the file (the default gate then
 * fails as not measured), none when onnxruntime-node is not installed (nothing to gate).
 */
export async function measureOnnxStudent(
  tf: Tf,
  student: LoadedModel,
  evalSet: Dataset,
  plan: { output: OutputKind },
  searchFrom: string[],
  log: (line: string) => void,
): Promise<{ metrics: Partial<StageMetrics<'export'>>; check: OnnxStudentCheck }> {
  const options = { output: onnxOutputKind(plan.output, student.output), appendSoftmax: appendsSoftmax(plan, student), searchedIn: searchFrom };
  let runtime: OnnxRuntime | undefined;
  let broken: string | undefined;
  try {
    runtime = await findOnnxRuntime(searchFrom);
  } catch (error) {
    broken = `onnxruntime-node is installed but does not load (${firstLine(error)}): student.onnx was written but not run`;
  }
  const checked = await checkOnnxStudent(tf, student.layers!, onnxStudentBytes(student, plan), evalSet, runtime, options);
  const check = broken ? { ...checked, note: broken } : checked;
  if (check.status === 'checked') {
    log(
      `onnx student: ${check.file} in ${check.runtime} against TF.js on ${check.rows} eval rows: max abs difference ${check.maxAbsDiff!.toExponential(2)} (${check.output})`,
    );
    return { metrics: { 'export.onnxMaxAbsDiff': check.maxAbsDiff! }, check };
  }
  log(`onnx student: ${check.status === 'skipped' ? 'not checked' : 'check failed'}: ${check.note}`);
  return { metrics: check.status === 'failed' ? { 'export.onnxMaxAbsDiff': NaN } : {}, check };
}

/**
 * The report's sentence on student.onnx. `esc` makes the runtime's label and the note inert in
 * markdown (a report may come from an untrusted job); everything else is numbers and fixed words.
 */
export function describeOnnxCheck(check: OnnxStudentCheck, esc: (text: string) => string): string {
  const what = `\`student/${ONNX_STUDENT_FILE}\` (ONNX opset ${check.opset}, ${check.inputLayout === 'nhwc' ? 'NHWC input as the data comes' : 'input as the data comes'}, outputs ${check.output === 'probabilities' ? 'probabilities' : 'logits'})`;
  if (check.status === 'checked') {
    const diff = check.maxAbsDiff;
    const shown = diff === undefined || !Number.isFinite(diff) ? 'not finite' : diff === 0 ? '0' : diff.toExponential(1);
    return `${what} ran in ${esc(check.runtime ?? 'onnxruntime-node')} on ${check.rows} eval rows beside the TF.js student: the largest difference of their outputs is ${shown} (\`export.onnxMaxAbsDiff\`).`;
  }
  if (check.status === 'skipped') return `${what} was written but not checked: ${esc(check.note ?? 'onnxruntime-node is not installed')}.`;
  return `${what} was written, but its check failed: ${esc(check.note ?? 'onnxruntime could not run it')}.`;
}

/**
 * The student as student.onnx in onnxruntime-node, as a LoadedModel whose `predictAsync` the
 * timing loop calls as it does an ONNX teacher's (for `measure.runtime: onnxruntime`, which times
 * the student where it will run): the session opens as a teacher's does (`openSession`: CUDA where
 * installed and loading, else the CPU provider), and its outputs are the file's (probabilities
 * where `plan` appends a softmax). A timing loop feeds one tensor many times: its host copy is
 * made once. `dispose` releases the session.
 */
export async function onnxStudentModel(tf: Tf, runtime: OnnxRuntime, student: LoadedModel, plan: { output: OutputKind }): Promise<LoadedModel> {
  const { session, runtime: ran } = await openSession(runtime, onnxStudentBytes(student, plan));
  const hostInputs = new WeakMap<Tensor, Float32Array>();
  const predictAsync = async (x: Tensor): Promise<Tensor> => {
    let values = hostInputs.get(x);
    if (!values) {
      values = (await x.data()) as Float32Array;
      hostInputs.set(x, values);
    }
    const out = await session.run({ [session.inputNames[0]]: new runtime.ort.Tensor('float32', values, x.shape) });
    const y = out[session.outputNames[0]];
    return tf.tensor(y.data as Float32Array, [...y.dims]);
  };
  return {
    ...student,
    layers: undefined,
    output: onnxOutputKind(plan.output, student.output),
    predict: () => {
      throw new Error('the ONNX student runs in onnxruntime: call predictAsync');
    },
    predictAsync,
    runtime: ran,
    dispose: () => void session.release(),
  };
}

/**
 * onnxruntime-node for `measure.runtime: onnxruntime`, which cannot time the student without it:
 * missing or not loading, the run stops with the install command (exit 2, as an ONNX teacher's).
 */
export async function requireStudentRuntime(searchFrom: string[]): Promise<OnnxRuntime> {
  const runtime = await findOnnxRuntime(searchFrom).catch((error: unknown) => {
    throw new InputError('measure.runtime', `onnxruntime-node does not load here (${firstLine(error)}): the student cannot be timed in onnxruntime.`);
  });
  if (!runtime) {
    throw new InputError(
      'measure.runtime',
      `onnxruntime times student/student.onnx in onnxruntime-node, which is not installed in ${searchFrom.join(' or ')}. ` +
        `Install it in the workspace: \`${INSTALL_ONNXRUNTIME_CPU}\` (CPU), or on a GPU runner \`${INSTALL_ONNXRUNTIME_CUDA}\`; or drop measure.runtime.`,
    );
  }
  return runtime;
}

/** `count` row indices evenly spaced over `size` rows (all of them when there are fewer). */
export function sampleRows(size: number, count: number): number[] {
  const n = Math.min(size, count);
  return Array.from({ length: n }, (_, i) => Math.floor((i * size) / n));
}

async function readRows(dataset: Dataset, rows: number[]): Promise<Float32Array> {
  const width = dataset.sampleShape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(rows.length * width);
  for (const [i, row] of rows.entries()) out.set((await dataset.read(row, 1)).subarray(0, width), i * width);
  return out;
}

/**
 * The largest |a − b|: the same non-finite value on both sides (NaN and NaN, Infinity and
 * Infinity) is no difference, a non-finite value on one side only is an infinite one.
 */
export function maxAbsDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const y = b[i];
    if (Number.isFinite(x) && Number.isFinite(y)) max = Math.max(max, Math.abs(x - y));
    else if (!(Object.is(x, y) || (Number.isNaN(x) && Number.isNaN(y)))) max = Infinity;
  }
  return max;
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0];
}
