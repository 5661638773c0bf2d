import { topKAgreement, type StageMetrics } from './metrics.js';

/**
 * Agreement between teacher and student, computed in float64 on the host from the logits both
 * produced. Doing it here rather than on the backend keeps the metrics' arithmetic identical on
 * every backend, so a gate cannot flip because one device reduces in a different order.
 */

type AgreementMetrics = StageMetrics<'agreement'>;

/**
 * `agreement.top1`; `agreement.top<k>` (the teacher's top class is among the student's top k,
 * only when there are more than k classes); `kl`, mean KL(teacher || student) at T = 1 in nats;
 * `accuracy.teacher` and `accuracy.student` when labels are given.
 */
export function agreementMetrics(teacher: Float32Array, student: Float32Array, classes: number, topK: number, labels?: Int32Array): Record<string, number> {
  const rows = teacher.length / classes;
  let top1 = 0;
  let topk = 0;
  let klSum = 0;
  let teacherCorrect = 0;
  let studentCorrect = 0;
  const teacherLogP = new Float64Array(classes);
  const studentLogP = new Float64Array(classes);
  for (let r = 0; r < rows; r++) {
    const offset = r * classes;
    logSoftmax(teacher, offset, classes, teacherLogP);
    logSoftmax(student, offset, classes, studentLogP);
    const t = argmax(teacherLogP);
    const s = argmax(studentLogP);
    if (t === s) top1++;
    if (rankOf(studentLogP, t) < topK) topk++;
    let kl = 0;
    for (let c = 0; c < classes; c++) kl += Math.exp(teacherLogP[c]) * (teacherLogP[c] - studentLogP[c]);
    klSum += kl;
    if (labels) {
      if (labels[r] === t) teacherCorrect++;
      if (labels[r] === s) studentCorrect++;
    }
  }
  // Named as the catalogue names them (a misspelt name does not compile), in its order.
  const metrics: AgreementMetrics = {
    'agreement.top1': top1 / rows,
    ...(classes > topK ? { [topKAgreement(topK)]: topk / rows } : {}),
    kl: klSum / rows,
    ...(labels ? { 'accuracy.teacher': teacherCorrect / rows, 'accuracy.student': studentCorrect / rows } : {}),
  };
  return metrics as Record<string, number>;
}

export function top1Agreement(teacher: Float32Array, student: Float32Array, classes: number): number {
  const rows = Math.min(teacher.length, student.length) / classes;
  let same = 0;
  for (let r = 0; r < rows; r++) {
    if (argmax(teacher.subarray(r * classes, (r + 1) * classes)) === argmax(student.subarray(r * classes, (r + 1) * classes))) same++;
  }
  return same / rows;
}

function logSoftmax(logits: Float32Array, offset: number, classes: number, out: Float64Array): void {
  let max = -Infinity;
  for (let c = 0; c < classes; c++) max = Math.max(max, logits[offset + c]);
  let sum = 0;
  for (let c = 0; c < classes; c++) sum += Math.exp(logits[offset + c] - max);
  const logSum = Math.log(sum) + max;
  for (let c = 0; c < classes; c++) out[c] = logits[offset + c] - logSum;
}

/** Index of the largest value; ties go to the lowest index, as argmax does everywhere. */
export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/** How many classes score strictly higher than `index` (0 for the top class). */
function rankOf(values: Float64Array, index: number): number {
  let higher = 0;
  for (let i = 0; i < values.length; i++) if (values[i] > values[index] || (values[i] === values[index] && i < index)) higher++;
  return higher;
}
