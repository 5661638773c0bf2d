import type { Variable } from '@tensorflow/tfjs';
import type { Tf } from '../backend/resolve.js';
import { correctedAdam } from './adam.js';
import { DENSE_KD_WASM } from './kernel/dense-kd-wasm.js';
import type { SoftmaxTerm } from './targets.js';
import type { DenseLayer } from './training-step.js';

const ACTIVATION_CODES = { linear: 0, relu: 1, sigmoid: 2, tanh: 3 } as const;
// Byte sizes of the C structs in kernel/dense_kd.c (every field 4 bytes, no padding).
const STEP_BYTES = 60;
const LAYER_BYTES = 28;
const PAGE = 65536;

let compiled: WebAssembly.Module | undefined;

/**
 * A Dense-stack student's whole training step as one WebAssembly call (kernel/dense_kd.c): no
 * TF.js op, so none of TF.js's per-op cost, which on a small student is most of a step. The
 * kernel trains its own copy of the weights in its memory; `sync` writes them back into the
 * student's variables (the loop does at every epoch's end and when training stops).
 * Numerically it is the dense step: the same loss, gradient and Adam, in float32.
 */
export class DenseKernel {
  private readonly memory: WebAssembly.Memory;
  private readonly stepFunction: (step: number, layers: number, rows: number, rate: number, epsilon: number, beta1: number, beta2: number) => number;
  private readonly stepAddress: number;
  private readonly layersAddress: number;
  private readonly x: Float32Array;
  private readonly targets: Float32Array;
  private readonly params: Float32Array;
  private readonly offsets: Array<{ variable: Variable; offset: number }>;
  private steps = 0;

  constructor(
    private readonly tf: Tf,
    layers: DenseLayer[],
    inputWidth: number,
    terms: SoftmaxTerm[],
    maxRows: number,
    private readonly learningRate: number,
    private readonly beta1 = 0.9,
    private readonly beta2 = 0.999,
    private readonly epsilon = tf.backend().epsilon(),
  ) {
    compiled ??= new WebAssembly.Module(Buffer.from(DENSE_KD_WASM, 'base64'));
    const instance = new WebAssembly.Instance(compiled, { env: { exp: Math.exp, log: Math.log } });
    const exports = instance.exports as { memory: WebAssembly.Memory; step: DenseKernel['stepFunction']; __heap_base: WebAssembly.Global };
    this.memory = exports.memory;
    this.stepFunction = exports.step;

    // Lay out everything from the heap base, 16-byte aligned, then grow the memory to fit.
    let next = Number(exports.__heap_base.value);
    const take = (bytes: number) => {
      const at = Math.ceil(next / 16) * 16;
      next = at + bytes;
      return at;
    };
    this.stepAddress = take(STEP_BYTES);
    this.layersAddress = take(LAYER_BYTES * layers.length);
    const classes = layers[layers.length - 1].kernel.shape[1] as number;
    const xAddress = take(maxRows * inputWidth * 4);
    const targetsAddress = take(maxRows * classes * 4);
    const scratchAddress = take(classes * 8);
    const variables = layers.flatMap((l) => (l.bias ? [l.kernel, l.bias] : [l.kernel]));
    const paramCount = variables.reduce((sum, v) => sum + v.size, 0);
    const [params, grads, moment1, moment2] = [take(paramCount * 4), take(paramCount * 4), take(paramCount * 4), take(paramCount * 4)];
    const buffers = layers.map((l) => ({ output: take(maxRows * (l.kernel.shape[1] as number) * 4), delta: take(maxRows * (l.kernel.shape[1] as number) * 4) }));
    const missing = next - this.memory.buffer.byteLength;
    if (missing > 0) this.memory.grow(Math.ceil(missing / PAGE));

    const words = new Uint32Array(this.memory.buffer);
    const floats = new Float32Array(this.memory.buffer);
    const step = this.stepAddress / 4;
    words.set([layers.length, inputWidth, terms.length], step);
    floats.set([terms[0].scale, terms[1]?.scale ?? 0, terms[0].weight, terms[1]?.weight ?? 0], step + 3);
    words.set([xAddress, targetsAddress, params, grads, moment1, moment2, paramCount, scratchAddress], step + 7);
    let offset = 0;
    this.offsets = [];
    layers.forEach((layer, i) => {
      const kernelOffset = offset;
      this.offsets.push({ variable: layer.kernel, offset });
      offset += layer.kernel.size;
      const biasOffset = offset;
      if (layer.bias) {
        this.offsets.push({ variable: layer.bias, offset });
        offset += layer.bias.size;
      }
      words.set([layer.kernel.shape[1] as number, ACTIVATION_CODES[layer.activation], layer.bias ? 1 : 0, kernelOffset, biasOffset, buffers[i].output, buffers[i].delta], (this.layersAddress + i * LAYER_BYTES) / 4);
    });
    this.x = new Float32Array(this.memory.buffer, xAddress, maxRows * inputWidth);
    this.targets = new Float32Array(this.memory.buffer, targetsAddress, maxRows * classes);
    this.params = new Float32Array(this.memory.buffer, params, paramCount);
    // Adam's moments start at zero: a fresh instance's memory is zeroed.
    for (const { variable, offset: at } of this.offsets) this.params.set(variable.dataSync() as Float32Array, at);
  }

  /** One step on `rows` rows; returns the batch's loss without the teacher-only constant. */
  run(x: Float32Array, targets: Float32Array, rows: number): number {
    this.x.set(x);
    this.targets.set(targets);
    const t = this.steps + 1;
    const { rate, epsilon } = correctedAdam(t, this.learningRate, this.beta1, this.beta2, this.epsilon);
    const loss = this.stepFunction(this.stepAddress, this.layersAddress, rows, rate, epsilon, this.beta1, this.beta2);
    this.steps = t;
    return loss;
  }

  /** Writes the kernel's weights into the student's variables. */
  sync(): void {
    const { tf } = this;
    for (const { variable, offset } of this.offsets) {
      tf.tidy(() => variable.assign(tf.tensor(this.params.slice(offset, offset + variable.size), variable.shape)));
    }
  }
}
