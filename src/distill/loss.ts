import type { Scalar, Tensor } from '@tensorflow/tfjs';
import type { Tf } from '../backend/resolve.js';

export interface KdWeights {
  temperature: number;
  /** Weight of the distillation term; the hard-label term gets 1 - alpha. */
  alpha: number;
}

/**
 * Hinton knowledge distillation:
 *   alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(y, softmax(s))
 * `teacherLogits` may be log-probabilities (a softmax teacher): softmax(log p / T) is the same
 * tempered distribution. T^2 keeps the soft gradients' scale independent of T. Without labels
 * the hard term is dropped and the distillation term takes the whole weight.
 */
export function distillationLoss(tf: Tf, studentLogits: Tensor, teacherLogits: Tensor, labels: Tensor | undefined, { temperature: T, alpha }: KdWeights): Scalar {
  return tf.tidy(() => {
    const teacherLogP = tf.logSoftmax(tf.div(teacherLogits, T));
    const studentLogP = tf.logSoftmax(tf.div(studentLogits, T));
    const kl = tf.mean(tf.sum(tf.mul(tf.exp(teacherLogP), tf.sub(teacherLogP, studentLogP)), -1));
    const soft = tf.mul(kl, T * T);
    if (!labels) return soft as Scalar;
    const classes = studentLogits.shape[studentLogits.shape.length - 1];
    const hard = tf.neg(tf.mean(tf.sum(tf.mul(tf.oneHot(labels, classes), tf.logSoftmax(studentLogits)), -1)));
    return tf.add(tf.mul(soft, alpha), tf.mul(hard, 1 - alpha)) as Scalar;
  });
}
