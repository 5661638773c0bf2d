// Loops over float buffers that several op families share. Static inline: every file that uses
// one gets its own copy for the compiler to inline.
#ifndef VECTOR_H
#define VECTOR_H

#include <wasm_simd128.h>

#include "net_kd.h"

// acc + a * b, four lanes. The kernel is built twice from the same source (scripts/build-kernel.mjs):
// with SIMD128 alone, a multiply then an add, each rounded; with relaxed SIMD (-mrelaxed-simd),
// f32x4.relaxed_madd, which the engine may fuse into one FMA, rounded once (x86 with FMA, arm64)
// or not. The two modules may differ in the last bits; each is reproducible on its own.
#ifdef __wasm_relaxed_simd__
#define MADD(acc, a, b) wasm_f32x4_relaxed_madd((a), (b), (acc))
#else
#define MADD(acc, a, b) wasm_f32x4_add((acc), wasm_f32x4_mul((a), (b)))
#endif

static inline u32 inSize(const Op *op) { return op->inH * op->inW * op->inC; }
static inline u32 outSize(const Op *op) { return op->outH * op->outW * op->outC; }

static inline void zero(float *__restrict p, u32 n) {
  u32 i = 0;
  for (; i + 4 <= n; i += 4) wasm_v128_store(p + i, wasm_f32x4_splat(0.0f));
  for (; i < n; i++) p[i] = 0.0f;
}

static inline void copy(float *__restrict to, const float *__restrict from, u32 n) {
  u32 i = 0;
  for (; i + 4 <= n; i += 4) wasm_v128_store(to + i, wasm_v128_load(from + i));
  for (; i < n; i++) to[i] = from[i];
}

// Four channels from c on, n of them real: a tail of fewer than 4 reads and writes only n (the
// rest read as 0), by lane loads and stores rather than a round trip through memory.
static inline v128_t load4(const float *p, u32 n) {
  if (n >= 4) return wasm_v128_load(p);
  if (n == 1) return wasm_v128_load32_zero(p);
  const v128_t two = wasm_v128_load64_zero(p);
  return n == 2 ? two : wasm_v128_load32_lane(p + 2, two, 2);
}

static inline void store4(float *p, v128_t v, u32 n) {
  if (n >= 4) wasm_v128_store(p, v);
  else if (n == 1) wasm_v128_store32_lane(p, v, 0);
  else {
    wasm_v128_store64_lane(p, v, 0);
    if (n == 3) wasm_v128_store32_lane(p + 2, v, 2);
  }
}

// to += from.
static inline void addSpan(float *__restrict to, const float *__restrict from, u32 n) {
  u32 i = 0;
  for (; i + 4 <= n; i += 4) wasm_v128_store(to + i, wasm_f32x4_add(wasm_v128_load(to + i), wasm_v128_load(from + i)));
  for (; i < n; i++) to[i] += from[i];
}

// to += a * b, element by element.
static inline void maddSpan(float *__restrict to, const float *__restrict a, const float *__restrict b, u32 n) {
  u32 i = 0;
  for (; i + 4 <= n; i += 4) wasm_v128_store(to + i, MADD(wasm_v128_load(to + i), wasm_v128_load(a + i), wasm_v128_load(b + i)));
  for (; i < n; i++) to[i] += a[i] * b[i];
}

// sums[c] += x[p][c] over [count, C] activations (a bias gradient, a channel mean); restrict-
// qualified so that clang vectorises the channel loop.
static inline void addChannels(float *__restrict sums, const float *__restrict x, u32 count, u32 C) {
  for (u32 p = 0; p < count; p++) for (u32 c = 0; c < C; c++) sums[c] += x[p * C + c];
}

#endif
