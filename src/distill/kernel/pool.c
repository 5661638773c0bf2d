// Pools: MAX_POOL and AVG_POOL over windows clipped to the input (an average divides by the
// pixels inside, as TF does), and GLOBAL_MAX and GLOBAL_AVG over every pixel. Max pools keep
// where each maximum was in Op.aux (as u32), for the backward pass.

#include <wasm_simd128.h>

#include "ops.h"
#include "vector.h"

// The common max pool, 2x2 windows at stride 2 that all lie inside the input: the four taps of
// a window at once, compared in the general loop's order (a later tap wins only where greater),
// so the outputs and the argmax are the same bits. Inference (`keep` 0) skips the argmax.
static int isHalving(const Op *op) {
  return op->type == MAX_POOL && op->kh == 2 && op->kw == 2 && op->sh == 2 && op->sw == 2 && op->padT == 0 &&
         op->padL == 0 && 2 * op->outH <= op->inH && 2 * op->outW <= op->inW && op->inC % 4 == 0;
}

static void halvingMaxPool(const Op *op, const float *in, u32 rows, int keep) {
  const Op L = *op;
  const u32 C = L.inC, rowStride = L.inW * C;
  const v128_t lanes = wasm_i32x4_make(0, 1, 2, 3);
  for (u32 r = 0; r < rows; r++) {
    const float *x = in + r * inSize(&L);
    float *y = L.output + r * outSize(&L);
    u32 *argmax = (u32 *)L.aux + r * outSize(&L);
    for (u32 oy = 0; oy < L.outH; oy++)
      for (u32 ox = 0; ox < L.outW; ox++) {
        const u32 at = (2 * oy * L.inW + 2 * ox) * C, taps[4] = {at, at + C, at + rowStride, at + rowStride + C};
        float *yo = y + (oy * L.outW + ox) * C;
        u32 *ao = argmax + (oy * L.outW + ox) * C;
        for (u32 c = 0; c < C; c += 4) {
          v128_t best = wasm_v128_load(x + taps[0] + c);
          v128_t where = wasm_i32x4_add(wasm_i32x4_splat((int)(taps[0] + c)), lanes);
          for (int t = 1; t < 4; t++) {
            const v128_t v = wasm_v128_load(x + taps[t] + c), greater = wasm_f32x4_gt(v, best);
            best = wasm_v128_bitselect(v, best, greater);
            if (keep) where = wasm_v128_bitselect(wasm_i32x4_add(wasm_i32x4_splat((int)(taps[t] + c)), lanes), where, greater);
          }
          wasm_v128_store(yo + c, best);
          if (keep) wasm_v128_store(ao + c, where);
        }
      }
  }
}

// Per output pixel, the window's taps in turn, all channels of a tap at once (they are
// contiguous): four lanes at a time, the max and where it was kept without branches.
void poolForward(const Op *op, const float *in, u32 rows, int keep) {
  if (isHalving(op)) {
    halvingMaxPool(op, in, rows, keep);
    return;
  }
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

void poolBackward(const Op *op, const float *dOut, float *dIn, u32 rows) {
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

void globalPoolForward(const Op *op, const float *in, u32 rows) {
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

void globalPoolBackward(const Op *op, const float *dOut, float *dIn, u32 rows) {
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
