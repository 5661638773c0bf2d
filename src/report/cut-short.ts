import type { Config } from '../config/load.js';
import type { GateResult } from '../gates/gates.js';
import { baseReport, type ReportParts } from './base.js';
import type { Environment, Report } from './report.js';
import type { Sweep } from './sweep.js';

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
  models?: ReportParts['models'];
  /** Metrics measured before the end (sizes at least, once the models loaded). */
  metrics: Record<string, number>;
  /** The gates judged on those metrics: every unmeasured one fails as "metric not measured". */
  gates: GateResult[];
  training?: Omit<NonNullable<ReportParts['training']>, 'step'>;
  samples?: ReportParts['samples'];
  createdAt: string;
  commit?: string;
  /** The sweep as far as it got: candidates not reached are `not run`. */
  sweep?: Sweep;
  /** Wall time of each phase finished before the end. */
  phases?: Report['phases'];
}

/**
 * The report of a run cut short: always `fail` and `incomplete`, with the reason and the phase in
 * `reasons`, and no student (a half-trained student is not one to ship or compare against). Pure.
 */
export function buildCutShortReport(record: CutShortRecord): Report {
  return baseReport({
    config: record.config,
    outcome: {
      verdict: 'fail',
      status: 'incomplete',
      reasons: [`The run was cut short while ${record.phase}: ${record.reason}.`],
      gates: record.gates,
      metrics: record.metrics,
    },
    backend: record.environment?.backend,
    environment: record.environment,
    models: record.models,
    training: record.training,
    samples: record.samples,
    sweep: record.sweep,
    metricsComputedOn: 'nothing: the run was cut short before agreement was measured',
    phases: record.phases,
    createdAt: record.createdAt,
    commit: record.commit,
  });
}
