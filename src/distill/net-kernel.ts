import type { LayersModel, Variable } from '@tensorflow/tfjs';
import type { Tf } from '../backend/resolve.js';
import { correctedAdam } from './adam.js';
import { NET_KD_WASM } from './kernel/net-kd-wasm.js';
import type { SoftmaxTerm } from './targets.js';

// Codes and struct sizes of kernel/net_kd.c (every field 4 bytes, no padding).
const OP = { conv: 0, depthwise: 1, maxPool: 2, avgPool: 3, globalAvg: 4, globalMax: 5, dropout: 6, batchNorm: 7, layerNorm: 8, activation: 9 } as const;
const ACTIVATIONS = { linear: 0, relu: 1, sigmoid: 2, tanh: 3 } as const;
const NET_BYTES = 72;
const OP_BYTES = 104;
/** Output pixels per tile of a convolution's input gradient (TILE in net_kd.c). */
const TILE = 32;
const PAGE = 65536;

type Activation = keyof typeof ACTIVATIONS;
type Shape = [height: number, width: number, channels: number];

/** One op of the kernel's program, in the terms of net_kd.c's Op. */
export interface KernelOp {
  type: keyof typeof OP;
  activation: Activation;
  input: Shape;
  output: Shape;
  window: [number, number];
  strides: [number, number];
  /** Rows and columns of padding before the first ('same'), else 0. */
  padding: [number, number];
  /** Kernel or gamma, bias or beta: trainable variables. */
  weight?: Variable;
  bias?: Variable;
  /** BATCH_NORM's moving mean and variance. */
  state?: [Variable, Variable];
  momentum: number;
  epsilon: number;
  rate: number;
  /** The layer it came from, for messages. */
  layer: string;
}

/** A Sequential student as the kernel's program, or why the kernel cannot train it. */
export type KernelPlan = { ops: KernelOp[] } | { unsupported: string };

/**
 * Translates a Sequential student into kernel ops. Anything the kernel does not do exactly as
 * TF.js does (another activation, dilation, channels-first, regularisers, frozen layers, a
 * functional graph) is refused with the reason, and the student trains through autodiff.
 */
export function planKernel(model: LayersModel): KernelPlan {
  if (model.getClassName() !== 'Sequential') return { unsupported: 'the student is not a Sequential stack' };
  const inputShape = model.inputs[0].shape.slice(1);
  if (inputShape.some((d) => d === null)) return { unsupported: 'the input shape has a free dimension' };
  let shape: Shape;
  if (inputShape.length === 1) shape = [1, 1, inputShape[0]!];
  else if (inputShape.length === 2) shape = [1, inputShape[0]!, inputShape[1]!];
  else if (inputShape.length === 3) shape = inputShape as Shape;
  else return { unsupported: `inputs of rank ${inputShape.length + 1}` };

  const ops: KernelOp[] = [];
  const layers = model.layers;
  for (const [index, layer] of layers.entries()) {
    const className = layer.getClassName();
    const config = layer.getConfig() as Record<string, unknown>;
    const name = `${className} layer ${layer.name}`;
    const refuse = (why: string): KernelPlan => ({ unsupported: `${name}: ${why}` });
    if (!layer.trainable && layer.weights.length > 0) return refuse('frozen layers train through autodiff');
    if (
      [
        'kernelRegularizer',
        'biasRegularizer',
        'activityRegularizer',
        'depthwiseRegularizer',
        'pointwiseRegularizer',
        'betaRegularizer',
        'gammaRegularizer',
        'kernelConstraint',
        'biasConstraint',
        'depthwiseConstraint',
        'pointwiseConstraint',
        'betaConstraint',
        'gammaConstraint',
      ].some((key) => config[key] != null)
    ) {
      return refuse('regularisers and constraints are applied by the autodiff step only');
    }
    if (config.dataFormat != null && config.dataFormat !== 'channelsLast') return refuse('only channelsLast is supported');
    const isLast = index === layers.length - 1;
    const activation = activationOf(config.activation, isLast);
    if (activation === undefined) return refuse(`activation "${String(config.activation)}"`);
    const [trainable0, trainable1, trainable2] = layer.trainableWeights.map((w) => w.read() as Variable);
    const base = {
      activation,
      input: shape,
      window: [1, 1] as [number, number],
      strides: [1, 1] as [number, number],
      padding: [0, 0] as [number, number],
      momentum: 0,
      epsilon: 0,
      rate: 0,
      layer: name,
    };

    switch (className) {
      case 'Dense': {
        const units = config.units as number;
        // A Dense layer on [H, W, C] acts on every position's channels: a 1x1 convolution.
        shape = [shape[0], shape[1], units];
        ops.push({ ...base, type: 'conv', output: shape, weight: trainable0, bias: config.useBias === false ? undefined : trainable1 });
        break;
      }
      case 'Conv2D':
      case 'DepthwiseConv2D':
      case 'SeparableConv2D': {
        const dilation = pair(config.dilationRate ?? 1);
        if (dilation[0] !== 1 || dilation[1] !== 1) return refuse('dilated convolutions train through autodiff');
        const window = pair(config.kernelSize);
        const strides = pair(config.strides ?? 1);
        const geometry = windowGeometry(shape, window, strides, config.padding as string);
        if (className === 'Conv2D') {
          shape = [geometry.output[0], geometry.output[1], config.filters as number];
          ops.push({
            ...base,
            type: 'conv',
            output: shape,
            window,
            strides,
            padding: geometry.padding,
            weight: trainable0,
            bias: config.useBias === false ? undefined : trainable1,
          });
          break;
        }
        // From the kernel [kh, kw, in, multiplier]: SeparableConv2D's config does not carry it.
        const multiplier = trainable0.shape[3] as number;
        const depthwiseShape: Shape = [geometry.output[0], geometry.output[1], shape[2] * multiplier];
        if (className === 'DepthwiseConv2D') {
          ops.push({
            ...base,
            type: 'depthwise',
            output: depthwiseShape,
            window,
            strides,
            padding: geometry.padding,
            weight: trainable0,
            bias: config.useBias === false ? undefined : trainable1,
          });
          shape = depthwiseShape;
          break;
        }
        // SeparableConv2D: a depthwise convolution (no bias, no activation), then a pointwise one.
        ops.push({ ...base, type: 'depthwise', activation: 'linear', output: depthwiseShape, window, strides, padding: geometry.padding, weight: trainable0 });
        shape = [depthwiseShape[0], depthwiseShape[1], config.filters as number];
        ops.push({ ...base, type: 'conv', input: depthwiseShape, output: shape, weight: trainable1, bias: config.useBias === false ? undefined : trainable2 });
        break;
      }
      case 'MaxPooling2D':
      case 'AveragePooling2D': {
        const window = pair(config.poolSize ?? 2);
        const strides = pair(config.strides ?? window);
        const geometry = windowGeometry(shape, window, strides, config.padding as string);
        shape = [geometry.output[0], geometry.output[1], shape[2]];
        ops.push({
          ...base,
          type: className === 'MaxPooling2D' ? 'maxPool' : 'avgPool',
          activation: 'linear',
          output: shape,
          window,
          strides,
          padding: geometry.padding,
        });
        break;
      }
      case 'GlobalAveragePooling2D':
      case 'GlobalMaxPooling2D':
        if (config.keepDims === true) return refuse('keepDims is not supported');
        shape = [1, 1, shape[2]];
        ops.push({ ...base, type: className === 'GlobalMaxPooling2D' ? 'globalMax' : 'globalAvg', activation: 'linear', output: shape });
        break;
      case 'Flatten':
        shape = [1, 1, shape[0] * shape[1] * shape[2]];
        break;
      case 'Reshape': {
        const target = config.targetShape as number[];
        const size = shape[0] * shape[1] * shape[2];
        const known = target.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
        const dims = target.map((d) => (d === -1 ? size / known : d));
        if (dims.length > 3) return refuse('a target of rank above 3');
        shape = [...Array(3 - dims.length).fill(1), ...dims] as Shape;
        break;
      }
      case 'Dropout':
        if (config.noiseShape != null) return refuse('noiseShape is not supported');
        if ((config.rate as number) > 0) ops.push({ ...base, type: 'dropout', activation: 'linear', output: shape, rate: config.rate as number });
        break;
      case 'BatchNormalization':
      case 'LayerNormalization': {
        const axis = config.axis as number | number[];
        const axes = Array.isArray(axis) ? axis : [axis];
        const lastAxis = (layer.input as unknown as { shape: unknown[] }).shape.length - 1;
        if (axes.length !== 1 || (axes[0] !== -1 && axes[0] !== lastAxis)) return refuse('only the last axis can be normalised');
        const scale = config.scale !== false;
        const center = config.center !== false;
        const weights = layer.trainableWeights.map((w) => w.read() as Variable);
        const gamma = scale ? weights[0] : undefined;
        const beta = center ? weights[scale ? 1 : 0] : undefined;
        const op: KernelOp = {
          ...base,
          type: className === 'BatchNormalization' ? 'batchNorm' : 'layerNorm',
          activation: 'linear',
          output: shape,
          weight: gamma,
          bias: beta,
          epsilon: config.epsilon as number,
        };
        if (className === 'BatchNormalization') {
          const [movingMean, movingVariance] = layer.nonTrainableWeights.map((w) => w.read() as Variable);
          op.state = [movingMean, movingVariance];
          op.momentum = config.momentum as number;
        }
        ops.push(op);
        break;
      }
      case 'Activation':
        if (activation !== 'linear') ops.push({ ...base, type: 'activation', output: shape });
        break;
      default:
        return refuse('the kernel does not know this layer');
    }
  }
  const last = ops[ops.length - 1];
  if (!last || last.output[0] * last.output[1] !== 1) return { unsupported: 'the stack does not end in one vector of class scores per row' };
  return { ops };
}

/**
 * The kernel's name for a Keras activation, or undefined when it has none. A softmax on the last
 * layer is dropped: the KD loss only sees softmax(logits / T) and log softmax(logits), which a
 * softmax in front leaves unchanged, so the student trains on its logits.
 */
function activationOf(value: unknown, isLast: boolean): Activation | undefined {
  const name = value == null ? 'linear' : String(value);
  if (name === 'softmax' && isLast) return 'linear';
  return name in ACTIVATIONS ? (name as Activation) : undefined;
}

function pair(value: unknown): [number, number] {
  return Array.isArray(value) ? [value[0] as number, (value[1] ?? value[0]) as number] : [value as number, value as number];
}

/** Output size and leading padding of a window sliding over [H, W], as TF computes them. */
export function windowGeometry(
  shape: Shape,
  window: [number, number],
  strides: [number, number],
  padding: string,
): { output: [number, number]; padding: [number, number] } {
  const output: [number, number] = [0, 0];
  const before: [number, number] = [0, 0];
  for (const axis of [0, 1]) {
    if (padding === 'same') {
      output[axis] = Math.ceil(shape[axis] / strides[axis]);
      before[axis] = Math.floor(Math.max(0, (output[axis] - 1) * strides[axis] + window[axis] - shape[axis]) / 2);
    } else {
      output[axis] = Math.ceil((shape[axis] - window[axis] + 1) / strides[axis]);
    }
  }
  return { output, padding: before };
}

/** Uniform in [0, 1) for a dropout mask: `uniform` in net_kd.c, for tests that rebuild its masks. */
export function dropoutUniform(seed: number, op: number, element: number): number {
  const mix = (value: number) => {
    let h = value >>> 0;
    h ^= h >>> 16;
    h = Math.imul(h, 0x7feb352d) >>> 0;
    h ^= h >>> 15;
    h = Math.imul(h, 0x846ca68b) >>> 0;
    h ^= h >>> 16;
    return h >>> 0;
  };
  return (mix(mix((seed ^ Math.imul(op, 0x9e3779b9)) >>> 0) ^ element) >>> 8) / 16777216;
}

let compiled: WebAssembly.Module | undefined;

const size = (shape: Shape) => shape[0] * shape[1] * shape[2];

/**
 * A Sequential student's whole training step as one WebAssembly call (kernel/net_kd.c): no TF.js
 * op, so neither TF.js's per-op cost nor its missing gradient kernels (the wasm backend has no
 * Conv2DBackpropFilter). The kernel trains its own copy of the weights in its memory; `sync`
 * writes them, and BatchNormalization's moving statistics, back into the student's variables.
 */
export class NetKernel {
  private readonly memory: WebAssembly.Memory;
  private readonly stepFunction: (net: number, ops: number, rows: number, rate: number, epsilon: number, beta1: number, beta2: number) => number;
  private readonly netAddress: number;
  private readonly opsAddress: number;
  private readonly x: Float32Array;
  private readonly targets: Float32Array;
  private readonly params: Float32Array;
  private readonly offsets: Array<{ variable: Variable; offset: number }> = [];
  private steps = 0;

  constructor(
    private readonly tf: Tf,
    ops: KernelOp[],
    terms: SoftmaxTerm[],
    maxRows: number,
    private readonly learningRate: number,
    /** Dropout masks of step t are drawn from seed * 7919 + t, as the autodiff step seeds them. */
    private readonly seed: number,
    private readonly beta1 = 0.9,
    private readonly beta2 = 0.999,
    private readonly epsilon = tf.backend().epsilon(),
  ) {
    compiled ??= new WebAssembly.Module(Buffer.from(NET_KD_WASM, 'base64'));
    const instance = new WebAssembly.Instance(compiled, { env: { exp: Math.exp, log: Math.log } });
    const exports = instance.exports as { memory: WebAssembly.Memory; step: NetKernel['stepFunction']; __heap_base: WebAssembly.Global };
    this.memory = exports.memory;
    this.stepFunction = exports.step;

    // Lay out everything from the heap base, 16-byte aligned, then grow the memory to fit.
    let next = Number(exports.__heap_base.value);
    const take = (floats: number) => {
      const at = Math.ceil(next / 16) * 16;
      next = at + floats * 4;
      if (next > 2 ** 32 - PAGE) throw new RangeError(`the student needs more than the kernel's 4 GiB of memory at batch size ${maxRows}`);
      return at;
    };
    this.netAddress = take(NET_BYTES / 4);
    this.opsAddress = take((OP_BYTES / 4) * ops.length);
    const inputSize = size(ops[0].input);
    const classes = ops[ops.length - 1].output[2];
    const largest = Math.max(inputSize, ...ops.map((op) => size(op.output)));
    const xAddress = take(maxRows * inputSize);
    const targetsAddress = take(maxRows * classes);
    const scratchAddress = take(classes * 2);

    // Trainable variables first (Adam runs over them), then the moving statistics.
    const trainable = ops.flatMap((op) => [op.weight, op.bias]).filter((v): v is Variable => v !== undefined);
    const state = ops.flatMap((op) => op.state ?? []);
    let offset = 0;
    const place = (variable: Variable) => {
      this.offsets.push({ variable, offset });
      offset += variable.size;
      return offset - variable.size;
    };
    const placed = new Map<Variable, number>();
    for (const variable of [...trainable, ...state]) placed.set(variable, place(variable));
    const trainableCount = trainable.reduce((sum, v) => sum + v.size, 0);
    const [params, grads, moment1, moment2] = [take(offset), take(trainableCount), take(trainableCount), take(trainableCount)];
    const [gradA, gradB] = [take(maxRows * largest), take(maxRows * largest)];

    const opWords = ops.map((op) => {
      const outSize = size(op.output);
      const [kh, kw] = op.window;
      const channels = op.input[2];
      const perRowStats = op.output[0] * op.output[1];
      const patchWidth = kh * kw * channels;
      const pointwise = kh === 1 && kw === 1 && op.strides[0] === 1 && op.strides[1] === 1 && op.padding[0] === 0 && op.padding[1] === 0;
      // A convolution keeps its batch's patch matrix; the others their x-hat, mask or argmax.
      const aux =
        op.type === 'conv'
          ? pointwise
            ? 0
            : take(maxRows * perRowStats * patchWidth)
          : ['batchNorm', 'layerNorm', 'dropout', 'maxPool', 'globalMax'].includes(op.type)
            ? take(maxRows * Math.max(outSize, size(op.input)))
            : 0;
      const stats = op.type === 'batchNorm' ? take(6 * channels) : op.type === 'layerNorm' ? take(maxRows * perRowStats) : 0;
      // The kernel transposed, a tile's patch gradients.
      const scratch = op.type === 'conv' ? take(patchWidth * op.output[2] + TILE * patchWidth) : 0;
      return { op, output: take(maxRows * outSize), aux, stats, scratch };
    });
    const missing = next - this.memory.buffer.byteLength;
    if (missing > 0) this.memory.grow(Math.ceil(missing / PAGE));

    const words = new Uint32Array(this.memory.buffer);
    const floats = new Float32Array(this.memory.buffer);
    const net = this.netAddress / 4;
    words.set([ops.length, inputSize, terms.length], net);
    floats.set([terms[0].scale, terms[1]?.scale ?? 0, terms[0].weight, terms[1]?.weight ?? 0], net + 3);
    words.set([xAddress, targetsAddress, params, grads, moment1, moment2, trainableCount, scratchAddress, gradA, gradB, 0], net + 7);
    opWords.forEach(({ op, output, aux, stats, scratch }, i) => {
      const at = (this.opsAddress + i * OP_BYTES) / 4;
      words.set([OP[op.type], ACTIVATIONS[op.activation], ...op.input, ...op.output, ...op.window, ...op.strides, ...op.padding], at);
      words.set(
        [
          op.weight ? placed.get(op.weight)! : 0,
          op.bias ? placed.get(op.bias)! : 0,
          op.weight ? 1 : 0,
          op.bias ? 1 : 0,
          op.state ? placed.get(op.state[0])! : 0,
        ],
        at + 14,
      );
      floats.set([op.momentum, op.epsilon, op.rate], at + 19);
      words.set([output, aux, stats, scratch], at + 22);
    });
    this.x = new Float32Array(this.memory.buffer, xAddress, maxRows * inputSize);
    this.targets = new Float32Array(this.memory.buffer, targetsAddress, maxRows * classes);
    this.params = new Float32Array(this.memory.buffer, params, offset);
    // Adam's moments start at zero: a fresh instance's memory is zeroed.
    for (const { variable, offset: at } of this.offsets) this.params.set(variable.dataSync() as Float32Array, at);
  }

  /** One step on `rows` rows; returns the batch's loss without the teacher-only constant. */
  run(x: Float32Array, targets: Float32Array, rows: number): number {
    this.x.set(x);
    this.targets.set(targets);
    const t = this.steps + 1;
    new Uint32Array(this.memory.buffer)[this.netAddress / 4 + 17] = (this.seed * 7919 + this.steps) >>> 0;
    const { rate, epsilon } = correctedAdam(t, this.learningRate, this.beta1, this.beta2, this.epsilon);
    const loss = this.stepFunction(this.netAddress, this.opsAddress, rows, rate, epsilon, this.beta1, this.beta2);
    this.steps = t;
    return loss;
  }

  /** Writes the kernel's weights and moving statistics into the student's variables. */
  sync(): void {
    const { tf } = this;
    for (const { variable, offset } of this.offsets) {
      tf.tidy(() => variable.assign(tf.tensor(this.params.slice(offset, offset + variable.size), variable.shape)));
    }
  }
}
