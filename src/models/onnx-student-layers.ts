import type { LayersModel } from '@tensorflow/tfjs';

/**
 * What the ONNX export reads off a TF.js student's layers: the chain of them, each one's
 * activation, weights, padding and folded batch norm, and the error that names a layer it cannot
 * write. The graph is built from these in onnx-student-convert.ts.
 */

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

export type Layer = LayersModel['layers'][number];
export type LayerConfig = Record<string, unknown>;

/** The model's layers in order, refusing anything but a chain (each layer fed by the one before). */
export function chain(model: LayersModel): Layer[] {
  const layers = model.layers.filter((layer) => layer.getClassName() !== 'InputLayer');
  layers.forEach((layer, i) => {
    const inbound = layer.inboundNodes.flatMap((node) => node.inboundLayers);
    const previous = i === 0 ? undefined : layers[i - 1];
    const fedByPrevious = previous
      ? inbound.length === 1 && inbound[0] === previous
      : inbound.every((l) => l.getClassName() === 'InputLayer');
    if (layer.inboundNodes.length !== 1 || !fedByPrevious) {
      throw new OnnxExportError(
        describe(layer),
        'the ONNX export writes a chain of layers, each fed by the one before it (no branches, no shared layers)',
        i,
      );
    }
  });
  return layers;
}

export function describe(layer: Layer): string {
  return `${layer.name} (${layer.getClassName()})`;
}

export function lastActivation(layers: Layer[]): string | undefined {
  const last = layers.at(-1);
  return last ? activationOf(last) : undefined;
}

export function activationOf(layer: Layer): string | undefined {
  const config = layer.getConfig() as LayerConfig;
  if (layer.getClassName() === 'Softmax') return 'softmax';
  return typeof config.activation === 'string' ? config.activation : undefined;
}

/** One weight of a layer, as float32 values. */
export interface LayerWeight {
  values: Float32Array;
  shape: number[];
}

/** A layer's weights by their short name; `required` is for one the layer always has. */
export class LayerWeights extends Map<string, LayerWeight> {
  constructor(private readonly layer: string) {
    super();
  }

  /** The weight `name` (kernel, moving_mean...); an OnnxExportError naming the layer and the weight where it lacks it. */
  required(name: string): LayerWeight {
    const weight = this.get(name);
    if (!weight)
      throw new OnnxExportError(
        this.layer,
        `it has no ${name} weight (it has ${[...this.keys()].join(', ') || 'none'})`,
      );
    return weight;
  }
}

/** A layer's weights by their short name (kernel, bias, depthwise_kernel, gamma, moving_mean, ...), as float32 values. */
export function weightsOf(layer: Layer): LayerWeights {
  const found = new LayerWeights(describe(layer));
  for (const w of layer.weights) {
    const short = w.originalName.slice(w.originalName.lastIndexOf('/') + 1);
    // read() hands back the variable itself: its values are copied, and nothing is disposed.
    found.set(short, {
      values: Float32Array.from(w.read().dataSync() as Float32Array),
      shape: w.shape.map((d) => d ?? 0),
    });
  }
  return found;
}

export function pair(value: unknown, fallback: number): [number, number] {
  if (Array.isArray(value)) return [Number(value[0] ?? fallback), Number(value[1] ?? value[0] ?? fallback)];
  if (typeof value === 'number') return [value, value];
  return [fallback, fallback];
}

/** ONNX pads [top, left, bottom, right] for TF's `same` (the extra pixel at the end) or `valid`. */
export function spatialPads(
  padding: unknown,
  size: [number, number],
  kernel: [number, number],
  strides: [number, number],
  dilations: [number, number],
): number[] {
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
export interface Affine {
  scale: Float64Array;
  shift: Float64Array;
}

export function batchNormParams(layer: Layer) {
  const config = layer.getConfig() as LayerConfig;
  const axis = config.axis;
  const rank = (layer.outputShape as unknown[]).length;
  if (
    axis !== -1 &&
    axis !== rank - 1 &&
    !(Array.isArray(axis) && axis.length === 1 && (axis[0] === -1 || axis[0] === rank - 1))
  ) {
    throw new OnnxExportError(describe(layer), 'a batch norm over an axis other than the last (the channels)');
  }
  const weights = weightsOf(layer);
  const mean = weights.required('moving_mean').values;
  const channels = mean.length;
  return {
    channels,
    mean,
    variance: weights.required('moving_variance').values,
    gamma: weights.get('gamma')?.values ?? new Float32Array(channels).fill(1),
    beta: weights.get('beta')?.values ?? new Float32Array(channels),
    epsilon: Number(config.epsilon ?? 1e-3),
  };
}

/** A batch norm as y = x·scale + shift per channel, computed in float64: scale = γ/√(σ²+ε), shift = β − μ·scale. */
export function foldable(layer: Layer): Affine {
  const { gamma, beta, mean, variance, epsilon, channels } = batchNormParams(layer);
  const scale = new Float64Array(channels);
  const shift = new Float64Array(channels);
  for (let c = 0; c < channels; c++) {
    scale[c] = gamma[c] / Math.sqrt(variance[c] + epsilon);
    shift[c] = beta[c] - mean[c] * scale[c];
  }
  return { scale, shift };
}
