// The op families' entry points, one family per file, called by the step driver (step.c).
//
// Forward functions read `in` ([rows, inH * inW * inC]) and write Op.output. Backward functions
// take dOut, d loss / d the op's output (which they may overwrite), and write d loss / d input
// into dIn, or skip it where dIn is 0 (the first op: nobody needs its input gradient; the step
// driver calls no pool or dropout backward there). Those with weights write their gradients into
// grads at Op.weight and Op.bias.
//
// Functions start with `const Op L = *op`: stores through the activation pointers could alias
// the struct, and the compiler would reload every field in every inner loop.
#ifndef OPS_H
#define OPS_H

#include "net_kd.h"

// One thread's view of a data-parallel step (step_thread in step.c; parallel.c): its control
// block, its index, its first row in the batch and the batch's rows. The single-threaded step
// passes 0 where a function takes a Team.
typedef struct {
  Control *control;
  u32 thread;
  u32 firstRow;
  u32 totalRows;
  u32 reductions;  // teamSum calls so far this step: they use partials' two halves in turn
} Team;

// parallel.c: a barrier of every thread; values[0..n) replaced by their sum over the threads, in
// thread order 0..T-1, so that every thread gets the same bits (n at most Control.stride); the
// threads' gradients summed in thread order into thread 0's, and Adam, over this thread's slice.
void teamBarrier(Control *c);
void teamSum(Team *team, float *values, u32 n);
void teamAdam(const Net *s, Team *team);

// gemm.c: out[M x N] (row stride os) += A . B, A[r][i] = a[r * ar + i * ai], B[i][c] = b[i * bs + c].
void gemm(float *out, u32 os, const float *a, u32 ar, u32 ai, const float *b, u32 bs, u32 M, u32 N, u32 K);
// gemm.c: out = bias + A . B, the bias [N] in every row (zeros where bias is 0), without reading out.
void gemmSet(float *out, u32 os, const float *a, u32 ar, u32 ai, const float *b, u32 bs, u32 M, u32 N, u32 K, const float *bias);

// conv.c: CONV, a convolution (im2col, gemm, col2im); a Dense layer is a 1x1 one of a 1x1 image.
void convForward(const Op *op, const float *params, const float *in, u32 rows);
void convBackward(const Op *op, const float *params, float *grads, const float *in, const float *dOut, float *dIn, u32 rows);

// winograd.c: CONV by Winograd F(2x2, 3x3), where Op.winograd is 2 (conv.c hands over).
void winogradForward(const Op *op, const float *params, const float *in, u32 rows);
void winogradBackward(const Op *op, float *grads, const float *dOut, float *dIn, u32 rows);

// winograd_4x4.c: CONV by Winograd F(4x4, 3x3), inference only, where Op.winograd is 4.
void winograd4Forward(const Op *op, const float *params, const float *in, u32 rows);

// depthwise.c: DEPTHWISE.
void depthwiseForward(const Op *op, const float *params, const float *in, u32 rows);
void depthwiseBackward(const Op *op, const float *params, float *grads, const float *in, const float *dOut, float *dIn, u32 rows);

// pool.c: MAX_POOL and AVG_POOL; GLOBAL_MAX and GLOBAL_AVG.
// keep: 1 where a backward pass follows (a max pool keeps its argmax), 0 in inference.
void poolForward(const Op *op, const float *in, u32 rows, int keep);
void poolBackward(const Op *op, const float *dOut, float *dIn, u32 rows);
void globalPoolForward(const Op *op, const float *in, u32 rows);
void globalPoolBackward(const Op *op, const float *dOut, float *dIn, u32 rows);

// dropout.c: DROPOUT, its mask drawn from (seed, the op's index, the element's index in the
// batch); `first` is the index of in[0] (a thread's first row times the row's size).
void dropoutForward(const Op *op, u32 index, u32 seed, const float *in, u32 rows, u32 first);
void dropoutBackward(const Op *op, const float *dOut, float *dIn, u32 rows);

// norm.c: BATCH_NORM (batch statistics per channel, over every thread's rows where team is not
// 0) and LAYER_NORM (per position).
void batchNormForward(const Op *op, float *params, const float *in, u32 rows, Team *team);
void batchNormInfer(const Op *op, const float *params, const float *in, u32 rows);
void batchNormBackward(const Op *op, const float *params, float *grads, const float *dOut, float *dIn, u32 rows, Team *team);
void layerNormForward(const Op *op, const float *params, const float *in, u32 rows);
void layerNormBackward(const Op *op, const float *params, float *grads, const float *dOut, float *dIn, u32 rows);

// activation.c: ACTIVATION, an activation function on its own.
void activationForward(const Op *op, const float *in, u32 rows);
void activationBackward(const Op *op, float *dOut, float *dIn, u32 rows);

// kd_loss.c: the KD loss of `rows` rows summed (without the teacher-only constant; the caller
// divides by the batch's rows); writes d loss / d logits, for a batch of totalRows rows, into delta.
double kdLoss(const Net *s, const float *logits, u32 rows, u32 classes, float *delta, u32 totalRows);

// adam.c: one Adam update of the trainable params from grads.
void adamUpdate(const Net *s, float rate, float epsilon, float beta1, float beta2);
// adam.c: the same over trainable params [from, to) only.
void adamSpan(const Net *s, u32 from, u32 to, float rate, float epsilon, float beta1, float beta2);

#endif
