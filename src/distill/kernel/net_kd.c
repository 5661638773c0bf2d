// One knowledge-distillation training step of a Sequential student, in one WebAssembly call:
// forward through every layer, the KD loss and its gradient from host-side targets, backward,
// and Adam. It exists because TF.js's wasm backend lacks the gradient kernels of convolutions and
// pools (a conv student fell back to the pure-JS cpu backend, 65x slower than PyTorch), and
// because on a small student every TF.js op costs more in dispatch than in arithmetic. See
// net-kernel.ts for the program and memory layout the host writes, and which layers it takes.
//
// Activations are NHWC, one row after another, as TF.js lays them out. Every pass of a
// convolution, pointwise convolution or Dense layer is one matrix product (gemm below, a 4 x 8
// register-blocked micro-kernel): forward, patches . W; weight gradient, patches^T . dOut; input
// gradient, dOut . W^T added back into the input pixels each window covered (col2im). The
// patches a convolution sees are gathered once per step, in the forward pass (im2col).
//
// Build: npm run build:kernel (clang and wasm-ld from Debian's clang and lld packages).

#include <wasm_simd128.h>

typedef unsigned int u32;

// Math.exp and Math.log from the host: wasm has no transcendental instructions, and the host's
// are accurate and deterministic in double precision, where a hand-rolled approximation in float
// would add its own error to the loss.
__attribute__((import_module("env"), import_name("exp"))) double host_exp(double);
__attribute__((import_module("env"), import_name("log"))) double host_log(double);

enum { LINEAR = 0, RELU = 1, SIGMOID = 2, TANH = 3 };
enum { CONV = 0, DEPTHWISE = 1, MAX_POOL = 2, AVG_POOL = 3, GLOBAL_AVG = 4, GLOBAL_MAX = 5, DROPOUT = 6, BATCH_NORM = 7, LAYER_NORM = 8, ACTIVATION = 9 };

// Output pixels whose patch gradients are computed together before they are added back into
// the input gradient (the tile stays in cache).
#define TILE 32
// Output pixels per chunk of a weight gradient.
#define WEIGHT_CHUNK 128

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

typedef struct {
  u32 type;
  u32 activation;        // fused into CONV and DEPTHWISE; the function of ACTIVATION
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
  float *aux;            // CONV: the batch's patches; norms: x-hat; DROPOUT: the scaled mask; max pools: argmax (as u32)
  float *stats;          // BATCH_NORM: [6, C] per-channel scratch; LAYER_NORM: 1/std per position
  float *scratch;        // CONV: the kernel transposed, a tile's patch gradients
} Op;

// Functions below start with `const Op L = *op`: stores through the activation pointers could
// alias the struct, and the compiler would reload every field in every inner loop.
static inline u32 inSize(const Op *op) { return op->inH * op->inW * op->inC; }
static inline u32 outSize(const Op *op) { return op->outH * op->outW * op->outC; }

static void zero(float *__restrict p, u32 n) {
  u32 i = 0;
  for (; i + 4 <= n; i += 4) wasm_v128_store(p + i, wasm_f32x4_splat(0.0f));
  for (; i < n; i++) p[i] = 0.0f;
}

static void copy(float *__restrict to, const float *__restrict from, u32 n) {
  u32 i = 0;
  for (; i + 4 <= n; i += 4) wasm_v128_store(to + i, wasm_v128_load(from + i));
  for (; i < n; i++) to[i] = from[i];
}

// The one loop shape of every convolution and Dense pass: out[M x N] += A[M x K] . B[K x N], with
// A read through strides (a[r * ar + i * ai]) so that the same code multiplies by a transposed
// patch matrix. A micro-kernel keeps an RB x (4 * NV) block of out in registers while it walks
// K: per step, NV loads of B are shared by RB rows. Always inlined with constant RB and NV, so
// the accumulators are registers, not memory.
static inline __attribute__((always_inline)) void microKernel(const int RB, const int NV, float *out, u32 os, const float *a, u32 ar, u32 ai, const float *b, u32 bs, u32 K) {
  v128_t acc[4][2];
  for (int r = 0; r < RB; r++)
    for (int v = 0; v < NV; v++) acc[r][v] = wasm_v128_load(out + r * os + 4 * v);
  for (u32 i = 0; i < K; i++) {
    v128_t row[2];
    for (int v = 0; v < NV; v++) row[v] = wasm_v128_load(b + i * bs + 4 * v);
    for (int r = 0; r < RB; r++) {
      const v128_t s = wasm_f32x4_splat(a[r * ar + i * ai]);
      for (int v = 0; v < NV; v++) acc[r][v] = wasm_f32x4_add(acc[r][v], wasm_f32x4_mul(s, row[v]));
    }
  }
  for (int r = 0; r < RB; r++)
    for (int v = 0; v < NV; v++) wasm_v128_store(out + r * os + 4 * v, acc[r][v]);
}

static inline __attribute__((always_inline)) void rowBlock(const int RB, float *out, u32 os, const float *a, u32 ar, u32 ai, const float *b, u32 bs, u32 N, u32 K) {
  u32 c = 0;
  for (; c + 8 <= N; c += 8) microKernel(RB, 2, out + c, os, a, ar, ai, b + c, bs, K);
  if (c + 4 <= N) { microKernel(RB, 1, out + c, os, a, ar, ai, b + c, bs, K); c += 4; }
  for (; c < N; c++)
    for (int r = 0; r < RB; r++) {
      float s = out[r * os + c];
      for (u32 i = 0; i < K; i++) s += a[r * ar + i * ai] * b[i * bs + c];
      out[r * os + c] = s;
    }
}

// out[M x N] (row stride os) += A . B, A[r][i] = a[r * ar + i * ai], B[i][c] = b[i * bs + c].
static void gemm(float *out, u32 os, const float *a, u32 ar, u32 ai, const float *b, u32 bs, u32 M, u32 N, u32 K) {
  u32 r = 0;
  for (; r + 4 <= M; r += 4) rowBlock(4, out + r * os, os, a + r * ar, ar, ai, b, bs, N, K);
  switch (M - r) {
    case 3: rowBlock(3, out + r * os, os, a + r * ar, ar, ai, b, bs, N, K); break;
    case 2: rowBlock(2, out + r * os, os, a + r * ar, ar, ai, b, bs, N, K); break;
    case 1: rowBlock(1, out + r * os, os, a + r * ar, ar, ai, b, bs, N, K); break;
  }
}

static inline float activate(float v, u32 activation) {
  if (activation == RELU) return v > 0.0f ? v : 0.0f;
  if (activation == SIGMOID) return (float)(1.0 / (1.0 + host_exp(-(double)v)));
  if (activation == TANH) {
    const double e = host_exp(2.0 * (double)v);
    return (float)(1.0 - 2.0 / (e + 1.0));
  }
  return v;
}

static void activateAll(float *p, u32 n, u32 activation) {
  if (activation == LINEAR) return;
  if (activation == RELU) {
    const v128_t zeros = wasm_f32x4_splat(0.0f);
    u32 i = 0;
    for (; i + 4 <= n; i += 4) wasm_v128_store(p + i, wasm_f32x4_max(wasm_v128_load(p + i), zeros));
    for (; i < n; i++) p[i] = p[i] > 0.0f ? p[i] : 0.0f;
    return;
  }
  for (u32 i = 0; i < n; i++) p[i] = activate(p[i], activation);
}

// delta *= activation'(output), written in terms of the layer's output.
static void applyDerivative(float *__restrict delta, const float *__restrict output, u32 count, u32 activation) {
  if (activation == RELU) {
    const v128_t zeros = wasm_f32x4_splat(0.0f);
    u32 i = 0;
    for (; i + 4 <= count; i += 4) wasm_v128_store(delta + i, wasm_v128_and(wasm_v128_load(delta + i), wasm_f32x4_gt(wasm_v128_load(output + i), zeros)));
    for (; i < count; i++) delta[i] = output[i] > 0.0f ? delta[i] : 0.0f;
  }
  else if (activation == SIGMOID) for (u32 i = 0; i < count; i++) delta[i] *= output[i] * (1.0f - output[i]);
  else if (activation == TANH) for (u32 i = 0; i < count; i++) delta[i] *= 1.0f - output[i] * output[i];
}

// ---- Convolution (and Dense, a 1x1 convolution of a 1x1 image) ----

static void addChannels(float *__restrict sums, const float *__restrict x, u32 count, u32 C);

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
static void addSpan(float *__restrict to, const float *__restrict from, u32 n) {
  u32 i = 0;
  for (; i + 4 <= n; i += 4) wasm_v128_store(to + i, wasm_f32x4_add(wasm_v128_load(to + i), wasm_v128_load(from + i)));
  for (; i < n; i++) to[i] += from[i];
}

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
static void convForward(const Op *op, const float *params, const float *in, u32 rows) {
  const Op L = *op;
  const u32 K = L.kh * L.kw * L.inC, N = L.outC;
  const u32 pixels = L.outH * L.outW, total = rows * pixels;
  const float *a = in;
  if (!isPointwise(&L)) {
    for (u32 p = 0; p < total; p++) gatherPatch(&L, in + (p / pixels) * inSize(&L), (p % pixels) / L.outW, p % L.outW, L.aux + p * K);
    a = L.aux;
  }
  for (u32 p = 0; p < total; p++) {
    if (L.hasBias) copy(L.output + p * N, params + L.bias, N);
    else zero(L.output + p * N, N);
  }
  gemm(L.output, N, a, K, 1, params + L.weight, N, total, N, K);
  activateAll(L.output, rows * outSize(&L), L.activation);
}

// dOut is d loss / d pre-activation. Weight gradient: patches^T . dOut. Input gradient, a tile
// of output pixels at a time: their patches' gradients dOut . W^T, added back into the input
// pixels each window covered.
static void convBackward(const Op *op, const float *params, float *grads, const float *in, const float *dOut, float *dIn, u32 rows) {
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
  zero(dIn, rows * inSize(&L));
  if (pointwise) {
    gemm(dIn, K, dOut, N, 1, wt, K, total, K, N);
    return;
  }
  for (u32 p0 = 0; p0 < total; p0 += TILE) {
    const u32 count = total - p0 < TILE ? total - p0 : TILE;
    zero(patchGradients, count * K);
    gemm(patchGradients, K, dOut + p0 * N, N, 1, wt, K, count, K, N);
    for (u32 t = 0; t < count; t++) {
      const u32 p = p0 + t, q = p % pixels;
      scatterPatch(&L, dIn + (p / pixels) * inSize(&L), q / L.outW, q % L.outW, patchGradients + t * K);
    }
  }
}

// ---- Depthwise convolution: output channel c * m + j sees input channel c only ----

static void depthwiseForward(const Op *op, const float *params, const float *in, u32 rows) {
  const Op L = *op;
  const u32 C = L.inC, N = L.outC, m = N / C;
  const float *w = params + L.weight;
  for (u32 r = 0; r < rows; r++) {
    const float *x = in + r * inSize(&L);
    float *y = L.output + r * outSize(&L);
    for (u32 oy = 0; oy < L.outH; oy++) {
      for (u32 ox = 0; ox < L.outW; ox++) {
        float *o = y + (oy * L.outW + ox) * N;
        if (L.hasBias) copy(o, params + L.bias, N);
        else zero(o, N);
        for (u32 ky = 0; ky < L.kh; ky++) {
          const int iy = (int)(oy * L.sh + ky) - (int)L.padT;
          if (iy < 0 || iy >= (int)L.inH) continue;
          for (u32 kx = 0; kx < L.kw; kx++) {
            const int ix = (int)(ox * L.sw + kx) - (int)L.padL;
            if (ix < 0 || ix >= (int)L.inW) continue;
            const float *xp = x + ((u32)iy * L.inW + (u32)ix) * C;
            const float *wp = w + (ky * L.kw + kx) * N;
            if (m == 1) for (u32 c = 0; c < C; c++) o[c] += xp[c] * wp[c];
            else for (u32 c = 0; c < N; c++) o[c] += xp[c / m] * wp[c];
          }
        }
      }
    }
    activateAll(y, outSize(&L), L.activation);
  }
}

static void depthwiseBackward(const Op *op, const float *params, float *grads, const float *in, const float *dOut, float *dIn, u32 rows) {
  const Op L = *op;
  const u32 C = L.inC, N = L.outC, m = N / C;
  const float *w = params + L.weight;
  float *gw = grads + L.weight;
  zero(gw, L.kh * L.kw * N);
  if (L.hasBias) {
    float *gb = grads + L.bias;
    zero(gb, N);
    for (u32 p = 0; p < rows * L.outH * L.outW; p++) for (u32 c = 0; c < N; c++) gb[c] += dOut[p * N + c];
  }
  if (dIn) zero(dIn, rows * inSize(&L));
  for (u32 r = 0; r < rows; r++) {
    const float *x = in + r * inSize(&L);
    float *dx = dIn ? dIn + r * inSize(&L) : 0;
    const float *g = dOut + r * outSize(&L);
    for (u32 oy = 0; oy < L.outH; oy++) {
      for (u32 ox = 0; ox < L.outW; ox++) {
        const float *d = g + (oy * L.outW + ox) * N;
        for (u32 ky = 0; ky < L.kh; ky++) {
          const int iy = (int)(oy * L.sh + ky) - (int)L.padT;
          if (iy < 0 || iy >= (int)L.inH) continue;
          for (u32 kx = 0; kx < L.kw; kx++) {
            const int ix = (int)(ox * L.sw + kx) - (int)L.padL;
            if (ix < 0 || ix >= (int)L.inW) continue;
            const u32 at = ((u32)iy * L.inW + (u32)ix) * C, tap = (ky * L.kw + kx) * N;
            if (m == 1) {
              for (u32 c = 0; c < C; c++) gw[tap + c] += x[at + c] * d[c];
              if (dx) for (u32 c = 0; c < C; c++) dx[at + c] += w[tap + c] * d[c];
            } else {
              for (u32 c = 0; c < N; c++) gw[tap + c] += x[at + c / m] * d[c];
              if (dx) for (u32 c = 0; c < N; c++) dx[at + c / m] += w[tap + c] * d[c];
            }
          }
        }
      }
    }
  }
}

// ---- Pools: windows clipped to the input; an average divides by the pixels inside (as TF) ----

// Per output pixel, the window's taps in turn, all channels of a tap at once (they are
// contiguous): four lanes at a time, the max and where it was kept without branches.
static void poolForward(const Op *op, const float *in, u32 rows) {
  const Op L = *op;
  const u32 C = L.inC;
  const int isMax = L.type == MAX_POOL;
  for (u32 r = 0; r < rows; r++) {
    const float *x = in + r * inSize(&L);
    float *y = L.output + r * outSize(&L);
    u32 *argmax = (u32 *)L.aux + r * outSize(&L);
    for (u32 oy = 0; oy < L.outH; oy++) {
      const int y0 = (int)(oy * L.sh) - (int)L.padT;
      const u32 ys = y0 < 0 ? 0 : (u32)y0, ye = y0 + (int)L.kh > (int)L.inH ? L.inH : (u32)(y0 + (int)L.kh);
      for (u32 ox = 0; ox < L.outW; ox++) {
        const int x0 = (int)(ox * L.sw) - (int)L.padL;
        const u32 xs = x0 < 0 ? 0 : (u32)x0, xe = x0 + (int)L.kw > (int)L.inW ? L.inW : (u32)(x0 + (int)L.kw);
        float *__restrict yo = y + (oy * L.outW + ox) * C;
        u32 *__restrict ao = argmax + (oy * L.outW + ox) * C;
        const u32 first = (ys * L.inW + xs) * C;
        copy(yo, x + first, C);
        if (isMax) for (u32 c = 0; c < C; c++) ao[c] = first + c;
        for (u32 iy = ys; iy < ye; iy++) {
          for (u32 ix = iy == ys ? xs + 1 : xs; ix < xe; ix++) {
            const u32 at = (iy * L.inW + ix) * C;
            const float *__restrict xp = x + at;
            u32 c = 0;
            if (isMax) {
              const v128_t lanes = wasm_i32x4_make(0, 1, 2, 3);
              for (; c + 4 <= C; c += 4) {
                const v128_t v = wasm_v128_load(xp + c), best = wasm_v128_load(yo + c);
                const v128_t greater = wasm_f32x4_gt(v, best);
                wasm_v128_store(yo + c, wasm_v128_bitselect(v, best, greater));
                wasm_v128_store(ao + c, wasm_v128_bitselect(wasm_i32x4_add(wasm_i32x4_splat((int)(at + c)), lanes), wasm_v128_load(ao + c), greater));
              }
              for (; c < C; c++) if (xp[c] > yo[c]) { yo[c] = xp[c]; ao[c] = at + c; }
            } else {
              for (; c + 4 <= C; c += 4) wasm_v128_store(yo + c, wasm_f32x4_add(wasm_v128_load(yo + c), wasm_v128_load(xp + c)));
              for (; c < C; c++) yo[c] += xp[c];
            }
          }
        }
        if (!isMax) {
          // TF divides by the pixels inside the input, not by the window's size.
          const float share = 1.0f / (float)((ye - ys) * (xe - xs));
          for (u32 c = 0; c < C; c++) yo[c] *= share;
        }
      }
    }
  }
}

static void poolBackward(const Op *op, const float *dOut, float *dIn, u32 rows) {
  const Op L = *op;
  const u32 C = L.inC;
  const u32 *argmax = (const u32 *)L.aux;
  zero(dIn, rows * inSize(&L));
  for (u32 r = 0; r < rows; r++) {
    const float *g = dOut + r * outSize(&L);
    float *dx = dIn + r * inSize(&L);
    if (L.type == MAX_POOL) {
      for (u32 i = 0; i < outSize(&L); i++) dx[argmax[r * outSize(&L) + i]] += g[i];
      continue;
    }
    for (u32 oy = 0; oy < L.outH; oy++) {
      for (u32 ox = 0; ox < L.outW; ox++) {
        const int y0 = (int)(oy * L.sh) - (int)L.padT, x0 = (int)(ox * L.sw) - (int)L.padL;
        const int y1 = y0 + (int)L.kh > (int)L.inH ? (int)L.inH : y0 + (int)L.kh;
        const int x1 = x0 + (int)L.kw > (int)L.inW ? (int)L.inW : x0 + (int)L.kw;
        const int ys = y0 < 0 ? 0 : y0, xs = x0 < 0 ? 0 : x0;
        const float share = 1.0f / (float)((y1 - ys) * (x1 - xs));
        const float *d = g + (oy * L.outW + ox) * C;
        for (int iy = ys; iy < y1; iy++)
          for (int ix = xs; ix < x1; ix++)
            for (u32 c = 0; c < C; c++) dx[((u32)iy * L.inW + (u32)ix) * C + c] += d[c] * share;
      }
    }
  }
}

static void globalPoolForward(const Op *op, const float *in, u32 rows) {
  const Op L = *op;
  const u32 C = L.inC, pixels = L.inH * L.inW;
  u32 *argmax = (u32 *)L.aux;
  for (u32 r = 0; r < rows; r++) {
    const float *x = in + r * inSize(&L);
    float *y = L.output + r * C;
    for (u32 c = 0; c < C; c++) {
      float best = x[c], sum = 0.0f;
      u32 bestAt = c;
      for (u32 p = 0; p < pixels; p++) {
        const float v = x[p * C + c];
        if (v > best) { best = v; bestAt = p * C + c; }
        sum += v;
      }
      if (L.type == GLOBAL_MAX) {
        y[c] = best;
        argmax[r * C + c] = bestAt;
      } else {
        y[c] = sum / (float)pixels;
      }
    }
  }
}

static void globalPoolBackward(const Op *op, const float *dOut, float *dIn, u32 rows) {
  const Op L = *op;
  const u32 C = L.inC, pixels = L.inH * L.inW;
  const u32 *argmax = (const u32 *)L.aux;
  zero(dIn, rows * inSize(&L));
  for (u32 r = 0; r < rows; r++) {
    float *dx = dIn + r * inSize(&L);
    const float *g = dOut + r * C;
    if (L.type == GLOBAL_MAX) {
      for (u32 c = 0; c < C; c++) dx[argmax[r * C + c]] += g[c];
    } else {
      for (u32 p = 0; p < pixels; p++) for (u32 c = 0; c < C; c++) dx[p * C + c] = g[c] / (float)pixels;
    }
  }
}

// ---- Dropout: the mask is a hash of (seed, op, element), so the host can reproduce it ----

static inline u32 mix(u32 h) {
  h ^= h >> 16;
  h *= 0x7feb352dU;
  h ^= h >> 15;
  h *= 0x846ca68bU;
  h ^= h >> 16;
  return h;
}

// Uniform in [0, 1) from a 24-bit draw; the host's dropoutUniform computes the same.
static inline float uniform(u32 seed, u32 op, u32 element) {
  return (float)(mix(mix(seed ^ (op * 0x9e3779b9U)) ^ element) >> 8) * (1.0f / 16777216.0f);
}

static void dropoutForward(const Op *op, u32 index, u32 seed, const float *in, u32 rows) {
  const Op L = *op;
  const u32 n = rows * inSize(&L);
  const float keep = 1.0f - L.rate, scale = 1.0f / keep;
  for (u32 i = 0; i < n; i++) {
    const float m = uniform(seed, index, i) < keep ? scale : 0.0f;
    L.aux[i] = m;
    L.output[i] = in[i] * m;
  }
}

// ---- Normalisation: batch statistics per channel (BATCH_NORM) or per position (LAYER_NORM) ----

// Per-channel passes over [count, C] activations; restrict-qualified so that clang vectorises
// the channel loops.
static void addChannels(float *__restrict sums, const float *__restrict x, u32 count, u32 C) {
  for (u32 p = 0; p < count; p++) for (u32 c = 0; c < C; c++) sums[c] += x[p * C + c];
}

static void addSquaredDeviations(float *__restrict sums, const float *__restrict x, const float *__restrict mean, u32 count, u32 C) {
  for (u32 p = 0; p < count; p++) for (u32 c = 0; c < C; c++) {
    const float d = x[p * C + c] - mean[c];
    sums[c] += d * d;
  }
}

static void addProducts(float *__restrict sums, float *__restrict products, const float *__restrict d, const float *__restrict h, u32 count, u32 C) {
  for (u32 p = 0; p < count; p++) for (u32 c = 0; c < C; c++) {
    sums[c] += d[p * C + c];
    products[c] += d[p * C + c] * h[p * C + c];
  }
}

// h = (x - mean) * inverse; y = gamma * h + beta.
static void normalise(float *__restrict h, float *__restrict y, const float *__restrict x, const float *__restrict mean, const float *__restrict inverse, const float *__restrict gamma, const float *__restrict beta, u32 count, u32 C) {
  for (u32 p = 0; p < count; p++) for (u32 c = 0; c < C; c++) {
    const float v = (x[p * C + c] - mean[c]) * inverse[c];
    h[p * C + c] = v;
    y[p * C + c] = gamma[c] * v + beta[c];
  }
}

static void batchNormForward(const Op *op, float *params, const float *in, u32 rows) {
  const Op L = *op;
  const u32 C = L.inC, count = rows * L.inH * L.inW;
  // stats: mean, 1/std, then gamma and beta (ones and zeros where the layer has none).
  float *mean = L.stats, *inverse = L.stats + C, *gamma = L.stats + 2 * C, *beta = L.stats + 3 * C;
  zero(mean, 2 * C);
  addChannels(mean, in, count, C);
  for (u32 c = 0; c < C; c++) mean[c] /= (float)count;
  addSquaredDeviations(inverse, in, mean, count, C);
  float *movingMean = params + L.state, *movingVariance = movingMean + C;
  for (u32 c = 0; c < C; c++) {
    const float variance = inverse[c] / (float)count;
    // Keras: moving -= (moving - batch) * (1 - momentum), with the biased batch variance.
    movingMean[c] -= (movingMean[c] - mean[c]) * (1.0f - L.momentum);
    movingVariance[c] -= (movingVariance[c] - variance) * (1.0f - L.momentum);
    inverse[c] = 1.0f / __builtin_sqrtf(variance + L.epsilon);
    gamma[c] = L.hasWeight ? params[L.weight + c] : 1.0f;
    beta[c] = L.hasBias ? params[L.bias + c] : 0.0f;
  }
  normalise(L.aux, L.output, in, mean, inverse, gamma, beta, count, C);
}

// dx = gamma / std * (dy - mean(dy) - x-hat * mean(dy * x-hat))
static void batchNormInputGradient(float *__restrict dx, const float *__restrict d, const float *__restrict h, const float *__restrict scale, const float *__restrict meanD, const float *__restrict meanDH, u32 count, u32 C) {
  for (u32 p = 0; p < count; p++) for (u32 c = 0; c < C; c++) dx[p * C + c] = scale[c] * (d[p * C + c] - meanD[c] - h[p * C + c] * meanDH[c]);
}

static void batchNormBackward(const Op *op, const float *params, float *grads, const float *dOut, float *dIn, u32 rows) {
  const Op L = *op;
  const u32 C = L.inC, count = rows * L.inH * L.inW;
  float *inverse = L.stats + C, *gamma = L.stats + 2 * C, *sums = L.stats + 4 * C, *products = L.stats + 5 * C;
  // Per channel: sum of dOut and of dOut * x-hat (the beta and gamma gradients).
  zero(sums, 2 * C);
  addProducts(sums, products, dOut, L.aux, count, C);
  if (L.hasWeight) copy(grads + L.weight, products, C);
  if (L.hasBias) copy(grads + L.bias, sums, C);
  if (!dIn) return;
  for (u32 c = 0; c < C; c++) {
    sums[c] /= (float)count;
    products[c] /= (float)count;
    inverse[c] *= gamma[c];
  }
  batchNormInputGradient(dIn, dOut, L.aux, inverse, sums, products, count, C);
}

static void layerNormForward(const Op *op, const float *params, const float *in, u32 rows) {
  const Op L = *op;
  const u32 C = L.inC, positions = rows * L.inH * L.inW;
  const float *gamma = L.hasWeight ? params + L.weight : 0, *beta = L.hasBias ? params + L.bias : 0;
  for (u32 p = 0; p < positions; p++) {
    const float *x = in + p * C;
    float mean = 0.0f, variance = 0.0f;
    for (u32 c = 0; c < C; c++) mean += x[c];
    mean /= (float)C;
    for (u32 c = 0; c < C; c++) variance += (x[c] - mean) * (x[c] - mean);
    const float inverse = 1.0f / __builtin_sqrtf(variance / (float)C + L.epsilon);
    L.stats[p] = inverse;
    for (u32 c = 0; c < C; c++) {
      const float h = (x[c] - mean) * inverse;
      L.aux[p * C + c] = h;
      L.output[p * C + c] = (gamma ? gamma[c] * h : h) + (beta ? beta[c] : 0.0f);
    }
  }
}

static void layerNormBackward(const Op *op, const float *params, float *grads, const float *dOut, float *dIn, u32 rows) {
  const Op L = *op;
  const u32 C = L.inC, positions = rows * L.inH * L.inW;
  const float *gamma = L.hasWeight ? params + L.weight : 0;
  float *gg = L.hasWeight ? grads + L.weight : 0, *gb = L.hasBias ? grads + L.bias : 0;
  if (gg) zero(gg, C);
  if (gb) zero(gb, C);
  for (u32 p = 0; p < positions; p++) {
    const float *d = dOut + p * C, *h = L.aux + p * C;
    float sum = 0.0f, product = 0.0f;
    for (u32 c = 0; c < C; c++) {
      if (gg) gg[c] += d[c] * h[c];
      if (gb) gb[c] += d[c];
      const float dh = d[c] * (gamma ? gamma[c] : 1.0f);
      sum += dh;
      product += dh * h[c];
    }
    if (!dIn) continue;
    for (u32 c = 0; c < C; c++) {
      const float dh = d[c] * (gamma ? gamma[c] : 1.0f);
      dIn[p * C + c] = L.stats[p] * (dh - sum / (float)C - h[c] * product / (float)C);
    }
  }
}

// ---- The KD loss of the batch (without the teacher-only constant) and d loss / d logits ----

static float kdLoss(const Net *s, const float *logits, u32 rows, u32 classes, float *delta) {
  double value = 0.0;
  const float inverseRows = 1.0f / (float)rows;
  for (u32 r = 0; r < rows; r++) {
    const float *z = logits + r * classes;
    const float *t = s->targets + r * classes;
    float *d = delta + r * classes;
    for (u32 c = 0; c < classes; c++) {
      d[c] = -t[c];
      value -= (double)t[c] * (double)z[c];
    }
    for (u32 term = 0; term < s->terms; term++) {
      const float scale = s->scale[term];
      float max = z[0] * scale;
      for (u32 c = 1; c < classes; c++) max = z[c] * scale > max ? z[c] * scale : max;
      double total = 0.0;
      for (u32 c = 0; c < classes; c++) total += s->scratch[c] = host_exp((double)(z[c] * scale - max));
      value += (double)s->weight[term] * (host_log(total) + (double)max);
      const float gain = s->weight[term] * scale;
      for (u32 c = 0; c < classes; c++) d[c] += gain * (float)(s->scratch[c] / total);
    }
    for (u32 c = 0; c < classes; c++) d[c] *= inverseRows;
  }
  return (float)(value / (double)rows);
}

static void forward(const Net *s, const Op *op, u32 index, const float *in, u32 rows) {
  switch (op->type) {
    case CONV: convForward(op, s->params, in, rows); break;
    case DEPTHWISE: depthwiseForward(op, s->params, in, rows); break;
    case MAX_POOL:
    case AVG_POOL: poolForward(op, in, rows); break;
    case GLOBAL_AVG:
    case GLOBAL_MAX: globalPoolForward(op, in, rows); break;
    case DROPOUT: dropoutForward(op, index, s->seed, in, rows); break;
    case BATCH_NORM: batchNormForward(op, s->params, in, rows); break;
    case LAYER_NORM: layerNormForward(op, s->params, in, rows); break;
    case ACTIVATION:
      copy(op->output, in, rows * inSize(op));
      activateAll(op->output, rows * inSize(op), op->activation);
      break;
  }
}

// dOut: d loss / d this op's output, which this may overwrite; dIn: where d loss / d input goes,
// or 0 for the first op, whose input gradient nobody needs.
static void backward(const Net *s, const Op *op, const float *in, float *dOut, float *dIn, u32 rows) {
  const u32 n = rows * outSize(op);
  switch (op->type) {
    case CONV:
      applyDerivative(dOut, op->output, n, op->activation);
      convBackward(op, s->params, s->grads, in, dOut, dIn, rows);
      break;
    case DEPTHWISE:
      applyDerivative(dOut, op->output, n, op->activation);
      depthwiseBackward(op, s->params, s->grads, in, dOut, dIn, rows);
      break;
    case MAX_POOL:
    case AVG_POOL: if (dIn) poolBackward(op, dOut, dIn, rows); break;
    case GLOBAL_AVG:
    case GLOBAL_MAX: if (dIn) globalPoolBackward(op, dOut, dIn, rows); break;
    case DROPOUT: if (dIn) for (u32 i = 0; i < n; i++) dIn[i] = dOut[i] * op->aux[i]; break;
    case BATCH_NORM: batchNormBackward(op, s->params, s->grads, dOut, dIn, rows); break;
    case LAYER_NORM: layerNormBackward(op, s->params, s->grads, dOut, dIn, rows); break;
    case ACTIVATION:
      applyDerivative(dOut, op->output, n, op->activation);
      if (dIn) copy(dIn, dOut, n);
      break;
  }
}

__attribute__((export_name("step")))
float step(const Net *s, const Op *ops, u32 rows, float rate, float epsilon, float beta1, float beta2) {
  const float *input = s->x;
  for (u32 l = 0; l < s->ops; l++) {
    forward(s, ops + l, l, input, rows);
    input = ops[l].output;
  }
  const Op *last = ops + s->ops - 1;
  float *dOut = s->gradA, *dIn = s->gradB;
  const float loss = kdLoss(s, last->output, rows, last->outC, dOut);
  for (u32 l = s->ops; l-- > 0;) {
    backward(s, ops + l, l == 0 ? s->x : ops[l - 1].output, dOut, l == 0 ? 0 : dIn, rows);
    float *t = dOut;
    dOut = dIn;
    dIn = t;
  }
  // Adam, bias corrections folded into rate and epsilon by the host (as FlatAdam does).
  for (u32 i = 0; i < s->trainable; i++) {
    const float g = s->grads[i];
    const float m = beta1 * s->moment1[i] + (1.0f - beta1) * g;
    const float v = beta2 * s->moment2[i] + (1.0f - beta2) * g * g;
    s->moment1[i] = m;
    s->moment2[i] = v;
    s->params[i] -= rate * m / (__builtin_sqrtf(v) + epsilon);
  }
  return loss;
}
