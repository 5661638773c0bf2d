import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { inMemoryDataset } from '../../src/data/dataset.js';
import { measureAgreement } from '../../src/measure/agreement.js';
import { nonFiniteWarnings } from '../../src/stages/measure/non-finite.js';
import { quickConfig } from '../helpers.js';

describe('warnings about outputs that are not finite', () => {
  const config = parseConfig(quickConfig(), '/repo/distill-gate.yml');
  const evalSet = inMemoryDataset('data/eval_x.npy', new Float32Array(4 * 2), [2]);
  const rows = (...r: number[][]) => Float32Array.from(r.flat());

  it("blame the teacher's file for its NaN rows, and count the student's as disagreements", () => {
    const teacher = rows([1, 0], [NaN, 0], [0, 1], [1, 0]);
    const student = rows([1, 0], [1, 0], [0, NaN], [Infinity, 0]);
    const { nonFinite } = measureAgreement(teacher, student, 2, 5);
    expect(nonFiniteWarnings(nonFinite, evalSet, config, 'student')).toEqual([
      "The teacher's outputs are not finite (NaN or Infinity) on 1 of 4 eval rows (the first is row 1 of data/eval_x.npy): they are left out of agreement, KL and accuracy, which count the other 3. The teacher (/repo/models/teacher/model.json) is at fault there, not the student.",
      "The student's outputs are not finite (NaN or Infinity) on 2 of 4 eval rows (the first is row 2 of data/eval_x.npy): they count as disagreements.",
    ]);
    // The shipped student's warning names its format; the teacher's rows were said once already.
    expect(nonFiniteWarnings(nonFinite, evalSet, config, 'uint8')).toEqual([
      expect.stringMatching(
        /^The shipped student \(export\.quantize uint8\) outputs non-finite values \(NaN or Infinity\) on 2 of 4 eval rows .*: they count as disagreements in quantized\.agreement\.top1\./,
      ),
    ]);
    expect(
      nonFiniteWarnings(
        measureAgreement(
          student.map(() => 1),
          student.map(() => 1),
          2,
          5,
        ).nonFinite,
        evalSet,
        config,
        'student',
      ),
    ).toEqual([]);
  });
});
