// Matrix products: every pass of a convolution, pointwise convolution or Dense layer is one
// (conv.c): forward, patches . W; weight gradient, patches^T . dOut; input gradient, dOut . W^T.
// A 4 x 8 register-blocked micro-kernel does the work, its multiply-adds MADD (vector.h).

#include <wasm_simd128.h>

#include "ops.h"
#include "vector.h"

// gemmSet's start without a bias: never read (the accumulators start from zero), only told apart.
static const float NO_BIAS[4] __attribute__((aligned(16)));

// A micro-kernel keeps an RB x (4 * NV) block of out in registers while it walks K: per step, NV
// loads of B are shared by RB rows. Always inlined with constant RB and NV, so the accumulators
// are registers, not memory. The accumulators start from out (gemm), or from `start` in every
// row, a bias or zeros (gemmSet): the same additions in the same order as copying it into out
// first, without the pass over out that would cost.
static inline __attribute__((always_inline)) void microKernel(const int RB, const int NV, float *out, u32 os, const float *a, u32 ar, u32 ai, const float *b, u32 bs, u32 K, const float *start) {
  v128_t acc[4][2];
  for (int r = 0; r < RB; r++)
    for (int v = 0; v < NV; v++)
      acc[r][v] = start == NO_BIAS ? wasm_f32x4_splat(0.0f) : wasm_v128_load(start ? start + 4 * v : out + r * os + 4 * v);
  for (u32 i = 0; i < K; i++) {
    v128_t row[2];
    for (int v = 0; v < NV; v++) row[v] = wasm_v128_load(b + i * bs + 4 * v);
    for (int r = 0; r < RB; r++) {
      const v128_t s = wasm_f32x4_splat(a[r * ar + i * ai]);
      for (int v = 0; v < NV; v++) acc[r][v] = MADD(acc[r][v], s, row[v]);
    }
  }
  for (int r = 0; r < RB; r++)
    for (int v = 0; v < NV; v++) wasm_v128_store(out + r * os + 4 * v, acc[r][v]);
}

// The last 1-3 columns (a Dense head of 10 classes has 2): one vector whose unused lanes load
// zeros and are never stored, so they cost what 4 columns do rather than a scalar loop over K each.
static inline __attribute__((always_inline)) void tailKernel(const int RB, float *out, u32 os, const float *a, u32 ar, u32 ai, const float *b, u32 bs, u32 K, const float *start, u32 n) {
  v128_t acc[4];
  for (int r = 0; r < RB; r++) acc[r] = start == NO_BIAS ? wasm_f32x4_splat(0.0f) : load4(start ? start : out + r * os, n);
  for (u32 i = 0; i < K; i++) {
    const v128_t row = load4(b + i * bs, n);
    for (int r = 0; r < RB; r++) acc[r] = MADD(acc[r], wasm_f32x4_splat(a[r * ar + i * ai]), row);
  }
  for (int r = 0; r < RB; r++) store4(out + r * os, acc[r], n);
}

// Where column c's accumulators start: out (0), no bias (NO_BIAS), or the bias from c on.
static inline const float *startAt(const float *start, u32 c) { return start == 0 || start == NO_BIAS ? start : start + c; }

static inline __attribute__((always_inline)) void rowBlock(const int RB, float *out, u32 os, const float *a, u32 ar, u32 ai, const float *b, u32 bs, u32 N, u32 K, const float *start) {
  u32 c = 0;
  for (; c + 8 <= N; c += 8) microKernel(RB, 2, out + c, os, a, ar, ai, b + c, bs, K, startAt(start, c));
  if (c + 4 <= N) { microKernel(RB, 1, out + c, os, a, ar, ai, b + c, bs, K, startAt(start, c)); c += 4; }
  if (c < N) tailKernel(RB, out + c, os, a, ar, ai, b + c, bs, K, startAt(start, c), N - c);
}

// A is read through strides (A[r][i] = a[r * ar + i * ai]) so that the same code multiplies by a
// transposed patch matrix.
static inline __attribute__((always_inline)) void product(float *out, u32 os, const float *a, u32 ar, u32 ai, const float *b, u32 bs, u32 M, u32 N, u32 K, const float *start) {
  u32 r = 0;
  for (; r + 4 <= M; r += 4) rowBlock(4, out + r * os, os, a + r * ar, ar, ai, b, bs, N, K, start);
  switch (M - r) {
    case 3: rowBlock(3, out + r * os, os, a + r * ar, ar, ai, b, bs, N, K, start); break;
    case 2: rowBlock(2, out + r * os, os, a + r * ar, ar, ai, b, bs, N, K, start); break;
    case 1: rowBlock(1, out + r * os, os, a + r * ar, ar, ai, b, bs, N, K, start); break;
  }
}

void gemm(float *out, u32 os, const float *a, u32 ar, u32 ai, const float *b, u32 bs, u32 M, u32 N, u32 K) {
  product(out, os, a, ar, ai, b, bs, M, N, K, 0);
}

void gemmSet(float *out, u32 os, const float *a, u32 ar, u32 ai, const float *b, u32 bs, u32 M, u32 N, u32 K, const float *bias) {
  product(out, os, a, ar, ai, b, bs, M, N, K, bias ? bias : NO_BIAS);
}
