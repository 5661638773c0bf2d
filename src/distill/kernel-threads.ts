// The worker threads of a data-parallel kernel step (step_thread in kernel/step.c): threads
// 1..T-1 of NetKernel, each an instance of the kernel module on the one shared memory, with its
// own stack and program. They are started once per training run and wait for each step on the
// Control block's `go` word (Atomics.wait): no message per step, which would cost more than a
// small step takes. The main thread is thread 0: it bumps `go`, runs its own share, and returns
// once every thread has passed the step's last barrier.
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { CONTROL, TASK } from './kernel/abi.js';
import type { KernelOp } from './kernel-plan.js';

/** Word indices of the Control block's fields the host and the workers use. */
const WORDS = {
  abort: CONTROL.fields.abort.word,
  arrived: CONTROL.fields.arrived.word,
  generation: CONTROL.fields.generation.word,
  go: CONTROL.fields.go.word,
  stop: CONTROL.fields.stop.word,
  task: CONTROL.fields.task.word,
  patience: CONTROL.fields.patience.word,
} as const;

/** Control.abort's value when a thread gave up waiting at a barrier (kernel/parallel.c). */
const ABORT_PATIENCE = 2;
/** Why a wait for the other threads ended without them. */
const stoppedWorker = (seconds: number) =>
  `a kernel worker thread stopped without a word: none arrived where the others waited for ${seconds} s`;

/**
 * A worker, as a CommonJS script (eval): nothing to bundle or resolve. A failure (instantiation,
 * a trap) is posted on its port, then Control.abort is set and the barrier woken, so that every
 * thread waiting traps and the main thread's step throws instead of waiting for ever.
 */
const WORKER_SOURCE = `'use strict';
const { workerData } = require('node:worker_threads');
const { module, memory, control, net, ops, thread, stack, port, words: W } = workerData;
const words = new Int32Array(memory.buffer, control, ${CONTROL.bytes / 4});
const fail = (error) => {
  port.postMessage('thread ' + thread + ': ' + (error && error.message ? error.message : String(error)));
  Atomics.store(words, W.abort, 1);
  Atomics.notify(words, W.generation);
};
let step;
let predict;
try {
  const instance = new WebAssembly.Instance(module, { env: { memory, exp: Math.exp, log: Math.log } });
  instance.exports.__stack_pointer.value = stack;
  step = instance.exports.step_thread;
  predict = instance.exports.predict_thread;
} catch (error) {
  fail(error);
}
for (let seen = 0; step; ) {
  let go;
  while ((go = Atomics.load(words, W.go)) === seen) Atomics.wait(words, W.go, seen);
  seen = go;
  if (Atomics.load(words, W.stop)) break;
  try {
    (Atomics.load(words, W.task) === ${TASK.predict} ? predict : step)(net, ops, control, thread);
  } catch (error) {
    fail(error);
    break;
  }
}
port.close();
`;

/** Where a worker's program lies: its Net and Op structs, the top of its stack. */
export interface WorkerProgram {
  net: number;
  ops: number;
  stack: number;
}

/** Kernel workers of this process that have not exited yet: none once every NetKernel is disposed. */
let running = 0;
export function runningKernelWorkers(): number {
  return running;
}

export class KernelThreads {
  private readonly words: Int32Array;
  private readonly workers: Worker[];
  private readonly ports: MessagePort[] = [];
  private closed = false;
  /** Resolves once every worker has exited (close, or a failure). */
  readonly exited: Promise<void>;

  constructor(module: WebAssembly.Module, memory: WebAssembly.Memory, control: number, programs: WorkerProgram[]) {
    this.words = new Int32Array(memory.buffer, control, CONTROL.bytes / 4);
    this.workers = programs.map(({ net, ops, stack }, i) => {
      const { port1, port2 } = new MessageChannel();
      this.ports.push(port1);
      const worker = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { module, memory, control, net, ops, thread: i + 1, stack, port: port2, words: WORDS },
        transferList: [port2],
      });
      // A worker never keeps the process alive, even if its owner forgot to close it.
      worker.unref();
      running++;
      worker.once('exit', () => running--);
      return worker;
    });
    this.exited = Promise.all(
      this.workers.map((worker) => new Promise<void>((resolve) => worker.once('exit', () => resolve()))),
    ).then(() => undefined);
  }

  /** Starts the workers on the step whose arguments are in the Control block. */
  go(): void {
    if (this.closed) throw new Error('the kernel threads were closed');
    Atomics.add(this.words, WORDS.go, 1);
    Atomics.notify(this.words, WORDS.go);
  }

  /**
   * Blocks until `workers` workers have counted themselves done in Control.arrived (a
   * predict_thread), then resets the count; throws when one failed (Control.abort), or when
   * none has arrived for Control.patience seconds (a worker that died without a word).
   */
  awaitDone(workers: number): void {
    const words = this.words;
    let [last, since] = [-1, performance.now()];
    for (let done = Atomics.load(words, WORDS.arrived); done < workers; done = Atomics.load(words, WORDS.arrived)) {
      if (Atomics.load(words, WORDS.abort)) throw new Error('a kernel worker thread failed');
      if (done !== last) [last, since] = [done, performance.now()];
      else if (performance.now() - since >= Atomics.load(words, WORDS.patience) * 1000)
        throw new Error(stoppedWorker(Atomics.load(words, WORDS.patience)));
      // Timed, so that a worker that failed (setting abort, not the count) is noticed.
      Atomics.wait(words, WORDS.arrived, done, 100);
    }
    Atomics.store(words, WORDS.arrived, 0);
  }

  /**
   * The main thread's share failed (or trapped because a worker did): wakes every worker waiting
   * at a barrier so that it traps too, and returns what the workers said, if anything.
   */
  fail(): string[] {
    const gaveUp = Atomics.load(this.words, WORDS.abort) === ABORT_PATIENCE;
    Atomics.store(this.words, WORDS.abort, 1);
    Atomics.notify(this.words, WORDS.generation);
    const said: string[] = [];
    for (const port of this.ports) {
      for (let message = receiveMessageOnPort(port); message; message = receiveMessageOnPort(port))
        said.push(String(message.message));
    }
    return gaveUp ? [...said, stoppedWorker(Atomics.load(this.words, WORDS.patience))] : said;
  }

  /** Stops the workers and terminates them; idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    Atomics.store(this.words, WORDS.stop, 1);
    Atomics.add(this.words, WORDS.go, 1);
    Atomics.notify(this.words, WORDS.go);
    for (const worker of this.workers) void worker.terminate();
    for (const port of this.ports) port.close();
  }
}

/** Rows of a batch each thread gets at least under distill.threads: auto. */
export const MIN_ROWS_PER_THREAD = 16;

/**
 * Multiply-adds of a step (forward and backward, about 3x the forward pass's) each thread gets
 * at least under distill.threads: auto. A step over T threads pays for waking the workers and
 * for its barriers, ~30-40 us on 2 threads here (measured: a 64-32-10 MLP at batch 64, ~0.45M
 * multiply-adds a step, took 47 us on one thread and 80 on two); a million multiply-adds, 100-200
 * us of work, keeps that cost a fraction of what a thread saves.
 */
export const MIN_WORK_PER_THREAD = 1_000_000;

/** Multiply-adds of one row's forward pass through `ops`; elementwise ops count one per output. */
export function forwardWork(ops: KernelOp[]): number {
  const volume = ([h, w, c]: [number, number, number]) => h * w * c;
  return ops.reduce((sum, op) => {
    const [kh, kw] = op.window;
    if (op.type === 'conv') return sum + volume(op.output) * kh * kw * op.input[2];
    if (op.type === 'depthwise') return sum + volume(op.output) * kh * kw;
    return sum + volume(op.output);
  }, 0);
}

/**
 * The threads a kernel step runs on: distill.threads as set, or for 'auto' the machine's cores
 * (os.availableParallelism), capped so that each thread gets at least MIN_ROWS_PER_THREAD rows
 * of a `maxRows` batch and MIN_WORK_PER_THREAD multiply-adds of its step.
 */
export function kernelThreads(
  setting: number | 'auto',
  maxRows: number,
  ops: KernelOp[],
  cores = availableParallelism(),
): number {
  if (setting !== 'auto') return setting;
  return threadsFor(3 * maxRows * forwardWork(ops), cores, Math.floor(maxRows / MIN_ROWS_PER_THREAD));
}

/**
 * The threads a forward pass in the kernel runs on (a teacher's, kernel-teacher.ts): distill.threads
 * as set, or for 'auto' the cores, as many as get MIN_WORK_PER_THREAD multiply-adds of a call of
 * `rows` rows each. Rows are independent, so no rows cap: any split gives the same logits.
 */
export function passThreads(
  setting: number | 'auto',
  rows: number,
  ops: KernelOp[],
  cores = availableParallelism(),
): number {
  return setting === 'auto' ? threadsFor(rows * forwardWork(ops), cores) : setting;
}

/** The cores, capped at `cap` and at one thread per MIN_WORK_PER_THREAD multiply-adds of `work`; at least one. */
function threadsFor(work: number, cores: number, cap = cores): number {
  return Math.max(1, Math.min(cores, cap, Math.floor(work / MIN_WORK_PER_THREAD)));
}
