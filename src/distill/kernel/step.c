// The step driver, the module's main export: forward through every op, the KD loss and its
// gradient, backward through every op, and Adam, in one call. It exists because TF.js's wasm
// backend lacks the gradient kernels of convolutions and pools (a conv student fell back to the
// pure-JS cpu backend, 65x slower than PyTorch), and because on a small student every TF.js op
// costs more in dispatch than in arithmetic. net_kd.h has the program and memory layout the host
// writes; kernel-plan.ts, which layers it takes. Each op family is in its own file (ops.h).

#include "activation.h"
#include "ops.h"
#include "vector.h"

// team: 0 in the single-threaded step; in a data-parallel one, this thread's view (ops.h).
// training: 0 in predict, where nothing the backward pass needs is kept.
static void forward(const Net *s, const Op *op, u32 index, const float *in, u32 rows, Team *team, int training) {
  switch (op->type) {
    case CONV: convForward(op, s->params, in, rows); break;
    case DEPTHWISE: depthwiseForward(op, s->params, in, rows); break;
    case MAX_POOL:
    case AVG_POOL: poolForward(op, in, rows, training); break;
    case GLOBAL_AVG:
    case GLOBAL_MAX: globalPoolForward(op, in, rows); break;
    case DROPOUT: dropoutForward(op, index, s->seed, in, rows, team ? team->firstRow * inSize(op) : 0); break;
    case BATCH_NORM: batchNormForward(op, s->params, in, rows, team); break;
    case LAYER_NORM: layerNormForward(op, s->params, in, rows); break;
    case ACTIVATION: activationForward(op, in, rows); break;
  }
}

// dOut: d loss / d this op's output, which this may overwrite; dIn: where d loss / d input goes,
// or 0 for the first op, whose input gradient nobody needs.
static void backward(const Net *s, const Op *op, const float *in, float *dOut, float *dIn, u32 rows, Team *team) {
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
    case BATCH_NORM:
      applyDerivative(dOut, op->output, n, op->activation);
      batchNormBackward(op, s->params, s->grads, dOut, dIn, rows, team);
      break;
    case LAYER_NORM: layerNormBackward(op, s->params, s->grads, dOut, dIn, rows); break;
    case ACTIVATION: activationBackward(op, dOut, dIn, rows); break;
  }
}

// Forward, the KD loss (summed over the rows; its gradient for a batch of totalRows rows) and
// backward over `rows` rows of s->x, leaving the weight gradients in s->grads.
static double forwardBackward(const Net *s, const Op *ops, u32 rows, u32 totalRows, Team *team) {
  const float *input = s->x;
  for (u32 l = 0; l < s->ops; l++) {
    forward(s, ops + l, l, input, rows, team, 1);
    input = ops[l].output;
  }
  const Op *last = ops + s->ops - 1;
  float *dOut = s->gradA, *dIn = s->gradB;
  const double loss = kdLoss(s, last->output, rows, last->outC, dOut, totalRows);
  for (u32 l = s->ops; l-- > 0;) {
    backward(s, ops + l, l == 0 ? s->x : ops[l - 1].output, dOut, l == 0 ? 0 : dIn, rows, team);
    float *t = dOut;
    dOut = dIn;
    dIn = t;
  }
  return loss;
}

__attribute__((export_name("step")))
float step(const Net *s, const Op *ops, u32 rows, float rate, float epsilon, float beta1, float beta2) {
  const double loss = forwardBackward(s, ops, rows, rows, 0);
  adamUpdate(s, rate, epsilon, beta1, beta2);
  return (float)(loss / (double)rows);
}

// Thread t's rows of Control.rows: [t * share, (t + 1) * share), fewer or none at the end.
typedef struct {
  u32 first, rows;
} Share;

static Share shareOf(const Control *c, u32 thread) {
  const u32 total = c->rows, share = (total + c->threads - 1) / c->threads;
  const u32 first = thread * share < total ? thread * share : total;
  return (Share){ first, total - first < share ? total - first : share };
}

// A data-parallel step (net_kd.h): thread t takes rows [t * share, (t + 1) * share) of the batch
// (fewer, or none, at the end), through its own Net (s: its x and targets point at the batch's
// first row, its grads and buffers are its own) and ops. Every thread makes the same teamSum and
// teamBarrier calls in the same order, whatever its rows.
__attribute__((export_name("step_thread")))
float step_thread(const Net *s, const Op *ops, Control *c, u32 thread) {
  const u32 total = c->rows;
  const Share mine = shareOf(c, thread);
  const u32 first = mine.first, rows = mine.rows;
  Net own = *s;
  own.x += first * s->inputSize;
  own.targets += first * ops[s->ops - 1].outC;
  Team team = { c, thread, first, total, 0 };
  c->losses[thread] = forwardBackward(&own, ops, rows, total, &team);
  teamBarrier(c);
  teamAdam(&own, &team);
  teamBarrier(c);
  // Thread 0's is the value the host reads; the others are done with Control (the host writes
  // the next step's there once thread 0 returns).
  if (thread != 0) return 0.0f;
  double loss = 0.0;
  for (u32 t = 0; t < c->threads; t++) loss += c->losses[t];
  return (float)(loss / (double)total);
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
    else forward(s, op, l, input, rows, 0, 0);
    input = op->output;
  }
  return input;
}

// Thread `thread`'s share of a forward pass in inference mode over Control.rows rows of the
// shared x, into its own buffers (its last op's output): rows are independent, so the logits are
// bit-identical to one thread's whatever the count. No barrier: each worker counts itself done in
// Control.arrived, and the host, once its own share is done, waits for the count in JavaScript
// (a main thread blocked in memory.atomic.wait here was never woken on Node 20's V8 with the
// relaxed SIMD flag, though the count had reached it).
__attribute__((export_name("predict_thread")))
void predict_thread(const Net *s, const Op *ops, Control *c, u32 thread) {
  const Share mine = shareOf(c, thread);
  Net own = *s;
  own.x += mine.first * s->inputSize;
  if (mine.rows > 0) predict(&own, ops, mine.rows);
  if (thread == 0) return;
  __atomic_add_fetch(&c->arrived, 1, __ATOMIC_SEQ_CST);
  __builtin_wasm_memory_atomic_notify((int *)&c->arrived, 1);
}
