import { topKAgreement, type StageMetrics } from './metrics.js';
import { formatMetric } from './metric-format.js';
import { formatPercent } from '../format.js';

/**
 * Agreement between teacher and student, computed in float64 on the host from the logits both
 * produced. Doing it here rather than on the backend keeps the metrics' arithmetic identical on
 * every backend, so a gate cannot flip because one device reduces in a different order.
 */

type AgreementMetrics = StageMetrics<'agreement'>;

/** How the eval samples fall into classes by the teacher's and the student's top-1 answers: report.json's `agreement`. */
export interface ClassAgreement {
  /** Eval samples the teacher answers with each class (its top-1), indexed by class. */
  teacherCounts: number[];
  /** The same for the student: a constant student shows as one class holding every sample. */
  studentCounts: number[];
  /** The teacher's most frequent class (the lowest on a tie): what the best constant student answers. */
  majorityClass: number;
  /**
   * Per class, with the teacher's top-1 class as the reference: how many of the samples the
   * teacher answers with that class the student answers the same way. `agreedCounts[c] /
   * teacherCounts[c]` is class c's agreement. Absent in reports written before it existed.
   */
  agreedCounts?: number[];
  /** The largest disagreements, most frequent first: the teacher answered `teacher`, the student `student`, `count` times. */
  confusions?: Confusion[];
  /** The fewest samples a class needs (by the teacher's answers) to count towards `agreement.minClass`. */
  minClassSamples?: number;
}

/** One kind of disagreement: the teacher's class, the student's class instead, and how many eval samples. */
export interface Confusion {
  teacher: number;
  student: number;
  count: number;
}

/**
 * The fewest eval samples (answered with the class by the teacher) a class needs before its
 * agreement counts towards `agreement.minClass`. Below it one stray sample would swing the class
 * between 0% and 100% and fail a gate on noise; such classes are still listed, just not gated.
 */
export const MIN_CLASS_SAMPLES = 5;

/** How many teacher-to-student confusions report.json keeps: enough for the table, bounded for 1,000 classes. */
export const TOP_CONFUSIONS = 10;

/** Equal-width confidence bins of the expected calibration error (as in Guo et al., 2017). */
export const ECE_BINS = 15;

export interface AgreementMeasurement {
  metrics: Record<string, number>;
  classes: ClassAgreement;
  /** Rows whose logits hold NaN or +Infinity (no class can be read off them), per model; empty when every row is finite. */
  nonFinite: { teacher: NonFiniteRows; student: NonFiniteRows };
}

/** How many rows of a model's logits give no answer (NaN or +Infinity in them), and the first of them. */
export interface NonFiniteRows {
  count: number;
  /** The first such row (0-based), or -1 when there is none. */
  first: number;
}

/**
 * `agreement.top1`; `agreement.top<k>` (the teacher's top class is among the student's top k,
 * only when there are more than k classes); `agreement.kappa` (Cohen's kappa of the two top-1
 * answers, see cohensKappa); `agreement.minClass` (the worst class's agreement, among classes the
 * teacher answers at least MIN_CLASS_SAMPLES times; NaN when none does); `agreement.majority` (the
 * share of the teacher's most frequent class: the top-1 agreement of a student that always answers
 * it, the best any constant student can score); `kl`, mean KL(teacher || student) at T = 1 in
 * nats; `accuracy.teacher`, `accuracy.student` and both models' expected calibration error
 * (`calibration.*`) when labels are given. And how both spread their answers over the classes,
 * per-class agreement and the largest confusions.
 *
 * A row whose teacher logits hold NaN or +Infinity has no teacher answer to agree with: it is left
 * out of every metric (argmax would read it as class 0, and a broken teacher would look like one
 * that answers class 0), and counted in `nonFinite.teacher` for the run to warn about. A row whose
 * student logits do is a disagreement (no class, no top-k hit, an undefined KL and a wrong
 * answer), counted in `nonFinite.student`: a student that outputs NaN must not score as one that
 * answers class 0.
 */
export function measureAgreement(
  teacher: Float32Array,
  student: Float32Array,
  classes: number,
  topK: number,
  labels?: Int32Array,
): AgreementMeasurement {
  const rows = teacher.length / classes;
  let top1 = 0;
  let topk = 0;
  let klSum = 0;
  let teacherCorrect = 0;
  let studentCorrect = 0;
  const teacherCounts = new Array<number>(classes).fill(0);
  const studentCounts = new Array<number>(classes).fill(0);
  const agreedCounts = new Array<number>(classes).fill(0);
  // Only pairs that occur: a 1,000-class confusion matrix would be a million cells, mostly empty.
  const confused = new Map<number, number>();
  const teacherCalibration = new CalibrationBins();
  const studentCalibration = new CalibrationBins();
  const teacherLogP = new Float64Array(classes);
  const studentLogP = new Float64Array(classes);
  const nonFinite = { teacher: { count: 0, first: -1 }, student: { count: 0, first: -1 } };
  const flag = (which: NonFiniteRows, row: number) => {
    if (which.count++ === 0) which.first = row;
  };
  let answered = 0;
  for (let r = 0; r < rows; r++) {
    const offset = r * classes;
    if (!logSoftmax(teacher, offset, classes, teacherLogP)) {
      flag(nonFinite.teacher, r);
      continue;
    }
    answered++;
    const t = argmax(teacherLogP);
    teacherCounts[t]++;
    if (!logSoftmax(student, offset, classes, studentLogP)) {
      // No answer: a disagreement on every count, and a KL that is not defined.
      flag(nonFinite.student, r);
      klSum += NaN;
      if (labels) {
        if (labels[r] === t) teacherCorrect++;
        teacherCalibration.add(Math.exp(teacherLogP[t]), labels[r] === t);
      }
      continue;
    }
    const s = argmax(studentLogP);
    studentCounts[s]++;
    if (t === s) {
      top1++;
      agreedCounts[t]++;
    } else {
      const pair = t * classes + s;
      confused.set(pair, (confused.get(pair) ?? 0) + 1);
    }
    if (rankOf(studentLogP, t) < topK) topk++;
    let kl = 0;
    // A class the teacher gives probability 0 (a logit of -Infinity) adds nothing.
    for (let c = 0; c < classes; c++)
      if (teacherLogP[c] !== -Infinity) kl += Math.exp(teacherLogP[c]) * (teacherLogP[c] - studentLogP[c]);
    klSum += kl;
    if (labels) {
      if (labels[r] === t) teacherCorrect++;
      if (labels[r] === s) studentCorrect++;
      // Confidence is the top class's probability at T = 1, as the model would report it.
      teacherCalibration.add(Math.exp(teacherLogP[t]), labels[r] === t);
      studentCalibration.add(Math.exp(studentLogP[s]), labels[r] === s);
    }
  }
  // Rows without a teacher answer count nowhere: every share is of the rows that have one.
  const majorityClass = argmax(teacherCounts);
  const confusions = [...confused]
    .map(([pair, count]) => ({ teacher: Math.floor(pair / classes), student: pair % classes, count }))
    .sort((a, b) => b.count - a.count || a.teacher - b.teacher || a.student - b.student)
    .slice(0, TOP_CONFUSIONS);
  // Named as the catalogue names them (a misspelt name does not compile), in its order.
  const metrics: AgreementMetrics = {
    'agreement.top1': top1 / answered,
    ...(classes > topK ? { [topKAgreement(topK)]: topk / answered } : {}),
    'agreement.kappa': answered === 0 ? NaN : cohensKappa(top1, teacherCounts, studentCounts),
    'agreement.minClass': worstClassAgreement(teacherCounts, agreedCounts),
    'agreement.majority': teacherCounts[majorityClass] / answered,
    kl: klSum / answered,
    ...(labels
      ? {
          'accuracy.teacher': teacherCorrect / answered,
          'accuracy.student': studentCorrect / answered,
          'calibration.teacherEce': teacherCalibration.error(),
          'calibration.studentEce': studentCalibration.error(),
        }
      : {}),
  };
  return {
    metrics: metrics as Record<string, number>,
    classes: {
      teacherCounts,
      studentCounts,
      majorityClass,
      agreedCounts,
      confusions,
      minClassSamples: MIN_CLASS_SAMPLES,
    },
    nonFinite,
  };
}

/**
 * The lowest per-class agreement among classes the teacher answers at least `minSamples` times;
 * NaN when no class has that many (a gate on it then fails as not measured rather than passing).
 */
export function worstClassAgreement(
  teacherCounts: readonly number[],
  agreedCounts: readonly number[],
  minSamples = MIN_CLASS_SAMPLES,
): number {
  let worst = NaN;
  for (let c = 0; c < teacherCounts.length; c++) {
    if (teacherCounts[c] < minSamples) continue;
    const share = agreedCounts[c] / teacherCounts[c];
    if (!(share >= worst)) worst = share;
  }
  return worst;
}

/**
 * Expected calibration error over ECE_BINS equal-width confidence bins: the bins' gap between
 * accuracy and mean confidence, weighted by their share of samples. Bin i holds confidences in
 * (i/B, (i+1)/B], the convention of Guo et al. (a confidence of exactly 1 is in the last bin).
 */
export class CalibrationBins {
  private readonly counts: Float64Array;
  private readonly confidence: Float64Array;
  private readonly correct: Float64Array;
  private samples = 0;

  constructor(private readonly bins = ECE_BINS) {
    this.counts = new Float64Array(bins);
    this.confidence = new Float64Array(bins);
    this.correct = new Float64Array(bins);
  }

  add(confidence: number, correct: boolean): void {
    const bin = Math.min(this.bins - 1, Math.max(0, Math.ceil(confidence * this.bins) - 1));
    this.counts[bin]++;
    this.confidence[bin] += confidence;
    if (correct) this.correct[bin]++;
    this.samples++;
  }

  error(): number {
    let sum = 0;
    for (let b = 0; b < this.bins; b++) sum += Math.abs(this.correct[b] - this.confidence[b]);
    return sum / this.samples;
  }
}

/**
 * Cohen's kappa of teacher and student top-1 answers, (po - pe) / (1 - pe): po the agreement seen,
 * pe the agreement two raters with these class frequencies reach by chance, answering
 * independently. 1 is perfect agreement, 0 no better than chance, below 0 worse. Unlike top-1
 * agreement it does not reward a student for answering a teacher's frequent class: a student
 * that always answers one class scores 0, however often the teacher picks that class.
 *
 * Computed from counts, (n·agree - Σ t_c·s_c) / (n² - Σ t_c·s_c), exact integers below 2^53 (up to
 * about 94 million samples), so that agreement exactly at chance is exactly 0.
 *
 * pe = 1 only when teacher and student answer one and the same class for every sample: all the
 * agreement is chance, none is beyond it, and the ratio is 0/0. It is defined as 0: against a
 * constant teacher every other student scores exactly 0 too (po = pe = the student's share of the
 * teacher's class), so 0 continues that family, and an `agreement.kappa` gate fails a run whose
 * eval set cannot tell a constant student from a good one instead of passing it.
 */
export function cohensKappa(agree: number, teacherCounts: readonly number[], studentCounts: readonly number[]): number {
  const n = teacherCounts.reduce((sum, count) => sum + count, 0);
  let chanceProducts = 0;
  for (let c = 0; c < teacherCounts.length; c++) chanceProducts += teacherCounts[c] * studentCounts[c];
  const room = n * n - chanceProducts;
  return room === 0 ? 0 : (n * agree - chanceProducts) / room;
}

/** How close top-1 agreement may come to what a constant student scores before the report warns: one point. */
export const CHANCE_MARGIN = 0.01;

/**
 * The warning a run carries when top-1 agreement is within CHANCE_MARGIN of what the best
 * constant student scores (`agreement.majority`), or below it: such an agreement says nothing
 * about the student. Undefined when it is clear of that, or when a report lacks either metric.
 */
export function chanceWarning(metrics: Record<string, number>): string | undefined {
  const top1 = metrics['agreement.top1'];
  const majority = metrics['agreement.majority'];
  if (!Number.isFinite(top1) || !Number.isFinite(majority)) return undefined;
  // 1e-12 absorbs the rounding of the two quotients, so that exactly one point counts as within it.
  if (top1 - majority > CHANCE_MARGIN + 1e-12) return undefined;
  const where = top1 < majority ? 'below' : 'within a point of';
  const kappa = metrics['agreement.kappa'];
  return (
    `Top-1 agreement ${formatPercent(top1)} is ${where} the ${formatPercent(majority)} that a constant student scores by always answering the teacher's most frequent class: ` +
    `on this eval set it says little about the student.${Number.isFinite(kappa) ? ` Cohen's kappa, corrected for chance, is ${formatMetric('agreement.kappa', kappa)}.` : ''} Gate on agreement.kappa.`
  );
}

/**
 * The share of rows where `student`'s top class is `teacher`'s, as measureAgreement counts it: rows
 * where the teacher's logits hold NaN or +Infinity are left out, rows where the student's do are
 * disagreements.
 */
/**
 * Top-1 agreement and Cohen's kappa of the two top-1 answers over the rows both cover, for the
 * per-epoch progress line: a student that always answers the majority class shows its high
 * agreement beside a kappa of 0. Rows the teacher answers nothing on are left out, as in
 * measureAgreement; a student row that answers nothing counts as a disagreement.
 */
export function top1AgreementAndKappa(
  teacher: Float32Array,
  student: Float32Array,
  classes: number,
): { agreement: number; kappa: number } {
  const rows = Math.min(teacher.length, student.length) / classes;
  const teacherCounts = new Array<number>(classes + 1).fill(0);
  const studentCounts = new Array<number>(classes + 1).fill(0);
  let same = 0;
  for (let r = 0; r < rows; r++) {
    const t = teacher.subarray(r * classes, (r + 1) * classes);
    if (!answers(t)) continue;
    const s = student.subarray(r * classes, (r + 1) * classes);
    const tc = argmax(t);
    // A student row with no answer is its own "class", which no teacher answer matches.
    const sc = answers(s) ? argmax(s) : classes;
    teacherCounts[tc]++;
    studentCounts[sc]++;
    if (tc === sc) same++;
  }
  const answered = teacherCounts.reduce((a, b) => a + b, 0);
  return { agreement: same / answered, kappa: answered === 0 ? NaN : cohensKappa(same, teacherCounts, studentCounts) };
}

export function top1Agreement(teacher: Float32Array, student: Float32Array, classes: number): number {
  const rows = Math.min(teacher.length, student.length) / classes;
  let same = 0;
  let answered = 0;
  for (let r = 0; r < rows; r++) {
    const t = teacher.subarray(r * classes, (r + 1) * classes);
    if (!answers(t)) continue;
    answered++;
    const s = student.subarray(r * classes, (r + 1) * classes);
    if (answers(s) && argmax(t) === argmax(s)) same++;
  }
  return same / answered;
}

/** Whether a row of logits names a class: no NaN, no +Infinity, not every value -Infinity. */
function answers(row: Float32Array): boolean {
  let any = false;
  for (const v of row) {
    if (Number.isNaN(v) || v === Infinity) return false;
    if (v !== -Infinity) any = true;
  }
  return any;
}

/** Rows of `logits` that name no class (NaN or +Infinity in them, or every value -Infinity): how many, and the first. */
export function nonFiniteRows(logits: Float32Array, classes: number): NonFiniteRows {
  let count = 0;
  let first = -1;
  for (let r = 0; r < logits.length / classes; r++) {
    if (answers(logits.subarray(r * classes, (r + 1) * classes))) continue;
    if (count++ === 0) first = r;
  }
  return { count, first };
}

/** Log-softmax of one row into `out`; false when the row names no class (NaN or +Infinity in it, or all -Infinity), leaving `out` undefined. */
function logSoftmax(logits: Float32Array, offset: number, classes: number, out: Float64Array): boolean {
  let max = -Infinity;
  for (let c = 0; c < classes; c++) {
    const v = logits[offset + c];
    if (Number.isNaN(v) || v === Infinity) return false;
    if (v > max) max = v;
  }
  if (max === -Infinity) return false;
  let sum = 0;
  for (let c = 0; c < classes; c++) sum += Math.exp(logits[offset + c] - max);
  const logSum = Math.log(sum) + max;
  for (let c = 0; c < classes; c++) out[c] = logits[offset + c] - logSum;
  return true;
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
  for (let i = 0; i < values.length; i++)
    if (values[i] > values[index] || (values[i] === values[index] && i < index)) higher++;
  return higher;
}
