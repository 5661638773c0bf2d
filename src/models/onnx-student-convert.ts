import type { LayersModel } from '@tensorflow/tfjs';
import { DataType, writeModel, type Attribute, type InitializerSpec, type NodeSpec } from './onnx-writer.js';
import {
  activationOf,
  batchNormParams,
  chain,
  describe,
  foldable,
  lastActivation,
  OnnxExportError,
  pair,
  spatialPads,
  weightsOf,
  type Affine,
  type Layer,
  type LayerConfig,
} from './onnx-student-layers.js';

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

/** The default domain's opset: 13 has Softmax over one axis (TF.js's semantics) and is read by every onnxruntime of the last years. */
export const ONNX_STUDENT_OPSET = 13;
/** The graph's input, NHWC (or the student's own rank) with a free batch dimension. */
export const ONNX_STUDENT_INPUT = 'input';

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
      if (error instanceof OnnxExportError && error.index === undefined)
        throw new OnnxExportError(error.layer, error.reason, i);
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

const ACTIVATIONS = [
  'linear',
  'relu',
  'relu6',
  'sigmoid',
  'tanh',
  'softmax',
  'elu',
  'selu',
  'softplus',
  'softsign',
  'hardSigmoid',
  'swish',
];

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
      throw new OnnxExportError(
        'input',
        `the student's input shape [${inputShape.join(', ')}] has a free dimension; the ONNX export needs a fixed one`,
      );
    this.shape = [...inputShape];
  }

  emit(
    op: string,
    inputs: string[],
    attributes: Record<string, number | number[] | string> = {},
    output?: string,
  ): string {
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
      throw new OnnxExportError(
        describe(layer),
        `dataFormat ${String(config.dataFormat)}: the ONNX export writes channelsLast students (TF.js's default)`,
      );
    }
    const activation = activationOf(layer) ?? 'linear';
    if (!ACTIVATIONS.includes(activation)) {
      throw new OnnxExportError(
        describe(layer),
        `activation ${activation} is not one the ONNX export writes (${ACTIVATIONS.join(', ')})`,
      );
    }
    // A batch norm after a layer with an activation normalizes the activation's output: not foldable.
    const fold =
      batchNorm && activation === 'linear' && ['Dense', 'Conv2D', 'DepthwiseConv2D', 'SeparableConv2D'].includes(kind)
        ? foldable(batchNorm)
        : undefined;
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
        this.emit(kind === 'MaxPooling2D' ? 'MaxPool' : 'AveragePool', [this.current], {
          kernel_shape: kernel,
          strides,
          pads,
        });
        break;
      }
      case 'GlobalAveragePooling2D':
      case 'GlobalMaxPooling2D':
        if (config.keepDims === true)
          throw new OnnxExportError(describe(layer), 'keepDims is not written by the ONNX export');
        if (this.layout === 'nchw') {
          this.emit(kind === 'GlobalAveragePooling2D' ? 'GlobalAveragePool' : 'GlobalMaxPool', [this.current]);
          this.emit('Flatten', [this.current], { axis: 1 });
        } else {
          this.emit(kind === 'GlobalAveragePooling2D' ? 'ReduceMean' : 'ReduceMax', [this.current], {
            axes: [1, 2],
            keepdims: 0,
          });
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
    this.emit('Clip', [
      this.current,
      this.weight('min', [], Float32Array.of(min)),
      this.weight('max', [], Float32Array.of(max)),
    ]);
  }

  private dense(layer: Layer, fold: Affine | undefined): void {
    this.toNhwc();
    const weights = weightsOf(layer);
    const kernel = weights.required('kernel');
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
      const kernel = weights.required('kernel');
      const out = kernel.shape[3];
      const bias = this.bias(weights.get('bias')?.values, out, fold);
      const w = new Float32Array(kernel.values.length);
      for (let y = 0; y < kh; y++)
        for (let x = 0; x < kw; x++)
          for (let c = 0; c < channels; c++)
            for (let o = 0; o < out; o++)
              w[((o * channels + c) * kh + y) * kw + x] =
                kernel.values[((y * kw + x) * channels + c) * out + o] * (fold ? fold.scale[o] : 1);
      this.emit(
        'Conv',
        [this.current, this.weight('kernel', [out, channels, kh, kw], w), this.weight('bias', [out], bias)],
        { ...attributes, group: 1 },
      );
      return;
    }
    // Depthwise: TF.js [kh, kw, in, multiplier] -> ONNX [in·multiplier, 1, kh, kw], group = in
    // (output channel c·multiplier + m, as TF.js orders them).
    const depthwise = weights.required('depthwise_kernel');
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
            dw[(o * kh + y) * kw + x] =
              depthwise.values[((y * kw + x) * channels + c) * multiplier + m] * (dwScale ? dwScale[o] : 1);
          }
    const dwInputs = [this.current, this.weight('depthwise_kernel', [width, 1, kh, kw], dw)];
    if (!separable) {
      dwInputs.push(this.weight('bias', [width], this.bias(weights.get('bias')?.values, width, fold)));
      this.emit('Conv', dwInputs, { ...attributes, group: channels });
      return;
    }
    this.emit('Conv', dwInputs, { ...attributes, group: channels });
    // Pointwise: TF.js [1, 1, in·multiplier, out] -> ONNX [out, in·multiplier, 1, 1].
    const pointwise = weights.required('pointwise_kernel');
    const out = pointwise.shape[3];
    const pw = new Float32Array(pointwise.values.length);
    for (let c = 0; c < width; c++)
      for (let o = 0; o < out; o++) pw[o * width + c] = pointwise.values[c * out + o] * (fold ? fold.scale[o] : 1);
    const bias = this.bias(weights.get('bias')?.values, out, fold);
    this.emit(
      'Conv',
      [this.current, this.weight('pointwise_kernel', [out, width, 1, 1], pw), this.weight('bias', [out], bias)],
      {
        kernel_shape: [1, 1],
        strides: [1, 1],
        dilations: [1, 1],
        pads: [0, 0, 0, 0],
        group: 1,
      },
    );
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
