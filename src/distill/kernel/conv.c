// CONV: a convolution, and a Dense layer (a 1x1 convolution of a 1x1 image). Every pass is one
// matrix product (gemm.c): forward, patches . W; weight gradient, patches^T . dOut; input
// gradient, dOut . W^T added back into the input pixels each window covered (col2im). The
// patches a convolution sees are gathered once per step, in the forward pass (im2col), and kept
// in Op.aux for the weight gradient. A 3x3 stride-1 convolution with enough input channels runs
// as Winograd F(2x2, 3x3) instead (winograd.c), or in inference F(4x4, 3x3) (winograd_4x4.c),
// where the host sets Op.winograd.

#include "activation.h"
#include "ops.h"
#include "vector.h"

// Output pixels per chunk of a weight gradient.
#define WEIGHT_CHUNK 128

static inline int isPointwise(const Op *op) {
  return op->kh == 1 && op->kw == 1 && op->sh == 1 && op->sw == 1 && op->padT == 0 && op->padL == 0;
}

// The input pixels output pixel (oy, ox) sees, [kh, kw, inC] as the kernel is laid out; zeros
// where the window hangs over the padding. A window row inside the input is one contiguous span.
static void gatherPatch(const Op *op, const float *x, u32 oy, u32 ox, float *patch) {
  const Op L = *op;
  const u32 c = L.inC, span = L.kw * c;
  const int ix0 = (int)(ox * L.sw) - (int)L.padL;
  const int inside = ix0 >= 0 && ix0 + (int)L.kw <= (int)L.inW;
  for (u32 ky = 0; ky < L.kh; ky++, patch += span) {
    const int iy = (int)(oy * L.sh + ky) - (int)L.padT;
    if (iy < 0 || iy >= (int)L.inH) {
      zero(patch, span);
    } else if (inside) {
      copy(patch, x + ((u32)iy * L.inW + (u32)ix0) * c, span);
    } else {
      for (u32 kx = 0; kx < L.kw; kx++) {
        const int ix = ix0 + (int)kx;
        if (ix < 0 || ix >= (int)L.inW) zero(patch + kx * c, c);
        else copy(patch + kx * c, x + ((u32)iy * L.inW + (u32)ix) * c, c);
      }
    }
  }
}

// The window's input pixels back: adds a patch [kh, kw, inC] into dx at output pixel (oy, ox),
// skipping what fell on the padding. gatherPatch's inverse (col2im).
static void scatterPatch(const Op *op, float *dx, u32 oy, u32 ox, const float *patch) {
  const Op L = *op;
  const u32 c = L.inC, span = L.kw * c;
  const int ix0 = (int)(ox * L.sw) - (int)L.padL;
  const int inside = ix0 >= 0 && ix0 + (int)L.kw <= (int)L.inW;
  for (u32 ky = 0; ky < L.kh; ky++, patch += span) {
    const int iy = (int)(oy * L.sh + ky) - (int)L.padT;
    if (iy < 0 || iy >= (int)L.inH) continue;
    if (inside) {
      addSpan(dx + ((u32)iy * L.inW + (u32)ix0) * c, patch, span);
      continue;
    }
    for (u32 kx = 0; kx < L.kw; kx++) {
      const int ix = ix0 + (int)kx;
      if (ix >= 0 && ix < (int)L.inW) addSpan(dx + ((u32)iy * L.inW + (u32)ix) * c, patch + kx * c, c);
    }
  }
}

// The batch's patch matrix [rows * outH * outW, kh * kw * inC] is gathered once, in the forward
// pass, and kept for the weight gradient. A pointwise convolution (and a Dense layer) reads its
// input as it is.
void convForward(const Op *op, const float *params, const float *in, u32 rows) {
  if (op->winograd == 4) {
    winograd4Forward(op, params, in, rows);
    return;
  }
  if (op->winograd) {
    winogradForward(op, params, in, rows);
    return;
  }
  const Op L = *op;
  const u32 K = L.kh * L.kw * L.inC, N = L.outC;
  const u32 pixels = L.outH * L.outW, total = rows * pixels;
  const float *a = in;
  if (!isPointwise(&L)) {
    for (u32 p = 0; p < total; p++) gatherPatch(&L, in + (p / pixels) * inSize(&L), (p % pixels) / L.outW, p % L.outW, L.aux + p * K);
    a = L.aux;
  }
  gemmSet(L.output, N, a, K, 1, params + L.weight, N, total, N, K, L.hasBias ? params + L.bias : 0);
  activateAll(L.output, rows * outSize(&L), L.activation);
}

// dOut is d loss / d pre-activation. Weight gradient: patches^T . dOut. Input gradient, a tile
// of output pixels at a time: their patches' gradients dOut . W^T, added back into the input
// pixels each window covered.
void convBackward(const Op *op, const float *params, float *grads, const float *in, const float *dOut, float *dIn, u32 rows) {
  // F(4x4, 3x3) is planned for inference only: a backward pass through it is a host bug.
  if (op->winograd == 4) __builtin_trap();
  if (op->winograd) {
    winogradBackward(op, grads, dOut, dIn, rows);
    return;
  }
  const Op L = *op;
  const u32 K = L.kh * L.kw * L.inC, N = L.outC;
  const u32 pixels = L.outH * L.outW, total = rows * pixels;
  const int pointwise = isPointwise(&L);
  float *gw = grads + L.weight;
  zero(gw, K * N);
  if (L.hasBias) {
    zero(grads + L.bias, N);
    addChannels(grads + L.bias, dOut, total, N);
  }
  // Over chunks of pixels, so that a chunk's patches stay in cache while every row of the weight
  // gradient is accumulated over them.
  const float *patches = pointwise ? in : L.aux;
  for (u32 p0 = 0; p0 < total; p0 += WEIGHT_CHUNK) {
    const u32 count = total - p0 < WEIGHT_CHUNK ? total - p0 : WEIGHT_CHUNK;
    gemm(gw, N, patches + p0 * K, 1, K, dOut + p0 * N, N, K, N, count);
  }
  if (!dIn) return;

  // The kernel transposed: wt[j][k] = w[k][j].
  const float *w = params + L.weight;
  float *wt = L.scratch, *patchGradients = L.scratch + K * N;
  for (u32 k = 0; k < K; k++)
    for (u32 j = 0; j < N; j++) wt[j * K + k] = w[k * N + j];
  if (pointwise) {
    gemmSet(dIn, K, dOut, N, 1, wt, K, total, K, N, 0);
    return;
  }
  zero(dIn, rows * inSize(&L));
  for (u32 p0 = 0; p0 < total; p0 += TILE) {
    const u32 count = total - p0 < TILE ? total - p0 : TILE;
    gemmSet(patchGradients, K, dOut + p0 * N, N, 1, wt, K, count, K, N, 0);
    for (u32 t = 0; t < count; t++) {
      const u32 p = p0 + t, q = p % pixels;
      scatterPatch(&L, dIn + (p / pixels) * inSize(&L), q / L.outW, q % L.outW, patchGradients + t * K);
    }
  }
}
