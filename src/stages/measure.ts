import path from 'node:path';
import type { io } from '@tensorflow/tfjs';
import { describeEnvironment, onBackend, type Tf } from '../backend/resolve.js';
import type { Config } from '../config/load.js';
import type { Dataset } from '../data/dataset.js';
import { InputError } from '../errors.js';
import type { GateCheck } from '../gates/gates.js';
import { allowedRatio, intervalBound, isPairedSpeedCheck } from '../gates/baseline.js';
import { measureAgreement, top1Agreement, type AgreementMeasurement, type ClassAgreement } from '../measure/agreement.js';
import type { MeasuredInterval } from '../measure/intervals.js';
import type { SpeedComparison } from '../measure/paired-speed.js';
import type { StageMetrics } from '../measure/metrics.js';
import { sizeMetrics } from '../measure/size.js';
import { compareTeachers, type TeacherDiff } from '../measure/teacher-diff.js';
import { measureSpeed, type SpeedResult } from '../measure/speed.js';
import { relativeHalfWidth, speedLimits, type MetricBound, type SpeedLimits } from '../measure/timing.js';
import { PAIRED_ROUNDS } from '../measure/paired-speed.js';
import { phaseProgress, type ProgressSink } from '../distill/progress.js';
import { fileExists } from '../models/artifacts.js';
import { describeClipped, exportArtifacts, exportPlan, quantizedBytes, saveToMemory, type ExportPlan } from '../models/export.js';
import { firstLine, loadModel, studentLayers, wrapLayersModel, type LoadedModel } from '../models/model.js';
import { measureOnnxStudent, onnxStudentModel, requireStudentRuntime } from '../models/onnx-student.js';
import { loadTeacher } from '../models/pair.js';
import { predictLogits } from '../models/predict.js';
import type { Report } from '../report/report.js';
import type { Distillation } from './distill.js';
import type { Session } from './prepare.js';

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

/**
 * The base branch's teacher to compare the head's with: a model.json (or ONNX file) and where it
 * came from, or why there is none (not a pull request, the base commit could not be fetched, the
 * teacher is absent at base). The library reads files only; the shells find them.
 */
export type BaseTeacher = { path: string; source: string } | { unavailable: string; source?: string };

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
    ? await predictLogits(tf, student, evalSet, evalSet.size, undefined, undefined, (done) => evalPass.update(done)).finally(() => evalPass.finish())
    : undefined;
  const size = sizeMetrics(teacher, student);
  const pairedChecks = checks.filter(isPairedSpeedCheck);
  const baselineStudentPath = baseline && pairedChecks.length > 0 ? await findBaselineStudent(baselineStudent, baseline.path, baseline.report) : undefined;
  // Speed, and the paired comparison with the baseline's student, on the speed backend.
  const timing = await speedModels(session, config, log);
  // The run's time left counts from this stage's start; the speed budget from the first timed call.
  // Progress in rounds: the fixed ones of each pair (latency, throughput, the baseline's), which
  // the time share or the precision reached may end early, and extra ones may follow.
  const planned =
    config.measure.rounds + Math.max(3, Math.ceil(config.measure.rounds / 3)) + (pairedChecks.length > 0 && baselineStudentPath ? PAIRED_ROUNDS : 0);
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
    speed = await timing.run(() => timeSpeed(timing, evalSet, config, { bounds, pairedChecks, baselineStudentPath, limits }, log));
  } finally {
    rounds.finish();
    timing.dispose();
  }
  log(describeSpeedPrecision(speed.intervals, (performance.now() - speedStarted) / 1000));
  const agreement = studentEvalLogits
    ? measureAgreement(distillation.teacherEvalLogits, studentEvalLogits, teacher.outputWidth, config.measure.topK, evalSet.y)
    : undefined;
  // What the teacher's first batch said about its outputs (probabilities read as logits) comes first.
  const warnings = [...(teacher.warnings ?? []), ...(agreement ? nonFiniteWarnings(agreement.nonFinite, evalSet, config, 'student') : [])];
  const plan = exportPlan(config.export, teacher.output);
  const shipped =
    plan.quantize === 'none' ? undefined : await shippedStudentMetrics(tf, session, plan, config, distillation.teacherEvalLogits, studentEvalLogits);
  warnings.push(...(shipped?.warnings ?? []));
  for (const warning of warnings) log(`warning: ${warning}`);
  const diff = baseTeacher ? await diffTeachers(session, config, baseTeacher, distillation.teacherEvalLogits, studentEvalLogits, log) : undefined;
  // export.format onnx: student.onnx against the TF.js student in onnxruntime-node (onnx-student.ts).
  const onnx = plan.format === 'onnx' ? await measureOnnxStudent(tf, student, evalSet, plan, [process.cwd(), config.dir], log) : undefined;
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

/**
 * What the speed phase's rounds bought, for the log: "speed: 12 latency rounds (teacher ±1.2%,
 * student ±3.4%) and 4 throughput rounds (teacher ±0.8%, student ±2.0%) in 9.1 s", each ± the
 * half-width of the 95% interval of the median, relative to it. The report's footer says the same.
 */
export function describeSpeedPrecision(intervals: Record<string, MeasuredInterval>, seconds: number): string {
  const pm = (metric: string) => {
    const width = intervals[metric] ? relativeHalfWidth(intervals[metric]) : Infinity;
    return Number.isFinite(width) ? `±${(100 * width).toFixed(1)}%` : 'unbounded';
  };
  const pair = (name: string, teacher: string, student: string) =>
    intervals[teacher] ? `${intervals[teacher].rounds} ${name} rounds (teacher ${pm(teacher)}, student ${pm(student)})` : undefined;
  const pairs = [pair('latency', 'speed.teacherMs', 'speed.studentMs'), pair('throughput', 'speed.teacherThroughput', 'speed.studentThroughput')].filter(
    Boolean,
  );
  return `speed: ${pairs.join(' and ')} in ${seconds.toFixed(1)} s (95% intervals of the medians)`;
}

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
  const rows = (count: number, first: number) => `${count} of ${evalSet.size} eval rows (the first is row ${first} of ${evalSet.source})`;
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
  try {
    if (base.fingerprint && base.fingerprint === teacher.fingerprint) {
      log('teacher diff: the base teacher is the same as the head one');
      const metrics = {
        'teacherDiff.agreement': 1,
        'teacherDiff.kl': 0,
        'teacherDiff.studentVsBase': top1Agreement(headLogits, studentLogits, teacher.outputWidth),
      };
      return { metrics, report: { status: 'unchanged', source, note: 'the teacher is unchanged (same topology and weights)' } };
    }
    if (base.outputWidth !== teacher.outputWidth) return unavailable(`the base teacher has ${base.outputWidth} classes and the head ${teacher.outputWidth}`);
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
    log(`teacher diff: base vs head top-1 agreement ${metrics['teacherDiff.agreement']?.toFixed(4)}, KL ${metrics['teacherDiff.kl']?.toPrecision(4)}`);
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

/**
 * The student as it ships with quantized weights: the bytes it occupies (`size.studentBytes`,
 * beside the float32 `size.studentFloatBytes`) and, when agreement is measured, its agreement, KL
 * and accuracy with the weights quantized and loaded back by stock TF.js, which dequantizes them
 * as an app's `tf.loadLayersModel` will. Measured on logits (the softmax an export may append
 * changes no top-1 answer, and would lose precision in the KL).
 */
export async function shippedStudentMetrics(
  tf: Tf,
  { student, teacher, evalSet }: Pick<Session, 'student' | 'teacher' | 'evalSet'>,
  plan: ExportPlan,
  config: Config,
  teacherEvalLogits: Float32Array,
  studentEvalLogits: Float32Array | undefined,
): Promise<{ size: Partial<StageMetrics<'size'>>; agreement?: StageMetrics<'quantized'>; warnings: string[] }> {
  const artifacts = await saveToMemory(tf, studentLayers(student));
  const shippedBytes = quantizedBytes(artifacts.weightSpecs ?? [], plan.quantize);
  // The size metrics of the student that ships, beside its float32 bytes.
  const size = { ...sizeMetrics(teacher, { params: student.params, bytes: shippedBytes }), 'size.studentFloatBytes': student.bytes };
  // student/ is written from the same artifacts with the same clipping: said once, here.
  const warnings: string[] = [];
  const quantized = exportArtifacts(artifacts, { quantize: plan.quantize, output: 'logits' }, student.output, (clipped) =>
    warnings.push(describeClipped(clipped, plan.quantize)),
  );
  if (!studentEvalLogits) return { size, warnings };
  const model = wrapLayersModel(await tf.loadLayersModel(tf.io.fromMemory(quantized)), shippedBytes);
  let logits: Float32Array;
  try {
    logits = await predictLogits(tf, model, evalSet);
  } finally {
    model.dispose();
  }
  const { metrics, nonFinite } = measureAgreement(teacherEvalLogits, logits, student.outputWidth, config.measure.topK, evalSet.y);
  warnings.push(...nonFiniteWarnings(nonFinite, evalSet, config, plan.quantize as Exclude<ExportPlan['quantize'], 'none'>));
  return {
    size,
    warnings,
    agreement: {
      'quantized.agreement.top1': metrics['agreement.top1'],
      'quantized.kl': metrics.kl,
      ...(evalSet.y ? { 'quantized.accuracy': metrics['accuracy.student'] } : {}),
    },
  };
}

async function findBaselineStudent(explicit: string | undefined, baselinePath: string, baseline: Report): Promise<string | undefined> {
  const candidates = explicit
    ? [explicit]
    : [path.join(path.dirname(baselinePath), 'student', 'model.json'), baseline.student?.path].filter((p): p is string => Boolean(p));
  for (const candidate of candidates) if (await fileExists(candidate)) return candidate;
  if (explicit) throw new InputError(explicit, "the baseline student cannot be read; give the model.json of the baseline run's student.");
  return undefined;
}

/** What the speed phase times beyond its fixed rounds, and until when. */
interface SpeedPlan {
  /** Absolute gates on speed metrics, each judged on its metric's interval. */
  bounds: MetricBound[];
  /** Relative latency gates, judged on the new student timed against the baseline's. */
  pairedChecks: GateCheck[];
  baselineStudentPath?: string;
  limits: SpeedLimits;
}

/**
 * Teacher against student, and the new student against the baseline's when one is at hand (same
 * process, same input, interleaved: the only latency comparison worth gating on), timed in one
 * phase that shares one budget among the gates still undecided.
 */
async function timeSpeed(
  models: SpeedModels,
  evalSet: Dataset,
  config: Config,
  { bounds, pairedChecks, baselineStudentPath, limits }: SpeedPlan,
  log: (line: string) => void,
): Promise<SpeedResult> {
  const baselineStudent = baselineStudentPath ? await loadModel(models.tf, baselineStudentPath, 'student') : undefined;
  try {
    // The strictest relative gate decides how long to measure; each is then judged on the same interval.
    const allowed = (baselineMs: number) => Math.min(...pairedChecks.map((c) => allowedRatio(c, baselineMs)));
    const speed = await measureSpeed(models.tf, models.teacher, models.student, evalSet, config.measure, {
      bounds,
      baseline: baselineStudent ? { student: baselineStudent, allowedRatio: allowed } : undefined,
      limits,
    });
    for (const metric of new Set(bounds.map((b) => b.metric))) {
      const { value, low, high, rounds } = speed.intervals[metric];
      log(`speed: ${metric} ${value.toPrecision(4)} [${low.toPrecision(4)}, ${high.toPrecision(4)}] over ${rounds} rounds`);
    }
    const comparison = speed.comparison;
    if (comparison) {
      log(
        `speed vs baseline student: ratio ${comparison.ratio.toFixed(3)} [${comparison.low.toFixed(3)}, ${comparison.high.toFixed(3)}] over ${comparison.rounds} rounds: ${comparison.verdict}`,
      );
    }
    return speed;
  } finally {
    baselineStudent?.dispose();
  }
}

/** Teacher and student on the backend speed is timed on, and a way to run work there. */
interface SpeedModels {
  tf: Tf;
  teacher: LoadedModel;
  student: LoadedModel;
  run<T>(work: () => Promise<T>): Promise<T>;
  dispose(): void;
}

/**
 * The session's models on `measure.backend` where the config names one (the backend the student
 * is deployed on), else on the inference backend. A backend of another TF.js engine (tfjs-node)
 * gets its own copies of both models.
 */
async function speedModels(session: Session, config: Config, log: (line: string) => void): Promise<SpeedModels> {
  const models = await tfjsSpeedModels(session, config, log);
  if (config.measure.runtime !== 'onnxruntime') return models;
  // measure.runtime onnxruntime: the student is timed as student.onnx in onnxruntime-node, where it
  // will run, behind predictAsync as an ONNX teacher is; the teacher stays where it was.
  try {
    const runtime = await requireStudentRuntime([process.cwd(), config.dir]);
    const student = await onnxStudentModel(models.tf, runtime, session.student, exportPlan(config.export, session.teacher.output));
    log(`speed: student timed in ${student.runtime?.label ?? 'onnxruntime-node'} (measure.runtime)`);
    return { ...models, student, dispose: () => (student.dispose(), models.dispose()) };
  } catch (error) {
    models.dispose();
    throw error;
  }
}

/** The session's models as TF.js (or the teacher's own runtime) runs them, on the speed backend. */
async function tfjsSpeedModels(session: Session, config: Config, log: (line: string) => void): Promise<SpeedModels> {
  const { backend, teacher, student, speedBackend } = session;
  const target = speedBackend ?? backend;
  const run = <T>(work: () => Promise<T>) => onBackend(target.tf, target.engine, work);
  if (speedBackend) log(`speed: timed on ${speedBackend.name} (measure.backend)`);
  if (target.tf === backend.tf) return { tf: backend.tf, teacher, student, run, dispose: () => {} };
  const artifacts = await new Promise<io.ModelArtifacts>((resolve, reject) => {
    studentLayers(student)
      .save(
        backend.tf.io.withSaveHandler(async (saved) => {
          resolve(saved);
          return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
        }),
      )
      .catch(reject);
  });
  // A teacher in its own runtime (ONNX) runs there whatever the TF.js engine: the session's serves.
  const theirTeacher = teacher.runtime ? teacher : await loadTeacher(target.tf, config);
  const disposeTeacher = () => theirTeacher !== teacher && theirTeacher.dispose();
  try {
    const theirStudent = wrapLayersModel(await target.tf.loadLayersModel(target.tf.io.fromMemory(artifacts)), student.bytes);
    return { tf: target.tf, teacher: theirTeacher, student: theirStudent, run, dispose: () => (disposeTeacher(), theirStudent.dispose()) };
  } catch (error) {
    disposeTeacher();
    throw error;
  }
}
