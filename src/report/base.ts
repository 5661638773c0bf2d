import type { Config } from '../config/load.js';
import type { MeasuredInterval } from '../measure/intervals.js';
import type { AugmentSettings } from '../config/schema.js';
import {
  SCHEMA_VERSION,
  type AugmentRecord,
  type Environment,
  type Report,
  type TrainingStepRecord,
} from './report.js';
import type { Sweep } from './sweep.js';

/**
 * Everything a report is built from, whichever way the run ended: the one shape that buildReport
 * (a finished run) and buildCutShortReport (a run forced to end) fill in, and that baseReport turns
 * into report.json. A part the run never reached is left out, and baseReport says so in the one
 * way every reader expects (zero, "unknown", null). A new report field is added here and in
 * baseReport, then filled by the builder that knows it.
 */
export interface ReportParts {
  config: Pick<Config, 'teacher' | 'student' | 'distill' | 'file'>;
  outcome: Pick<Report, 'verdict' | 'status' | 'reasons' | 'gates' | 'metrics'>;
  /** The backend inference ran on; absent when the run ended before one was resolved. */
  backend?: string;
  /** Absent when the run ended before a backend was resolved: only an unknown host is described. */
  environment?: Environment;
  /** The models' sizes, once they were loaded. */
  models?: {
    teacher: { format: string; output: string; params: number; bytes: number; runtime?: { label: string } };
    student: { params: number; bytes: number };
  };
  training?: {
    epochsCompleted: number;
    loss: number[];
    seconds: number;
    teacherSeconds: number;
    softTargets: 'computed' | 'cache';
    teacherPass?: string;
    step?: TrainingStepRecord;
  };
  /** `classes`: an image folder's class names, in the teacher's output order. */
  samples?: { train: number; eval: number; labels: boolean; classes?: string[] };
  /** Where the student was written (its model.json); absent when none was (a run cut short). */
  studentPath?: string;
  baseline?: Report['baseline'];
  speedComparison?: Report['speedComparison'];
  speedIntervals?: Record<string, MeasuredInterval>;
  agreement?: Report['agreement'];
  export?: Report['export'];
  teacherDiff?: Report['teacherDiff'];
  override?: Report['override'];
  /** The sweep's candidates and front (buildSweep), when the config has `students:`. */
  sweep?: Sweep;
  metricsComputedOn: string;
  speedBackend?: string;
  /** `measure.runtime: onnxruntime`: the runtime the student was timed in. */
  studentRuntime?: string;
  /** Wall time of each phase the run finished, in seconds. */
  phases?: Report['phases'];
  createdAt: string;
  commit?: string;
}

/** The environment of a run that ended before a backend was resolved. */
export const UNKNOWN_ENVIRONMENT: Environment = {
  backend: 'none',
  backendSource: 'the run ended before a backend was resolved',
  tfjsVersion: 'unknown',
  node: 'unknown',
  platform: 'unknown',
  cpu: 'unknown',
  cpus: 0,
  gpu: null,
  backendNotes: [],
};

/** report.json from its parts: the one place a Report is put together. Pure. */
export function baseReport(parts: ReportParts): Report {
  const { config, outcome, models, training, samples } = parts;
  const { augment } = config.distill;
  return {
    schemaVersion: SCHEMA_VERSION,
    verdict: outcome.verdict,
    status: outcome.status,
    reasons: outcome.reasons,
    backend: parts.backend ?? 'none',
    metrics: outcome.metrics,
    gates: outcome.gates,
    training: {
      epochs: training?.epochsCompleted ?? 0,
      epochsPlanned: config.distill.epochs,
      loss: training?.loss ?? [],
      seconds: training?.seconds ?? 0,
      teacherSeconds: training?.teacherSeconds ?? 0,
      ...(training ? { softTargets: training.softTargets } : {}),
      ...(training?.teacherPass ? { teacherPass: training.teacherPass } : {}),
      trainSamples: samples?.train ?? 0,
      evalSamples: samples?.eval ?? 0,
      temperature: config.distill.temperature,
      alpha: config.distill.alpha,
      seed: config.distill.seed,
      labels: samples?.labels ?? false,
      ...(samples?.classes ? { classes: [...samples.classes] } : {}),
      ...(augment ? { augment: augmentRecord(augment, config.distill.seed) } : {}),
      ...(training?.step ? { step: stepRecord(training.step) } : {}),
    },
    environment: parts.environment ?? UNKNOWN_ENVIRONMENT,
    teacher: {
      path: config.teacher,
      format: models?.teacher.format ?? 'unknown',
      output: models?.teacher.output ?? 'unknown',
      params: models?.teacher.params ?? 0,
      bytes: models?.teacher.bytes ?? 0,
      ...(models?.teacher.runtime ? { runtime: models.teacher.runtime.label } : {}),
    },
    student: {
      path: parts.studentPath ?? '',
      params: models?.student.params ?? 0,
      bytes: models?.student.bytes ?? 0,
      from: 'model' in config.student ? config.student.model : 'layers',
      ...(parts.studentRuntime ? { runtime: parts.studentRuntime } : {}),
    },
    baseline: parts.baseline ?? null,
    speedComparison: parts.speedComparison ?? null,
    // Every interval, so that a re-judge decides each gate as the run did. JSON writes an unbounded
    // end (too few rounds) as null; readers turn it back into ±Infinity.
    ...(parts.speedIntervals && Object.keys(parts.speedIntervals).length > 0
      ? { speedIntervals: parts.speedIntervals }
      : {}),
    ...(parts.agreement ? { agreement: parts.agreement } : {}),
    ...(parts.export ? { export: parts.export } : {}),
    ...(parts.teacherDiff ? { teacherDiff: parts.teacherDiff } : {}),
    ...(parts.sweep ? { sweep: parts.sweep } : {}),
    override: parts.override ?? null,
    metricsComputedOn: parts.metricsComputedOn,
    ...(parts.speedBackend ? { speedBackend: parts.speedBackend } : {}),
    ...(parts.phases && Object.keys(parts.phases).length > 0 ? { phases: { ...parts.phases } } : {}),
    config: config.file,
    createdAt: parts.createdAt,
    ...(parts.commit ? { commit: parts.commit } : {}),
  };
}

/**
 * A report derived from another (re-judged, merged): its judged outcome replaced, every other
 * field carried as the run wrote it, so that a field added to baseReport reaches these too.
 */
export function withOutcome(
  report: Report,
  outcome: Partial<Pick<Report, 'verdict' | 'reasons' | 'gates' | 'metrics' | 'override' | 'baseline' | 'sweep'>>,
): Report {
  return { ...report, ...outcome };
}

/** report.training.step, its optional fields present only when set. */
function stepRecord({ kind, backend, whyNotKernel, kernelModule, threads }: TrainingStepRecord): TrainingStepRecord {
  return {
    kind,
    backend,
    ...(whyNotKernel !== undefined ? { whyNotKernel } : {}),
    ...(kernelModule ? { kernelModule } : {}),
    ...(threads ? { threads } : {}),
  };
}

/** report.training.augment: the settings the run applied, its seed resolved (distill.seed by default). */
function augmentRecord({ flip, crop, brightness, contrast, seed }: AugmentSettings, runSeed: number): AugmentRecord {
  return { flip, ...(crop ? { cropPadding: crop.padding } : {}), brightness, contrast, seed: seed ?? runSeed };
}
