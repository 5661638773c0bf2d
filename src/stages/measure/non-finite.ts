// What the reader is told about rows of logits that name no class.
import type { Config } from '../../config/load.js';
import type { Dataset } from '../../data/dataset.js';
import { type AgreementMeasurement } from '../../measure/agreement.js';
import { type ExportPlan } from '../../models/export.js';

/**
 * What the reader must be told about rows of logits that name no class: the teacher's (left out of
 * every agreement metric: the teacher, not the student, is at fault) and the student's, or the
 * shipped student's (disagreements, with the format to blame when the float32 student answered).
 */
export function nonFiniteWarnings(
  nonFinite: AgreementMeasurement['nonFinite'],
  evalSet: Dataset,
  config: Config,
  student: 'student' | Exclude<ExportPlan['quantize'], 'none'>,
): string[] {
  const rows = (count: number, first: number) =>
    `${count} of ${evalSet.size} eval rows (the first is row ${first} of ${evalSet.source})`;
  const warnings: string[] = [];
  const { teacher, student: answers } = nonFinite;
  if (student === 'student' && teacher.count > 0) {
    warnings.push(
      `The teacher's outputs are not finite (NaN or Infinity) on ${rows(teacher.count, teacher.first)}: they are left out of agreement, KL and accuracy, which count the other ${evalSet.size - teacher.count}. The teacher (${config.teacher}) is at fault there, not the student.`,
    );
  }
  if (answers.count > 0) {
    warnings.push(
      student === 'student'
        ? `The student's outputs are not finite (NaN or Infinity) on ${rows(answers.count, answers.first)}: they count as disagreements.`
        : `The shipped student (export.quantize ${student}) outputs non-finite values (NaN or Infinity) on ${rows(answers.count, answers.first)}: they count as disagreements in quantized.agreement.top1. Its weights do not survive ${student}: ship float32 (export.quantize: none) or keep the weights smaller.`,
    );
  }
  return warnings;
}
