// Normalisation: BATCH_NORM, batch statistics per channel (and Keras's moving statistics), and
// LAYER_NORM, statistics per position over its channels. Both keep x-hat in Op.aux.

#include "activation.h"
#include "ops.h"
#include "vector.h"

// Per-channel passes over [count, C] activations (addChannels, in vector.h, too); restrict-
// qualified so that clang vectorises the channel loops.
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

// h = (x - mean) * inverse; y = activation(gamma * h + beta): an Activation layer after the
// normalisation is fused into it (kernel-plan.ts), a relu in this same pass.
static void normalise(float *__restrict h, float *__restrict y, const float *__restrict x, const float *__restrict mean, const float *__restrict inverse, const float *__restrict gamma, const float *__restrict beta, u32 count, u32 C, u32 activation) {
  if (activation == RELU && C % 4 == 0) {
    // The relu as activateAll does it (relu4), so the bits are an Activation op's after it.
    for (u32 p = 0; p < count; p++)
      for (u32 c = 0; c < C; c += 4) {
        const u32 at = p * C + c;
        const v128_t v = wasm_f32x4_mul(wasm_f32x4_sub(wasm_v128_load(x + at), wasm_v128_load(mean + c)), wasm_v128_load(inverse + c));
        wasm_v128_store(h + at, v);
        const v128_t out = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(gamma + c), v), wasm_v128_load(beta + c));
        wasm_v128_store(y + at, relu4(out));
      }
    return;
  }
  for (u32 p = 0; p < count; p++) for (u32 c = 0; c < C; c++) {
    const float v = (x[p * C + c] - mean[c]) * inverse[c];
    h[p * C + c] = v;
    y[p * C + c] = gamma[c] * v + beta[c];
  }
  activateAll(y, count * C, activation);
}

// The batch's positions per channel: this thread's, or every thread's in a data-parallel step.
static u32 batchCount(const Op *op, u32 rows, const Team *team) {
  return (team ? team->totalRows : rows) * op->inH * op->inW;
}

// With a team, each sum is this thread's rows' and teamSum makes it the batch's (the same bits
// in every thread); thread 0 alone moves the moving statistics.
void batchNormForward(const Op *op, float *params, const float *in, u32 rows, Team *team) {
  const Op L = *op;
  const u32 C = L.inC, count = rows * L.inH * L.inW, batch = batchCount(&L, rows, team);
  // stats: mean, 1/std, then gamma and beta (ones and zeros where the layer has none).
  float *mean = L.stats, *inverse = L.stats + C, *gamma = L.stats + 2 * C, *beta = L.stats + 3 * C;
  zero(mean, 2 * C);
  addChannels(mean, in, count, C);
  if (team) teamSum(team, mean, C);
  for (u32 c = 0; c < C; c++) mean[c] /= (float)batch;
  addSquaredDeviations(inverse, in, mean, count, C);
  if (team) teamSum(team, inverse, C);
  const int moves = !team || team->thread == 0;
  float *movingMean = params + L.state, *movingVariance = movingMean + C;
  for (u32 c = 0; c < C; c++) {
    const float variance = inverse[c] / (float)batch;
    // Keras: moving -= (moving - batch) * (1 - momentum), with the biased batch variance.
    if (moves) {
      movingMean[c] -= (movingMean[c] - mean[c]) * (1.0f - L.momentum);
      movingVariance[c] -= (movingVariance[c] - variance) * (1.0f - L.momentum);
    }
    inverse[c] = 1.0f / __builtin_sqrtf(variance + L.epsilon);
    gamma[c] = L.hasWeight ? params[L.weight + c] : 1.0f;
    beta[c] = L.hasBias ? params[L.bias + c] : 0.0f;
  }
  normalise(L.aux, L.output, in, mean, inverse, gamma, beta, count, C, L.activation);
}

// Inference (the per-epoch probe): the moving statistics, as Keras's layer outside training;
// they are left as they are. stats holds 1/std, gamma and beta, as in training.
void batchNormInfer(const Op *op, const float *params, const float *in, u32 rows) {
  const Op L = *op;
  const u32 C = L.inC, count = rows * L.inH * L.inW;
  const float *mean = params + L.state, *variance = mean + C;
  float *inverse = L.stats + C, *gamma = L.stats + 2 * C, *beta = L.stats + 3 * C;
  for (u32 c = 0; c < C; c++) {
    inverse[c] = 1.0f / __builtin_sqrtf(variance[c] + L.epsilon);
    gamma[c] = L.hasWeight ? params[L.weight + c] : 1.0f;
    beta[c] = L.hasBias ? params[L.bias + c] : 0.0f;
  }
  normalise(L.aux, L.output, in, mean, inverse, gamma, beta, count, C, L.activation);
}

// dx = gamma / std * (dy - mean(dy) - x-hat * mean(dy * x-hat)); dy is past the fused
// activation's derivative (step.c applies it first).
static void batchNormInputGradient(float *__restrict dx, const float *__restrict d, const float *__restrict h, const float *__restrict scale, const float *__restrict meanD, const float *__restrict meanDH, u32 count, u32 C) {
  for (u32 p = 0; p < count; p++) for (u32 c = 0; c < C; c++) dx[p * C + c] = scale[c] * (d[p * C + c] - meanD[c] - h[p * C + c] * meanDH[c]);
}

// With a team, the gamma and beta gradients are this thread's rows' (the step sums the threads'
// gradients), and the input gradient takes the batch's sums (teamSum).
void batchNormBackward(const Op *op, const float *params, float *grads, const float *dOut, float *dIn, u32 rows, Team *team) {
  const Op L = *op;
  const u32 C = L.inC, count = rows * L.inH * L.inW, batch = batchCount(&L, rows, team);
  float *inverse = L.stats + C, *gamma = L.stats + 2 * C, *sums = L.stats + 4 * C, *products = L.stats + 5 * C;
  // Per channel: sum of dOut and of dOut * x-hat (the beta and gamma gradients).
  zero(sums, 2 * C);
  addProducts(sums, products, dOut, L.aux, count, C);
  if (L.hasWeight) copy(grads + L.weight, products, C);
  if (L.hasBias) copy(grads + L.bias, sums, C);
  if (!dIn) return;
  // sums and products lie one after the other: one reduction of 2C.
  if (team) teamSum(team, sums, 2 * C);
  for (u32 c = 0; c < C; c++) {
    sums[c] /= (float)batch;
    products[c] /= (float)batch;
    inverse[c] *= gamma[c];
  }
  batchNormInputGradient(dIn, dOut, L.aux, inverse, sums, products, count, C);
}

void layerNormForward(const Op *op, const float *params, const float *in, u32 rows) {
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

void layerNormBackward(const Op *op, const float *params, float *grads, const float *dOut, float *dIn, u32 rows) {
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
