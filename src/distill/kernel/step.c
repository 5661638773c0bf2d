// The step driver, the module's main export: forward through every op, the KD loss and its
// gradient, backward through every op, and Adam, in one call. It exists because TF.js's wasm
// backend lacks the gradient kernels of convolutions and pools (a conv student fell back to the
// pure-JS cpu backend, 65x slower than PyTorch), and because on a small student every TF.js op
// costs more in dispatch than in arithmetic. net_kd.h has the program and memory layout the host
// writes; kernel-plan.ts, which layers it takes. Each op family is in its own file (ops.h).

#include "activation.h"
#include "ops.h"
#include "vector.h"

static void forward(const Net *s, const Op *op, u32 index, const float *in, u32 rows) {
  switch (op->type) {
    case CONV: convForward(op, s->params, in, rows); break;
    case DEPTHWISE: depthwiseForward(op, s->params, in, rows); break;
    case MAX_POOL:
    case AVG_POOL: poolForward(op, in, rows); break;
    case GLOBAL_AVG:
    case GLOBAL_MAX: globalPoolForward(op, in, rows); break;
    case DROPOUT: dropoutForward(op, index, s->seed, in, rows); break;
    case BATCH_NORM: batchNormForward(op, s->params, in, rows); break;
    case LAYER_NORM: layerNormForward(op, s->params, in, rows); break;
    case ACTIVATION: activationForward(op, in, rows); break;
  }
}

// dOut: d loss / d this op's output, which this may overwrite; dIn: where d loss / d input goes,
// or 0 for the first op, whose input gradient nobody needs.
static void backward(const Net *s, const Op *op, const float *in, float *dOut, float *dIn, u32 rows) {
  const u32 n = rows * outSize(op);
  switch (op->type) {
    case CONV:
      applyDerivative(dOut, op->output, n, op->activation);
      convBackward(op, s->params, s->grads, in, dOut, dIn, rows);
      break;
    case DEPTHWISE:
      applyDerivative(dOut, op->output, n, op->activation);
      depthwiseBackward(op, s->params, s->grads, in, dOut, dIn, rows);
      break;
    case MAX_POOL:
    case AVG_POOL: if (dIn) poolBackward(op, dOut, dIn, rows); break;
    case GLOBAL_AVG:
    case GLOBAL_MAX: if (dIn) globalPoolBackward(op, dOut, dIn, rows); break;
    case DROPOUT: if (dIn) dropoutBackward(op, dOut, dIn, rows); break;
    case BATCH_NORM: batchNormBackward(op, s->params, s->grads, dOut, dIn, rows); break;
    case LAYER_NORM: layerNormBackward(op, s->params, s->grads, dOut, dIn, rows); break;
    case ACTIVATION: activationBackward(op, dOut, dIn, rows); break;
  }
}

__attribute__((export_name("step")))
float step(const Net *s, const Op *ops, u32 rows, float rate, float epsilon, float beta1, float beta2) {
  const float *input = s->x;
  for (u32 l = 0; l < s->ops; l++) {
    forward(s, ops + l, l, input, rows);
    input = ops[l].output;
  }
  const Op *last = ops + s->ops - 1;
  float *dOut = s->gradA, *dIn = s->gradB;
  const float loss = kdLoss(s, last->output, rows, last->outC, dOut);
  for (u32 l = s->ops; l-- > 0;) {
    backward(s, ops + l, l == 0 ? s->x : ops[l - 1].output, dOut, l == 0 ? 0 : dIn, rows);
    float *t = dOut;
    dOut = dIn;
    dIn = t;
  }
  adamUpdate(s, rate, epsilon, beta1, beta2);
  return loss;
}

// The student's logits on `rows` rows of Net.x, as the layers give them outside training (the
// per-epoch probe, without copying the weights back to the host): dropout passes its input on,
// batch normalisation uses the moving statistics. Returns where the logits are (the last op's
// output, [rows, classes]). Weights, moments and moving statistics are left as they are; the
// ops' scratch buffers are overwritten, which the next step's forward pass does anyway.
__attribute__((export_name("predict")))
const float *predict(const Net *s, const Op *ops, u32 rows) {
  const float *input = s->x;
  for (u32 l = 0; l < s->ops; l++) {
    const Op *op = ops + l;
    if (op->type == DROPOUT) continue;
    if (op->type == BATCH_NORM) batchNormInfer(op, s->params, input, rows);
    else forward(s, op, l, input, rows);
    input = op->output;
  }
  return input;
}
