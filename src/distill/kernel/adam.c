// Adam over the trainable params, bias corrections folded into rate and epsilon by the host (as
// FlatAdam does).

#include "ops.h"

void adamUpdate(const Net *s, float rate, float epsilon, float beta1, float beta2) {
  adamSpan(s, 0, s->trainable, rate, epsilon, beta1, beta2);
}

void adamSpan(const Net *s, u32 from, u32 to, float rate, float epsilon, float beta1, float beta2) {
  for (u32 i = from; i < to; i++) {
    const float g = s->grads[i];
    const float m = beta1 * s->moment1[i] + (1.0f - beta1) * g;
    const float v = beta2 * s->moment2[i] + (1.0f - beta2) * g * g;
    s->moment1[i] = m;
    s->moment2[i] = v;
    s->params[i] -= rate * m / (__builtin_sqrtf(v) + epsilon);
  }
}
