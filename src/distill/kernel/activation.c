// ACTIVATION: an activation function on its own (a Keras Activation layer), Op.activation's.

#include "activation.h"
#include "ops.h"
#include "vector.h"

void activationForward(const Op *op, const float *in, u32 rows) {
  const Op L = *op;
  copy(L.output, in, rows * inSize(&L));
  activateAll(L.output, rows * inSize(&L), L.activation);
}

void activationBackward(const Op *op, float *dOut, float *dIn, u32 rows) {
  const Op L = *op;
  const u32 n = rows * outSize(&L);
  applyDerivative(dOut, L.output, n, L.activation);
  if (dIn) copy(dIn, dOut, n);
}
