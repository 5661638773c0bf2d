// DROPOUT: the mask is a hash of (seed, op index, element's index in the batch), so that the host
// can reproduce it and a thread of a data-parallel step draws its rows' part of the same mask;
// Op.aux keeps it, scaled by 1 / (1 - rate), for the backward pass.

#include "ops.h"
#include "vector.h"

static inline u32 mix(u32 h) {
  h ^= h >> 16;
  h *= 0x7feb352dU;
  h ^= h >> 15;
  h *= 0x846ca68bU;
  h ^= h >> 16;
  return h;
}

// Uniform in [0, 1) from a 24-bit draw; dropoutUniform in test/distill/kernel-random.ts computes
// the same.
static inline float uniform(u32 seed, u32 op, u32 element) {
  return (float)(mix(mix(seed ^ (op * 0x9e3779b9U)) ^ element) >> 8) * (1.0f / 16777216.0f);
}

void dropoutForward(const Op *op, u32 index, u32 seed, const float *in, u32 rows, u32 first) {
  const Op L = *op;
  const u32 n = rows * inSize(&L);
  const float keep = 1.0f - L.rate, scale = 1.0f / keep;
  for (u32 i = 0; i < n; i++) {
    const float m = uniform(seed, index, first + i) < keep ? scale : 0.0f;
    L.aux[i] = m;
    L.output[i] = in[i] * m;
  }
}

void dropoutBackward(const Op *op, const float *dOut, float *dIn, u32 rows) {
  const Op L = *op;
  const u32 n = rows * outSize(&L);
  for (u32 i = 0; i < n; i++) dIn[i] = dOut[i] * L.aux[i];
}
