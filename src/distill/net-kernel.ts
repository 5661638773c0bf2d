// The kernel at work: NetKernel trains a student's copy of its weights in the WebAssembly kernel's
// memory, one call per step (kernel/step.c), predicts from it, and syncs the weights back into the
// student. Which ops it runs is kernel-plan.ts; where they lie, kernel-memory.ts; which build of
// the kernel, kernel-module.ts.
import type { Variable } from '@tensorflow/tfjs';
import type { Tf } from '../backend/resolve.js';
import { correctedAdam } from './adam.js';
import { CONTROL, NET, TASK } from './kernel/abi.js';
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
  private readonly predictThread: (net: number, ops: number, control: number, thread: number) => void;
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
  private readonly programs: Array<{ net: number; ops: number; logits: number }>;
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
      predict_thread: NetKernel['predictThread'];
      prepare_inference: (net: number, ops: number) => void;
      __heap_base: WebAssembly.Global;
    };
    if (Number(exports.__heap_base.value) > base) throw new Error('the kernel module has its heap past its memory');
    this.stepFunction = exports.step;
    this.stepThread = exports.step_thread;
    this.predictFunction = exports.predict;
    this.predictThread = exports.predict_thread;

    const buffer = this.memory.buffer;
    writeKernelStructs(buffer, memory);
    [this.netAddress, this.opsAddress, this.offsets] = [memory.net, memory.ops, memory.variables];
    [this.inputSize, this.classes, this.capacity] = [memory.inputSize, memory.classes, memory.rowsPerThread];
    // Each program's last op output: where its thread's share of predict_thread's logits lands.
    this.programs = memory.programs.map(({ net, ops, opStructs }) => ({
      net,
      ops,
      logits: opStructs[opStructs.length - 1].output,
    }));
    this.x = new Float32Array(buffer, memory.x, maxRows * memory.inputSize);
    this.targets = new Float32Array(buffer, memory.targets, maxRows * memory.classes);
    this.params = new Float32Array(buffer, memory.params, memory.paramCount);
    // Adam's moments start at zero: a fresh memory is zeroed.
    for (const { variable, offset } of this.offsets) this.params.set(variable.dataSync(), offset);
    // Weights that never change: what predict can make of them once (F(4x4) kernels), it makes now.
    if (!training) for (const { net, ops } of this.programs) exports.prepare_inference(net, ops);
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
  static forInference(tf: Tf, ops: KernelOp[], maxRows: number, module = chooseKernelModule(), threads = 1): NetKernel {
    return new NetKernel(tf, ops, [{ scale: 1, weight: 1 }], maxRows, 0, 0, module, threads, 0.9, 0.999, 1e-7, false);
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
    const { words, floats } = control;
    words[CONTROL.fields.rows.word] = rows;
    floats[CONTROL.fields.rate.word] = rate;
    floats[CONTROL.fields.epsilon.word] = epsilon;
    floats[CONTROL.fields.beta1.word] = this.beta1;
    floats[CONTROL.fields.beta2.word] = this.beta2;
    return this.onThreads(control, () => this.stepThread(this.netAddress, this.opsAddress, control.at, 0));
  }

  /** Starts the workers on what the Control block says and runs thread 0's share (`share`) here. */
  private onThreads<T>(control: NonNullable<NetKernel['control']>, share: () => T): T {
    const { threads } = control;
    threads.go();
    try {
      return share();
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
   * per-epoch probe, with no copy of the weights into TF.js; a teacher's pass (forInference).
   * In the kernel's own buffers, in batches of what they hold: on this thread maxRows / threads
   * rows, with threads maxRows rows split over them (predict_thread); rows are independent, so
   * the logits do not depend on the split. Changes no weight, moment or statistic.
   */
  predict(x: Float32Array, rows: number): Float32Array {
    const { inputSize, classes, capacity, control } = this;
    const batch = control ? capacity * this.threads : capacity;
    const out = new Float32Array(rows * classes);
    for (let start = 0; start < rows; start += batch) {
      const count = Math.min(batch, rows - start);
      this.x.set(x.subarray(start * inputSize, (start + count) * inputSize));
      if (control) {
        this.predictOnThreads(control, count, out.subarray(start * classes, (start + count) * classes));
        continue;
      }
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

  /** One batch of predict over every thread: thread t's rows are [t * share, (t + 1) * share), as predict_thread splits them. */
  private predictOnThreads(control: NonNullable<NetKernel['control']>, rows: number, out: Float32Array): void {
    const { words } = control;
    words[CONTROL.fields.rows.word] = rows;
    words[CONTROL.fields.task.word] = TASK.predict;
    try {
      this.onThreads(control, () => {
        this.predictThread(this.netAddress, this.opsAddress, control.at, 0);
        control.threads.awaitDone(this.threads - 1);
      });
    } finally {
      words[CONTROL.fields.task.word] = TASK.step;
    }
    const share = Math.ceil(rows / this.threads);
    for (const [thread, { logits }] of this.programs.entries()) {
      const first = Math.min(thread * share, rows);
      const count = Math.min(share, rows - first);
      if (count > 0) out.set(new Float32Array(this.memory.buffer, logits, count * this.classes), first * this.classes);
    }
  }

  /** Writes the kernel's weights and moving statistics into the student's variables. */
  sync(): void {
    const { tf } = this;
    for (const { variable, offset } of this.offsets) {
      tf.tidy(() => variable.assign(tf.tensor(this.params.slice(offset, offset + variable.size), variable.shape)));
    }
  }
}
