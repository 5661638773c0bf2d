// The kernel at work: NetKernel trains a student's copy of its weights in the WebAssembly kernel's
// memory, one call per step (kernel/step.c), predicts from it, and syncs the weights back into the
// student. Which ops it runs is kernel-plan.ts; where they lie, kernel-memory.ts; which build of
// the kernel, kernel-module.ts.
import type { Variable } from '@tensorflow/tfjs';
import type { Tf } from '../backend/resolve.js';
import { correctedAdam } from './adam.js';
import { NET } from './kernel/abi.js';
import { layOutKernelMemory, PAGE, writeKernelStructs } from './kernel-memory.js';
import { chooseKernelModule, compiledKernel, type KernelModuleName } from './kernel-module.js';
import type { KernelOp } from './kernel-plan.js';
import type { SoftmaxTerm } from './targets.js';

/**
 * The kernel trapped (an out-of-bounds access, say). Its memory is sized before the first step,
 * so this is a bug, never an out-of-memory to retry with a smaller batch.
 */
export class KernelTrap extends Error {
  constructor(cause: unknown) {
    super(
      `the WebAssembly training kernel failed, a bug in distill-gate: ${cause instanceof Error ? cause.message : String(cause)}`,
      { cause },
    );
    this.name = 'KernelTrap';
  }
}

/**
 * A Sequential student's whole training step as one WebAssembly call (kernel/step.c): no TF.js
 * op, so neither TF.js's per-op cost nor its missing gradient kernels (the wasm backend has no
 * Conv2DBackpropFilter). The kernel trains its own copy of the weights in its memory; `sync`
 * writes them, and BatchNormalization's moving statistics, back into the student's variables.
 */
export class NetKernel {
  private readonly memory: WebAssembly.Memory;
  private readonly stepFunction: (
    net: number,
    ops: number,
    rows: number,
    rate: number,
    epsilon: number,
    beta1: number,
    beta2: number,
  ) => number;
  private readonly predictFunction: (net: number, ops: number, rows: number) => number;
  private readonly netAddress: number;
  private readonly opsAddress: number;
  private readonly x: Float32Array;
  private readonly targets: Float32Array;
  private readonly params: Float32Array;
  private readonly offsets: Array<{ variable: Variable; offset: number }>;
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
    /** False for a kernel that only predicts (forInference): no memory for gradients or Adam's moments. */
    private readonly training = true,
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

    const memory = layOutKernelMemory(ops, terms, maxRows, Number(exports.__heap_base.value), training);
    const missing = memory.end - this.memory.buffer.byteLength;
    if (missing > 0) this.memory.grow(Math.ceil(missing / PAGE));
    writeKernelStructs(this.memory.buffer, memory);
    [this.netAddress, this.opsAddress, this.offsets] = [memory.net, memory.ops, memory.variables];
    [this.inputSize, this.classes, this.maxRows] = [memory.inputSize, memory.classes, maxRows];
    this.x = new Float32Array(this.memory.buffer, memory.x, maxRows * memory.inputSize);
    this.targets = new Float32Array(this.memory.buffer, memory.targets, maxRows * memory.classes);
    this.params = new Float32Array(this.memory.buffer, memory.params, memory.paramCount);
    // Adam's moments start at zero: a fresh instance's memory is zeroed.
    for (const { variable, offset } of this.offsets) this.params.set(variable.dataSync(), offset);
  }

  /**
   * A kernel that only runs `predict`, in inference mode: a teacher's forward pass
   * (kernel-teacher.ts). Its memory holds the weights and one batch's activations, nothing for
   * training.
   */
  static forInference(tf: Tf, ops: KernelOp[], maxRows: number, module = chooseKernelModule()): NetKernel {
    return new NetKernel(tf, ops, [{ scale: 1, weight: 1 }], maxRows, 0, 0, module, 0.9, 0.999, 1e-7, false);
  }

  /** One step on `rows` rows; returns the batch's loss without the teacher-only constant. */
  run(x: Float32Array, targets: Float32Array, rows: number): number {
    if (!this.training) throw new Error('NetKernel.run on a kernel made for inference only');
    this.x.set(x);
    this.targets.set(targets);
    const t = this.steps + 1;
    new Uint32Array(this.memory.buffer)[this.netAddress / 4 + NET.fields.seed.word] =
      (this.seed * 7919 + this.steps) >>> 0;
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
