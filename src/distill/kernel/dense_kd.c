// One knowledge-distillation training step of a Dense-stack student, in one WebAssembly call:
// forward, the KD loss and its gradient from host-side targets, backward, and Adam. It exists
// because on a small student every TF.js op costs more in dispatch than in arithmetic; see
// dense-kernel.ts for the memory layout the host writes and when the kernel is used.
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

// Written by the host; every pointer is a byte offset into this module's memory.
typedef struct {
  u32 layers;        // number of Dense layers
  u32 inputWidth;    // features per row
  u32 terms;         // softmax terms of the loss (1 or 2)
  float scale[2];    // per term: logits are multiplied by scale...
  float weight[2];   // ...and the term's log-sum-exp by weight
  float *x;          // [rows, inputWidth], the batch
  float *targets;    // [rows, classes], from kdTargets
  float *params;     // every layer's kernel [in, out] then bias [out], in order
  float *grads;      // same layout as params
  float *moment1;    // Adam's moments, same layout
  float *moment2;
  u32 paramCount;
  double *scratch;   // [classes], one row's exponentials
} Step;

typedef struct {
  u32 width;         // output units
  u32 activation;
  u32 hasBias;
  u32 kernel;        // offsets, in floats, into params/grads
  u32 bias;
  float *output;     // [maxRows, width], activations after the activation function
  float *delta;      // [maxRows, width], d loss / d pre-activation
} Layer;

static void zero(float *p, u32 n) {
  for (u32 i = 0; i < n; i++) p[i] = 0.0f;
}

// out[rows, n] = a[rows, k] . w[k, n]  (+ bias), then the activation.
static void forward(const float *a, u32 rows, u32 k, const float *w, const float *bias, u32 n, u32 activation, float *out) {
  for (u32 r = 0; r < rows; r++) {
    float *o = out + r * n;
    if (bias) for (u32 j = 0; j < n; j++) o[j] = bias[j];
    else zero(o, n);
    const float *ar = a + r * k;
    for (u32 i = 0; i < k; i++) {
      const float av = ar[i];
      const float *wr = w + i * n;
      for (u32 j = 0; j < n; j++) o[j] += av * wr[j];
    }
    for (u32 j = 0; j < n; j++) {
      const float v = o[j];
      if (activation == RELU) o[j] = v > 0.0f ? v : 0.0f;
      else if (activation == SIGMOID) o[j] = (float)(1.0 / (1.0 + host_exp(-(double)v)));
      else if (activation == TANH) {
        const double e = host_exp(2.0 * (double)v);
        o[j] = (float)(1.0 - 2.0 / (e + 1.0));
      }
    }
  }
}

// A dot product four lanes at a time: clang does not vectorise a float reduction on its own
// (it may not reorder the sum without -ffast-math, which would also drop NaN checks).
static float dot(const float *a, const float *b, u32 n) {
  v128_t lanes = wasm_f32x4_splat(0.0f);
  u32 j = 0;
  for (; j + 4 <= n; j += 4) lanes = wasm_f32x4_add(lanes, wasm_f32x4_mul(wasm_v128_load(a + j), wasm_v128_load(b + j)));
  float sum = wasm_f32x4_extract_lane(lanes, 0) + wasm_f32x4_extract_lane(lanes, 1) + wasm_f32x4_extract_lane(lanes, 2) + wasm_f32x4_extract_lane(lanes, 3);
  for (; j < n; j++) sum += a[j] * b[j];
  return sum;
}

// delta *= activation'(output), written in terms of the layer's output.
static void applyDerivative(float *delta, const float *output, u32 count, u32 activation) {
  if (activation == RELU) for (u32 i = 0; i < count; i++) delta[i] = output[i] > 0.0f ? delta[i] : 0.0f;
  else if (activation == SIGMOID) for (u32 i = 0; i < count; i++) delta[i] *= output[i] * (1.0f - output[i]);
  else if (activation == TANH) for (u32 i = 0; i < count; i++) delta[i] *= 1.0f - output[i] * output[i];
}

// The KD loss of the batch (without the teacher-only constant) and d loss / d logits into delta.
static float kdLoss(const Step *s, const float *logits, u32 rows, u32 classes, float *delta) {
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

__attribute__((export_name("step")))
float step(const Step *s, const Layer *layers, u32 rows, float rate, float epsilon, float beta1, float beta2) {
  // Forward.
  const float *input = s->x;
  u32 width = s->inputWidth;
  for (u32 l = 0; l < s->layers; l++) {
    const Layer *layer = layers + l;
    forward(input, rows, width, s->params + layer->kernel, layer->hasBias ? s->params + layer->bias : 0, layer->width, layer->activation, layer->output);
    input = layer->output;
    width = layer->width;
  }
  const Layer *last = layers + s->layers - 1;
  const float loss = kdLoss(s, last->output, rows, last->width, last->delta);

  // Backward: per layer, kernel gradient a^T . delta, bias gradient sum(delta), then the delta
  // of the layer below, delta . W^T times its activation's derivative.
  for (u32 l = s->layers; l-- > 0;) {
    const Layer *layer = layers + l;
    const u32 n = layer->width;
    if (layer->activation != LINEAR) applyDerivative(layer->delta, layer->output, rows * n, layer->activation);
    const float *a = l == 0 ? s->x : layers[l - 1].output;
    const u32 k = l == 0 ? s->inputWidth : layers[l - 1].width;
    float *gw = s->grads + layer->kernel;
    zero(gw, k * n);
    for (u32 r = 0; r < rows; r++) {
      const float *ar = a + r * k;
      const float *dr = layer->delta + r * n;
      for (u32 i = 0; i < k; i++) {
        const float av = ar[i];
        float *g = gw + i * n;
        for (u32 j = 0; j < n; j++) g[j] += av * dr[j];
      }
    }
    if (layer->hasBias) {
      float *gb = s->grads + layer->bias;
      zero(gb, n);
      for (u32 r = 0; r < rows; r++) for (u32 j = 0; j < n; j++) gb[j] += layer->delta[r * n + j];
    }
    if (l > 0) {
      const float *w = s->params + layer->kernel;
      float *below = layers[l - 1].delta;
      for (u32 r = 0; r < rows; r++) {
        const float *dr = layer->delta + r * n;
        float *br = below + r * k;
        for (u32 i = 0; i < k; i++) br[i] = dot(dr, w + i * n, n);
      }
    }
  }

  // Adam, bias corrections folded into rate and epsilon by the host (as FlatAdam does).
  for (u32 i = 0; i < s->paramCount; i++) {
    const float g = s->grads[i];
    const float m = beta1 * s->moment1[i] + (1.0f - beta1) * g;
    const float v = beta2 * s->moment2[i] + (1.0f - beta2) * g * g;
    s->moment1[i] = m;
    s->moment2[i] = v;
    s->params[i] -= rate * m / (__builtin_sqrtf(v) + epsilon);
  }
  return loss;
}
