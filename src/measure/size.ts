import type { StageMetrics } from './metrics.js';

/** What the size metrics need of a model: its weight bytes and parameter count. */
export interface ModelSize {
  bytes: number;
  params: number;
}

/** The size stage: bytes and parameters of both models, and the student's share of the teacher's bytes. */
export function sizeMetrics(teacher: ModelSize, student: ModelSize): StageMetrics<'size'> {
  return {
    'size.teacherBytes': teacher.bytes,
    'size.studentBytes': student.bytes,
    'size.teacherParams': teacher.params,
    'size.studentParams': student.params,
    'size.ratio': student.bytes / teacher.bytes,
  };
}
