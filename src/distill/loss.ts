import type { GradSaveFunc, Scalar, Tensor } from '@tensorflow/tfjs';
import type { Tf } from '../backend/resolve.js';
import type { KdWeights, SoftmaxTerm } from './targets.js';

/**
 * Hinton knowledge distillation:
 *   alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(y, softmax(s))
 * `teacherLogits` may be log-probabilities (a softmax teacher): softmax(log p / T) is the same
 * tempered distribution. T^2 keeps the soft gradients' scale independent of T. Without labels
 * the hard term is dropped and the distillation term takes the whole weight.
 *
 * This is the loss as written in the paper; training uses `kdLossAndGradient`, the same loss
 * expanded so that the teacher's side is computed once on the host (see `kdTargets`).
 */
export function distillationLoss(
  tf: Tf,
  studentLogits: Tensor,
  teacherLogits: Tensor,
  labels: Tensor | undefined,
  { temperature: T, alpha }: KdWeights,
): Scalar {
  return tf.tidy(() => {
    const teacherLogP = tf.logSoftmax(tf.div(teacherLogits, T));
    const studentLogP = tf.logSoftmax(tf.div(studentLogits, T));
    const kl = tf.mean(tf.sum(tf.mul(tf.exp(teacherLogP), tf.sub(teacherLogP, studentLogP)), -1));
    const soft = tf.mul<Scalar>(kl, T * T);
    if (!labels) return soft;
    const classes = studentLogits.shape[studentLogits.shape.length - 1];
    const hard = tf.neg(tf.mean(tf.sum(tf.mul(tf.oneHot(labels, classes), tf.logSoftmax(studentLogits)), -1)));
    return tf.add<Scalar>(tf.mul(soft, alpha), tf.mul(hard, 1 - alpha));
  });
}

/**
 * The KD loss of one batch and its gradient with respect to the student's logits, in closed form:
 * about a dozen device ops where autodiff through `distillationLoss` takes some eighty, which on a
 * small student is most of a training step. `targets` and `terms` come from `kdTargets`/`kdTerms`;
 * the value leaves out the teacher-only constant, which the caller adds on the host.
 */
export function kdLossAndGradient(
  tf: Tf,
  logits: Tensor,
  targets: Tensor,
  terms: SoftmaxTerm[],
): { value: Scalar; gradient: Tensor } {
  const rows = logits.shape[0];
  const perTerm: [number, number, number] = [terms.length, 1, 1];
  // Every term's softmax at once, stacked on a leading axis: the op count does not grow with terms.
  const stacked = terms.length === 1 ? tf.expandDims(logits, 0) : tf.stack(terms.map(() => logits));
  const scaled = tf.mul(
    stacked,
    tf.tensor3d(
      terms.map((t) => t.scale),
      perTerm,
    ),
  );
  const max = tf.max(scaled, -1, true);
  const exp = tf.exp(tf.sub(scaled, max));
  const total = tf.sum(exp, -1, true);
  const logSumExp = tf.add(tf.log(total), max);
  const value = tf.div<Scalar>(
    tf.sub(
      tf.sum(
        tf.mul(
          logSumExp,
          tf.tensor3d(
            terms.map((t) => t.weight),
            perTerm,
          ),
        ),
      ),
      tf.sum(tf.mul(targets, logits)),
    ),
    rows,
  );
  const softmaxes = tf.mul(
    tf.div(exp, total),
    tf.tensor3d(
      terms.map((t) => t.weight * t.scale),
      perTerm,
    ),
  );
  const gradient = tf.div(tf.sub(tf.sum(softmaxes, 0), targets), rows);
  return { value, gradient };
}

/** `kdLossAndGradient` as a differentiable op, for students trained through autodiff. */
export function kdLoss(tf: Tf, logits: Tensor, targets: Tensor, terms: SoftmaxTerm[]): Scalar {
  const loss = tf.customGrad((...args: (Tensor | GradSaveFunc)[]) => {
    const [input, save] = args as [Tensor, GradSaveFunc];
    const { value, gradient } = kdLossAndGradient(tf, input, targets, terms);
    save([gradient]);
    return { value, gradFunc: (dy, [saved]) => tf.mul(saved, dy) };
  });
  return loss(logits);
}
