import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { evaluateGates, parseGates } from '../../src/gates/gates.js';
import {
  CalibrationBins,
  MIN_CLASS_SAMPLES,
  measureAgreement,
  TOP_CONFUSIONS,
  worstClassAgreement,
} from '../../src/measure/agreement.js';
import { measuredMetrics } from '../../src/measure/metrics.js';
import { randomArray } from '../helpers.js';

/** `rows` samples of `classes` logits whose top class is `top(row)`. */
const answering = (classes: number, rows: number, top: (row: number) => number) =>
  Float32Array.from({ length: rows * classes }, (_, i) => (i % classes === top(Math.floor(i / classes)) ? 1 : 0));

describe('per-class agreement', () => {
  // 93% agreement on average hides one class at 40%: classes 0-2 with 30 samples each, all agreed;
  // class 3 with 10 samples, 4 agreed and 6 answered as class 1.
  const teacherTop = (r: number) => Math.min(3, Math.floor(r / 30));
  const studentTop = (r: number) => (r >= 94 ? 1 : teacherTop(r));
  const m = measureAgreement(answering(4, 100, teacherTop), answering(4, 100, studentTop), 4, 5);

  it("counts, per teacher class, the samples the student answers the same way, and the worst class's share", () => {
    expect(m.metrics['agreement.top1']).toBeCloseTo(0.94, 12);
    expect(m.classes.teacherCounts).toEqual([30, 30, 30, 10]);
    expect(m.classes.agreedCounts).toEqual([30, 30, 30, 4]);
    expect(m.metrics['agreement.minClass']).toBeCloseTo(0.4, 12);
    expect(m.classes.minClassSamples).toBe(MIN_CLASS_SAMPLES);
  });

  it('lists the teacher-to-student confusions, most frequent first', () => {
    expect(m.classes.confusions).toEqual([{ teacher: 3, student: 1, count: 6 }]);
    // Every off-diagonal pair of 12 classes, each a different number of times: only the largest are kept.
    const classes = 12;
    const teacherRows: number[] = [];
    const studentRows: number[] = [];
    let times = 1;
    for (let t = 0; t < classes; t++)
      for (let s = 0; s < classes; s++)
        if (s !== t) {
          for (let i = 0; i < times; i++) {
            teacherRows.push(t);
            studentRows.push(s);
          }
          times = (times % 7) + 1;
        }
    const many = measureAgreement(
      answering(classes, teacherRows.length, (r) => teacherRows[r]),
      answering(classes, studentRows.length, (r) => studentRows[r]),
      classes,
      5,
    );
    const confusions = many.classes.confusions!;
    expect(confusions).toHaveLength(TOP_CONFUSIONS);
    expect(confusions.every((c) => c.count === 7)).toBe(true);
    // Ties go to the lower teacher class, then the lower student class.
    const order = confusions.map((c) => c.teacher * classes + c.student);
    expect(order).toEqual([...order].sort((a, b) => a - b));
  });

  it('leaves classes with fewer than MIN_CLASS_SAMPLES out of agreement.minClass, so one stray sample cannot fail its gate', () => {
    // Class 2 has one sample, which the student gets wrong: 0% but not gated.
    expect(worstClassAgreement([20, 10, 1], [19, 9, 0])).toBeCloseTo(0.9, 12);
    expect(worstClassAgreement([20, 10, MIN_CLASS_SAMPLES], [19, 9, 0])).toBe(0);
    expect(worstClassAgreement([4, 3], [0, 0])).toBeNaN();
  });

  it('is gateable, absolutely and against a baseline', () => {
    const checks = parseGates(
      { 'agreement.minClass': { min: 0.5, maxDrop: 0.05 } },
      measuredMetrics({ classes: 4, topK: 5, labels: false }),
    );
    const gates = evaluateGates(checks, m.metrics, { 'agreement.minClass': 0.5 });
    expect(gates.map((g) => [g.metric, g.expected, g.status])).toEqual([
      ['agreement.minClass', '>= 0.5', 'fail'],
      ['agreement.minClass', 'drop <= 0.05', 'fail'],
    ]);
  });
});

describe('expected calibration error', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  /** ECE computed with TF.js ops: softmax, the top class's probability, 15 bins by ceil(conf·15) - 1, segment sums. */
  function eceWithTf(logits: Float32Array, classes: number, labels: Int32Array): number {
    return tf.tidy(() => {
      const rows = labels.length;
      const probs = tf.softmax(tf.tensor2d(logits, [rows, classes]));
      const confidence = probs.max(1) as tf.Tensor1D;
      const correct = probs.argMax(1).equal(tf.tensor1d(labels, 'int32')).cast('float32') as tf.Tensor1D;
      const bins = confidence.mul(15).ceil().sub(1).clipByValue(0, 14).cast('int32') as tf.Tensor1D;
      const gap = tf
        .unsortedSegmentSum(correct, bins, 15)
        .sub(tf.unsortedSegmentSum(confidence, bins, 15))
        .abs();
      return gap.sum().div(rows).dataSync()[0];
    });
  }

  it('matches the same binning in TF.js on random logits, for teacher and student', () => {
    const classes = 7;
    const rows = 500;
    const teacher = randomArray(rows * classes, 1, 4);
    const student = randomArray(rows * classes, 2, 2);
    const labels = Int32Array.from({ length: rows }, (_, r) => (r * 5) % classes);
    const before = tf.memory().numTensors;
    const m = measureAgreement(teacher, student, classes, 5, labels).metrics;
    expect(m['calibration.teacherEce']).toBeCloseTo(eceWithTf(teacher, classes, labels), 5);
    expect(m['calibration.studentEce']).toBeCloseTo(eceWithTf(student, classes, labels), 5);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('is 0 for a model whose confidence is its accuracy, and the confidence gap for an overconfident one', () => {
    // Confidence 0.75 in every bin-11 sample, right 3 times in 4: perfectly calibrated.
    const calibrated = new CalibrationBins();
    for (const correct of [true, true, true, false]) calibrated.add(0.75, correct);
    expect(calibrated.error()).toBeCloseTo(0, 12);
    // Confidence 1 (the last bin, not past it), right half the time: ECE 0.5.
    const overconfident = new CalibrationBins();
    for (const correct of [true, false]) overconfident.add(1, correct);
    expect(overconfident.error()).toBeCloseTo(0.5, 12);
    // Bins are (i/15, (i+1)/15]: 1/15 itself falls in the first bin, with 0.1 beside it in the second.
    const edges = new CalibrationBins();
    edges.add(1 / 15, true);
    edges.add(0.1, false);
    expect(edges.error()).toBeCloseTo((1 - 1 / 15 + 0.1) / 2, 12);
  });
});
