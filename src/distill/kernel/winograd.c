// CONV by Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray 2015; as NNPACK and XNNPACK do),
// for 3x3 stride-1 convolutions the host marks with Op.winograd. Each 2x2 block of output pixels
// (a tile) comes from the 4x4 input pixels under it: Y = A^T [(G g G^T) . (B^T d B)] A, with .
// elementwise over the 16 positions of the transformed tile. Summed over input channels, the
// elementwise stage is 16 matrix products [tiles, inC] x [inC, outC] (gemm.c): 16 multiplies
// per 4 outputs and channel pair where im2col's product has 36.
//
// Both backward passes are the adjoints of the same linear maps, and so also 16 products each:
// with dM = A dY A^T per tile, the weight gradient is G^T (sum over tiles of V^T dM) G, V = B^T d
// B being the input tiles the forward pass kept in Op.aux; the input gradient adds B (dM U^T)
// B^T, U = G g G^T, back into the 4x4 input pixels of each tile (tiles overlap by 2 pixels).
//
// Error: every transform's coefficients are 0, +-1 and +-1/2, so each transformed value is a sum
// of at most 9 inputs (U: |U| <= 2.25 max|g|; V: |V| <= 4 max|d|) and the output transform adds
// at most 9 products per channel. Against a direct sum the rounding error grows by a small
// constant factor, a few float ulps (~1e-7) per term times the sum of |terms|: relative errors of
// ~1e-6 where outputs do not cancel, which the kernel tests' tolerance covers (see
// test/distill/winograd.test.ts).
//
// The weight gradient stays in the Winograd domain, by measurement: on the 26x26x16 -> 32 and
// 16x16x16 -> 32 layers of bench:conv it costs 2 ms where im2col's patches^T . dOut costs 7 and
// 6 ms at batch 64, and im2col's would need the patch matrix gathered in the forward pass too.
//
// Tiles are processed WINOGRAD_CHUNK at a time so that a chunk's transformed tiles and products
// stay in cache. A tile's 16 transformed values are stored together ([tiles, 16, channels]; the
// products read them by row stride): 16 store streams a power of two apart would thrash L1.
// Op.aux keeps the batch's V [tiles, 16, inC] for the weight gradient. Op.scratch holds U
// [16, inC, outC], U transposed [16, outC, inC], the weight gradient in the transformed domain
// [16, inC, outC], a chunk's products or output gradients [chunk, 16, outC], and a chunk's
// input-tile gradients [chunk, 16, inC]; the host sizes both (opBuffers in kernel-memory.ts).

#include <wasm_simd128.h>

#include "activation.h"
#include "ops.h"
#include "vector.h"
#include "winograd.h"

typedef v128_t V4;
#define ADD wasm_f32x4_add
#define SUB wasm_f32x4_sub

static inline V4 half(V4 v) { return wasm_f32x4_mul(v, wasm_f32x4_splat(0.5f)); }

// U = G g G^T for every (input, output) channel pair, from the kernel [3, 3, inC, outC].
static void kernelTransform(const Op *op, const float *w, float *u) {
  const Op L = *op;
  const u32 C = L.inC, N = L.outC;
  for (u32 ci = 0; ci < C; ci++)
    for (u32 co = 0; co < N; co += 4) {
      const u32 n = N - co;
      V4 g[9], t[12];
      for (int k = 0; k < 9; k++) g[k] = load4(w + (k * C + ci) * N + co, n);
      for (int j = 0; j < 3; j++) {
        t[j] = g[j];
        t[3 + j] = half(ADD(ADD(g[j], g[3 + j]), g[6 + j]));
        t[6 + j] = half(ADD(SUB(g[j], g[3 + j]), g[6 + j]));
        t[9 + j] = g[6 + j];
      }
      for (int i = 0; i < 4; i++) {
        const V4 *r = t + 3 * i;
        const V4 row[4] = {r[0], half(ADD(ADD(r[0], r[1]), r[2])), half(ADD(SUB(r[0], r[1]), r[2])), r[2]};
        for (int j = 0; j < 4; j++) store4(u + ((i * 4 + j) * C + ci) * N + co, row[j], n);
      }
    }
}

// V = B^T d B for tiles [p0, p0 + count), into v as [count, 16, inC].
static void inputTransform(const Op *op, const float *in, u32 p0, u32 count, float *v) {
  const Op L = *op;
  const u32 C = L.inC;
  for (u32 t = 0; t < count; t++) {
    const Tile tile = tileAt(&L, p0 + t, 2);
    float *at[16];
    tileInputs(&L, (float *)in + tile.image * inSize(&L), tile, 2, at);
    for (u32 c = 0; c < C; c += 4) {
      const u32 n = C - c;
      V4 d[16], m[16];
      for (int k = 0; k < 16; k++) d[k] = at[k] ? load4(at[k] + c, n) : wasm_f32x4_splat(0.0f);
      for (int j = 0; j < 4; j++) {
        m[j] = SUB(d[j], d[8 + j]);
        m[4 + j] = ADD(d[4 + j], d[8 + j]);
        m[8 + j] = SUB(d[8 + j], d[4 + j]);
        m[12 + j] = SUB(d[4 + j], d[12 + j]);
      }
      for (int i = 0; i < 4; i++) {
        const V4 *r = m + 4 * i;
        const V4 row[4] = {SUB(r[0], r[2]), ADD(r[1], r[2]), SUB(r[2], r[1]), SUB(r[1], r[3])};
        for (int j = 0; j < 4; j++) store4(v + (t * 16 + i * 4 + j) * C + c, row[j], n);
      }
    }
  }
}

// Y = A^T M A plus the bias, for tiles [p0, p0 + count) from m [count, 16, outC]; output pixels
// past the edge are dropped.
static void outputTransform(const Op *op, const float *bias, const float *m, u32 p0, u32 count) {
  const Op L = *op;
  const u32 N = L.outC;
  for (u32 t = 0; t < count; t++) {
    const Tile tile = tileAt(&L, p0 + t, 2);
    float *y = L.output + tile.image * outSize(&L) + (tile.oy * L.outW + tile.ox) * N;
    const int down = tile.oy + 1 < L.outH, right = tile.ox + 1 < L.outW;
    for (u32 co = 0; co < N; co += 4) {
      const u32 n = N - co;
      V4 s[8];
      const V4 b = bias ? load4(bias + co, n) : wasm_f32x4_splat(0.0f);
      for (int j = 0; j < 4; j++) {
        const float *mt = m + t * 16 * N + co;
        const V4 m0 = load4(mt + j * N, n), m1 = load4(mt + (4 + j) * N, n);
        const V4 m2 = load4(mt + (8 + j) * N, n), m3 = load4(mt + (12 + j) * N, n);
        s[j] = ADD(ADD(m0, m1), m2);
        s[4 + j] = SUB(SUB(m1, m2), m3);
      }
      for (int i = 0; i < 2; i++) {
        if (i == 1 && !down) break;
        const V4 *r = s + 4 * i;
        float *row = y + i * L.outW * N + co;
        store4(row, ADD(b, ADD(ADD(r[0], r[1]), r[2])), n);
        if (right) store4(row + N, ADD(b, SUB(SUB(r[1], r[2]), r[3])), n);
      }
    }
  }
}

// dM = A dY A^T for tiles [p0, p0 + count), into dm [count, 16, outC]; output pixels past the
// edge have no gradient.
static void outputGradientTransform(const Op *op, const float *dOut, float *dm, u32 p0, u32 count) {
  const Op L = *op;
  const u32 N = L.outC;
  for (u32 t = 0; t < count; t++) {
    const Tile tile = tileAt(&L, p0 + t, 2);
    const float *y = dOut + tile.image * outSize(&L) + (tile.oy * L.outW + tile.ox) * N;
    const int down = tile.oy + 1 < L.outH, right = tile.ox + 1 < L.outW;
    for (u32 co = 0; co < N; co += 4) {
      const u32 n = N - co;
      const V4 zeros = wasm_f32x4_splat(0.0f);
      const V4 y00 = load4(y + co, n), y01 = right ? load4(y + N + co, n) : zeros;
      const V4 y10 = down ? load4(y + L.outW * N + co, n) : zeros;
      const V4 y11 = down && right ? load4(y + (L.outW + 1) * N + co, n) : zeros;
      const V4 e[8] = {y00, y01, ADD(y00, y10), ADD(y01, y11), SUB(y00, y10), SUB(y01, y11), SUB(zeros, y10), SUB(zeros, y11)};
      for (int i = 0; i < 4; i++) {
        const V4 e0 = e[2 * i], e1 = e[2 * i + 1];
        const V4 row[4] = {e0, ADD(e0, e1), SUB(e0, e1), SUB(zeros, e1)};
        for (int j = 0; j < 4; j++) store4(dm + (t * 16 + i * 4 + j) * N + co, row[j], n);
      }
    }
  }
}

// dd = B dV B^T added into dIn's 4x4 input pixels under each tile, from dv [count, 16, inC].
static void inputGradientTransform(const Op *op, const float *dv, float *dIn, u32 p0, u32 count) {
  const Op L = *op;
  const u32 C = L.inC;
  for (u32 t = 0; t < count; t++) {
    const Tile tile = tileAt(&L, p0 + t, 2);
    float *at[16];
    tileInputs(&L, dIn + tile.image * inSize(&L), tile, 2, at);
    for (u32 c = 0; c < C; c += 4) {
      const u32 n = C - c;
      V4 g[16], f[16];
      for (int k = 0; k < 16; k++) g[k] = load4(dv + (t * 16 + k) * C + c, n);
      for (int j = 0; j < 4; j++) {
        f[j] = g[j];
        f[4 + j] = ADD(SUB(g[4 + j], g[8 + j]), g[12 + j]);
        f[8 + j] = SUB(ADD(g[4 + j], g[8 + j]), g[j]);
        f[12 + j] = SUB(wasm_f32x4_splat(0.0f), g[12 + j]);
      }
      for (int i = 0; i < 4; i++) {
        const V4 *r = f + 4 * i;
        const V4 row[4] = {r[0], ADD(SUB(r[1], r[2]), r[3]), SUB(ADD(r[1], r[2]), r[0]), SUB(wasm_f32x4_splat(0.0f), r[3])};
        for (int j = 0; j < 4; j++) {
          float *p = at[i * 4 + j];
          if (p) store4(p + c, ADD(load4(p + c, n), row[j]), n);
        }
      }
    }
  }
}

// The weight gradient G^T dU G, written into gw [3, 3, inC, outC] from du [16, inC, outC].
static void weightGradientTransform(const Op *op, const float *du, float *gw) {
  const Op L = *op;
  const u32 C = L.inC, N = L.outC;
  for (u32 ci = 0; ci < C; ci++)
    for (u32 co = 0; co < N; co += 4) {
      const u32 n = N - co;
      V4 u[16], h[12];
      for (int k = 0; k < 16; k++) u[k] = load4(du + (k * C + ci) * N + co, n);
      for (int j = 0; j < 4; j++) {
        const V4 sum = half(ADD(u[4 + j], u[8 + j]));
        h[j] = ADD(u[j], sum);
        h[4 + j] = half(SUB(u[4 + j], u[8 + j]));
        h[8 + j] = ADD(sum, u[12 + j]);
      }
      for (int i = 0; i < 3; i++) {
        const V4 *r = h + 4 * i, sum = half(ADD(r[1], r[2]));
        const V4 row[3] = {ADD(r[0], sum), half(SUB(r[1], r[2])), ADD(sum, r[3])};
        for (int j = 0; j < 3; j++) store4(gw + ((i * 3 + j) * C + ci) * N + co, row[j], n);
      }
    }
}

static inline u32 tileCount(const Op *op, u32 rows) { return rows * ((op->outH + 1) / 2) * ((op->outW + 1) / 2); }

void winogradForward(const Op *op, const float *params, const float *in, u32 rows) {
  const Op L = *op;
  const u32 C = L.inC, N = L.outC, total = tileCount(&L, rows);
  float *u = L.scratch, *m = L.scratch + 3 * 16 * C * N;
  kernelTransform(op, params + L.weight, u);
  for (u32 p0 = 0; p0 < total; p0 += WINOGRAD_CHUNK) {
    const u32 count = total - p0 < WINOGRAD_CHUNK ? total - p0 : WINOGRAD_CHUNK;
    float *v = L.aux + p0 * 16 * C;
    inputTransform(op, in, p0, count, v);
    for (u32 k = 0; k < 16; k++) gemmSet(m + k * N, 16 * N, v + k * C, 16 * C, 1, u + k * C * N, N, count, N, C, 0);
    outputTransform(op, L.hasBias ? params + L.bias : 0, m, p0, count);
  }
  activateAll(L.output, rows * outSize(&L), L.activation);
}

// dOut is d loss / d pre-activation; the forward pass left U in Op.scratch and V in Op.aux.
void winogradBackward(const Op *op, float *grads, const float *dOut, float *dIn, u32 rows) {
  const Op L = *op;
  const u32 C = L.inC, N = L.outC, total = tileCount(&L, rows);
  float *u = L.scratch, *ut = u + 16 * C * N, *du = ut + 16 * C * N, *dm = du + 16 * C * N;
  float *dv = dm + 16 * WINOGRAD_CHUNK * N;
  if (L.hasBias) {
    zero(grads + L.bias, N);
    addChannels(grads + L.bias, dOut, rows * L.outH * L.outW, N);
  }
  zero(du, 16 * C * N);
  if (dIn) {
    zero(dIn, rows * inSize(&L));
    for (u32 k = 0; k < 16; k++)
      for (u32 ci = 0; ci < C; ci++)
        for (u32 co = 0; co < N; co++) ut[(k * N + co) * C + ci] = u[(k * C + ci) * N + co];
  }
  for (u32 p0 = 0; p0 < total; p0 += WINOGRAD_CHUNK) {
    const u32 count = total - p0 < WINOGRAD_CHUNK ? total - p0 : WINOGRAD_CHUNK;
    const float *v = L.aux + p0 * 16 * C;
    outputGradientTransform(op, dOut, dm, p0, count);
    for (u32 k = 0; k < 16; k++) gemm(du + k * C * N, N, v + k * C, 1, 16 * C, dm + k * N, 16 * N, C, N, count);
    if (!dIn) continue;
    for (u32 k = 0; k < 16; k++) gemmSet(dv + k * C, 16 * C, dm + k * N, 16 * N, 1, ut + k * N * C, C, count, C, N, 0);
    inputGradientTransform(op, dv, dIn, p0, count);
  }
  weightGradientTransform(op, du, grads + L.weight);
}
