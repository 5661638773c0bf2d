// The base branch's teacher against the head's on the eval split (teacherDiff.*).
import type { Config } from '../../config/load.js';
import { attachKernelPass } from '../../distill/kernel-teacher.js';
import { top1Agreement } from '../../measure/agreement.js';
import { compareTeachers, type TeacherDiff } from '../../measure/teacher-diff.js';
import { firstLine } from '../../models/model.js';
import { type LoadedModel } from '../../models/loaded-model.js';
import { loadTeacher } from '../../models/pair.js';
import { predictLogits } from '../../models/predict.js';
import type { Session } from '../prepare.js';

/**
 * The base branch's teacher to compare the head's with: a model.json (or ONNX file) and where it
 * came from, or why there is none (not a pull request, the base commit could not be fetched, the
 * teacher is absent at base). The library reads files only; the shells find them.
 */
export type BaseTeacher = { path: string; source: string } | { unavailable: string; source?: string };

/**
 * The base teacher against the head's on the eval split. Never fails the run: a base teacher that
 * cannot be compared (it does not load, its classes differ, the head's pass was cut short) is
 * reported as unavailable with the reason, and gates on `teacherDiff.*` are then skipped. The
 * same bytes are `unchanged`: agreement 1, KL 0, and the student's agreement with both the same.
 */
export async function diffTeachers(
  { backend, teacher, evalSet }: Pick<Session, 'backend' | 'teacher' | 'evalSet'>,
  config: Config,
  baseTeacher: BaseTeacher,
  headLogits: Float32Array,
  studentLogits: Float32Array | undefined,
  log: (line: string) => void,
): Promise<{ metrics?: Record<string, number>; report: TeacherDiff }> {
  const unavailable = (note: string, source = baseTeacher.source) => {
    log(`teacher diff: skipped, ${note}`);
    return { report: { status: 'unavailable' as const, ...(source ? { source } : {}), note } };
  };
  if ('unavailable' in baseTeacher) return unavailable(baseTeacher.unavailable);
  const { source } = baseTeacher;
  if (!studentLogits) return unavailable("the head teacher's eval pass was cut short");
  let base: LoadedModel;
  try {
    base = await loadTeacher(
      backend.tf,
      { ...config, teacher: baseTeacher.path },
      { data: { sampleShape: evalSet.sampleShape, source: evalSet.source }, searchFrom: [config.dir] },
    );
  } catch (error) {
    return unavailable(`the base teacher does not load (${firstLine(error)})`);
  }
  // Both teachers' logits computed the same way: in the kernel where the head's pass was.
  if (teacher.rowPass) attachKernelPass(backend.tf, base, backend.name, { threads: config.distill.threads });
  try {
    if (base.fingerprint && base.fingerprint === teacher.fingerprint) {
      log('teacher diff: the base teacher is the same as the head one');
      const metrics = {
        'teacherDiff.agreement': 1,
        'teacherDiff.kl': 0,
        'teacherDiff.studentVsBase': top1Agreement(headLogits, studentLogits, teacher.outputWidth),
      };
      return {
        metrics,
        report: { status: 'unchanged', source, note: 'the teacher is unchanged (same topology and weights)' },
      };
    }
    if (base.outputWidth !== teacher.outputWidth)
      return unavailable(`the base teacher has ${base.outputWidth} classes and the head ${teacher.outputWidth}`);
    // A base teacher of another input shape (the PR changed the features) cannot run on this eval
    // split: there is nothing to compare, which is news for the reviewer, not a crash.
    if (!takesSamples(base.inputShape, evalSet.sampleShape)) {
      return unavailable(
        `the base teacher takes inputs of shape [${describeShape(base.inputShape)}] and the head teacher [${describeShape(teacher.inputShape)}]: ` +
          `the eval split's samples (shape [${evalSet.sampleShape.join(', ')}]) cannot feed the base teacher`,
      );
    }
    let baseLogits: Float32Array;
    try {
      baseLogits = await predictLogits(backend.tf, base, evalSet);
    } catch (error) {
      // What the base teacher's own pass throws is about the base teacher, which the run only reviews.
      return unavailable(`the base teacher does not run on the eval split (${firstLine(error)})`);
    }
    const { metrics, moved } = compareTeachers(baseLogits, headLogits, studentLogits, teacher.outputWidth);
    log(
      `teacher diff: base vs head top-1 agreement ${metrics['teacherDiff.agreement']?.toFixed(4)}, KL ${metrics['teacherDiff.kl']?.toPrecision(4)}`,
    );
    return { metrics, report: { status: 'compared', source, moved } };
  } finally {
    base.dispose();
  }
}

/** Whether samples of `sample`'s shape fit a model input of `input`'s (null: any size). */
function takesSamples(input: readonly (number | null)[], sample: readonly number[]): boolean {
  return input.length === sample.length && input.every((d, i) => d === null || d === sample[i]);
}

const describeShape = (shape: readonly (number | null)[]) => shape.map((d) => d ?? 'any').join(', ');
