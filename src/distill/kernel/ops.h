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

// gemm.c: out[M x N] (row stride os) += A . B, A[r][i] = a[r * ar + i * ai], B[i][c] = b[i * bs + c].
void gemm(float *out, u32 os, const float *a, u32 ar, u32 ai, const float *b, u32 bs, u32 M, u32 N, u32 K);

// conv.c: CONV, a convolution (im2col, gemm, col2im); a Dense layer is a 1x1 one of a 1x1 image.
void convForward(const Op *op, const float *params, const float *in, u32 rows);
void convBackward(const Op *op, const float *params, float *grads, const float *in, const float *dOut, float *dIn, u32 rows);

// winograd.c: CONV by Winograd F(2x2, 3x3), where Op.winograd says so (conv.c hands over).
void winogradForward(const Op *op, const float *params, const float *in, u32 rows);
void winogradBackward(const Op *op, float *grads, const float *dOut, float *dIn, u32 rows);

// depthwise.c: DEPTHWISE.
void depthwiseForward(const Op *op, const float *params, const float *in, u32 rows);
void depthwiseBackward(const Op *op, const float *params, float *grads, const float *in, const float *dOut, float *dIn, u32 rows);

// pool.c: MAX_POOL and AVG_POOL; GLOBAL_MAX and GLOBAL_AVG.
void poolForward(const Op *op, const float *in, u32 rows);
void poolBackward(const Op *op, const float *dOut, float *dIn, u32 rows);
void globalPoolForward(const Op *op, const float *in, u32 rows);
void globalPoolBackward(const Op *op, const float *dOut, float *dIn, u32 rows);

// dropout.c: DROPOUT, its mask drawn from (seed, the op's index, the element).
void dropoutForward(const Op *op, u32 index, u32 seed, const float *in, u32 rows);
void dropoutBackward(const Op *op, const float *dOut, float *dIn, u32 rows);

// norm.c: BATCH_NORM (batch statistics per channel) and LAYER_NORM (per position).
void batchNormForward(const Op *op, float *params, const float *in, u32 rows);
void batchNormInfer(const Op *op, const float *params, const float *in, u32 rows);
void batchNormBackward(const Op *op, const float *params, float *grads, const float *dOut, float *dIn, u32 rows);
void layerNormForward(const Op *op, const float *params, const float *in, u32 rows);
void layerNormBackward(const Op *op, const float *params, float *grads, const float *dOut, float *dIn, u32 rows);

// activation.c: ACTIVATION, an activation function on its own.
void activationForward(const Op *op, const float *in, u32 rows);
void activationBackward(const Op *op, float *dOut, float *dIn, u32 rows);

// kd_loss.c: the batch's KD loss (without the teacher-only constant); writes d loss / d logits into delta.
float kdLoss(const Net *s, const float *logits, u32 rows, u32 classes, float *delta);

// adam.c: one Adam update of the trainable params from grads.
void adamUpdate(const Net *s, float rate, float epsilon, float beta1, float beta2);

#endif
