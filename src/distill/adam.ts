import type { Tensor, Variable } from '@tensorflow/tfjs';
import type { Tf } from '../backend/resolve.js';

/** Adam's step size and epsilon for step `step` (from 1), bias corrections folded in (see FlatAdam). */
export function correctedAdam(
  step: number,
  learningRate: number,
  beta1: number,
  beta2: number,
  epsilon: number,
): { rate: number; epsilon: number } {
  const correction2 = Math.sqrt(1 - beta2 ** step);
  return { rate: (learningRate * correction2) / (1 - beta1 ** step), epsilon: epsilon * correction2 };
}

/**
 * Adam over all of a student's variables at once, numerically the update of `tf.train.adam`.
 * `tf.train.adam` spends ~15 ops per variable per step; a small student's step is then mostly
 * optimiser dispatch. Here the gradients are concatenated into one vector, the moments are one
 * vector each, and the bias corrections are folded into two host-side scalars:
 *   lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)  ==  lr_t * m / (sqrt(v) + eps_t)
 *   with lr_t = lr * sqrt(1-b2^t) / (1-b1^t)  and  eps_t = eps * sqrt(1-b2^t).
 */
export class FlatAdam {
  private readonly firstMoment: Variable;
  private readonly secondMoment: Variable;
  private readonly sizes: number[];
  private step = 0;

  constructor(
    private readonly tf: Tf,
    private readonly variables: Variable[],
    private readonly learningRate: number,
    private readonly beta1 = 0.9,
    private readonly beta2 = 0.999,
    // The backend's epsilon, as tf.train.adam uses (1e-7 in float32, larger on float16 devices).
    private readonly epsilon = tf.backend().epsilon(),
  ) {
    this.sizes = variables.map((v) => v.size);
    const total = this.sizes.reduce((a, b) => a + b, 0);
    // Inside tidy, so the zeros the variables are made from are released.
    [this.firstMoment, this.secondMoment] = tf.tidy(() => [
      tf.variable(tf.zeros([total]), false),
      tf.variable(tf.zeros([total]), false),
    ]);
  }

  /** Applies one update; `gradients[i]` belongs to `variables[i]`. Call inside `tf.tidy`. */
  apply(gradients: Tensor[]): void {
    const { tf, beta1, beta2 } = this;
    // Every new value is computed before any is assigned, and the step counted last: a step that
    // throws part-way (out of memory) leaves the optimiser as it was, to be retried.
    const step = this.step + 1;
    const flat =
      gradients.length === 1 ? tf.reshape(gradients[0], [-1]) : tf.concat(gradients.map((g) => tf.reshape(g, [-1])));
    const m = tf.add(tf.mul(this.firstMoment, beta1), tf.mul(flat, 1 - beta1));
    const v = tf.add(tf.mul(this.secondMoment, beta2), tf.mul(tf.square(flat), 1 - beta2));
    const { rate, epsilon } = correctedAdam(step, this.learningRate, beta1, beta2, this.epsilon);
    const update = tf.mul(tf.div(m, tf.add(tf.sqrt(v), epsilon)), rate);
    const parts = this.variables.length === 1 ? [update] : tf.split(update, this.sizes);
    const values = this.variables.map((variable, i) => tf.sub(variable, tf.reshape(parts[i], variable.shape)));
    this.firstMoment.assign(m);
    this.secondMoment.assign(v);
    this.variables.forEach((variable, i) => variable.assign(values[i]));
    this.step = step;
  }

  dispose(): void {
    this.firstMoment.dispose();
    this.secondMoment.dispose();
  }
}
