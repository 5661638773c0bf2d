import path from 'node:path';
import type { io } from '@tensorflow/tfjs';
import { describeEnvironment, onBackend, type ResolvedBackend, type Tf } from '../backend/resolve.js';
import type { Config } from '../config/load.js';
import type { Dataset } from '../data/dataset.js';
import { InputError } from '../errors.js';
import type { GateCheck } from '../gates/gates.js';
import { allowedRatio, isPairedSpeedCheck } from '../gates/judge.js';
import { agreementMetrics } from '../measure/agreement.js';
import type { StageMetrics } from '../measure/metrics.js';
import { comparePairedSpeed, type SpeedComparison } from '../measure/paired-speed.js';
import { measureSpeed } from '../measure/speed.js';
import { fileExists } from '../models/artifacts.js';
import { loadModel, wrapLayersModel, type LoadedModel } from '../models/model.js';
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
  const metrics: Record<string, number> = {
    ...size,
    ...(await timeSpeed(tf, session.speedBackend, teacher, student, evalSet, config, log)),
    ...agreementMetrics(distillation.teacherEvalLogits, studentEvalLogits, teacher.outputWidth, config.measure.topK, evalSet.y),
  };
  const pairedChecks = checks.filter(isPairedSpeedCheck);
  const baselineStudentPath = baseline && pairedChecks.length > 0 ? await findBaselineStudent(baselineStudent, baseline.path, baseline.report) : undefined;
  const speedComparison = baselineStudentPath ? await timeAgainstBaseline(tf, student, baselineStudentPath, evalSet, pairedChecks, config, log) : undefined;
  if (speedComparison) {
    const paired: StageMetrics<'paired speed'> = { 'speed.baselineStudentMs': speedComparison.baselineMs, 'speed.vsBaseline': speedComparison.ratio };
    Object.assign(metrics, paired);
  }
  return { metrics, speedComparison, baselineStudentPath, environment: describeEnvironment(backend) };
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

/**
 * Latency and throughput of teacher and student, on `measure.backend` where the config names one
 * (the backend the student is deployed on), else on the run's inference backend. A backend of
 * another TF.js engine (tfjs-node) gets its own copies of both models.
 */
async function timeSpeed(
  tf: Tf,
  other: ResolvedBackend | undefined,
  teacher: LoadedModel,
  student: LoadedModel,
  evalSet: Dataset,
  config: Config,
  log: (line: string) => void,
) {
  if (!other) return measureSpeed(tf, teacher, student, evalSet, config.measure);
  log(`speed: timed on ${other.name} (measure.backend)`);
  if (other.tf === tf) return onBackend(tf, other.name, () => measureSpeed(tf, teacher, student, evalSet, config.measure));
  const artifacts = await new Promise<io.ModelArtifacts>((resolve, reject) => {
    student
      .layers!.save(
        tf.io.withSaveHandler(async (saved) => {
          resolve(saved);
          return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
        }),
      )
      .catch(reject);
  });
  const theirTeacher = await loadModel(other.tf, config.teacher, 'teacher', { head: config.teacherHead, output: config.teacherOutput });
  const theirStudent = wrapLayersModel(await other.tf.loadLayersModel(other.tf.io.fromMemory(artifacts)), student.bytes);
  try {
    return await measureSpeed(other.tf, theirTeacher, theirStudent, evalSet, config.measure);
  } finally {
    theirTeacher.dispose();
    theirStudent.dispose();
  }
}
