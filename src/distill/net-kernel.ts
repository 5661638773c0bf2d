// The kernel at work: NetKernel trains a student's copy of its weights in the WebAssembly kernel's
// memory, one call per step (kernel/step.c), predicts from it, and syncs the weights back into the
// student. Which ops it runs is kernel-plan.ts; where they lie, kernel-memory.ts; which build of
// the kernel, kernel-module.ts.
import type { Variable } from '@tensorflow/tfjs';
import type { Tf } from '../backend/resolve.js';
import { correctedAdam } from './adam.js';
import { CONTROL, NET } from './kernel/abi.js';
import { layOutKernelMemory, PAGE, writeKernelStructs } from './kernel-memory.js';
import {
  chooseKernelModule,
  compiledKernel,
  importedMemoryPages,
  kernelBytes,
  type KernelModuleName,
} from './kernel-module.js';
import { KernelThreads } from './kernel-threads.js';
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
 *
 * With `threads` above 1 a step is data-parallel (step_thread in kernel/step.c): this thread and
 * threads - 1 workers (kernel-threads.ts), started here, each take a share of the batch's rows on
 * one shared memory; batch statistics and gradients are summed in thread order, so a thread
 * count gives the same bits on every run, and the same function as one thread up to float
 * reassociation. `dispose` stops the workers.
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
  private readonly stepThread: (net: number, ops: number, control: number, thread: number) => number;
  private readonly predictFunction: (net: number, ops: number, rows: number) => number;
  private readonly netAddress: number;
  private readonly opsAddress: number;
  private readonly x: Float32Array;
  private readonly targets: Float32Array;
  private readonly params: Float32Array;
  private readonly offsets: Array<{ variable: Variable; offset: number }>;
  private readonly inputSize: number;
  private readonly classes: number;
  /** Rows thread 0's buffers hold: predict's batch. */
  private readonly capacity: number;
  /** Every thread's Net and first Op struct, byte addresses (the seed is written into each Net). */
  private readonly programs: Array<{ net: number; ops: number }>;
  /** With threads: the Control block (its address, a word view) and the workers. */
  private readonly control?: { at: number; words: Uint32Array; floats: Float32Array; threads: KernelThreads };
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
    /** Threads a step runs on (distill.threads): this one and threads - 1 workers. */
    readonly threads = 1,
    private readonly beta1 = 0.9,
    private readonly beta2 = 0.999,
    private readonly epsilon = tf.backend().epsilon(),
    /** False for a kernel that only predicts (forInference): no memory for gradients or Adam's moments. */
    private readonly training = true,
  ) {
    if (!Number.isInteger(threads) || threads < 1)
      throw new RangeError(`threads must be an integer >= 1, not ${threads}`);
    // The module imports its memory, shared between the threads' instances: laid out from the
    // module's own minimum (its data and stack, so past its heap base) and created at its size.
    const base = importedMemoryPages(kernelBytes(module)) * PAGE;
    const memory = layOutKernelMemory(ops, terms, maxRows, base, threads, training);
    const pages = Math.ceil(memory.end / PAGE);
    this.memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    const instance = new WebAssembly.Instance(compiledKernel(module), {
      env: { memory: this.memory, exp: Math.exp, log: Math.log },
    });
    const exports = instance.exports as {
      step: NetKernel['stepFunction'];
      step_thread: NetKernel['stepThread'];
      predict: NetKernel['predictFunction'];
      __heap_base: WebAssembly.Global;
    };
    if (Number(exports.__heap_base.value) > base) throw new Error('the kernel module has its heap past its memory');
    this.stepFunction = exports.step;
    this.stepThread = exports.step_thread;
    this.predictFunction = exports.predict;

    const buffer = this.memory.buffer;
    writeKernelStructs(buffer, memory);
    [this.netAddress, this.opsAddress, this.offsets] = [memory.net, memory.ops, memory.variables];
    [this.inputSize, this.classes, this.capacity] = [memory.inputSize, memory.classes, memory.rowsPerThread];
    this.programs = memory.programs.map(({ net, ops }) => ({ net, ops }));
    this.x = new Float32Array(buffer, memory.x, maxRows * memory.inputSize);
    this.targets = new Float32Array(buffer, memory.targets, maxRows * memory.classes);
    this.params = new Float32Array(buffer, memory.params, memory.paramCount);
    // Adam's moments start at zero: a fresh memory is zeroed.
    for (const { variable, offset } of this.offsets) this.params.set(variable.dataSync(), offset);
    if (memory.control) {
      const { at, stacks } = memory.control;
      const workers = memory.programs.slice(1).map((p, i) => ({ net: p.net, ops: p.ops, stack: stacks[i] }));
      this.control = {
        at,
        words: new Uint32Array(buffer, at, CONTROL.bytes / 4),
        floats: new Float32Array(buffer, at, CONTROL.bytes / 4),
        threads: new KernelThreads(compiledKernel(module), this.memory, at, workers),
      };
    }
  }

  /**
   * A kernel that only runs `predict`, in inference mode: a teacher's forward pass
   * (kernel-teacher.ts). Its memory holds the weights and one batch's activations, nothing for
   * training.
   */
  static forInference(tf: Tf, ops: KernelOp[], maxRows: number, module = chooseKernelModule()): NetKernel {
    return new NetKernel(tf, ops, [{ scale: 1, weight: 1 }], maxRows, 0, 0, module, 1, 0.9, 0.999, 1e-7, false);
  }

  /** One step on `rows` rows; returns the batch's loss without the teacher-only constant. */
  run(x: Float32Array, targets: Float32Array, rows: number): number {
    if (!this.training) throw new Error('NetKernel.run on a kernel made for inference only');
    this.x.set(x);
    this.targets.set(targets);
    const t = this.steps + 1;
    const words = new Uint32Array(this.memory.buffer);
    for (const { net } of this.programs) words[net / 4 + NET.fields.seed.word] = (this.seed * 7919 + this.steps) >>> 0;
    const { rate, epsilon } = correctedAdam(t, this.learningRate, this.beta1, this.beta2, this.epsilon);
    let loss: number;
    if (this.control) {
      loss = this.runThreads(this.control, rows, rate, epsilon);
    } else {
      try {
        loss = this.stepFunction(this.netAddress, this.opsAddress, rows, rate, epsilon, this.beta1, this.beta2);
      } catch (error) {
        throw new KernelTrap(error);
      }
    }
    this.steps = t;
    return loss;
  }

  private runThreads(control: NonNullable<NetKernel['control']>, rows: number, rate: number, epsilon: number): number {
    const { words, floats, threads } = control;
    words[CONTROL.fields.rows.word] = rows;
    floats[CONTROL.fields.rate.word] = rate;
    floats[CONTROL.fields.epsilon.word] = epsilon;
    floats[CONTROL.fields.beta1.word] = this.beta1;
    floats[CONTROL.fields.beta2.word] = this.beta2;
    threads.go();
    try {
      return this.stepThread(this.netAddress, this.opsAddress, control.at, 0);
    } catch (error) {
      // Every other thread traps at its next barrier; the kernel cannot go on.
      const said = threads.fail();
      threads.close();
      const why = [error instanceof Error ? error.message : String(error), ...said].join('; ');
      throw new KernelTrap(new Error(why, { cause: error }));
    }
  }

  /** Stops the worker threads, if any; the kernel can still predict and sync, not train. */
  dispose(): void {
    this.control?.threads.close();
  }

  /** Resolves once every worker thread has exited (after dispose, or a failure). */
  get threadsExited(): Promise<void> {
    return this.control?.threads.exited ?? Promise.resolve();
  }

  /**
   * The student's logits on `rows` rows of `x` ([rows, inputSize]), in inference mode (dropout off,
   * batch normalisation on its moving statistics), from the weights the kernel is training: the
   * per-epoch probe, with no copy of the weights into TF.js. Runs on this thread, in batches of
   * at most maxRows / threads (what thread 0's buffers hold) in the kernel's own buffers; changes
   * no weight, moment or statistic.
   */
  predict(x: Float32Array, rows: number): Float32Array {
    const { inputSize, classes, capacity } = this;
    const out = new Float32Array(rows * classes);
    for (let start = 0; start < rows; start += capacity) {
      const count = Math.min(capacity, rows - start);
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
