import { describe, expect, it } from 'vitest';
import {
  chanceWarning,
  cohensKappa,
  measureAgreement,
  nonFiniteRows,
  top1Agreement,
} from '../../src/measure/agreement.js';
import { evaluateGates, parseGates } from '../../src/gates/gates.js';
import { measuredMetrics } from '../../src/measure/metrics.js';

const logits = (...rows: number[][]) => Float32Array.from(rows.flat());
const agreementMetrics = (...args: Parameters<typeof measureAgreement>) => measureAgreement(...args).metrics;
/** `rows` samples of `classes` logits, each row's top class given by `top`. */
const answering = (classes: number, rows: number, top: (row: number) => number) =>
  logits(...Array.from({ length: rows }, (_, r) => Array.from({ length: classes }, (_, c) => (c === top(r) ? 1 : 0))));

// Three rows, four classes. Teacher's classes: 0, 2, 3. Student's: 0, 1, 0.
const teacher = logits([3, 1, 0, 0], [0, 0, 5, 1], [1, 0, 0, 2]);
const student = logits([2.5, 1, 0, 0], [0, 4, 3, 0], [3, 2, 1, 0]);

describe('measureAgreement', () => {
  it("counts top-1 agreement, and top-k as the teacher's class among the student's k best", () => {
    const m = agreementMetrics(teacher, student, 4, 2);
    expect(m['agreement.top1']).toBeCloseTo(1 / 3, 12);
    // Row 1: the teacher's class 2 is the student's second best; row 2: class 3 is its worst.
    expect(m['agreement.top2']).toBeCloseTo(2 / 3, 12);
    expect(agreementMetrics(teacher, student, 4, 3)['agreement.top3']).toBeCloseTo(2 / 3, 12);
  });

  it("names the metrics in the catalogue's order, top-k only with more classes than k and accuracy only with labels", () => {
    expect(Object.keys(agreementMetrics(teacher, student, 4, 2, Int32Array.from([0, 2, 1])))).toEqual([
      'agreement.top1',
      'agreement.top2',
      'agreement.kappa',
      'agreement.minClass',
      'agreement.majority',
      'kl',
      'accuracy.teacher',
      'accuracy.student',
      'calibration.teacherEce',
      'calibration.studentEce',
    ]);
    const always = ['agreement.top1', 'agreement.kappa', 'agreement.minClass', 'agreement.majority', 'kl'];
    expect(Object.keys(agreementMetrics(teacher, student, 4, 4))).toEqual(always);
    expect(Object.keys(agreementMetrics(teacher, student, 4, 5))).toEqual(always);
  });

  it('scores teacher and student against the labels', () => {
    const m = agreementMetrics(teacher, student, 4, 2, Int32Array.from([0, 2, 1]));
    expect(m['accuracy.teacher']).toBeCloseTo(2 / 3, 12);
    expect(m['accuracy.student']).toBeCloseTo(1 / 3, 12);
  });

  it('computes the mean KL(teacher || student) at T = 1 in nats, blind to a constant shift of the logits', () => {
    // p = [1/2, 1/2], q = [3/4, 1/4]: KL = ln(4/3) / 2.
    const kl = agreementMetrics(logits([0, 0]), logits([Math.log(3), 0]), 2, 1).kl;
    expect(kl).toBeCloseTo(Math.log(4 / 3) / 2, 6);
    expect(agreementMetrics(logits([7, 7]), logits([Math.log(3) - 5, -5]), 2, 1).kl).toBeCloseTo(kl, 6);
    // Averaged over rows: a row where the two agree exactly adds 0.
    expect(agreementMetrics(logits([0, 0], [1, 2]), logits([Math.log(3), 0], [1, 2]), 2, 1).kl).toBeCloseTo(kl / 2, 6);
    expect(agreementMetrics(teacher, teacher, 4, 2).kl).toBeCloseTo(0, 12);
  });

  it('breaks ties toward the lowest class, as argmax does everywhere', () => {
    // Teacher ties classes 0 and 1 (class 0); the student ties 1 and 2 (class 1), and ranks class 0 third.
    const m = agreementMetrics(logits([1, 1, 0]), logits([0, 1, 1]), 3, 2);
    expect(m['agreement.top1']).toBe(0);
    expect(m['agreement.top2']).toBe(0);
    expect(agreementMetrics(logits([1, 1, 0]), logits([1, 1, 1]), 3, 1)['agreement.top1']).toBe(1);
    // The student ties the teacher's class 2 with class 1, which ranks first: class 2 is third, outside the top 2.
    expect(agreementMetrics(logits([0, 0, 1, 0]), logits([5, 1, 1, 0]), 4, 2)['agreement.top2']).toBe(0);
    expect(agreementMetrics(logits([0, 1, 0, 0]), logits([5, 1, 1, 0]), 4, 2)['agreement.top2']).toBe(1);
  });

  it('agrees fully with itself', () => {
    const m = agreementMetrics(teacher, teacher, 4, 2, Int32Array.from([0, 2, 3]));
    expect(m).toEqual({
      'agreement.top1': 1,
      'agreement.top2': 1,
      'agreement.kappa': 1,
      // No class has MIN_CLASS_SAMPLES samples among three rows: the worst class is not measured.
      'agreement.minClass': NaN,
      'agreement.majority': 1 / 3,
      kl: expect.closeTo(0, 12),
      'accuracy.teacher': 1,
      'accuracy.student': 1,
      'calibration.teacherEce': expect.any(Number),
      'calibration.studentEce': expect.any(Number),
    });
  });

  it("counts both models' top-1 answers per class, and the teacher's most frequent class (the lowest on a tie)", () => {
    // Teacher: classes 0, 2, 3 once each; student: 0 twice, 1 once.
    expect(measureAgreement(teacher, student, 4, 2).classes).toMatchObject({
      teacherCounts: [1, 0, 1, 1],
      studentCounts: [2, 1, 0, 0],
      majorityClass: 0,
    });
    const m = agreementMetrics(teacher, student, 4, 2);
    // po = 1/3, pe = 1/3 · 2/3: (1/3 - 2/9) / (1 - 2/9) = 1/7.
    expect(m['agreement.kappa']).toBeCloseTo(1 / 7, 12);
    expect(m['agreement.majority']).toBeCloseTo(1 / 3, 12);
  });
});

describe('agreement corrected for chance', () => {
  // The face crops: the teacher picks class 0 for 271 of 280 inputs, class 1 for 6, class 2 for 3.
  const faces = answering(3, 280, (r) => (r < 271 ? 0 : r < 277 ? 1 : 2));

  it('scores a student that always answers the majority class at chance: kappa exactly 0, top-1 the majority share', () => {
    const constant = measureAgreement(
      faces,
      answering(3, 280, () => 0),
      3,
      5,
    );
    expect(constant.metrics['agreement.top1']).toBeCloseTo(271 / 280, 12);
    expect(constant.metrics['agreement.majority']).toBeCloseTo(271 / 280, 12);
    expect(constant.metrics['agreement.kappa']).toBe(0);
    expect(constant.classes).toMatchObject({
      teacherCounts: [271, 6, 3],
      studentCounts: [280, 0, 0],
      majorityClass: 0,
    });
  });

  it('lets an agreement.kappa gate fail the constant student that an agreement.top1 gate passes', () => {
    const metrics = agreementMetrics(
      faces,
      answering(3, 280, () => 0),
      3,
      5,
    );
    const checks = parseGates(
      { 'agreement.top1': '>= 0.95', 'agreement.kappa': '>= 0.5' },
      measuredMetrics({ classes: 3, topK: 5, labels: false }),
    );
    expect(evaluateGates(checks, metrics).map((g) => [g.metric, g.status])).toEqual([
      ['agreement.top1', 'pass'],
      ['agreement.kappa', 'fail'],
    ]);
    expect(chanceWarning(metrics)).toMatch(
      /^Top-1 agreement 96\.79% is within a point of the 96\.79% that a constant student scores/,
    );
  });

  it('sees through a student that is not constant but agrees no more than the majority share', () => {
    // The untrained student: the teacher's majority class is 201 of 280 (71.8%), and the
    // student answers class 1 on 10 samples of each of the teacher's classes: 191 + 10 = 201 agree.
    const teacher71 = answering(2, 280, (r) => (r < 201 ? 0 : 1));
    const untrained = answering(2, 280, (r) => ((r >= 191 && r < 201) || r >= 270 ? 1 : 0));
    const m = agreementMetrics(teacher71, untrained, 2, 5);
    expect(m['agreement.top1']).toBeCloseTo(201 / 280, 12);
    // t = [201, 79], s = [260, 20]: (280·201 - (201·260 + 79·20)) / (280² - (201·260 + 79·20)).
    expect(m['agreement.kappa']).toBeCloseTo(2440 / 24560, 12);
    expect(chanceWarning(m)).toContain('71.79%');
  });

  it('matches the textbook (po - pe) / (1 - pe), and goes below 0 for a student worse than chance', () => {
    // 50 samples: both say class 0 on 20, teacher 0 / student 1 on 5, teacher 1 / student 0 on 10, both 1 on 15.
    // po = 0.7, pe = 0.5·0.6 + 0.5·0.4 = 0.5: kappa 0.4.
    const pairs = [
      ...Array(20).fill([0, 0]),
      ...Array(5).fill([0, 1]),
      ...Array(10).fill([1, 0]),
      ...Array(15).fill([1, 1]),
    ] as [number, number][];
    const m = agreementMetrics(
      answering(2, 50, (r) => pairs[r][0]),
      answering(2, 50, (r) => pairs[r][1]),
      2,
      5,
    );
    expect(m['agreement.top1']).toBeCloseTo(0.7, 12);
    expect(m['agreement.kappa']).toBeCloseTo(0.4, 12);
    expect(cohensKappa(0, [1, 1], [1, 1])).toBe(-1);
    expect(cohensKappa(2, [1, 1], [1, 1])).toBe(1);
  });

  it('defines kappa as 0, not NaN, when teacher and student both answer one and the same class throughout', () => {
    // pe = 1: the 0/0 case. Any student facing a constant teacher scores 0, and so does this one.
    expect(cohensKappa(280, [280, 0], [280, 0])).toBe(0);
    expect(cohensKappa(270, [280, 0], [270, 10])).toBe(0);
    expect(cohensKappa(271, [271, 9], [280, 0])).toBe(0);
    const allOne = answering(3, 10, () => 1);
    expect(agreementMetrics(allOne, allOne, 3, 5)).toMatchObject({
      'agreement.top1': 1,
      'agreement.majority': 1,
      'agreement.kappa': 0,
    });
  });
});

describe('chanceWarning', () => {
  it('warns within one point of the majority share, at it, or below it; not beyond the point', () => {
    const at = (top1: number, majority: number) =>
      chanceWarning({ 'agreement.top1': top1, 'agreement.majority': majority, 'agreement.kappa': 0.2 });
    expect(at(0.728, 0.718)).toContain('is within a point of the 71.80% that a constant student scores');
    expect(at(0.718, 0.718)).toContain("Cohen's kappa, corrected for chance, is 0.200. Gate on agreement.kappa.");
    expect(at(0.6, 0.718)).toMatch(/^Top-1 agreement 60\.00% is below the 71\.80%/);
    expect(at(0.7281, 0.718)).toBeUndefined();
    expect(at(0.95, 0.5)).toBeUndefined();
  });

  it('says nothing for a report without the chance level', () => {
    expect(chanceWarning({ 'agreement.top1': 0.5 })).toBeUndefined();
    expect(chanceWarning({})).toBeUndefined();
  });
});

describe('rows of logits that are not finite', () => {
  // Four rows, three classes. Row 1's teacher logits hold NaN, row 2's +Infinity; the student agrees everywhere else.
  const teacherRows = logits([3, 0, 0], [NaN, NaN, NaN], [0, Infinity, 0], [0, 0, 2]);
  const studentRows = logits([2, 0, 0], [0, 1, 0], [0, 1, 0], [0, 0, 1]);

  it("leaves rows without a teacher answer out of every metric, instead of counting them as the teacher's class 0", () => {
    const { metrics, classes, nonFinite } = measureAgreement(
      teacherRows,
      studentRows,
      3,
      2,
      Int32Array.from([0, 0, 0, 2]),
    );
    expect(nonFinite.teacher).toEqual({ count: 2, first: 1 });
    expect(nonFinite.student).toEqual({ count: 0, first: -1 });
    // Two rows answered (classes 0 and 2), both agreed: not 2 of 4, nor a class 0 of 3 samples.
    expect(classes.teacherCounts).toEqual([1, 0, 1]);
    expect(classes.studentCounts).toEqual([1, 0, 1]);
    expect(metrics['agreement.top1']).toBe(1);
    expect(metrics['agreement.majority']).toBe(0.5);
    expect(metrics['accuracy.teacher']).toBe(1);
    expect(Number.isFinite(metrics.kl)).toBe(true);
    expect(top1Agreement(teacherRows, studentRows, 3)).toBe(1);
  });

  it("counts a row the student answers with NaN as a disagreement, not as the student's class 0", () => {
    const teacher = logits([3, 0, 0], [3, 0, 0], [0, 0, 2]);
    const student = logits([2, 0, 0], [NaN, 0, 0], [0, 0, 1]);
    const { metrics, classes, nonFinite } = measureAgreement(teacher, student, 3, 2, Int32Array.from([0, 0, 2]));
    expect(nonFinite.student).toEqual({ count: 1, first: 1 });
    expect(metrics['agreement.top1']).toBeCloseTo(2 / 3, 12);
    expect(metrics['accuracy.student']).toBeCloseTo(2 / 3, 12);
    expect(classes.studentCounts).toEqual([1, 0, 1]);
    expect(metrics.kl).toBeNaN();
    expect(top1Agreement(teacher, student, 3)).toBeCloseTo(2 / 3, 12);
    expect(nonFiniteRows(student, 3)).toEqual({ count: 1, first: 1 });
  });

  it('reads a logit of -Infinity as probability 0, which answers and adds nothing to the KL', () => {
    const { metrics, nonFinite } = measureAgreement(logits([-Infinity, 0, 1]), logits([0, 0, 1]), 3, 2);
    expect(nonFinite.teacher.count).toBe(0);
    expect(metrics['agreement.top1']).toBe(1);
    expect(Number.isFinite(metrics.kl)).toBe(true);
  });
});
