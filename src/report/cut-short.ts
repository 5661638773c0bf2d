import type { Config } from '../config/load.js';
import type { GateResult } from '../gates/gates.js';
import { SCHEMA_VERSION, type Environment, type Report } from './report.js';

/**
 * What exists of a run that was forced to end (a second cancel signal, or the time budget's end)
 * before it could measure and judge: the phase it was in and whatever the finished stages left.
 */
export interface CutShortRecord {
  config: Pick<Config, 'teacher' | 'student' | 'distill' | 'file'>;
  /** Why the run was forced to end, e.g. "the job was cancelled (SIGTERM) again, ...". */
  reason: string;
  /** The phase the run was in, in words ("measuring"). */
  phase: string;
  /** Known once the backend was resolved; else only the host is described. */
  environment?: Environment;
  /** The models' sizes, once they were loaded. */
  models?: {
    teacher: { format: string; output: string; params: number; bytes: number; runtime?: { label: string } };
    student: { params: number; bytes: number };
  };
  /** Metrics measured before the end (sizes at least, once the models loaded). */
  metrics: Record<string, number>;
  /** The gates judged on those metrics: every unmeasured one fails as "metric not measured". */
  gates: GateResult[];
  training?: { epochsCompleted: number; loss: number[]; seconds: number; teacherSeconds: number; softTargets: 'computed' | 'cache' };
  samples?: { train: number; eval: number; labels: boolean };
  createdAt: string;
  commit?: string;
}

/**
 * The report of a run cut short: always `fail` and `incomplete`, with the reason and the phase in
 * `reasons`, and no student (a half-trained student is not one to ship or compare against). Pure.
 */
export function buildCutShortReport(record: CutShortRecord): Report {
  const { config, models, training, samples } = record;
  return {
    schemaVersion: SCHEMA_VERSION,
    verdict: 'fail',
    status: 'incomplete',
    reasons: [`The run was cut short while ${record.phase}: ${record.reason}.`],
    backend: record.environment?.backend ?? 'none',
    metrics: record.metrics,
    gates: record.gates,
    training: {
      epochs: training?.epochsCompleted ?? 0,
      epochsPlanned: config.distill.epochs,
      loss: training?.loss ?? [],
      seconds: training?.seconds ?? 0,
      teacherSeconds: training?.teacherSeconds ?? 0,
      ...(training ? { softTargets: training.softTargets } : {}),
      trainSamples: samples?.train ?? 0,
      evalSamples: samples?.eval ?? 0,
      temperature: config.distill.temperature,
      alpha: config.distill.alpha,
      seed: config.distill.seed,
      labels: samples?.labels ?? false,
    },
    environment: record.environment ?? {
      backend: 'none',
      backendSource: 'the run ended before a backend was resolved',
      tfjsVersion: 'unknown',
      node: 'unknown',
      platform: 'unknown',
      cpu: 'unknown',
      cpus: 0,
      gpu: null,
      backendNotes: [],
    },
    teacher: {
      path: config.teacher,
      format: models?.teacher.format ?? 'unknown',
      output: models?.teacher.output ?? 'unknown',
      params: models?.teacher.params ?? 0,
      bytes: models?.teacher.bytes ?? 0,
      ...(models?.teacher.runtime ? { runtime: models.teacher.runtime.label } : {}),
    },
    student: {
      path: '',
      params: models?.student.params ?? 0,
      bytes: models?.student.bytes ?? 0,
      from: 'model' in config.student ? config.student.model : 'layers',
    },
    baseline: null,
    speedComparison: null,
    override: null,
    metricsComputedOn: 'nothing: the run was cut short before agreement was measured',
    config: config.file,
    createdAt: record.createdAt,
    ...(record.commit ? { commit: record.commit } : {}),
  };
}
