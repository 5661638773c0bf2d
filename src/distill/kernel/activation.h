// Activation functions and their derivatives, fused into CONV and DEPTHWISE and applied alone by
// ACTIVATION ops (activation.c).
#ifndef ACTIVATION_H
#define ACTIVATION_H

#include <wasm_simd128.h>

#include "net_kd.h"

static inline float activate(float v, u32 activation) {
  if (activation == RELU) return v > 0.0f ? v : 0.0f;
  if (activation == SIGMOID) return (float)(1.0 / (1.0 + host_exp(-(double)v)));
  if (activation == TANH) {
    const double e = host_exp(2.0 * (double)v);
    return (float)(1.0 - 2.0 / (e + 1.0));
  }
  return v;
}

// A relu of four lanes, f32x4.max with zero: kernels that apply a relu as they store their
// outputs (a fused batch normalisation, F(4x4)'s output transform) use this, so their bits are
// activateAll's.
static inline v128_t relu4(v128_t v) { return wasm_f32x4_max(v, wasm_f32x4_splat(0.0f)); }

static inline void activateAll(float *p, u32 n, u32 activation) {
  if (activation == LINEAR) return;
  if (activation == RELU) {
    u32 i = 0;
    for (; i + 4 <= n; i += 4) wasm_v128_store(p + i, relu4(wasm_v128_load(p + i)));
    for (; i < n; i++) p[i] = p[i] > 0.0f ? p[i] : 0.0f;
    return;
  }
  for (u32 i = 0; i < n; i++) p[i] = activate(p[i], activation);
}

// delta *= activation'(output), written in terms of the layer's output.
static inline void applyDerivative(float *__restrict delta, const float *__restrict output, u32 count, u32 activation) {
  if (activation == RELU) {
    const v128_t zeros = wasm_f32x4_splat(0.0f);
    u32 i = 0;
    for (; i + 4 <= count; i += 4) wasm_v128_store(delta + i, wasm_v128_and(wasm_v128_load(delta + i), wasm_f32x4_gt(wasm_v128_load(output + i), zeros)));
    for (; i < count; i++) delta[i] = output[i] > 0.0f ? delta[i] : 0.0f;
  }
  else if (activation == SIGMOID) for (u32 i = 0; i < count; i++) delta[i] *= output[i] * (1.0f - output[i]);
  else if (activation == TANH) for (u32 i = 0; i < count; i++) delta[i] *= 1.0f - output[i] * output[i];
}

#endif
