// Speed for the measure stage: teacher and student timed interleaved on the speed backend (TF.js,
// or onnxruntime under measure.runtime), the paired comparison with the baseline's student, and
// what the rounds bought, for the log.
import path from 'node:path';
import type { io } from '@tensorflow/tfjs';
import { onBackend, type Tf } from '../../backend/resolve.js';
import type { Config } from '../../config/load.js';
import type { Dataset } from '../../data/dataset.js';
import { InputError } from '../../errors.js';
import type { GateCheck } from '../../gates/gates.js';
import { allowedRatio } from '../../gates/baseline.js';
import type { MeasuredInterval } from '../../measure/intervals.js';
import { measureSpeed, type SpeedResult } from '../../measure/speed.js';
import { relativeHalfWidth, type MetricBound, type SpeedLimits } from '../../measure/timing.js';
import { fileExists } from '../../models/artifacts.js';
import { exportPlan } from '../../models/export.js';
import { loadModel, studentLayers, wrapLayersModel } from '../../models/model.js';
import { type LoadedModel } from '../../models/loaded-model.js';
import { onnxStudentModel, requireStudentRuntime } from '../../models/onnx-student.js';
import { loadTeacher } from '../../models/pair.js';
import type { Report } from '../../report/report.js';
import type { Session } from '../prepare.js';

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
    intervals[teacher]
      ? `${intervals[teacher].rounds} ${name} rounds (teacher ${pm(teacher)}, student ${pm(student)})`
      : undefined;
  const pairs = [
    pair('latency', 'speed.teacherMs', 'speed.studentMs'),
    pair('throughput', 'speed.teacherThroughput', 'speed.studentThroughput'),
  ].filter(Boolean);
  return `speed: ${pairs.join(' and ')} in ${seconds.toFixed(1)} s (95% intervals of the medians)`;
}

export async function findBaselineStudent(
  explicit: string | undefined,
  baselinePath: string,
  baseline: Report,
): Promise<string | undefined> {
  const candidates = explicit
    ? [explicit]
    : [path.join(path.dirname(baselinePath), 'student', 'model.json'), baseline.student?.path].filter(
        (p): p is string => Boolean(p),
      );
  for (const candidate of candidates) if (await fileExists(candidate)) return candidate;
  if (explicit)
    throw new InputError(
      explicit,
      "the baseline student cannot be read; give the model.json of the baseline run's student.",
    );
  return undefined;
}

/** What the speed phase times beyond its fixed rounds, and until when. */
export interface SpeedPlan {
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
export async function timeSpeed(
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
      log(
        `speed: ${metric} ${value.toPrecision(4)} [${low.toPrecision(4)}, ${high.toPrecision(4)}] over ${rounds} rounds`,
      );
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
export interface SpeedModels {
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
export async function speedModels(session: Session, config: Config, log: (line: string) => void): Promise<SpeedModels> {
  const models = await tfjsSpeedModels(session, config, log);
  if (config.measure.runtime !== 'onnxruntime') return models;
  // measure.runtime onnxruntime: the student is timed as student.onnx in onnxruntime-node, where it
  // will run, behind predictAsync as an ONNX teacher is; the teacher stays where it was.
  try {
    const runtime = await requireStudentRuntime([process.cwd(), config.dir]);
    const student = await onnxStudentModel(
      models.tf,
      runtime,
      session.student,
      exportPlan(config.export, session.teacher.output),
    );
    log(`speed: student timed in ${student.runtime?.label ?? 'onnxruntime-node'} (measure.runtime)`);
    return { ...models, student, dispose: () => (student.dispose(), models.dispose()) };
  } catch (error) {
    models.dispose();
    throw error;
  }
}

/** The session's models as TF.js (or the teacher's own runtime) runs them, on the speed backend. */
export async function tfjsSpeedModels(
  session: Session,
  config: Config,
  log: (line: string) => void,
): Promise<SpeedModels> {
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
    const theirStudent = wrapLayersModel(
      await target.tf.loadLayersModel(target.tf.io.fromMemory(artifacts)),
      student.bytes,
    );
    return {
      tf: target.tf,
      teacher: theirTeacher,
      student: theirStudent,
      run,
      dispose: () => (disposeTeacher(), theirStudent.dispose()),
    };
  } catch (error) {
    disposeTeacher();
    throw error;
  }
}
