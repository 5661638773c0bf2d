// CONV by Winograd's F(4x4, 3x3) (Lavin & Gray 2015, the interpolation points 0, +-1, +-2 and
// infinity, as NNPACK's and ncnn's), for inference only: the passes of a teacher the kernel runs
// (kernel-teacher.ts), where the host marks a 3x3 stride-1 convolution with Op.winograd = 4. Each
// 4x4 block of output pixels comes from the 6x6 input pixels under it; summed over input
// channels, the elementwise stage is 36 matrix products [tiles, inC] x [inC, outC] (gemm.c): 36
// multiplies per 16 outputs and channel pair, against F(2x2, 3x3)'s 64 and direct's 144.
//
// Training keeps F(2x2, 3x3) (winograd.c): this transform's larger coefficients (up to 5 in B, 8
// in A, 1/24 in G) grow the rounding error several times over F(2x2)'s (measured: 1.5e-6 to
// 4.5e-6 of the largest output against ~1e-6, test/distill/winograd.test.ts), which a teacher's
// logits, checked against TF.js's own to 1e-3 of their size before use, afford, and which
// gradients summed over thousands of steps would carry.
//
// Tiles go WINOGRAD4_CHUNK at a time: a chunk's transformed tiles [chunk, 36, inC] and products
// [chunk, 36, outC] stay in cache; Op.aux is not used (no backward pass needs the tiles). Op.scratch
// holds U [36, inC, outC], then the chunk's tiles and products (kernel-memory.ts sizes it). U is
// made once, by prepare_inference, when the host has written the weights: an inference kernel's
// weights never change, and a teacher's pass calls predict on a few cache-sized rows at a time,
// where transforming the kernel on every call cost 17% of the pass (bench:conv's case c).

#include <wasm_simd128.h>

#include "activation.h"
#include "ops.h"
#include "vector.h"
#include "winograd.h"

typedef v128_t V4;
#define ADD wasm_f32x4_add
#define SUB wasm_f32x4_sub
#define SPLAT wasm_f32x4_splat

static inline V4 times(V4 v, float k) { return wasm_f32x4_mul(v, SPLAT(k)); }

// B^T d for one column d[0..5] of a tile, in place into r[0..5].
static inline __attribute__((always_inline)) void inputColumn(const V4 d[6], V4 r[6]) {
  const V4 t1 = SUB(d[4], times(d[2], 4.0f)), t2 = SUB(d[3], times(d[1], 4.0f));
  const V4 t3 = SUB(d[4], d[2]), t4 = times(SUB(d[3], d[1]), 2.0f);
  r[0] = ADD(SUB(times(d[0], 4.0f), times(d[2], 5.0f)), d[4]);
  r[1] = ADD(t1, t2);
  r[2] = SUB(t1, t2);
  r[3] = ADD(t3, t4);
  r[4] = SUB(t3, t4);
  r[5] = ADD(SUB(times(d[1], 4.0f), times(d[3], 5.0f)), d[5]);
}

// A^T m for one column m[0..5], into o[0..3].
static inline __attribute__((always_inline)) void outputColumn(const V4 m[6], V4 o[4]) {
  const V4 a = ADD(m[1], m[2]), b = SUB(m[1], m[2]), c = ADD(m[3], m[4]), d = SUB(m[3], m[4]);
  o[0] = ADD(ADD(m[0], a), c);
  o[1] = ADD(b, times(d, 2.0f));
  o[2] = ADD(a, times(c, 4.0f));
  o[3] = ADD(ADD(b, times(d, 8.0f)), m[5]);
}

// G g for one column g[0..2], into r[0..5].
static inline __attribute__((always_inline)) void kernelColumn(const V4 g[3], V4 r[6]) {
  const V4 outer = ADD(g[0], g[2]);
  r[0] = times(g[0], 0.25f);
  r[1] = times(ADD(outer, g[1]), -1.0f / 6.0f);
  r[2] = times(SUB(outer, g[1]), -1.0f / 6.0f);
  const V4 even = ADD(times(g[0], 1.0f / 24.0f), times(g[2], 1.0f / 6.0f)), odd = times(g[1], 1.0f / 12.0f);
  r[3] = ADD(even, odd);
  r[4] = SUB(even, odd);
  r[5] = g[2];
}

// U = G g G^T for every (input, output) channel pair, [36, inC, outC], from the kernel [3, 3, inC, outC].
static void kernelTransform(const Op *op, const float *w, float *u) {
  const u32 C = op->inC, N = op->outC;
  for (u32 ci = 0; ci < C; ci++)
    for (u32 co = 0; co < N; co += 4) {
      const u32 n = N - co;
      V4 g[9], t[18];
      for (int k = 0; k < 9; k++) g[k] = load4(w + (k * C + ci) * N + co, n);
      // Columns first: t[i * 3 + j] = (G g)[i][j].
      for (int j = 0; j < 3; j++) {
        const V4 column[3] = {g[j], g[3 + j], g[6 + j]};
        V4 r[6];
        kernelColumn(column, r);
        for (int i = 0; i < 6; i++) t[i * 3 + j] = r[i];
      }
      for (int i = 0; i < 6; i++) {
        V4 r[6];
        kernelColumn(t + 3 * i, r);
        for (int j = 0; j < 6; j++) store4(u + ((i * 6 + j) * C + ci) * N + co, r[j], n);
      }
    }
}

// V = B^T d B for tiles [p0, p0 + count), into v [count, 36, inC]; pixels on the padding or past
// the edge read as 0.
static void inputTransform(const Op *op, const float *in, u32 p0, u32 count, float *v) {
  const Op L = *op;
  const u32 C = L.inC;
  for (u32 t = 0; t < count; t++) {
    const Tile tile = tileAt(&L, p0 + t, 4);
    float *at[36];
    tileInputs(&L, (float *)in + tile.image * inSize(&L), tile, 4, at);
    for (u32 c = 0; c < C; c += 4) {
      const u32 n = C - c;
      V4 m[36];
      // Columns: m[i * 6 + j] = (B^T d)[i][j].
      for (int j = 0; j < 6; j++) {
        V4 d[6], r[6];
        for (int i = 0; i < 6; i++) d[i] = at[i * 6 + j] ? load4(at[i * 6 + j] + c, n) : SPLAT(0.0f);
        inputColumn(d, r);
        for (int i = 0; i < 6; i++) m[i * 6 + j] = r[i];
      }
      for (int i = 0; i < 6; i++) {
        V4 r[6];
        inputColumn(m + 6 * i, r);
        for (int j = 0; j < 6; j++) store4(v + (t * 36 + i * 6 + j) * C + c, r[j], n);
      }
    }
  }
}

// Y = A^T M A plus the bias, then the activation, for tiles [p0, p0 + count) from m [count, 36,
// outC]; output pixels past the edge are dropped.
static void outputTransform(const Op *op, const float *bias, const float *m, u32 p0, u32 count) {
  const Op L = *op;
  const u32 N = L.outC;
  for (u32 t = 0; t < count; t++) {
    const Tile tile = tileAt(&L, p0 + t, 4);
    float *y = L.output + tile.image * outSize(&L) + (tile.oy * L.outW + tile.ox) * N;
    const u32 down = L.outH - tile.oy < 4 ? L.outH - tile.oy : 4, right = L.outW - tile.ox < 4 ? L.outW - tile.ox : 4;
    for (u32 co = 0; co < N; co += 4) {
      const u32 n = N - co;
      const V4 b = bias ? load4(bias + co, n) : SPLAT(0.0f);
      const float *mt = m + t * 36 * N + co;
      V4 s[24];
      // Columns: s[i * 6 + j] = (A^T M)[i][j].
      for (int j = 0; j < 6; j++) {
        V4 column[6], o[4];
        for (int i = 0; i < 6; i++) column[i] = load4(mt + (i * 6 + j) * N, n);
        outputColumn(column, o);
        for (int i = 0; i < 4; i++) s[i * 6 + j] = o[i];
      }
      for (u32 i = 0; i < down; i++) {
        V4 o[4];
        outputColumn(s + 6 * i, o);
        float *row = y + i * L.outW * N + co;
        for (u32 j = 0; j < right; j++) {
          const V4 value = ADD(b, o[j]);
          store4(row + j * N, L.activation == RELU ? relu4(value) : value, n);
        }
      }
    }
  }
}

void winograd4Forward(const Op *op, const float *params, const float *in, u32 rows) {
  const Op L = *op;
  const u32 C = L.inC, N = L.outC;
  const u32 total = rows * ((L.outH + 3) / 4) * ((L.outW + 3) / 4);
  const float *u = L.scratch;
  float *v = L.scratch + 36 * C * N, *m = v + 36 * WINOGRAD4_CHUNK * C;
  for (u32 p0 = 0; p0 < total; p0 += WINOGRAD4_CHUNK) {
    const u32 count = total - p0 < WINOGRAD4_CHUNK ? total - p0 : WINOGRAD4_CHUNK;
    inputTransform(op, in, p0, count, v);
    for (u32 k = 0; k < 36; k++) gemmSet(m + k * N, 36 * N, v + k * C, 36 * C, 1, u + k * C * N, N, count, N, C, 0);
    outputTransform(op, L.hasBias ? params + L.bias : 0, m, p0, count);
  }
  // RELU was applied as the tiles were written; the others here.
  if (L.activation != RELU) activateAll(L.output, rows * outSize(&L), L.activation);
}

// After the host has written an inference kernel's weights: U for every F(4x4) convolution of
// this thread's ops, once.
__attribute__((export_name("prepare_inference")))
void prepare_inference(const Net *s, const Op *ops) {
  for (u32 l = 0; l < s->ops; l++)
    if (ops[l].type == CONV && ops[l].winograd == 4) kernelTransform(ops + l, s->params + ops[l].weight, ops[l].scratch);
}
