import path from 'node:path';
import type { io } from '@tensorflow/tfjs';
import { describeEnvironment, onBackend, type Tf } from '../backend/resolve.js';
import type { Config } from '../config/load.js';
import type { Dataset } from '../data/dataset.js';
import { InputError } from '../errors.js';
import type { GateCheck } from '../gates/gates.js';
import { allowedRatio, isPairedSpeedCheck } from '../gates/judge.js';
import { measureAgreement, type ClassAgreement } from '../measure/agreement.js';
import type { StageMetrics } from '../measure/metrics.js';
import { comparePairedSpeed, type SpeedComparison } from '../measure/paired-speed.js';
import { measureSpeed } from '../measure/speed.js';
import { fileExists } from '../models/artifacts.js';
import { loadModel, wrapLayersModel, type LoadedModel } from '../models/model.js';
import { loadTeacher } from '../models/pair.js';
import { predictLogits } from '../models/predict.js';
import type { Report } from '../report/report.js';
import type { Distillation } from './distill.js';
import type { Session } from './prepare.js';

/** Every metric of the run, and how speed was timed. */
export interface Measurement {
  metrics: Record<string, number>;
  /** The new student timed against the baseline's, when relative latency gates asked for it. */
  speedComparison?: SpeedComparison;
  baselineStudentPath?: string;
  environment: ReturnType<typeof describeEnvironment>;
  /** How teacher and student spread their top-1 answers over the classes; absent when agreement was not measured. */
  agreement?: ClassAgreement;
}

export interface MeasureOptions {
  /** The baseline's student (model.json); by default student/model.json beside the baseline report, or its student.path. */
  baselineStudent?: string;
  log: (line: string) => void;
}

/** Stage 3: size, speed (on measure.backend where one is named) and agreement on the eval split; the paired comparison with the baseline's student. */
export async function measureStudent(
  session: Session,
  config: Config,
  distillation: Distillation,
  { baselineStudent, log }: MeasureOptions,
): Promise<Measurement> {
  const { backend, teacher, student, evalSet, checks, baseline } = session;
  const { tf } = backend;
  const studentEvalLogits = await predictLogits(tf, student, evalSet);
  const size: StageMetrics<'size'> = {
    'size.teacherBytes': teacher.bytes,
    'size.studentBytes': student.bytes,
    'size.teacherParams': teacher.params,
    'size.studentParams': student.params,
    'size.ratio': student.bytes / teacher.bytes,
  };
  const pairedChecks = checks.filter(isPairedSpeedCheck);
  const baselineStudentPath = baseline && pairedChecks.length > 0 ? await findBaselineStudent(baselineStudent, baseline.path, baseline.report) : undefined;
  // Speed, and the paired comparison with the baseline's student, on the speed backend.
  const timing = await speedModels(session, config, log);
  let speed: StageMetrics<'speed'>;
  let speedComparison: SpeedComparison | undefined;
  try {
    speed = await timing.run(() => measureSpeed(timing.tf, timing.teacher, timing.student, evalSet, config.measure));
    if (baselineStudentPath) {
      speedComparison = await timing.run(() => timeAgainstBaseline(timing.tf, timing.student, baselineStudentPath, evalSet, pairedChecks, config, log));
    }
  } finally {
    timing.dispose();
  }
  const agreement = measureAgreement(distillation.teacherEvalLogits, studentEvalLogits, teacher.outputWidth, config.measure.topK, evalSet.y);
  const metrics: Record<string, number> = { ...size, ...speed, ...agreement.metrics };
  if (speedComparison) {
    const paired: StageMetrics<'paired speed'> = { 'speed.baselineStudentMs': speedComparison.baselineMs, 'speed.vsBaseline': speedComparison.ratio };
    Object.assign(metrics, paired);
  }
  // The environment is what makes timings comparable between runs: the backend they were timed on.
  return {
    metrics,
    speedComparison,
    baselineStudentPath,
    environment: describeEnvironment(session.speedBackend ?? backend),
    agreement: agreement.classes,
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

/** Same process, same input, interleaved: the only latency comparison worth gating on. */
async function timeAgainstBaseline(
  tf: Tf,
  student: LoadedModel,
  baselineStudentPath: string,
  evalSet: Dataset,
  checks: GateCheck[],
  config: Config,
  log: (line: string) => void,
): Promise<SpeedComparison> {
  const baselineStudent = await loadModel(tf, baselineStudentPath, 'student');
  const input = tf.tensor(await evalSet.read(0, 1), [1, ...evalSet.sampleShape]);
  try {
    // The strictest bound decides how long to measure; each gate is then judged on the same interval.
    const probe = await comparePairedSpeed(student, baselineStudent, input, {
      allowedRatio: 1,
      block: 10,
      minRounds: 10,
      budgetMs: 0,
      warmup: config.measure.warmup,
    });
    const allowed = Math.min(...checks.map((c) => allowedRatio(c, probe.baselineMs)));
    const comparison = await comparePairedSpeed(student, baselineStudent, input, {
      allowedRatio: allowed,
      budgetMs: config.measure.speedBudgetSeconds * 1000,
      warmup: 0,
    });
    log(
      `speed vs baseline student: ratio ${comparison.ratio.toFixed(3)} [${comparison.low.toFixed(3)}, ${comparison.high.toFixed(3)}] over ${comparison.rounds} rounds: ${comparison.verdict}`,
    );
    return comparison;
  } finally {
    input.dispose();
    baselineStudent.dispose();
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
  const { backend, teacher, student, speedBackend } = session;
  const target = speedBackend ?? backend;
  const run = <T>(work: () => Promise<T>) => onBackend(target.tf, target.engine, work);
  if (speedBackend) log(`speed: timed on ${speedBackend.name} (measure.backend)`);
  if (target.tf === backend.tf) return { tf: backend.tf, teacher, student, run, dispose: () => {} };
  const artifacts = await new Promise<io.ModelArtifacts>((resolve, reject) => {
    student
      .layers!.save(
        backend.tf.io.withSaveHandler(async (saved) => {
          resolve(saved);
          return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
        }),
      )
      .catch(reject);
  });
  const theirTeacher = await loadTeacher(target.tf, config);
  try {
    const theirStudent = wrapLayersModel(await target.tf.loadLayersModel(target.tf.io.fromMemory(artifacts)), student.bytes);
    return { tf: target.tf, teacher: theirTeacher, student: theirStudent, run, dispose: () => (theirTeacher.dispose(), theirStudent.dispose()) };
  } catch (error) {
    theirTeacher.dispose();
    throw error;
  }
}
