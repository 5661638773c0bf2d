// Where the kernel's program lies in its WebAssembly memory: the Net and Op structs of
// kernel/net_kd.h, the batch, the weights with their gradients and Adam's moments, and each op's
// buffers; and writing those structs there. The ops come from kernel-plan.ts; net-kernel.ts runs them.
import type { Variable } from '@tensorflow/tfjs';
import {
  ACTIVATION,
  BATCH_NORM_STATS,
  CONTROL,
  NET,
  OP,
  OP_TYPE,
  TASK,
  THREAD_STACK,
  TILE,
  WINOGRAD_CHUNK,
  WINOGRAD4_CHUNK,
} from './kernel/abi.js';
import type { KernelOp, Shape } from './kernel-plan.js';
import type { SoftmaxTerm } from './targets.js';

/** A WebAssembly page, in bytes. */
export const PAGE = 65536;

const size = (shape: Shape) => shape[0] * shape[1] * shape[2];

/** The kernel's memory for one student at one batch size: every address and the structs to write there. */
export interface KernelMemory {
  /** The first byte past the last buffer: the memory must be at least this long. */
  end: number;
  /** Byte addresses of thread 0's Net struct and first Op struct, the batch's inputs and targets, and the weights. */
  net: number;
  ops: number;
  x: number;
  targets: number;
  params: number;
  /** Floats per row of the batch's inputs; classes per row of its targets and of the logits. */
  inputSize: number;
  classes: number;
  /** Every variable's float offset in params, and the floats they take together. */
  variables: Array<{ variable: Variable; offset: number }>;
  paramCount: number;
  /** What thread 0's Net struct and each of its Op structs hold. */
  netStruct: StructValues<typeof NET>;
  opStructs: StructValues<typeof OP>[];
  /** Rows each thread's buffers hold: ceil(maxRows / threads); thread 0's predict runs that many at a time. */
  rowsPerThread: number;
  /** Every thread's program (thread 0's first): its Net struct and first Op struct, and what they hold. */
  programs: Array<{
    net: number;
    ops: number;
    netStruct: StructValues<typeof NET>;
    opStructs: StructValues<typeof OP>[];
  }>;
  /** With more than one thread: the Control struct's address and fields, and each worker's stack top (threads 1..T-1). */
  control?: { at: number; struct: StructValues<typeof CONTROL>; stacks: number[] };
}

/**
 * Lays out the kernel's memory for `ops` at up to `maxRows` rows a step over `threads` threads,
 * from the module's heap base up. Shared: the batch, the weights and Adam's moments. Per thread:
 * a Net and ops of their own, with buffers for ceil(maxRows / threads) rows and its own
 * gradients. With threads > 1, the Control block of net_kd.h, with the per-thread partial sums,
 * losses and gradient addresses it points at, and a stack per worker. Throws a RangeError when it
 * would pass the kernel's 4 GiB.
 * `training` false lays out a forward pass only (`predict`): no gradients, no Adam moments.
 */
export function layOutKernelMemory(
  ops: KernelOp[],
  terms: SoftmaxTerm[],
  maxRows: number,
  heapBase: number,
  threads = 1,
  training = true,
): KernelMemory {
  const memory = new Layout(heapBase, maxRows);
  const inputSize = size(ops[0].input);
  const classes = ops[ops.length - 1].output[2];
  const largest = Math.max(inputSize, ...ops.map((op) => size(op.output)));
  const rowsPerThread = Math.ceil(maxRows / threads);
  const backward = training ? 1 : 0;
  const { placed, trainableCount, total } = placeVariables(ops);
  // Thread 0's structs and buffers interleave with the shared ones as in the single-threaded
  // layout; the other threads' follow.
  const programs = [];
  const shared = { x: 0, targets: 0, params: 0, moment1: 0, moment2: 0 };
  for (let thread = 0; thread < threads; thread++) {
    const net = memory.take(NET.bytes / 4);
    const opsAddress = memory.take((OP.bytes / 4) * ops.length);
    if (thread === 0) [shared.x, shared.targets] = [memory.take(maxRows * inputSize), memory.take(maxRows * classes)];
    const scratch = memory.take(classes * 2);
    if (thread === 0) shared.params = memory.take(total);
    const grads = memory.take(backward * trainableCount);
    if (thread === 0)
      [shared.moment1, shared.moment2] = [
        memory.take(backward * trainableCount),
        memory.take(backward * trainableCount),
      ];
    const [gradA, gradB] = [
      memory.take(backward * rowsPerThread * largest),
      memory.take(backward * rowsPerThread * largest),
    ];
    const buffers = ops.map((op) => opBuffers(op, memory, rowsPerThread));
    const netStruct = {
      ops: ops.length,
      inputSize,
      terms: terms.length,
      scale: [terms[0].scale, terms[1]?.scale ?? 0],
      weight: [terms[0].weight, terms[1]?.weight ?? 0],
      ...shared,
      grads,
      trainable: trainableCount,
      scratch,
      gradA,
      gradB,
      seed: 0,
    };
    programs.push({ net, ops: opsAddress, netStruct, opStructs: ops.map((op, i) => opFields(op, buffers[i], placed)) });
  }
  return {
    ...programs[0],
    x: shared.x,
    targets: shared.targets,
    params: shared.params,
    inputSize,
    classes,
    variables: [...placed].map(([variable, offset]) => ({ variable, offset })),
    paramCount: total,
    rowsPerThread,
    programs,
    control: threads > 1 ? layOutControl(memory, ops, programs) : undefined,
    end: memory.end,
  };
}

/**
 * Seconds a kernel thread waits for the others (at a step's barrier, or the host for a pass's
 * workers) with none of them arriving, before it gives up: a worker that died without a word
 * would otherwise hold the run, with the host's event loop blocked, until the CI job's timeout.
 * Healthy threads have even shares and meet within milliseconds.
 */
export const KERNEL_PATIENCE_SECONDS = 120;

/** The Control block of a data-parallel step and what it points at; a stack per worker. */
function layOutControl(memory: Layout, ops: KernelOp[], programs: KernelMemory['programs']): KernelMemory['control'] {
  const threads = programs.length;
  // teamSum reduces 2C floats at most (a BATCH_NORM's two backward sums).
  const channels = Math.max(0, ...ops.filter((op) => op.type === 'batchNorm').map((op) => op.input[2]));
  const stride = Math.ceil((2 * channels) / 4) * 4 || 4;
  const at = memory.take(CONTROL.bytes / 4);
  const [partials, losses, grads] = [memory.take(2 * threads * stride), memory.take(2 * threads), memory.take(threads)];
  const stacks = programs.slice(1).map(() => memory.take(THREAD_STACK / 4) + THREAD_STACK);
  const struct = {
    threads,
    arrived: 0,
    generation: 0,
    abort: 0,
    rows: 0,
    rate: 0,
    epsilon: 0,
    beta1: 0,
    beta2: 0,
    go: 0,
    stop: 0,
    stride,
    partials,
    losses,
    grads,
    task: TASK.step,
    patience: KERNEL_PATIENCE_SECONDS,
  };
  return { at, struct, stacks };
}

/** Writes every thread's Net and Op structs, and the Control block, where `memory` says they lie. */
export function writeKernelStructs(buffer: ArrayBufferLike, memory: KernelMemory): void {
  for (const program of memory.programs) {
    writeStruct(buffer, program.net, NET, program.netStruct);
    program.opStructs.forEach((values, i) => writeStruct(buffer, program.ops + i * OP.bytes, OP, values));
  }
  if (memory.control) {
    writeStruct(buffer, memory.control.at, CONTROL, memory.control.struct);
    new Uint32Array(buffer, memory.control.struct.grads, memory.programs.length).set(
      memory.programs.map((p) => p.netStruct.grads),
    );
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
    if (this.end > 2 ** 32 - PAGE)
      throw new RangeError(`the student needs more than the kernel's 4 GiB of memory at batch size ${this.maxRows}`);
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
function opBuffers(op: KernelOp, memory: Layout, maxRows: number): OpBuffers {
  const [kh, kw] = op.window;
  const channels = op.input[2];
  const pixels = op.output[0] * op.output[1];
  const patchWidth = kh * kw * channels;
  const pointwise =
    kh === 1 && kw === 1 && op.strides[0] === 1 && op.strides[1] === 1 && op.padding[0] === 0 && op.padding[1] === 0;
  // A convolution keeps its batch's patch matrix (Winograd F(2x2): its transformed input tiles,
  // 16 values per 2x2 output pixels and input channel; F(4x4), inference only, keeps nothing);
  // the others their x-hat, mask or argmax.
  const tiles = Math.ceil(op.output[0] / 2) * Math.ceil(op.output[1] / 2);
  let aux = 0;
  if (op.winograd === 2) aux = memory.take(maxRows * tiles * 16 * channels);
  else if (op.type === 'conv' && !pointwise) aux = memory.take(maxRows * pixels * patchWidth);
  else if (['batchNorm', 'layerNorm', 'dropout', 'maxPool', 'globalMax'].includes(op.type))
    aux = memory.take(maxRows * Math.max(size(op.output), size(op.input)));
  const stats =
    op.type === 'batchNorm'
      ? memory.take(BATCH_NORM_STATS * channels)
      : op.type === 'layerNorm'
        ? memory.take(maxRows * pixels)
        : 0;
  // The kernel transposed, a tile's patch gradients. Winograd F(2x2): the transformed kernel,
  // transposed, its gradient, and a chunk's products and input-tile gradients (kernel/winograd.c);
  // F(4x4): the transformed kernel, a chunk's input tiles and products (kernel/winograd_4x4.c).
  const filters = op.output[2];
  let scratch = 0;
  if (op.winograd === 2) scratch = memory.take(16 * (3 * channels * filters + WINOGRAD_CHUNK * (filters + channels)));
  else if (op.winograd === 4) scratch = memory.take(36 * (channels * filters + WINOGRAD4_CHUNK * (filters + channels)));
  else if (op.type === 'conv') scratch = memory.take(patchWidth * filters + TILE * patchWidth);
  return { output: memory.take(maxRows * size(op.output)), aux, stats, scratch };
}

/** The fields of one Op struct of net_kd.h. */
function opFields(op: KernelOp, buffers: OpBuffers, placed: Map<Variable, number>): StructValues<typeof OP> {
  const offsetOf = (variable: Variable | undefined) => {
    if (!variable) return 0;
    const offset = placed.get(variable);
    if (offset === undefined)
      throw new Error(`${op.layer}: variable ${variable.name} has no place among the kernel's parameters`);
    return offset;
  };
  const [[inH, inW, inC], [outH, outW, outC], [kh, kw], [sh, sw], [padT, padL]] = [
    op.input,
    op.output,
    op.window,
    op.strides,
    op.padding,
  ];
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
    winograd: op.winograd,
    ...buffers,
  };
}

/** A struct of net_kd.h as abi.ts describes it. */
interface Struct {
  bytes: number;
  fields: Record<string, { word: number; count: number; kind: 'u32' | 'f32' | 'ptr' }>;
}

/** A value for every field of a struct: a number, or one per element of an array field. */
type StructValues<S extends Struct> = {
  [K in keyof S['fields']]: S['fields'][K]['count'] extends 1 ? number : number[];
};

/** Writes every field of a struct at byte address `at`, where abi.ts says it lies, as a float or a 32-bit word. */
function writeStruct<S extends Struct>(buffer: ArrayBufferLike, at: number, struct: S, values: StructValues<S>): void {
  const words = new Uint32Array(buffer, at, struct.bytes / 4);
  const floats = new Float32Array(buffer, at, struct.bytes / 4);
  for (const [name, field] of Object.entries(struct.fields)) {
    const value = [values[name as keyof S['fields']]].flat();
    if (value.length !== field.count) throw new Error(`${name}: ${value.length} values for ${field.count} elements`);
    (field.kind === 'f32' ? floats : words).set(value, field.word);
  }
}
