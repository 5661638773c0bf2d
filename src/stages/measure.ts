import { describeEnvironment } from '../backend/resolve.js';
import type { Config } from '../config/load.js';
import { intervalBound, isPairedSpeedCheck } from '../gates/baseline.js';
import { measureAgreement, type ClassAgreement } from '../measure/agreement.js';
import type { MeasuredInterval } from '../measure/intervals.js';
import type { SpeedComparison } from '../measure/paired-speed.js';
import { sizeMetrics } from '../measure/size.js';
import { type TeacherDiff } from '../measure/teacher-diff.js';
import { type SpeedResult } from '../measure/speed.js';
import { speedLimits, type MetricBound } from '../measure/timing.js';
import { PAIRED_ROUNDS } from '../measure/paired-speed.js';
import { phaseProgress, type ProgressSink } from '../distill/progress.js';
import { exportPlan, type ExportPlan } from '../models/export.js';
import { measureOnnxStudent } from '../models/onnx-student.js';
import { predictLogits } from '../models/predict.js';
import type { Distillation } from './distill.js';
import type { Session } from './prepare.js';
import { describeSpeedPrecision, findBaselineStudent, speedModels, timeSpeed } from './measure/speed.js';
import { nonFiniteWarnings } from './measure/non-finite.js';
import { diffTeachers, type BaseTeacher } from './measure/teacher-diff.js';
import { shippedStudentMetrics } from './measure/shipped.js';

/** Every metric of the run, and how speed was timed. */
export interface Measurement {
  metrics: Record<string, number>;
  /** Every speed metric timed in this run: its median over rounds and the interval that speed gates are judged on. */
  speedIntervals?: Record<string, MeasuredInterval>;
  /** The new student timed against the baseline's, when relative latency gates asked for it. */
  speedComparison?: SpeedComparison;
  baselineStudentPath?: string;
  /** `measure.runtime: onnxruntime`: the runtime student.onnx was timed in, e.g. "onnxruntime-node 1.30.0 (cpu, 16 threads)". */
  studentRuntime?: string;
  environment: ReturnType<typeof describeEnvironment>;
  /** How teacher and student spread their top-1 answers over the classes; absent when agreement was not measured. */
  agreement?: ClassAgreement;
  /** How student/ is written: its weights' quantization and its output kind. */
  export?: ExportPlan;
  /** The base branch's teacher against this one, or why it was not compared; absent when no base teacher was asked for. */
  teacherDiff?: TeacherDiff;
  /** What the reader must know about the models' outputs: rows that are not finite, weights clipped to fit the shipped format. The judge adds them to the reasons. */
  warnings?: string[];
}

export interface MeasureOptions {
  /** The baseline's student (model.json); by default student/model.json beside the baseline report, or its student.path. */
  baselineStudent?: string;
  /**
   * How long measuring may take from now when that is less than `measure.speedBudgetSeconds`: the
   * run's time left. It also cuts the fixed rounds short (each timing keeps at least a few rounds).
   */
  speedBudgetMs?: number;
  /** A cancel: timing adds no more rounds, judges what it has (at least a few rounds), and undecided speed gates are inconclusive. */
  signal?: AbortSignal;
  /** The base branch's teacher, compared with the head's on the eval split (`teacherDiff.*`). */
  baseTeacher?: BaseTeacher;
  /**
   * Seconds the run took before measuring (load, teacher's pass, training): the speed phase's
   * fixed rounds stop at a share of it (see SpeedShare in measure/timing.ts). Unset: no share.
   */
  runSeconds?: number;
  /** Where the speed phase shows its progress; none without it. */
  progress?: ProgressSink;
  log: (line: string) => void;
}

/** Stage 3: size, speed (on measure.backend where one is named) and agreement on the eval split; the paired comparison with the baseline's student. */
export async function measureStudent(
  session: Session,
  config: Config,
  distillation: Distillation,
  { baselineStudent, speedBudgetMs = Infinity, signal, baseTeacher, runSeconds, progress: sink, log }: MeasureOptions,
): Promise<Measurement> {
  const entered = performance.now();
  const { backend, teacher, student, evalSet, checks, baseline } = session;
  const { tf } = backend;
  // A teacher's pass stopped early (a cancel, the budget) leaves nothing to agree with: agreement
  // on part of the eval split would be a different metric, so it is not measured at all.
  const teacherCoversEval = distillation.teacherEvalLogits.length === evalSet.size * teacher.outputWidth;
  const evalPass = phaseProgress('student on the eval split', evalSet.size, 'rows', sink);
  const studentEvalLogits = teacherCoversEval
    ? await predictLogits(tf, student, evalSet, evalSet.size, undefined, undefined, (done) =>
        evalPass.update(done),
      ).finally(() => evalPass.finish())
    : undefined;
  const size = sizeMetrics(teacher, student);
  const pairedChecks = checks.filter(isPairedSpeedCheck);
  const baselineStudentPath =
    baseline && pairedChecks.length > 0
      ? await findBaselineStudent(baselineStudent, baseline.path, baseline.report)
      : undefined;
  // Speed, and the paired comparison with the baseline's student, on the speed backend.
  const timing = await speedModels(session, config, log);
  // The run's time left counts from this stage's start; the speed budget from the first timed call.
  // Progress in rounds: the fixed ones of each pair (latency, throughput, the baseline's), which
  // the time share or the precision reached may end early, and extra ones may follow.
  const planned =
    config.measure.rounds +
    Math.max(3, Math.ceil(config.measure.rounds / 3)) +
    (pairedChecks.length > 0 && baselineStudentPath ? PAIRED_ROUNDS : 0);
  const rounds = phaseProgress('speed', planned, 'rounds', sink);
  let roundsDone = 0;
  const limits = speedLimits(config.measure.speedBudgetSeconds, {
    speedBudgetMs: speedBudgetMs - (performance.now() - entered),
    signal,
    runSeconds,
    onRound: () => rounds.update(Math.min(++roundsDone, planned)),
  });
  const bounds = checks.map(intervalBound).filter((bound): bound is MetricBound => bound !== undefined);
  let speed: SpeedResult;
  // measure.runtime onnxruntime: the runtime the student was timed in, for the report.
  const studentRuntime = timing.student.runtime?.label;
  const speedStarted = performance.now();
  try {
    speed = await timing.run(() =>
      timeSpeed(timing, evalSet, config, { bounds, pairedChecks, baselineStudentPath, limits }, log),
    );
  } finally {
    rounds.finish();
    timing.dispose();
  }
  log(describeSpeedPrecision(speed.intervals, (performance.now() - speedStarted) / 1000));
  const agreement = studentEvalLogits
    ? measureAgreement(
        distillation.teacherEvalLogits,
        studentEvalLogits,
        teacher.outputWidth,
        config.measure.topK,
        evalSet.y,
      )
    : undefined;
  // What the teacher's first batch said about its outputs (probabilities read as logits) comes first.
  const warnings = [
    ...(teacher.warnings ?? []),
    ...(agreement ? nonFiniteWarnings(agreement.nonFinite, evalSet, config, 'student') : []),
  ];
  const plan = exportPlan(config.export, teacher.output);
  const shipped =
    plan.quantize === 'none'
      ? undefined
      : await shippedStudentMetrics(tf, session, plan, config, distillation.teacherEvalLogits, studentEvalLogits);
  warnings.push(...(shipped?.warnings ?? []));
  for (const warning of warnings) log(`warning: ${warning}`);
  const diff = baseTeacher
    ? await diffTeachers(session, config, baseTeacher, distillation.teacherEvalLogits, studentEvalLogits, log)
    : undefined;
  // export.format onnx: student.onnx against the TF.js student in onnxruntime-node (onnx-student.ts).
  const onnx =
    plan.format === 'onnx'
      ? await measureOnnxStudent(tf, student, evalSet, plan, [process.cwd(), config.dir], log)
      : undefined;
  const metrics: Record<string, number> = {
    ...size,
    ...shipped?.size,
    ...speed.metrics,
    ...agreement?.metrics,
    ...shipped?.agreement,
    ...diff?.metrics,
    ...onnx?.metrics,
  };
  // The environment is what makes timings comparable between runs: the backend they were timed on.
  return {
    metrics,
    speedIntervals: speed.intervals,
    speedComparison: speed.comparison,
    baselineStudentPath,
    ...(studentRuntime ? { studentRuntime } : {}),
    environment: describeEnvironment(session.speedBackend ?? backend),
    ...(agreement ? { agreement: agreement.classes } : {}),
    export: onnx ? { ...plan, onnx: onnx.check } : plan,
    ...(diff ? { teacherDiff: diff.report } : {}),
    ...(warnings.length > 0 ? { warnings } : {}),
  };
}
