import { describe, expect, it } from 'vitest';
import { agreementMetrics } from '../../src/measure/agreement.js';

const logits = (...rows: number[][]) => Float32Array.from(rows.flat());

// Three rows, four classes. Teacher's classes: 0, 2, 3. Student's: 0, 1, 0.
const teacher = logits([3, 1, 0, 0], [0, 0, 5, 1], [1, 0, 0, 2]);
const student = logits([2.5, 1, 0, 0], [0, 4, 3, 0], [3, 2, 1, 0]);

describe('agreementMetrics', () => {
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
      'kl',
      'accuracy.teacher',
      'accuracy.student',
    ]);
    expect(Object.keys(agreementMetrics(teacher, student, 4, 4))).toEqual(['agreement.top1', 'kl']);
    expect(Object.keys(agreementMetrics(teacher, student, 4, 5))).toEqual(['agreement.top1', 'kl']);
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
    expect(m).toEqual({ 'agreement.top1': 1, 'agreement.top2': 1, kl: expect.closeTo(0, 12), 'accuracy.teacher': 1, 'accuracy.student': 1 });
  });
});
