import path from 'node:path';
import type { Config } from '../config/load.js';
import type { MeasuredInterval } from '../measure/intervals.js';
import type { SpeedComparison } from '../measure/paired-speed.js';
import { SCHEMA_VERSION, type Environment, type Report } from './report.js';

/**
 * What buildReport needs of a run: the stages' results (src/stages/), as plain data. Spelled out
 * here rather than imported, so that the report room depends on no stage.
 */
export interface RunRecord {
  config: Pick<Config, 'teacher' | 'student' | 'distill' | 'file'>;
  session: {
    backend: { name: string };
    speedBackend?: { name: string };
    /** `runtime`: set for a teacher outside TF.js (ONNX), its label. */
    teacher: { format: string; output: string; params: number; bytes: number; runtime?: { label: string } };
    student: { params: number; bytes: number };
    train: { size: number; y?: unknown };
    evalSet: { size: number; y?: unknown };
    baseline?: { path: string; report: Pick<Report, 'createdAt' | 'commit' | 'runUrl'> };
  };
  distillation: {
    training: { epochsCompleted: number; loss: number[] };
    path?: { kind: string; backend: string; whyNotKernel?: string };
    seconds: number;
    teacherSeconds: number;
    softTargets: 'computed' | 'cache';
  };
  measurement: {
    metrics: Record<string, number>;
    speedComparison?: SpeedComparison;
    speedIntervals?: Record<string, MeasuredInterval>;
    baselineStudentPath?: string;
    environment: Environment;
    agreement?: Report['agreement'];
    export?: Report['export'];
    teacherDiff?: Report['teacherDiff'];
  };
  judgement: Pick<Report, 'verdict' | 'status' | 'gates' | 'reasons'> & {
    environmentDiffers: boolean;
    override?: { label: string; by: string; gates: string[] };
  };
  /** Where the student is written: `<outDir>/student`. */
  studentDir: string;
  commit?: string;
  createdAt: string;
}

/** The report.json of a run, from its stages' results. Pure: no I/O, no clock, no tensors. */
export function buildReport({ config, session, distillation, measurement, judgement, studentDir, commit, createdAt }: RunRecord): Report {
  const { backend, teacher, student, train, evalSet, baseline } = session;
  const { training } = distillation;
  return {
    schemaVersion: SCHEMA_VERSION,
    verdict: judgement.verdict,
    status: judgement.status,
    reasons: judgement.reasons,
    backend: backend.name,
    metrics: measurement.metrics,
    gates: judgement.gates,
    training: {
      epochs: training.epochsCompleted,
      epochsPlanned: config.distill.epochs,
      loss: training.loss,
      seconds: distillation.seconds,
      teacherSeconds: distillation.teacherSeconds,
      softTargets: distillation.softTargets,
      trainSamples: train.size,
      evalSamples: evalSet.size,
      temperature: config.distill.temperature,
      alpha: config.distill.alpha,
      seed: config.distill.seed,
      labels: Boolean(train.y ?? evalSet.y),
      ...(distillation.path ? { step: distillation.path } : {}),
    },
    environment: measurement.environment,
    teacher: {
      path: config.teacher,
      format: teacher.format,
      output: teacher.output,
      params: teacher.params,
      bytes: teacher.bytes,
      ...(teacher.runtime ? { runtime: teacher.runtime.label } : {}),
    },
    student: {
      path: path.join(studentDir, 'model.json'),
      params: student.params,
      bytes: student.bytes,
      from: 'model' in config.student ? config.student.model : 'layers',
    },
    baseline: baseline
      ? {
          path: baseline.path,
          createdAt: baseline.report.createdAt,
          commit: baseline.report.commit,
          ...(baseline.report.runUrl ? { runUrl: baseline.report.runUrl } : {}),
          environmentDiffers: judgement.environmentDiffers,
          student: measurement.baselineStudentPath,
        }
      : null,
    speedComparison: measurement.speedComparison ?? null,
    ...keptIntervals(measurement.speedIntervals),
    ...(measurement.agreement ? { agreement: measurement.agreement } : {}),
    ...(measurement.export ? { export: measurement.export } : {}),
    ...(measurement.teacherDiff ? { teacherDiff: measurement.teacherDiff } : {}),
    override: judgement.override ?? null,
    metricsComputedOn: `logits from the ${backend.name} backend, compared on the host in float64`,
    ...(session.speedBackend ? { speedBackend: session.speedBackend.name } : {}),
    config: config.file,
    createdAt,
    ...(commit ? { commit } : {}),
  };
}

/**
 * The speed intervals a report keeps: all of them, so that a re-judge decides each gate as the run
 * did. JSON writes an unbounded end (too few rounds) as null; readers turn it back into ±Infinity.
 */
function keptIntervals(intervals: Record<string, MeasuredInterval> | undefined): Pick<Report, 'speedIntervals'> {
  return intervals && Object.keys(intervals).length > 0 ? { speedIntervals: intervals } : {};
}
