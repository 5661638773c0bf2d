// The WebAssembly training kernel's interface with its host (net-kernel.ts, kernel-memory.ts):
// the program and memory layout the host writes, the codes it uses, the functions it provides and
// the ones it calls. One knowledge-distillation training step of a Sequential student runs in one call:
// forward through every op, the KD loss and its gradient from host-side targets, backward, and
// Adam (step.c). scripts/build-kernel.mjs generates abi.ts from this file (op and activation
// codes, struct sizes, field offsets, the defines below) with the compiler that builds the kernel,
// so the host never copies a number from here by hand.
//
// Activations are NHWC, one row after another, as TF.js lays them out.
//
// Build: npm run build:kernel (clang and wasm-ld from Debian's clang and lld packages).
#ifndef NET_KD_H
#define NET_KD_H

#include <stddef.h>

typedef unsigned int u32;

// Math.exp and Math.log from the host: wasm has no transcendental instructions, and the host's
// are accurate and deterministic in double precision, where a hand-rolled approximation in float
// would add its own error to the loss.
__attribute__((import_module("env"), import_name("exp"))) double host_exp(double);
__attribute__((import_module("env"), import_name("log"))) double host_log(double);

// Op.activation: fused into CONV and DEPTHWISE; the function of ACTIVATION. The host's names are
// these in camelCase (Keras's activation names).
enum Activation { LINEAR = 0, RELU = 1, SIGMOID = 2, TANH = 3 };

// Op.type, one per op family. The host's names are these in camelCase.
enum OpType { CONV = 0, DEPTHWISE = 1, MAX_POOL = 2, AVG_POOL = 3, GLOBAL_AVG = 4, GLOBAL_MAX = 5, DROPOUT = 6, BATCH_NORM = 7, LAYER_NORM = 8, ACTIVATION = 9 };

// Output pixels whose patch gradients a convolution computes together before they are added back
// into the input gradient (the tile stays in cache); the host sizes Op.scratch by it.
#define TILE 32
// Tiles a Winograd convolution (winograd.c) transforms and multiplies together; the host sizes
// Op.scratch by it.
#define WINOGRAD_CHUNK 64
// The same for F(4x4, 3x3) (winograd_4x4.c), whose tiles are 36 values each.
#define WINOGRAD4_CHUNK 32
// Bytes of stack each worker thread's instance gets (the host places them; scripts/build-kernel.mjs
// links the module, whose own stack thread 0 uses, with this much).
#define THREAD_STACK 65536
// Per-channel rows of BATCH_NORM's Op.stats: mean, 1/std, gamma, beta, sum of dOut, sum of
// dOut * x-hat.
#define BATCH_NORM_STATS 6

// Written by the host; every pointer is a byte offset into this module's memory.
typedef struct {
  u32 ops;           // number of ops
  u32 inputSize;     // floats per input row
  u32 terms;         // softmax terms of the loss (1 or 2)
  float scale[2];    // per term: logits are multiplied by scale...
  float weight[2];   // ...and the term's log-sum-exp by weight
  float *x;          // [rows, inputSize], the batch
  float *targets;    // [rows, classes], from kdTargets
  float *params;     // trainable weights in host order, then non-trainable state (moving statistics)
  float *grads;      // [trainable], same layout as params
  float *moment1;    // Adam's moments, [trainable]
  float *moment2;
  u32 trainable;     // number of trainable floats at the start of params
  double *scratch;   // [classes], one row's exponentials
  float *gradA;      // two [maxRows, largest activation] buffers for gradients, used in turn
  float *gradB;
  u32 seed;          // this step's dropout seed
} Net;

// One op of the program, written by the host; ops follow each other in memory.
typedef struct {
  u32 type;              // enum OpType
  u32 activation;        // enum Activation
  u32 inH, inW, inC;     // input, as [H, W, C] (a Dense layer is a 1x1 image of C channels)
  u32 outH, outW, outC;
  u32 kh, kw, sh, sw;    // window and strides (CONV, DEPTHWISE, pools)
  u32 padT, padL;        // padding before the first row and column ('same'), else 0
  u32 weight, bias;      // float offsets into params: kernel or gamma, bias or beta
  u32 hasWeight, hasBias;
  u32 state;             // BATCH_NORM: float offset of the moving mean (the moving variance follows)
  float momentum;        // BATCH_NORM
  float epsilon;         // BATCH_NORM, LAYER_NORM
  float rate;            // DROPOUT
  float *output;         // [maxRows, outH * outW * outC]
  float *aux;            // CONV: the batch's patches (Winograd: its transformed input tiles); norms: x-hat; DROPOUT: the scaled mask; max pools: argmax (as u32)
  float *stats;          // BATCH_NORM: [BATCH_NORM_STATS, C] per-channel scratch; LAYER_NORM: 1/std per position
  float *scratch;        // CONV: the kernel transposed, then TILE pixels' patch gradients (Winograd: see winograd.c)
  u32 winograd;          // CONV: Winograd's output tile side, 2 for F(2x2, 3x3), 4 for F(4x4, 3x3) (inference only), 0 for im2col; the host chooses by shape
} Op;

// What the workers run when the host bumps Control.go: a training step (step_thread) or a
// forward pass in inference mode (predict_thread).
enum Task { STEP = 0, PREDICT = 1 };

// A data-parallel step's shared state (step_thread, predict_thread), written by the host once,
// read and written by every thread. Each thread has its own Net and ops (its rows' buffers and
// gradients); params, Adam's moments, x and targets are shared.
typedef struct {
  u32 threads;       // T
  u32 arrived;       // barrier: threads that reached the current barrier
  u32 generation;    // barrier: bumped as each barrier opens; threads wait on it
  u32 abort;         // 1: set by the host when a thread failed; 2: a thread ran out of patience; every waiting thread traps
  u32 rows;          // this step: the batch's rows, thread t takes rows [t * ceil(rows / T), ...)
  float rate;        // this step: Adam's corrected rate and epsilon, beta1 and beta2
  float epsilon;
  float beta1;
  float beta2;
  u32 go;            // host: bumped once per step to start the workers
  u32 stop;          // host: set to stop the workers
  u32 stride;        // floats per thread in each of partials' two halves
  float *partials;   // [2, T, stride]: per-thread BATCH_NORM sums, the halves used in turn
  double *losses;    // [T]: each thread's share of the loss
  float **grads;     // [T]: each thread's Net.grads
  u32 task;          // host: enum Task, what this go is for
  u32 patience;      // host: seconds a thread waits at a barrier that no thread reaches before it traps
} Control;

// The host writes both structs through Uint32Array and Float32Array views of the memory, at the
// word offsets abi.ts gives: every field must be a 4-byte word (a u32, a float or a wasm32
// pointer) or an array of them, with no padding. Each assert pins one field's word offset and
// size in words: a field added, moved or resized fails the build here until its assert says so,
// and the build regenerates abi.ts to match.
#define FIELD_AT(type, field, word, words)                                                         \
  _Static_assert(offsetof(type, field) == (word) * 4 && sizeof(((type *)0)->field) == (words) * 4, \
                 #type "." #field " is not " #words " word(s) at word " #word)

_Static_assert(sizeof(u32) == 4 && sizeof(float) == 4 && sizeof(float *) == 4, "wasm32: 4-byte words and pointers");

_Static_assert(sizeof(Net) == 72, "sizeof(Net) is 72 bytes");
FIELD_AT(Net, ops, 0, 1);
FIELD_AT(Net, inputSize, 1, 1);
FIELD_AT(Net, terms, 2, 1);
FIELD_AT(Net, scale, 3, 2);
FIELD_AT(Net, weight, 5, 2);
FIELD_AT(Net, x, 7, 1);
FIELD_AT(Net, targets, 8, 1);
FIELD_AT(Net, params, 9, 1);
FIELD_AT(Net, grads, 10, 1);
FIELD_AT(Net, moment1, 11, 1);
FIELD_AT(Net, moment2, 12, 1);
FIELD_AT(Net, trainable, 13, 1);
FIELD_AT(Net, scratch, 14, 1);
FIELD_AT(Net, gradA, 15, 1);
FIELD_AT(Net, gradB, 16, 1);
FIELD_AT(Net, seed, 17, 1);

_Static_assert(sizeof(Control) == 68, "sizeof(Control) is 68 bytes");
FIELD_AT(Control, threads, 0, 1);
FIELD_AT(Control, arrived, 1, 1);
FIELD_AT(Control, generation, 2, 1);
FIELD_AT(Control, abort, 3, 1);
FIELD_AT(Control, rows, 4, 1);
FIELD_AT(Control, rate, 5, 1);
FIELD_AT(Control, epsilon, 6, 1);
FIELD_AT(Control, beta1, 7, 1);
FIELD_AT(Control, beta2, 8, 1);
FIELD_AT(Control, go, 9, 1);
FIELD_AT(Control, stop, 10, 1);
FIELD_AT(Control, stride, 11, 1);
FIELD_AT(Control, partials, 12, 1);
FIELD_AT(Control, losses, 13, 1);
FIELD_AT(Control, grads, 14, 1);
FIELD_AT(Control, task, 15, 1);
FIELD_AT(Control, patience, 16, 1);

_Static_assert(sizeof(Op) == 108, "sizeof(Op) is 108 bytes");
FIELD_AT(Op, type, 0, 1);
FIELD_AT(Op, activation, 1, 1);
FIELD_AT(Op, inH, 2, 1);
FIELD_AT(Op, inW, 3, 1);
FIELD_AT(Op, inC, 4, 1);
FIELD_AT(Op, outH, 5, 1);
FIELD_AT(Op, outW, 6, 1);
FIELD_AT(Op, outC, 7, 1);
FIELD_AT(Op, kh, 8, 1);
FIELD_AT(Op, kw, 9, 1);
FIELD_AT(Op, sh, 10, 1);
FIELD_AT(Op, sw, 11, 1);
FIELD_AT(Op, padT, 12, 1);
FIELD_AT(Op, padL, 13, 1);
FIELD_AT(Op, weight, 14, 1);
FIELD_AT(Op, bias, 15, 1);
FIELD_AT(Op, hasWeight, 16, 1);
FIELD_AT(Op, hasBias, 17, 1);
FIELD_AT(Op, state, 18, 1);
FIELD_AT(Op, momentum, 19, 1);
FIELD_AT(Op, epsilon, 20, 1);
FIELD_AT(Op, rate, 21, 1);
FIELD_AT(Op, output, 22, 1);
FIELD_AT(Op, aux, 23, 1);
FIELD_AT(Op, stats, 24, 1);
FIELD_AT(Op, scratch, 25, 1);
FIELD_AT(Op, winograd, 26, 1);

// The exports (and __heap_base and __stack_pointer: the host gives each worker thread's instance
// its own stack). step trains one step on `rows` rows of Net.x and returns the batch's KD loss
// (without the teacher-only constant); Adam's bias corrections are folded into rate and epsilon
// by the host. predict runs the student on `rows` rows of Net.x in inference mode and returns the
// address of its logits ([rows, classes]); it changes no weight or statistic.
float step(const Net *s, const Op *ops, u32 rows, float rate, float epsilon, float beta1, float beta2);
const float *predict(const Net *s, const Op *ops, u32 rows);
// prepare_inference readies a kernel made for inference (its weights written, never changed) for
// predict: it transforms the kernels of F(4x4, 3x3) convolutions once (winograd_4x4.c).
void prepare_inference(const Net *s, const Op *ops);
// step_thread is thread `thread`'s part of a data-parallel step over Control.rows rows (the host
// starts the others and runs thread 0's): forward and backward on its rows, with BATCH_NORM's
// statistics and sums reduced across threads, then the summed gradients and Adam on its slice
// of the weights. Thread 0's call returns the batch's loss once every thread is done.
float step_thread(const Net *s, const Op *ops, Control *c, u32 thread);

#endif
