import path from 'node:path';
import type { Config } from '../config/load.js';
import type { MeasuredInterval } from '../measure/intervals.js';
import type { SpeedComparison } from '../measure/paired-speed.js';
import { baseReport } from './base.js';
import type { Environment, Report, TrainingStepRecord } from './report.js';
import type { Sweep } from './sweep.js';

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
    train: { size: number; y?: unknown; classes?: string[] };
    evalSet: { size: number; y?: unknown };
    baseline?: { path: string; report: Pick<Report, 'createdAt' | 'commit' | 'runUrl'> };
  };
  distillation: {
    training: { epochsCompleted: number; loss: number[] };
    path?: TrainingStepRecord;
    seconds: number;
    teacherSeconds: number;
    softTargets: 'computed' | 'cache';
    teacherPass?: string;
  };
  measurement: {
    metrics: Record<string, number>;
    speedComparison?: SpeedComparison;
    speedIntervals?: Record<string, MeasuredInterval>;
    baselineStudentPath?: string;
    /** `measure.runtime: onnxruntime`: the runtime the student was timed in. */
    studentRuntime?: string;
    environment: Environment;
    agreement?: Report['agreement'];
    export?: Report['export'];
    teacherDiff?: Report['teacherDiff'];
  };
  judgement: Pick<Report, 'verdict' | 'status' | 'gates' | 'reasons'> & {
    environmentDiffers: boolean;
    override?: { label: string; by: string; gates: string[] };
  };
  /** The sweep's candidates and front, when the config has `students:`. */
  sweep?: Sweep;
  /** Where the student is written: `<outDir>/student`. */
  studentDir: string;
  commit?: string;
  createdAt: string;
  /** Wall time of each phase finished before the report was built. */
  phases?: Report['phases'];
}

/** What the report says of a distillation, finished or cut short (the step aside). */
export function trainingRecord(distillation: RunRecord['distillation']) {
  return {
    epochsCompleted: distillation.training.epochsCompleted,
    loss: distillation.training.loss,
    seconds: distillation.seconds,
    teacherSeconds: distillation.teacherSeconds,
    softTargets: distillation.softTargets,
    ...(distillation.teacherPass ? { teacherPass: distillation.teacherPass } : {}),
  };
}

/** What the report says of a run's splits. */
export function samplesRecord(train: RunRecord['session']['train'], evalSet: RunRecord['session']['evalSet']) {
  return {
    train: train.size,
    eval: evalSet.size,
    labels: Boolean(train.y ?? evalSet.y),
    ...(train.classes ? { classes: train.classes } : {}),
  };
}

/** The report.json of a run, from its stages' results. Pure: no I/O, no clock, no tensors. */
export function buildReport({
  config,
  session,
  distillation,
  measurement,
  judgement,
  studentDir,
  commit,
  createdAt,
  phases,
  sweep,
}: RunRecord): Report {
  const { backend, teacher, student, train, evalSet, baseline } = session;
  return baseReport({
    config,
    outcome: {
      verdict: judgement.verdict,
      status: judgement.status,
      reasons: judgement.reasons,
      gates: judgement.gates,
      metrics: measurement.metrics,
    },
    backend: backend.name,
    environment: measurement.environment,
    models: { teacher, student },
    training: {
      ...trainingRecord(distillation),
      ...(distillation.path ? { step: distillation.path } : {}),
    },
    samples: samplesRecord(train, evalSet),
    studentPath: path.join(studentDir, 'model.json'),
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
    speedComparison: measurement.speedComparison,
    speedIntervals: measurement.speedIntervals,
    agreement: measurement.agreement,
    export: measurement.export,
    teacherDiff: measurement.teacherDiff,
    override: judgement.override,
    sweep,
    metricsComputedOn: `logits from the ${backend.name} backend, compared on the host in float64`,
    speedBackend: session.speedBackend?.name,
    studentRuntime: measurement.studentRuntime,
    phases,
    createdAt,
    commit,
  });
}
