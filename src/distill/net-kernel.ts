import type { layers, LayersModel, Variable } from '@tensorflow/tfjs';
import type { Tf } from '../backend/resolve.js';
import { correctedAdam } from './adam.js';
import { ACTIVATION, BATCH_NORM_STATS, NET, OP, OP_TYPE, TILE, WINOGRAD_CHUNK } from './kernel/abi.js';
import { chooseKernelModule, compiledKernel, type KernelModuleName } from './kernel-module.js';
import type { SoftmaxTerm } from './targets.js';

const PAGE = 65536;

type Activation = keyof typeof ACTIVATION;
type Shape = [height: number, width: number, channels: number];
type Pair = [number, number];
type Layer = layers.Layer;

/** One op of the kernel's program, in the terms of the Op struct of kernel/net_kd.h. */
export interface KernelOp {
  type: keyof typeof OP_TYPE;
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
  /** CONV: by Winograd F(2x2, 3x3) rather than im2col (kernel/winograd.c); see usesWinograd. */
  winograd: boolean;
  /** The layer it came from, for messages. */
  layer: string;
}

/** A Sequential student as the kernel's program, or why the kernel cannot train it. */
export type KernelPlan = { ops: KernelOp[] } | { unsupported: string };

/** Options that keep a layer off the kernel and the dense step: the autodiff step applies them, as model.fit does. */
const AUTODIFF_ONLY_KEYS = ['Regularizer', 'Constraint']
  .flatMap((kind) => ['kernel', 'bias', 'activity', 'depthwise', 'pointwise', 'beta', 'gamma'].map((weight) => `${weight}${kind}`))
  .filter((key) => key !== 'activityConstraint');

/** What a layer's translation sees: the layer, its config, the shape coming in and the op fields every op shares. */
interface LayerContext {
  layer: Layer;
  config: Record<string, unknown>;
  shape: Shape;
  weights: Variable[];
  base: Omit<KernelOp, 'type' | 'output'>;
}

/** A layer's ops and the shape it hands on, or why the kernel cannot take it. */
type Translation = { ops: KernelOp[]; shape: Shape } | string;

/**
 * Translates a Sequential student into kernel ops. Anything the kernel does not do exactly as
 * TF.js does (another activation, dilation, channels-first, regularisers, frozen layers, a
 * functional graph) is refused with the reason, and the student trains through autodiff.
 */
export function planKernel(model: LayersModel): KernelPlan {
  if (model.getClassName() !== 'Sequential') return { unsupported: 'the student is not a Sequential stack' };
  const inputShape = model.inputs[0].shape.slice(1);
  if (inputShape.some((d) => d === null) || inputShape.length === 0 || inputShape.length > 3) {
    return { unsupported: `inputs of shape [${inputShape.join(', ')}] (the kernel takes fixed [features], [rows, features] or [height, width, channels])` };
  }
  let shape = [1, 1, 1, ...inputShape].slice(-3) as Shape;
  const ops: KernelOp[] = [];
  for (const [index, layer] of model.layers.entries()) {
    const className = layer.getClassName();
    const config = layer.getConfig() as Record<string, unknown>;
    const name = `${className} layer ${layer.name}`;
    const translation = translateLayer(layer, className, config, shape, index === model.layers.length - 1, name);
    if (typeof translation === 'string') return { unsupported: `${name}: ${translation}` };
    ops.push(...translation.ops);
    shape = translation.shape;
  }
  const last = ops[ops.length - 1];
  if (!last || last.output[0] * last.output[1] !== 1) return { unsupported: 'the stack does not end in one vector of class scores per row' };
  return { ops };
}

function translateLayer(layer: Layer, className: string, config: Record<string, unknown>, shape: Shape, isLast: boolean, name: string): Translation {
  if (!layer.trainable && layer.weights.length > 0) return 'frozen layers train through autodiff';
  if (appliedByAutodiffOnly(config)) return 'regularisers and constraints are applied by the autodiff step only';
  if (config.dataFormat != null && config.dataFormat !== 'channelsLast') return 'only channelsLast is supported';
  const activation = activationOf(config.activation, isLast);
  if (activation === undefined) return `activation "${String(config.activation)}"`;
  const translate = TRANSLATIONS[className];
  if (!translate) return 'the kernel does not know this layer';
  const weights = layer.trainableWeights.map((w) => w.read() as Variable);
  const base = {
    activation,
    input: shape,
    window: [1, 1] as Pair,
    strides: [1, 1] as Pair,
    padding: [0, 0] as Pair,
    momentum: 0,
    epsilon: 0,
    rate: 0,
    winograd: false,
    layer: name,
  };
  return translate({ layer, config, shape, weights, base });
}

const TRANSLATIONS: Record<string, (context: LayerContext) => Translation> = {
  // A Dense layer on [H, W, C] acts on every position's channels: a 1x1 convolution.
  Dense: ({ config, shape, weights: [kernel, bias], base }) => {
    const output: Shape = [shape[0], shape[1], config.units as number];
    return { ops: [{ ...base, type: 'conv', output, weight: kernel, bias: config.useBias === false ? undefined : bias }], shape: output };
  },
  Conv2D: convolution,
  DepthwiseConv2D: convolution,
  SeparableConv2D: convolution,
  MaxPooling2D: pooling,
  AveragePooling2D: pooling,
  GlobalAveragePooling2D: ({ config, shape, base }) => globalPooling('globalAvg', config, shape, base),
  GlobalMaxPooling2D: ({ config, shape, base }) => globalPooling('globalMax', config, shape, base),
  Flatten: ({ shape }) => ({ ops: [], shape: [1, 1, shape[0] * shape[1] * shape[2]] }),
  Reshape: ({ config, shape }) => {
    const target = config.targetShape as number[];
    const known = target.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
    const dims = target.map((d) => (d === -1 ? (shape[0] * shape[1] * shape[2]) / known : d));
    if (dims.length > 3) return 'a target of rank above 3';
    return { ops: [], shape: [1, 1, 1, ...dims].slice(-3) as Shape };
  },
  Dropout: ({ config, shape, base }) => {
    if (config.noiseShape != null) return 'noiseShape is not supported';
    const rate = config.rate as number;
    return { ops: rate > 0 ? [{ ...base, type: 'dropout', activation: 'linear', output: shape, rate }] : [], shape };
  },
  BatchNormalization: normalization,
  LayerNormalization: normalization,
  Activation: ({ shape, base }) => ({ ops: base.activation === 'linear' ? [] : [{ ...base, type: 'activation', output: shape }], shape }),
};

function convolution({ layer, config, shape, weights: [first, second, third], base }: LayerContext): Translation {
  const className = layer.getClassName();
  const dilation = pair(config.dilationRate ?? 1);
  if (dilation[0] !== 1 || dilation[1] !== 1) return 'dilated convolutions train through autodiff';
  const window = pair(config.kernelSize);
  const strides = pair(config.strides ?? 1);
  const { output, padding } = windowGeometry(shape, window, strides, config.padding as string);
  const sliding = { ...base, window, strides, padding };
  if (className === 'Conv2D') {
    const out: Shape = [output[0], output[1], config.filters as number];
    const winograd = usesWinograd(shape, window, strides);
    return { ops: [{ ...sliding, type: 'conv', output: out, weight: first, bias: config.useBias === false ? undefined : second, winograd }], shape: out };
  }
  // From the kernel [kh, kw, in, multiplier]: SeparableConv2D's config does not carry it.
  const depthwise: Shape = [output[0], output[1], shape[2] * (first.shape[3] as number)];
  if (className === 'DepthwiseConv2D') {
    return {
      ops: [{ ...sliding, type: 'depthwise', output: depthwise, weight: first, bias: config.useBias === false ? undefined : second }],
      shape: depthwise,
    };
  }
  // SeparableConv2D: a depthwise convolution (no bias, no activation), then a pointwise one.
  const out: Shape = [depthwise[0], depthwise[1], config.filters as number];
  return {
    ops: [
      { ...sliding, type: 'depthwise', activation: 'linear', output: depthwise, weight: first },
      { ...base, type: 'conv', input: depthwise, output: out, weight: second, bias: config.useBias === false ? undefined : third },
    ],
    shape: out,
  };
}

/**
 * Input channels from which Winograd F(2x2, 3x3) beats im2col. Measured per layer shape (one
 * step at batch 64, kernel alone): below 4 input channels its 16 products of depth inC cost more
 * than the transforms save (28x28x1 -> 16: 3x slower than im2col; 32x32x3 -> 16: 1.7x slower),
 * at 4 to 6 it breaks even, from 8 on it wins (28x28x8 -> 16: 1.3x; 26x26x16 -> 32: 1.5x;
 * 14x14x32 -> 64: 1.5x), whatever the output channels (16x16x16 -> 2 too).
 */
export const WINOGRAD_MIN_CHANNELS = 8;

/**
 * Whether a convolution runs as Winograd F(2x2, 3x3) (kernel/winograd.c): 3x3, stride 1 (the
 * kernel takes no dilation), valid or same padding, at least WINOGRAD_MIN_CHANNELS input
 * channels; else im2col. A function of the layer's shape only, so a student always trains the
 * same way, bit for bit.
 */
export function usesWinograd(input: Shape, window: Pair, strides: Pair): boolean {
  return window[0] === 3 && window[1] === 3 && strides[0] === 1 && strides[1] === 1 && input[2] >= WINOGRAD_MIN_CHANNELS;
}

function pooling({ layer, config, shape, base }: LayerContext): Translation {
  const window = pair(config.poolSize ?? 2);
  const strides = pair(config.strides ?? window);
  const { output, padding } = windowGeometry(shape, window, strides, config.padding as string);
  const out: Shape = [output[0], output[1], shape[2]];
  const type = layer.getClassName() === 'MaxPooling2D' ? 'maxPool' : 'avgPool';
  return { ops: [{ ...base, type, activation: 'linear', output: out, window, strides, padding }], shape: out };
}

function globalPooling(type: 'globalAvg' | 'globalMax', config: Record<string, unknown>, shape: Shape, base: LayerContext['base']): Translation {
  if (config.keepDims === true) return 'keepDims is not supported';
  const out: Shape = [1, 1, shape[2]];
  return { ops: [{ ...base, type, activation: 'linear', output: out }], shape: out };
}

function normalization({ layer, config, shape, weights, base }: LayerContext): Translation {
  const axes = [config.axis].flat();
  const lastAxis = (layer.input as unknown as { shape: unknown[] }).shape.length - 1;
  if (axes.length !== 1 || (axes[0] !== -1 && axes[0] !== lastAxis)) return 'only the last axis can be normalised';
  const scale = config.scale !== false;
  const gamma = scale ? weights[0] : undefined;
  const beta = config.center !== false ? weights[scale ? 1 : 0] : undefined;
  const op: KernelOp = { ...base, type: 'layerNorm', activation: 'linear', output: shape, weight: gamma, bias: beta, epsilon: config.epsilon as number };
  if (layer.getClassName() === 'BatchNormalization') {
    const [movingMean, movingVariance] = layer.nonTrainableWeights.map((w) => w.read() as Variable);
    Object.assign(op, { type: 'batchNorm', state: [movingMean, movingVariance], momentum: config.momentum as number });
  }
  return { ops: [op], shape };
}

/** A layer whose config has a regulariser or a constraint: only the autodiff step applies them. */
export function appliedByAutodiffOnly(config: Record<string, unknown>): boolean {
  return AUTODIFF_ONLY_KEYS.some((key) => config[key] != null);
}

/**
 * The kernel's name for a Keras activation, or undefined when it has none. A softmax on the last
 * layer is dropped: the KD loss only sees softmax(logits / T) and log softmax(logits), which a
 * softmax in front leaves unchanged, so the student trains on its logits.
 */
export function activationOf(value: unknown, isLast: boolean): Activation | undefined {
  const name = value == null ? 'linear' : String(value);
  if (name === 'softmax' && isLast) return 'linear';
  return name in ACTIVATION ? (name as Activation) : undefined;
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

/**
 * The kernel trapped (an out-of-bounds access, say). Its memory is sized before the first step,
 * so this is a bug, never an out-of-memory to retry with a smaller batch.
 */
export class KernelTrap extends Error {
  constructor(cause: unknown) {
    super(`the WebAssembly training kernel failed, a bug in distill-gate: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'KernelTrap';
  }
}

const size = (shape: Shape) => shape[0] * shape[1] * shape[2];

/**
 * A Sequential student's whole training step as one WebAssembly call (kernel/step.c): no TF.js
 * op, so neither TF.js's per-op cost nor its missing gradient kernels (the wasm backend has no
 * Conv2DBackpropFilter). The kernel trains its own copy of the weights in its memory; `sync`
 * writes them, and BatchNormalization's moving statistics, back into the student's variables.
 */
export class NetKernel {
  private readonly memory: WebAssembly.Memory;
  private readonly stepFunction: (net: number, ops: number, rows: number, rate: number, epsilon: number, beta1: number, beta2: number) => number;
  private readonly predictFunction: (net: number, ops: number, rows: number) => number;
  private readonly netAddress: number;
  private readonly opsAddress: number;
  private readonly x: Float32Array;
  private readonly targets: Float32Array;
  private readonly params: Float32Array;
  private readonly offsets: Array<{ variable: Variable; offset: number }> = [];
  private readonly inputSize: number;
  private readonly classes: number;
  private readonly maxRows: number;
  private steps = 0;

  constructor(
    private readonly tf: Tf,
    ops: KernelOp[],
    terms: SoftmaxTerm[],
    maxRows: number,
    private readonly learningRate: number,
    /** Dropout masks of step t are drawn from seed * 7919 + t, as the autodiff step seeds them. */
    private readonly seed: number,
    /** Which build of the kernel trains (kernel-module.ts): by default relaxed SIMD where the engine has it. */
    readonly module: KernelModuleName = chooseKernelModule(),
    private readonly beta1 = 0.9,
    private readonly beta2 = 0.999,
    private readonly epsilon = tf.backend().epsilon(),
  ) {
    const instance = new WebAssembly.Instance(compiledKernel(module), { env: { exp: Math.exp, log: Math.log } });
    const exports = instance.exports as {
      memory: WebAssembly.Memory;
      step: NetKernel['stepFunction'];
      predict: NetKernel['predictFunction'];
      __heap_base: WebAssembly.Global;
    };
    this.memory = exports.memory;
    this.stepFunction = exports.step;
    this.predictFunction = exports.predict;

    const memory = new Layout(Number(exports.__heap_base.value), maxRows);
    this.netAddress = memory.take(NET.bytes / 4);
    this.opsAddress = memory.take((OP.bytes / 4) * ops.length);
    const inputSize = size(ops[0].input);
    const classes = ops[ops.length - 1].output[2];
    [this.inputSize, this.classes, this.maxRows] = [inputSize, classes, maxRows];
    const largest = Math.max(inputSize, ...ops.map((op) => size(op.output)));
    const [xAddress, targetsAddress, scratchAddress] = [memory.take(maxRows * inputSize), memory.take(maxRows * classes), memory.take(classes * 2)];
    const { placed, trainableCount, total } = placeVariables(ops);
    for (const [variable, offset] of placed) this.offsets.push({ variable, offset });
    const [params, grads, moment1, moment2] = [memory.take(total), memory.take(trainableCount), memory.take(trainableCount), memory.take(trainableCount)];
    const [gradA, gradB] = [memory.take(maxRows * largest), memory.take(maxRows * largest)];
    const buffers = ops.map((op) => opBuffers(op, memory));
    const missing = memory.end - this.memory.buffer.byteLength;
    if (missing > 0) this.memory.grow(Math.ceil(missing / PAGE));

    writeStruct(this.memory.buffer, this.netAddress, NET, {
      ops: ops.length,
      inputSize,
      terms: terms.length,
      scale: [terms[0].scale, terms[1]?.scale ?? 0],
      weight: [terms[0].weight, terms[1]?.weight ?? 0],
      x: xAddress,
      targets: targetsAddress,
      params,
      grads,
      moment1,
      moment2,
      trainable: trainableCount,
      scratch: scratchAddress,
      gradA,
      gradB,
      seed: 0,
    });
    ops.forEach((op, i) => writeStruct(this.memory.buffer, this.opsAddress + i * OP.bytes, OP, opFields(op, buffers[i], placed)));
    this.x = new Float32Array(this.memory.buffer, xAddress, maxRows * inputSize);
    this.targets = new Float32Array(this.memory.buffer, targetsAddress, maxRows * classes);
    this.params = new Float32Array(this.memory.buffer, params, total);
    // Adam's moments start at zero: a fresh instance's memory is zeroed.
    for (const { variable, offset } of this.offsets) this.params.set(variable.dataSync() as Float32Array, offset);
  }

  /** One step on `rows` rows; returns the batch's loss without the teacher-only constant. */
  run(x: Float32Array, targets: Float32Array, rows: number): number {
    this.x.set(x);
    this.targets.set(targets);
    const t = this.steps + 1;
    new Uint32Array(this.memory.buffer)[this.netAddress / 4 + NET.fields.seed.word] = (this.seed * 7919 + this.steps) >>> 0;
    const { rate, epsilon } = correctedAdam(t, this.learningRate, this.beta1, this.beta2, this.epsilon);
    let loss: number;
    try {
      loss = this.stepFunction(this.netAddress, this.opsAddress, rows, rate, epsilon, this.beta1, this.beta2);
    } catch (error) {
      throw new KernelTrap(error);
    }
    this.steps = t;
    return loss;
  }

  /**
   * The student's logits on `rows` rows of `x` ([rows, inputSize]), in inference mode (dropout off,
   * batch normalisation on its moving statistics), from the weights the kernel is training: the
   * per-epoch probe, with no copy of the weights into TF.js. Runs in batches of at most maxRows
   * in the kernel's own buffers; changes no weight, moment or statistic.
   */
  predict(x: Float32Array, rows: number): Float32Array {
    const { inputSize, classes, maxRows } = this;
    const out = new Float32Array(rows * classes);
    for (let start = 0; start < rows; start += maxRows) {
      const count = Math.min(maxRows, rows - start);
      this.x.set(x.subarray(start * inputSize, (start + count) * inputSize));
      let at: number;
      try {
        at = this.predictFunction(this.netAddress, this.opsAddress, count);
      } catch (error) {
        throw new KernelTrap(error);
      }
      out.set(new Float32Array(this.memory.buffer, at, count * classes), start * classes);
    }
    return out;
  }

  /** Writes the kernel's weights and moving statistics into the student's variables. */
  sync(): void {
    const { tf } = this;
    for (const { variable, offset } of this.offsets) {
      tf.tidy(() => variable.assign(tf.tensor(this.params.slice(offset, offset + variable.size), variable.shape)));
    }
  }
}

/** Hands out 16-byte aligned float buffers in the kernel's memory, from the heap base up. */
class Layout {
  end: number;
  constructor(
    heapBase: number,
    readonly maxRows: number,
  ) {
    this.end = heapBase;
  }

  take(floats: number): number {
    const at = Math.ceil(this.end / 16) * 16;
    this.end = at + floats * 4;
    if (this.end > 2 ** 32 - PAGE) throw new RangeError(`the student needs more than the kernel's 4 GiB of memory at batch size ${this.maxRows}`);
    return at;
  }
}

/** Float offsets in params: trainable variables first (Adam runs over them), then the moving statistics. */
function placeVariables(ops: KernelOp[]): { placed: Map<Variable, number>; trainableCount: number; total: number } {
  const trainable = ops.flatMap((op) => [op.weight, op.bias]).filter((v): v is Variable => v !== undefined);
  const state = ops.flatMap((op) => op.state ?? []);
  const placed = new Map<Variable, number>();
  let total = 0;
  for (const variable of [...trainable, ...state]) {
    placed.set(variable, total);
    total += variable.size;
  }
  return { placed, trainableCount: trainable.reduce((sum, v) => sum + v.size, 0), total };
}

interface OpBuffers {
  output: number;
  aux: number;
  stats: number;
  scratch: number;
}

/** An op's buffers, as net_kd.h's Op describes them; 0 where the op has none. */
function opBuffers(op: KernelOp, memory: Layout): OpBuffers {
  const { maxRows } = memory;
  const [kh, kw] = op.window;
  const channels = op.input[2];
  const pixels = op.output[0] * op.output[1];
  const patchWidth = kh * kw * channels;
  const pointwise = kh === 1 && kw === 1 && op.strides[0] === 1 && op.strides[1] === 1 && op.padding[0] === 0 && op.padding[1] === 0;
  // A convolution keeps its batch's patch matrix (Winograd: its transformed input tiles, 16
  // values per 2x2 output pixels and input channel); the others their x-hat, mask or argmax.
  const tiles = Math.ceil(op.output[0] / 2) * Math.ceil(op.output[1] / 2);
  let aux = 0;
  if (op.winograd) aux = memory.take(maxRows * tiles * 16 * channels);
  else if (op.type === 'conv' && !pointwise) aux = memory.take(maxRows * pixels * patchWidth);
  else if (['batchNorm', 'layerNorm', 'dropout', 'maxPool', 'globalMax'].includes(op.type))
    aux = memory.take(maxRows * Math.max(size(op.output), size(op.input)));
  const stats = op.type === 'batchNorm' ? memory.take(BATCH_NORM_STATS * channels) : op.type === 'layerNorm' ? memory.take(maxRows * pixels) : 0;
  // The kernel transposed, a tile's patch gradients. Winograd: the transformed kernel, transposed,
  // its gradient, and a chunk's products and input-tile gradients (kernel/winograd.c).
  const filters = op.output[2];
  let scratch = 0;
  if (op.winograd) scratch = memory.take(16 * (3 * channels * filters + WINOGRAD_CHUNK * (filters + channels)));
  else if (op.type === 'conv') scratch = memory.take(patchWidth * filters + TILE * patchWidth);
  return { output: memory.take(maxRows * size(op.output)), aux, stats, scratch };
}

/** The fields of one Op struct of net_kd.h. */
function opFields(op: KernelOp, buffers: OpBuffers, placed: Map<Variable, number>): StructValues<typeof OP> {
  const offsetOf = (variable: Variable | undefined) => (variable ? placed.get(variable)! : 0);
  const [[inH, inW, inC], [outH, outW, outC], [kh, kw], [sh, sw], [padT, padL]] = [op.input, op.output, op.window, op.strides, op.padding];
  return {
    type: OP_TYPE[op.type],
    activation: ACTIVATION[op.activation],
    ...{ inH, inW, inC, outH, outW, outC, kh, kw, sh, sw, padT, padL },
    weight: offsetOf(op.weight),
    bias: offsetOf(op.bias),
    hasWeight: op.weight ? 1 : 0,
    hasBias: op.bias ? 1 : 0,
    state: offsetOf(op.state?.[0]),
    momentum: op.momentum,
    epsilon: op.epsilon,
    rate: op.rate,
    winograd: op.winograd ? 1 : 0,
    ...buffers,
  };
}

/** A struct of net_kd.h as abi.ts describes it. */
interface Struct {
  bytes: number;
  fields: Record<string, { word: number; count: number; kind: 'u32' | 'f32' | 'ptr' }>;
}

/** A value for every field of a struct: a number, or one per element of an array field. */
type StructValues<S extends Struct> = { [K in keyof S['fields']]: S['fields'][K]['count'] extends 1 ? number : number[] };

/** Writes every field of a struct at byte address `at`, where abi.ts says it lies, as a float or a 32-bit word. */
function writeStruct<S extends Struct>(buffer: ArrayBuffer, at: number, struct: S, values: StructValues<S>): void {
  const words = new Uint32Array(buffer, at, struct.bytes / 4);
  const floats = new Float32Array(buffer, at, struct.bytes / 4);
  for (const [name, field] of Object.entries(struct.fields)) {
    const value = [values[name as keyof S['fields']]].flat();
    if (value.length !== field.count) throw new Error(`${name}: ${value.length} values for ${field.count} elements`);
    (field.kind === 'f32' ? floats : words).set(value, field.word);
  }
}
