// One knowledge-distillation training step of a Sequential student, in one WebAssembly call:
// forward through every layer, the KD loss and its gradient from host-side targets, backward,
// and Adam. It exists because TF.js's wasm backend lacks the gradient kernels of convolutions and
// pools (a conv student fell back to the pure-JS cpu backend, 65x slower than PyTorch), and
// because on a small student every TF.js op costs more in dispatch than in arithmetic. See
// net-kernel.ts for the program and memory layout the host writes, and which layers it takes.
//
// Activations are NHWC, one row after another, as TF.js lays them out. Convolutions, pointwise
// and Dense layers are all one loop shape, out[N] += sum_i a[i] * w[i][N], vectorised four
// output channels at a time with the accumulators in registers (gemv below): the patch of input
// pixels a convolution sees is gathered first (im2col, one patch or a tile of them at a time).
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

// Pixels whose patches are gathered together for a weight gradient (the tile's patches and
// output gradients stay in cache while each weight row is accumulated over them).
#define TILE 64

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
  float *aux;            // norms: x-hat; DROPOUT: the scaled mask; max pools: argmax (as u32)
  float *stats;          // BATCH_NORM: mean, 1/std per channel; LAYER_NORM: mean, 1/std per position
  float *scratch;        // CONV: patches and transposed weights
} Op;

static inline u32 inSize(const Op *op) { return op->inH * op->inW * op->inC; }
static inline u32 outSize(const Op *op) { return op->outH * op->outW * op->outC; }

static void zero(float *p, u32 n) {
  for (u32 i = 0; i < n; i++) p[i] = 0.0f;
}

static void copy(float *to, const float *from, u32 n) {
  for (u32 i = 0; i < n; i++) to[i] = from[i];
}

// out[0..4*NV) += sum_i a[i * as] * w[i * ws + 0..4*NV), the accumulators in registers.
// Always inlined with a constant NV, so the unused accumulators vanish.
static inline __attribute__((always_inline)) void gemvBlock(const int NV, float *out, const float *a, u32 as, const float *w, u32 ws, u32 n) {
  v128_t acc0 = wasm_v128_load(out), acc1, acc2, acc3;
  if (NV > 1) acc1 = wasm_v128_load(out + 4);
  if (NV > 2) acc2 = wasm_v128_load(out + 8);
  if (NV > 3) acc3 = wasm_v128_load(out + 12);
  for (u32 i = 0; i < n; i++) {
    const v128_t s = wasm_f32x4_splat(a[i * as]);
    const float *wi = w + i * ws;
    acc0 = wasm_f32x4_add(acc0, wasm_f32x4_mul(s, wasm_v128_load(wi)));
    if (NV > 1) acc1 = wasm_f32x4_add(acc1, wasm_f32x4_mul(s, wasm_v128_load(wi + 4)));
    if (NV > 2) acc2 = wasm_f32x4_add(acc2, wasm_f32x4_mul(s, wasm_v128_load(wi + 8)));
    if (NV > 3) acc3 = wasm_f32x4_add(acc3, wasm_f32x4_mul(s, wasm_v128_load(wi + 12)));
  }
  wasm_v128_store(out, acc0);
  if (NV > 1) wasm_v128_store(out + 4, acc1);
  if (NV > 2) wasm_v128_store(out + 8, acc2);
  if (NV > 3) wasm_v128_store(out + 12, acc3);
}

// out[0..N) += sum_{i < n} a[i * as] * w[i * ws + 0..N): a Dense layer's row, a convolution's
// output pixel from its patch, or one row of a weight gradient over a tile of pixels.
static void gemv(float *out, u32 N, const float *a, u32 as, const float *w, u32 ws, u32 n) {
  u32 c = 0;
  for (; c + 16 <= N; c += 16) gemvBlock(4, out + c, a, as, w + c, ws, n);
  if (c + 8 <= N) { gemvBlock(2, out + c, a, as, w + c, ws, n); c += 8; }
  if (c + 4 <= N) { gemvBlock(1, out + c, a, as, w + c, ws, n); c += 4; }
  for (; c < N; c++) {
    float s = out[c];
    for (u32 i = 0; i < n; i++) s += a[i * as] * w[i * ws + c];
    out[c] = s;
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
static void applyDerivative(float *delta, const float *output, u32 count, u32 activation) {
  if (activation == RELU) for (u32 i = 0; i < count; i++) delta[i] = output[i] > 0.0f ? delta[i] : 0.0f;
  else if (activation == SIGMOID) for (u32 i = 0; i < count; i++) delta[i] *= output[i] * (1.0f - output[i]);
  else if (activation == TANH) for (u32 i = 0; i < count; i++) delta[i] *= 1.0f - output[i] * output[i];
}

// ---- Convolution (and Dense, a 1x1 convolution of a 1x1 image) ----

static inline int isPointwise(const Op *op) {
  return op->kh == 1 && op->kw == 1 && op->sh == 1 && op->sw == 1 && op->padT == 0 && op->padL == 0;
}

// The input pixels output pixel (oy, ox) sees, [kh, kw, inC] as the kernel is laid out; zeros
// where the window hangs over the padding.
static void gatherPatch(const Op *op, const float *x, u32 oy, u32 ox, float *patch) {
  const u32 c = op->inC;
  for (u32 ky = 0; ky < op->kh; ky++) {
    const int iy = (int)(oy * op->sh + ky) - (int)op->padT;
    for (u32 kx = 0; kx < op->kw; kx++, patch += c) {
      const int ix = (int)(ox * op->sw + kx) - (int)op->padL;
      if (iy < 0 || iy >= (int)op->inH || ix < 0 || ix >= (int)op->inW) zero(patch, c);
      else copy(patch, x + ((u32)iy * op->inW + (u32)ix) * c, c);
    }
  }
}

static void convForward(const Op *op, const float *params, const float *in, u32 rows) {
  const u32 K = op->kh * op->kw * op->inC, N = op->outC;
  const float *w = params + op->weight;
  const int pointwise = isPointwise(op);
  for (u32 r = 0; r < rows; r++) {
    const float *x = in + r * inSize(op);
    float *y = op->output + r * outSize(op);
    for (u32 oy = 0; oy < op->outH; oy++) {
      for (u32 ox = 0; ox < op->outW; ox++) {
        float *o = y + (oy * op->outW + ox) * N;
        if (op->hasBias) copy(o, params + op->bias, N);
        else zero(o, N);
        const float *a = x + (oy * op->inW + ox) * op->inC;
        if (!pointwise) {
          gatherPatch(op, x, oy, ox, op->scratch);
          a = op->scratch;
        }
        gemv(o, N, a, 1, w, N, K);
      }
    }
    activateAll(y, outSize(op), op->activation);
  }
}

// dOut is d loss / d pre-activation. Weight gradient: over tiles of pixels, dW[k][:] += sum_p
// patch_p[k] * dOut_p[:]. Input gradient: each input pixel gathers the output gradients of the
// windows it fell in, against the kernel transposed to [kh, kw, outC, inC].
static void convBackward(const Op *op, const float *params, float *grads, const float *in, const float *dOut, float *dIn, u32 rows) {
  const u32 K = op->kh * op->kw * op->inC, N = op->outC, C = op->inC;
  const u32 pixels = op->outH * op->outW, total = rows * pixels;
  const int pointwise = isPointwise(op);
  float *gw = grads + op->weight;
  zero(gw, K * N);
  if (op->hasBias) {
    float *gb = grads + op->bias;
    zero(gb, N);
    for (u32 p = 0; p < total; p++) for (u32 j = 0; j < N; j++) gb[j] += dOut[p * N + j];
  }
  float *patches = op->scratch;
  for (u32 p0 = 0; p0 < total; p0 += TILE) {
    const u32 count = total - p0 < TILE ? total - p0 : TILE;
    const float *a = in + p0 * C;
    u32 as = K;
    if (!pointwise) {
      for (u32 t = 0; t < count; t++) {
        const u32 p = p0 + t, r = p / pixels, q = p % pixels;
        gatherPatch(op, in + r * inSize(op), q / op->outW, q % op->outW, patches + t * K);
      }
      a = patches;
    }
    for (u32 k = 0; k < K; k++) gemv(gw + k * N, N, a + k, as, dOut + p0 * N, N, count);
  }
  if (!dIn) return;

  // The kernel transposed per window position: wt[ky][kx][j][c] = w[ky][kx][c][j].
  const float *w = params + op->weight;
  float *wt = op->scratch + TILE * K;
  for (u32 tap = 0; tap < op->kh * op->kw; tap++)
    for (u32 c = 0; c < C; c++)
      for (u32 j = 0; j < N; j++) wt[(tap * N + j) * C + c] = w[(tap * C + c) * N + j];
  if (pointwise) {
    for (u32 p = 0; p < total; p++) {
      zero(dIn + p * C, C);
      gemv(dIn + p * C, C, dOut + p * N, 1, wt, C, N);
    }
    return;
  }
  float *gathered = wt + op->kh * op->kw * N * C;  // [kh, kw, outC]
  for (u32 r = 0; r < rows; r++) {
    const float *g = dOut + r * pixels * N;
    float *dx = dIn + r * inSize(op);
    for (u32 iy = 0; iy < op->inH; iy++) {
      for (u32 ix = 0; ix < op->inW; ix++) {
        float *q = gathered;
        for (u32 ky = 0; ky < op->kh; ky++) {
          const int ty = (int)(iy + op->padT) - (int)ky;
          const int oy = ty / (int)op->sh;
          const int rowHit = ty >= 0 && ty % (int)op->sh == 0 && oy < (int)op->outH;
          for (u32 kx = 0; kx < op->kw; kx++, q += N) {
            const int tx = (int)(ix + op->padL) - (int)kx;
            const int ox = tx / (int)op->sw;
            if (rowHit && tx >= 0 && tx % (int)op->sw == 0 && ox < (int)op->outW) copy(q, g + ((u32)oy * op->outW + (u32)ox) * N, N);
            else zero(q, N);
          }
        }
        float *o = dx + (iy * op->inW + ix) * C;
        zero(o, C);
        gemv(o, C, gathered, 1, wt, C, op->kh * op->kw * N);
      }
    }
  }
}

// ---- Depthwise convolution: output channel c * m + j sees input channel c only ----

static void depthwiseForward(const Op *op, const float *params, const float *in, u32 rows) {
  const u32 C = op->inC, N = op->outC, m = N / C;
  const float *w = params + op->weight;
  for (u32 r = 0; r < rows; r++) {
    const float *x = in + r * inSize(op);
    float *y = op->output + r * outSize(op);
    for (u32 oy = 0; oy < op->outH; oy++) {
      for (u32 ox = 0; ox < op->outW; ox++) {
        float *o = y + (oy * op->outW + ox) * N;
        if (op->hasBias) copy(o, params + op->bias, N);
        else zero(o, N);
        for (u32 ky = 0; ky < op->kh; ky++) {
          const int iy = (int)(oy * op->sh + ky) - (int)op->padT;
          if (iy < 0 || iy >= (int)op->inH) continue;
          for (u32 kx = 0; kx < op->kw; kx++) {
            const int ix = (int)(ox * op->sw + kx) - (int)op->padL;
            if (ix < 0 || ix >= (int)op->inW) continue;
            const float *xp = x + ((u32)iy * op->inW + (u32)ix) * C;
            const float *wp = w + (ky * op->kw + kx) * N;
            if (m == 1) for (u32 c = 0; c < C; c++) o[c] += xp[c] * wp[c];
            else for (u32 c = 0; c < N; c++) o[c] += xp[c / m] * wp[c];
          }
        }
      }
    }
    activateAll(y, outSize(op), op->activation);
  }
}

static void depthwiseBackward(const Op *op, const float *params, float *grads, const float *in, const float *dOut, float *dIn, u32 rows) {
  const u32 C = op->inC, N = op->outC, m = N / C;
  const float *w = params + op->weight;
  float *gw = grads + op->weight;
  zero(gw, op->kh * op->kw * N);
  if (op->hasBias) {
    float *gb = grads + op->bias;
    zero(gb, N);
    for (u32 p = 0; p < rows * op->outH * op->outW; p++) for (u32 c = 0; c < N; c++) gb[c] += dOut[p * N + c];
  }
  if (dIn) zero(dIn, rows * inSize(op));
  for (u32 r = 0; r < rows; r++) {
    const float *x = in + r * inSize(op);
    float *dx = dIn ? dIn + r * inSize(op) : 0;
    const float *g = dOut + r * outSize(op);
    for (u32 oy = 0; oy < op->outH; oy++) {
      for (u32 ox = 0; ox < op->outW; ox++) {
        const float *d = g + (oy * op->outW + ox) * N;
        for (u32 ky = 0; ky < op->kh; ky++) {
          const int iy = (int)(oy * op->sh + ky) - (int)op->padT;
          if (iy < 0 || iy >= (int)op->inH) continue;
          for (u32 kx = 0; kx < op->kw; kx++) {
            const int ix = (int)(ox * op->sw + kx) - (int)op->padL;
            if (ix < 0 || ix >= (int)op->inW) continue;
            const u32 at = ((u32)iy * op->inW + (u32)ix) * C, tap = (ky * op->kw + kx) * N;
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

static void poolForward(const Op *op, const float *in, u32 rows) {
  const u32 C = op->inC;
  const int isMax = op->type == MAX_POOL;
  u32 *argmax = (u32 *)op->aux;
  for (u32 r = 0; r < rows; r++) {
    const float *x = in + r * inSize(op);
    float *y = op->output + r * outSize(op);
    for (u32 oy = 0; oy < op->outH; oy++) {
      for (u32 ox = 0; ox < op->outW; ox++) {
        const u32 o = (oy * op->outW + ox) * C;
        for (u32 c = 0; c < C; c++) {
          float best = -__builtin_inff(), sum = 0.0f;
          u32 bestAt = 0, count = 0;
          for (u32 ky = 0; ky < op->kh; ky++) {
            const int iy = (int)(oy * op->sh + ky) - (int)op->padT;
            if (iy < 0 || iy >= (int)op->inH) continue;
            for (u32 kx = 0; kx < op->kw; kx++) {
              const int ix = (int)(ox * op->sw + kx) - (int)op->padL;
              if (ix < 0 || ix >= (int)op->inW) continue;
              const u32 at = ((u32)iy * op->inW + (u32)ix) * C + c;
              const float v = x[at];
              if (v > best) { best = v; bestAt = at; }
              sum += v;
              count++;
            }
          }
          if (isMax) {
            y[o + c] = best;
            argmax[r * outSize(op) + o + c] = bestAt;
          } else {
            y[o + c] = sum / (float)count;
          }
        }
      }
    }
  }
}

static void poolBackward(const Op *op, const float *dOut, float *dIn, u32 rows) {
  const u32 C = op->inC;
  const u32 *argmax = (const u32 *)op->aux;
  zero(dIn, rows * inSize(op));
  for (u32 r = 0; r < rows; r++) {
    const float *g = dOut + r * outSize(op);
    float *dx = dIn + r * inSize(op);
    if (op->type == MAX_POOL) {
      for (u32 i = 0; i < outSize(op); i++) dx[argmax[r * outSize(op) + i]] += g[i];
      continue;
    }
    for (u32 oy = 0; oy < op->outH; oy++) {
      for (u32 ox = 0; ox < op->outW; ox++) {
        const int y0 = (int)(oy * op->sh) - (int)op->padT, x0 = (int)(ox * op->sw) - (int)op->padL;
        const int y1 = y0 + (int)op->kh > (int)op->inH ? (int)op->inH : y0 + (int)op->kh;
        const int x1 = x0 + (int)op->kw > (int)op->inW ? (int)op->inW : x0 + (int)op->kw;
        const int ys = y0 < 0 ? 0 : y0, xs = x0 < 0 ? 0 : x0;
        const float share = 1.0f / (float)((y1 - ys) * (x1 - xs));
        const float *d = g + (oy * op->outW + ox) * C;
        for (int iy = ys; iy < y1; iy++)
          for (int ix = xs; ix < x1; ix++)
            for (u32 c = 0; c < C; c++) dx[((u32)iy * op->inW + (u32)ix) * C + c] += d[c] * share;
      }
    }
  }
}

static void globalPoolForward(const Op *op, const float *in, u32 rows) {
  const u32 C = op->inC, pixels = op->inH * op->inW;
  u32 *argmax = (u32 *)op->aux;
  for (u32 r = 0; r < rows; r++) {
    const float *x = in + r * inSize(op);
    float *y = op->output + r * C;
    for (u32 c = 0; c < C; c++) {
      float best = x[c], sum = 0.0f;
      u32 bestAt = c;
      for (u32 p = 0; p < pixels; p++) {
        const float v = x[p * C + c];
        if (v > best) { best = v; bestAt = p * C + c; }
        sum += v;
      }
      if (op->type == GLOBAL_MAX) {
        y[c] = best;
        argmax[r * C + c] = bestAt;
      } else {
        y[c] = sum / (float)pixels;
      }
    }
  }
}

static void globalPoolBackward(const Op *op, const float *dOut, float *dIn, u32 rows) {
  const u32 C = op->inC, pixels = op->inH * op->inW;
  const u32 *argmax = (const u32 *)op->aux;
  zero(dIn, rows * inSize(op));
  for (u32 r = 0; r < rows; r++) {
    float *dx = dIn + r * inSize(op);
    const float *g = dOut + r * C;
    if (op->type == GLOBAL_MAX) {
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
  const u32 n = rows * inSize(op);
  const float keep = 1.0f - op->rate, scale = 1.0f / keep;
  for (u32 i = 0; i < n; i++) {
    const float m = uniform(seed, index, i) < keep ? scale : 0.0f;
    op->aux[i] = m;
    op->output[i] = in[i] * m;
  }
}

// ---- Normalisation: batch statistics per channel (BATCH_NORM) or per position (LAYER_NORM) ----

static void batchNormForward(const Op *op, float *params, const float *in, u32 rows) {
  const u32 C = op->inC, count = rows * op->inH * op->inW;
  float *mean = op->stats, *inverse = op->stats + C;
  for (u32 c = 0; c < C; c++) mean[c] = inverse[c] = 0.0f;
  for (u32 p = 0; p < count; p++) for (u32 c = 0; c < C; c++) mean[c] += in[p * C + c];
  for (u32 c = 0; c < C; c++) mean[c] /= (float)count;
  for (u32 p = 0; p < count; p++) for (u32 c = 0; c < C; c++) {
    const float d = in[p * C + c] - mean[c];
    inverse[c] += d * d;
  }
  float *movingMean = params + op->state, *movingVariance = movingMean + C;
  for (u32 c = 0; c < C; c++) {
    const float variance = inverse[c] / (float)count;
    // Keras: moving -= (moving - batch) * (1 - momentum), with the biased batch variance.
    movingMean[c] -= (movingMean[c] - mean[c]) * (1.0f - op->momentum);
    movingVariance[c] -= (movingVariance[c] - variance) * (1.0f - op->momentum);
    inverse[c] = 1.0f / __builtin_sqrtf(variance + op->epsilon);
  }
  const float *gamma = op->hasWeight ? params + op->weight : 0, *beta = op->hasBias ? params + op->bias : 0;
  for (u32 p = 0; p < count; p++) for (u32 c = 0; c < C; c++) {
    const float h = (in[p * C + c] - mean[c]) * inverse[c];
    op->aux[p * C + c] = h;
    op->output[p * C + c] = (gamma ? gamma[c] * h : h) + (beta ? beta[c] : 0.0f);
  }
}

static void batchNormBackward(const Op *op, const float *params, float *grads, const float *dOut, float *dIn, u32 rows) {
  const u32 C = op->inC, count = rows * op->inH * op->inW;
  const float *inverse = op->stats + C, *gamma = op->hasWeight ? params + op->weight : 0;
  // Per channel: sum of dOut and of dOut * x-hat (the beta and gamma gradients).
  float *sums = op->stats + 2 * C, *products = sums + C;
  for (u32 c = 0; c < C; c++) sums[c] = products[c] = 0.0f;
  for (u32 p = 0; p < count; p++) for (u32 c = 0; c < C; c++) {
    sums[c] += dOut[p * C + c];
    products[c] += dOut[p * C + c] * op->aux[p * C + c];
  }
  if (op->hasWeight) copy(grads + op->weight, products, C);
  if (op->hasBias) copy(grads + op->bias, sums, C);
  if (!dIn) return;
  // dx = gamma / std * (dy - mean(dy) - x-hat * mean(dy * x-hat))
  for (u32 p = 0; p < count; p++) for (u32 c = 0; c < C; c++) {
    const float g = gamma ? gamma[c] : 1.0f;
    dIn[p * C + c] = g * inverse[c] * (dOut[p * C + c] - sums[c] / (float)count - op->aux[p * C + c] * products[c] / (float)count);
  }
}

static void layerNormForward(const Op *op, const float *params, const float *in, u32 rows) {
  const u32 C = op->inC, positions = rows * op->inH * op->inW;
  const float *gamma = op->hasWeight ? params + op->weight : 0, *beta = op->hasBias ? params + op->bias : 0;
  for (u32 p = 0; p < positions; p++) {
    const float *x = in + p * C;
    float mean = 0.0f, variance = 0.0f;
    for (u32 c = 0; c < C; c++) mean += x[c];
    mean /= (float)C;
    for (u32 c = 0; c < C; c++) variance += (x[c] - mean) * (x[c] - mean);
    const float inverse = 1.0f / __builtin_sqrtf(variance / (float)C + op->epsilon);
    op->stats[p] = inverse;
    for (u32 c = 0; c < C; c++) {
      const float h = (x[c] - mean) * inverse;
      op->aux[p * C + c] = h;
      op->output[p * C + c] = (gamma ? gamma[c] * h : h) + (beta ? beta[c] : 0.0f);
    }
  }
}

static void layerNormBackward(const Op *op, const float *params, float *grads, const float *dOut, float *dIn, u32 rows) {
  const u32 C = op->inC, positions = rows * op->inH * op->inW;
  const float *gamma = op->hasWeight ? params + op->weight : 0;
  float *gg = op->hasWeight ? grads + op->weight : 0, *gb = op->hasBias ? grads + op->bias : 0;
  if (gg) zero(gg, C);
  if (gb) zero(gb, C);
  for (u32 p = 0; p < positions; p++) {
    const float *d = dOut + p * C, *h = op->aux + p * C;
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
      dIn[p * C + c] = op->stats[p] * (dh - sum / (float)C - h[c] * product / (float)C);
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
