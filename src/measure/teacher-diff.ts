import { measureAgreement, top1Agreement } from './agreement.js';
import type { StageMetrics } from './metrics.js';

/**
 * What a pull request changed in the teacher: the base branch's teacher against the head's on
 * the same eval split, computed in float64 on the host like the agreement metrics. A reviewer sees
 * how far the teacher moved (`teacherDiff.agreement`, `teacherDiff.kl`), which classes it moved
 * (their share of the teacher's top-1 answers), and whether the student followed: its agreement
 * with the head teacher (`agreement.top1`) beside its agreement with the base one
 * (`teacherDiff.studentVsBase`).
 */

/** One class whose share of the teacher's top-1 answers changed: before (base) and after (head), as fractions. */
export interface MovedClass {
  class: number;
  base: number;
  head: number;
}

/** report.json's `teacherDiff`: whether the base teacher was compared, and if not, why. */
export interface TeacherDiff {
  /** `compared`; `unchanged` (the same bytes: nothing to compare); `unavailable` (no base teacher, with `note` saying why). */
  status: 'compared' | 'unchanged' | 'unavailable';
  /** Where the base teacher came from, e.g. "git: models/teacher/model.json at 1a2b3c4d5e6f (the PR's base)". */
  source?: string;
  note?: string;
  /** The classes whose share moved most, largest move first; only classes that moved. */
  moved?: MovedClass[];
}

/** Classes listed in `moved`: enough for a reviewer, bounded for 1,000 classes. */
export const MOVED_CLASSES = 5;

export function compareTeachers(
  base: Float32Array,
  head: Float32Array,
  student: Float32Array | undefined,
  classes: number,
): { metrics: StageMetrics<'teacher diff'>; moved: MovedClass[] } {
  // The base teacher is the reference: KL(base || head), and agreement counted on the base's answers.
  const { metrics, classes: counts } = measureAgreement(base, head, classes, 1);
  // Shares of the rows the base teacher answers (rows of NaN logits answer nothing).
  const rows = counts.teacherCounts.reduce((sum, count) => sum + count, 0);
  const moved = counts.teacherCounts
    .map((baseCount, c) => ({ class: c, base: baseCount / rows, head: counts.studentCounts[c] / rows }))
    .filter((m) => m.base !== m.head)
    .sort((a, b) => Math.abs(b.head - b.base) - Math.abs(a.head - a.base) || a.class - b.class)
    .slice(0, MOVED_CLASSES);
  return {
    metrics: {
      'teacherDiff.agreement': metrics['agreement.top1'],
      'teacherDiff.kl': metrics.kl,
      ...(student ? { 'teacherDiff.studentVsBase': top1Agreement(base, student, classes) } : {}),
    },
    moved,
  };
}
