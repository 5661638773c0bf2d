// The KD loss of a batch's rows (without the teacher-only constant) and d loss / d logits: per row,
// -sum(targets * logits) plus, per softmax term, weight * log-sum-exp(logits * scale). The host's
// targets (kdTargets) fold the temperature, alpha and the hard labels into the terms.

#include "ops.h"

double kdLoss(const Net *s, const float *logits, u32 rows, u32 classes, float *delta, u32 totalRows) {
  double value = 0.0;
  // The batch's rows, not this thread's: the gradient is the whole batch's mean.
  const float inverseRows = 1.0f / (float)totalRows;
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
  return value;
}
