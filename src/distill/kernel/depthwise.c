// DEPTHWISE: a depthwise convolution, output channel c * m + j seeing input channel c only (m,
// the depth multiplier, is outC / inC). Direct loops over the window's taps, no matrix product.

#include "activation.h"
#include "ops.h"
#include "vector.h"

void depthwiseForward(const Op *op, const float *params, const float *in, u32 rows) {
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
            if (m == 1) maddSpan(o, xp, wp, C);
            else for (u32 c = 0; c < N; c++) o[c] += xp[c / m] * wp[c];
          }
        }
      }
    }
    activateAll(y, outSize(&L), L.activation);
  }
}

void depthwiseBackward(const Op *op, const float *params, float *grads, const float *in, const float *dOut, float *dIn, u32 rows) {
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
              maddSpan(gw + tap, x + at, d, C);
              if (dx) maddSpan(dx + at, w + tap, d, C);
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
