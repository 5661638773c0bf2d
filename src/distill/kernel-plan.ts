// The kernel's program: what a Sequential student's layers become as ops of kernel/net_kd.h (their
// shapes, windows, padding, variables, Winograd or im2col), or why the kernel cannot train it.
// Where those ops' buffers lie in the kernel's memory is kernel-memory.ts; running them, net-kernel.ts.
import type { layers, LayersModel, Variable } from '@tensorflow/tfjs';
import { ACTIVATION, OP_TYPE } from './kernel/abi.js';

type Activation = keyof typeof ACTIVATION;
export type Shape = [height: number, width: number, channels: number];
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
  /**
   * CONV: the side of Winograd's output tile, 2 for F(2x2, 3x3) (kernel/winograd.c), 4 for
   * F(4x4, 3x3) (inference only, kernel/winograd_4x4.c), or 0 for im2col; see winogradTile.
   */
  winograd: 0 | 2 | 4;
  /** The layer it came from, for messages. */
  layer: string;
}

/** A Sequential student as the kernel's program, or why the kernel cannot train it. */
export type KernelPlan =
  | {
      ops: KernelOp[];
      /** The last layer's softmax, which the ops leave off (see activationOf): a teacher's output needs it back. */
      dropsSoftmax: boolean;
    }
  | { unsupported: string };

/** Options that keep a layer off the kernel and the dense step: the autodiff step applies them, as model.fit does. */
const AUTODIFF_ONLY_KEYS = ['Regularizer', 'Constraint']
  .flatMap((kind) =>
    ['kernel', 'bias', 'activity', 'depthwise', 'pointwise', 'beta', 'gamma'].map((weight) => `${weight}${kind}`),
  )
  .filter((key) => key !== 'activityConstraint');

/** What a layer's translation sees: the layer, its config, the shape coming in and the op fields every op shares. */
interface LayerContext {
  layer: Layer;
  config: Record<string, unknown>;
  shape: Shape;
  weights: Variable[];
  /** BatchNormalization's moving mean and variance. */
  state: Variable[];
  base: Omit<KernelOp, 'type' | 'output'>;
  purpose: KernelPurpose;
}

/**
 * What the program is for: training a student (every op exactly as TF.js trains it), or a
 * forward pass in inference mode (a teacher's soft targets, kernel-teacher.ts), where frozen
 * layers, regularisers and constraints change nothing and so are taken.
 */
export type KernelPurpose = 'training' | 'inference';

/** A layer's ops and the shape it hands on, or why the kernel cannot take it. */
type Translation = { ops: KernelOp[]; shape: Shape } | string;

/**
 * Translates a Sequential student into kernel ops. Anything the kernel does not do exactly as
 * TF.js does (another activation, dilation, channels-first, regularisers, frozen layers, a
 * functional graph) is refused with the reason, and the student trains through autodiff.
 */
export function planKernel(model: LayersModel, purpose: KernelPurpose = 'training'): KernelPlan {
  if (model.getClassName() !== 'Sequential') return { unsupported: 'the model is not a Sequential stack' };
  const inputShape = model.inputs[0].shape.slice(1);
  if (inputShape.some((d) => d === null) || inputShape.length === 0 || inputShape.length > 3) {
    return {
      unsupported: `inputs of shape [${inputShape.join(', ')}] (the kernel takes fixed [features], [rows, features] or [height, width, channels])`,
    };
  }
  let shape = [1, 1, 1, ...inputShape].slice(-3) as Shape;
  const ops: KernelOp[] = [];
  let dropsSoftmax = false;
  for (const [index, layer] of model.layers.entries()) {
    const className = layer.getClassName();
    const config = layer.getConfig() as Record<string, unknown>;
    const name = `${className} layer ${layer.name}`;
    const isLast = index === model.layers.length - 1;
    dropsSoftmax = isLast && config.activation === 'softmax';
    const translation = translateLayer(layer, className, config, shape, isLast, name, purpose);
    if (typeof translation === 'string') return { unsupported: `${name}: ${translation}` };
    for (const op of translation.ops) pushFused(ops, op);
    shape = translation.shape;
  }
  const last = ops[ops.length - 1];
  if (!last || last.output[0] * last.output[1] !== 1)
    return { unsupported: 'the stack does not end in one vector of class scores per row' };
  return { ops, dropsSoftmax };
}

/** Ops whose kernel code applies Op.activation to its output (and its derivative first in backward). */
const APPLIES_ACTIVATION = new Set<KernelOp['type']>(['conv', 'depthwise', 'batchNorm']);

/**
 * Appends `op`, or, for an Activation layer right after an op that applies its own activation and
 * has none, gives the activation to that op: the same arithmetic (an activation of the op's
 * output, its derivative on the way back) without a pass of its own and a buffer.
 */
function pushFused(ops: KernelOp[], op: KernelOp): void {
  const previous = ops[ops.length - 1];
  if (
    op.type === 'activation' &&
    previous &&
    APPLIES_ACTIVATION.has(previous.type) &&
    previous.activation === 'linear'
  ) {
    ops[ops.length - 1] = { ...previous, activation: op.activation, layer: `${previous.layer} + ${op.layer}` };
    return;
  }
  ops.push(op);
}

function translateLayer(
  layer: Layer,
  className: string,
  config: Record<string, unknown>,
  shape: Shape,
  isLast: boolean,
  name: string,
  purpose: KernelPurpose,
): Translation {
  if (purpose === 'training') {
    if (!layer.trainable && layer.weights.length > 0) return 'frozen layers train through autodiff';
    if (appliedByAutodiffOnly(config)) return 'regularisers and constraints are applied by the autodiff step only';
  }
  if (config.dataFormat != null && config.dataFormat !== 'channelsLast') return 'only channelsLast is supported';
  const activation = activationOf(config.activation, isLast);
  if (activation === undefined) return `activation "${String(config.activation)}"`;
  const translate = TRANSLATIONS[className];
  if (!translate) return 'the kernel does not know this layer';
  // A frozen layer lists every weight as non-trainable; in TF.js's order the moving statistics
  // (BatchNormalization's only non-trainable weights) come last, so they are split off by count.
  const all = layer.weights.map((w) => w.read() as Variable);
  const stateCount = className === 'BatchNormalization' ? 2 : 0;
  const weights = all.slice(0, all.length - stateCount);
  const state = all.slice(all.length - stateCount);
  const base = {
    activation,
    input: shape,
    window: [1, 1] as Pair,
    strides: [1, 1] as Pair,
    padding: [0, 0] as Pair,
    momentum: 0,
    epsilon: 0,
    rate: 0,
    winograd: 0 as const,
    layer: name,
  };
  return translate({ layer, config, shape, weights, state, base, purpose });
}

const TRANSLATIONS: Record<string, (context: LayerContext) => Translation> = {
  // A Dense layer on [H, W, C] acts on every position's channels: a 1x1 convolution.
  Dense: ({ config, shape, weights: [kernel, bias], base }) => {
    const output: Shape = [shape[0], shape[1], config.units as number];
    return {
      ops: [{ ...base, type: 'conv', output, weight: kernel, bias: config.useBias === false ? undefined : bias }],
      shape: output,
    };
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
  Activation: ({ shape, base }) => ({
    ops: base.activation === 'linear' ? [] : [{ ...base, type: 'activation', output: shape }],
    shape,
  }),
};

function convolution({
  layer,
  config,
  shape,
  weights: [first, second, third],
  base,
  purpose,
}: LayerContext): Translation {
  const className = layer.getClassName();
  const dilation = pair(config.dilationRate ?? 1);
  if (dilation[0] !== 1 || dilation[1] !== 1) return 'dilated convolutions train through autodiff';
  const window = pair(config.kernelSize);
  const strides = pair(config.strides ?? 1);
  const { output, padding } = windowGeometry(shape, window, strides, config.padding as string);
  const sliding = { ...base, window, strides, padding };
  if (className === 'Conv2D') {
    const out: Shape = [output[0], output[1], config.filters as number];
    const winograd = winogradTile(shape, out, window, strides, purpose);
    return {
      ops: [
        {
          ...sliding,
          type: 'conv',
          output: out,
          weight: first,
          bias: config.useBias === false ? undefined : second,
          winograd,
        },
      ],
      shape: out,
    };
  }
  // From the kernel [kh, kw, in, multiplier]: SeparableConv2D's config does not carry it.
  const depthwise: Shape = [output[0], output[1], shape[2] * (first.shape[3] as number)];
  if (className === 'DepthwiseConv2D') {
    return {
      ops: [
        {
          ...sliding,
          type: 'depthwise',
          output: depthwise,
          weight: first,
          bias: config.useBias === false ? undefined : second,
        },
      ],
      shape: depthwise,
    };
  }
  // SeparableConv2D: a depthwise convolution (no bias, no activation), then a pointwise one.
  const out: Shape = [depthwise[0], depthwise[1], config.filters as number];
  return {
    ops: [
      { ...sliding, type: 'depthwise', activation: 'linear', output: depthwise, weight: first },
      {
        ...base,
        type: 'conv',
        input: depthwise,
        output: out,
        weight: second,
        bias: config.useBias === false ? undefined : third,
      },
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
  return (
    window[0] === 3 && window[1] === 3 && strides[0] === 1 && strides[1] === 1 && input[2] >= WINOGRAD_MIN_CHANNELS
  );
}

/**
 * Input channels from which F(4x4, 3x3) beats im2col in inference, where there is no backward
 * pass to pay for: measured on bench:conv's teachers' first layers (one thread), 28x28x1 -> 32
 * 10% slower than im2col (products of depth 1), 8x8x1 -> 32 even, 32x32x3 -> 32 faster (the
 * whole pass 8% faster).
 */
export const WINOGRAD4_MIN_CHANNELS = 3;

/**
 * The Winograd output tile a convolution runs with, by shape and purpose only (so a student
 * always trains the same way, bit for bit): in training, 2 where usesWinograd says so, else 0
 * (im2col); in inference, 4 (F(4x4, 3x3), 36 products per 4x4 tile against F(2x2)'s 4 x 16) for
 * 3x3 stride-1 convolutions of WINOGRAD4_MIN_CHANNELS input channels or more wherever its tiles
 * need fewer products than F(2x2)'s over the same output, which small outputs, where 4x4 tiles
 * hang over the edge, may not (6x6: 4 tiles x 36 = 9 x 16), else F(2x2) or im2col as in training.
 */
export function winogradTile(
  input: Shape,
  output: Shape,
  window: Pair,
  strides: Pair,
  purpose: KernelPurpose,
): KernelOp['winograd'] {
  if (purpose === 'training') return usesWinograd(input, window, strides) ? 2 : 0;
  if (window[0] !== 3 || window[1] !== 3 || strides[0] !== 1 || strides[1] !== 1) return 0;
  if (input[2] < WINOGRAD4_MIN_CHANNELS) return 0;
  const tiles = (side: number) => Math.ceil(output[0] / side) * Math.ceil(output[1] / side);
  if (tiles(4) * 36 < tiles(2) * 16) return 4;
  return usesWinograd(input, window, strides) ? 2 : 0;
}

function pooling({ layer, config, shape, base }: LayerContext): Translation {
  const window = pair(config.poolSize ?? 2);
  const strides = pair(config.strides ?? window);
  const { output, padding } = windowGeometry(shape, window, strides, config.padding as string);
  const out: Shape = [output[0], output[1], shape[2]];
  const type = layer.getClassName() === 'MaxPooling2D' ? 'maxPool' : 'avgPool';
  return { ops: [{ ...base, type, activation: 'linear', output: out, window, strides, padding }], shape: out };
}

function globalPooling(
  type: 'globalAvg' | 'globalMax',
  config: Record<string, unknown>,
  shape: Shape,
  base: LayerContext['base'],
): Translation {
  if (config.keepDims === true) return 'keepDims is not supported';
  const out: Shape = [1, 1, shape[2]];
  return { ops: [{ ...base, type, activation: 'linear', output: out }], shape: out };
}

function normalization({ layer, config, shape, weights, state, base }: LayerContext): Translation {
  const axes = [config.axis].flat();
  const lastAxis = (layer.input as unknown as { shape: unknown[] }).shape.length - 1;
  if (axes.length !== 1 || (axes[0] !== -1 && axes[0] !== lastAxis)) return 'only the last axis can be normalised';
  const scale = config.scale !== false;
  const gamma = scale ? weights[0] : undefined;
  const beta = config.center !== false ? weights[scale ? 1 : 0] : undefined;
  const op: KernelOp = {
    ...base,
    type: 'layerNorm',
    activation: 'linear',
    output: shape,
    weight: gamma,
    bias: beta,
    epsilon: config.epsilon as number,
  };
  if (layer.getClassName() === 'BatchNormalization') {
    const [movingMean, movingVariance] = state;
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
  return Array.isArray(value)
    ? [value[0] as number, (value[1] ?? value[0]) as number]
    : [value as number, value as number];
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
