export interface KdWeights {
  temperature: number;
  /** Weight of the distillation term; the hard-label term gets 1 - alpha. */
  alpha: number;
}

/**
 * One softmax term of the KD loss, at one temperature: `weight * lse(logits * scale)` per row.
 * Hinton KD is two of them: the tempered distillation term (scale 1/T, weight alpha*T^2) and the
 * hard-label term (scale 1, weight 1 - alpha), which is dropped when there are no labels.
 */
export interface SoftmaxTerm {
  scale: number;
  weight: number;
}

export function kdTerms({ temperature: T, alpha }: KdWeights, hasLabels: boolean): SoftmaxTerm[] {
  if (!hasLabels) return [{ scale: 1 / T, weight: T * T }];
  return [
    { scale: 1 / T, weight: alpha * T * T },
    { scale: 1, weight: 1 - alpha },
  ].filter((term) => term.weight > 0);
}

export interface KdBatchTargets {
  /** Per row, the weights of the student's logits in the loss's linear part; see `kdTargets`. */
  targets: Float32Array;
  /** The sum over the batch's rows of the loss's teacher-only part (alpha*T^2 * sum p log p). */
  constant: number;
}

/**
 * The teacher's side of the KD loss for one batch, computed on the host so no training step
 * spends device ops on it. Per row, with p = softmax(teacher / T) and y the label:
 *   loss = sum_terms weight * lse(s * scale)  -  targets . s  +  constant
 *   targets = alpha*T * p + (1 - alpha) * onehot(y)      constant = alpha*T^2 * sum p log p
 * which is alpha*T^2 * KL(p || softmax(s/T)) + (1 - alpha) * CE(y, softmax(s)) expanded, and
 * d loss / d s = sum_terms weight * scale * softmax(s * scale) - targets.
 * `teacherLogits` may be log-probabilities: softmax(log p / T) is the same tempered distribution.
 */
export function kdTargets(
  teacherLogits: Float32Array,
  labels: Int32Array | undefined,
  rows: ArrayLike<number>,
  classes: number,
  { temperature: T, alpha }: KdWeights,
): KdBatchTargets {
  const soft = labels ? alpha : 1;
  const targets = new Float32Array(rows.length * classes);
  const p = new Float64Array(classes);
  let constant = 0;
  for (let i = 0; i < rows.length; i++) {
    const from = rows[i] * classes;
    let max = -Infinity;
    for (let c = 0; c < classes; c++) max = Math.max(max, teacherLogits[from + c] / T);
    let total = 0;
    for (let c = 0; c < classes; c++) total += p[c] = Math.exp(teacherLogits[from + c] / T - max);
    const logTotal = Math.log(total);
    let negativeEntropy = 0;
    for (let c = 0; c < classes; c++) {
      p[c] /= total;
      // log p = logit/T - max - log(total), exact even where p underflows to 0 (p log p -> 0).
      if (p[c] > 0) negativeEntropy += p[c] * (teacherLogits[from + c] / T - max - logTotal);
      targets[i * classes + c] = soft * T * p[c];
    }
    if (labels) targets[i * classes + labels[rows[i]]] += 1 - alpha;
    constant += soft * T * T * negativeEntropy;
  }
  return { targets, constant };
}

/** `kdTargets` for every row at once: per row, its targets and its share of the constant. */
export interface KdRunTargets {
  /** [rows, classes], row i's targets as `kdTargets` gives them. */
  targets: Float32Array;
  /** Per row, its term of `kdTargets`' constant; a batch's constant is their sum in batch order. */
  constants: Float64Array;
}

/**
 * The KD targets of every training row, computed once per run: they depend only on the teacher's
 * logits, the labels, T and alpha, none of which change between epochs. Row for row the same
 * floats as `kdTargets`, and `batchTargets` sums a batch's constant in the same order, so a run
 * that reads them from here trains bit for bit as one that called `kdTargets` every batch.
 */
export function kdRunTargets(
  teacherLogits: Float32Array,
  labels: Int32Array | undefined,
  classes: number,
  weights: KdWeights,
): KdRunTargets {
  const rows = teacherLogits.length / classes;
  const targets = new Float32Array(rows * classes);
  const constants = new Float64Array(rows);
  const one = new Int32Array(1);
  for (let row = 0; row < rows; row++) {
    one[0] = row;
    const batch = kdTargets(teacherLogits, labels, one, classes, weights);
    targets.set(batch.targets, row * classes);
    constants[row] = batch.constant;
  }
  return { targets, constants };
}

/**
 * A batch's targets gathered from `kdRunTargets` into `into` (at least rows.length * classes
 * floats); returns the batch's constant, summed in batch order as `kdTargets` sums it.
 */
export function batchTargets(run: KdRunTargets, rows: ArrayLike<number>, classes: number, into: Float32Array): number {
  let constant = 0;
  const { targets, constants } = run;
  for (let i = 0; i < rows.length; i++) {
    const from = rows[i] * classes;
    const to = i * classes;
    for (let c = 0; c < classes; c++) into[to + c] = targets[from + c];
    constant += constants[rows[i]];
  }
  return constant;
}
