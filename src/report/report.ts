import type { GateResult } from '../gates/gates.js';
import type { ClassAgreement } from '../measure/agreement.js';
import type { OnnxStudentCheck } from '../models/onnx-student.js';
import type { TeacherDiff } from '../measure/teacher-diff.js';
import type { MeasuredInterval } from '../measure/intervals.js';
import type { SpeedComparison } from '../measure/paired-speed.js';
import { InputError } from '../errors.js';
import type { Sweep } from './sweep.js';
/** report.json's format version; readers refuse others (report-schema.ts). Change it only when old readers would misread a new report. */
export const SCHEMA_VERSION = 1;

/** report.training.step: which step trained the student, where, and with which kernel build. */
export interface TrainingStepRecord {
  kind: string;
  backend: string;
  whyNotKernel?: string;
  kernelModule?: string;
  threads?: number;
}

export interface Environment {
  backend: string;
  backendSource: string;
  tfjsVersion: string;
  node: string;
  platform: string;
  cpu: string;
  cpus: number;
  gpu: string | null;
  /** Why `auto` passed over earlier backends. */
  backendNotes: string[];
}

/** report.json: everything a reader, a later comparison or the GitHub shell needs. */
/** report.training.augment: the transforms of each epoch's training rows. */
export interface AugmentRecord {
  flip: boolean;
  /** Shift by up to this many pixels each way (a random crop of the zero-padded image); absent: no crop. */
  cropPadding?: number;
  brightness: number;
  contrast: number;
  seed: number;
}

export interface Report {
  schemaVersion: typeof SCHEMA_VERSION;
  verdict: 'pass' | 'fail';
  /** complete, or incomplete when training stopped early (budget, signal, non-finite loss). */
  status: 'complete' | 'incomplete';
  /** Why the verdict is fail without a failing gate, or why the run is incomplete. */
  reasons: string[];
  backend: string;
  metrics: Record<string, number>;
  gates: GateResult[];
  training: {
    epochs: number;
    epochsPlanned: number;
    loss: number[];
    /** Wall time of the whole distillation phase, teacher soft targets included. */
    seconds: number;
    teacherSeconds: number;
    /** Whether the teacher ran this time or its logits came from the cache. */
    softTargets?: 'computed' | 'cache';
    /**
     * What ran the teacher's pass when it ran: the TF.js backend ("wasm"), the training kernel
     * ("kernel simd128", "kernel relaxed-simd"; kernel-teacher.ts) or the teacher's own runtime.
     */
    teacherPass?: string;
    trainSamples: number;
    evalSamples: number;
    temperature: number;
    alpha: number;
    seed: number;
    labels: boolean;
    /** Image folders: the class names, in the order of the teacher's outputs (class i is classes[i]). */
    classes?: string[];
    /** `distill.augment` as the run applied it (its seed resolved): the transfer set was drawn afresh each epoch and the teacher answered those rows. */
    augment?: AugmentRecord;
    /**
     * How the student was trained: the step (kernel, dense, autodiff) and its backend; inference ran
     * on `backend`. `kernelModule`: the kernel step's build, relaxed-simd (fused multiply-adds where
     * the engine has relaxed SIMD) or simd128; the two may differ in the last bits. `threads`: the
     * kernel step's threads (distill.threads, resolved); results are reproducible per count.
     */
    step?: TrainingStepRecord;
  };
  environment: Environment;
  /** `runtime`: where a teacher outside TF.js ran (its pass and its timing), e.g. "onnxruntime-node 1.30.0 (cpu, 2 threads)"; absent for TF.js teachers. */
  teacher: { path: string; format: string; output: string; params: number; bytes: number; runtime?: string };
  /** `runtime`: where the student was timed when not in TF.js (`measure.runtime: onnxruntime`: student.onnx in onnxruntime-node); absent otherwise. */
  student: { path: string; params: number; bytes: number; from: string; runtime?: string };
  /** The run compared with: where its report lay, when and at which commit it ran, and its workflow run when the baseline store recorded it. */
  baseline: {
    path: string;
    createdAt?: string;
    commit?: string;
    runUrl?: string;
    environmentDiffers: boolean;
    student?: string;
  } | null;
  /** The new student timed against the baseline's in this run, when relative latency gates asked for it. */
  speedComparison?: SpeedComparison | null;
  /**
   * Each speed metric timed in this run (metric name -> its median over rounds, the confidence
   * interval of that median, the rounds and the confidence): what absolute speed gates were judged
   * on. Only bounded intervals are kept (JSON has no Infinity). Absent in reports from before it.
   */
  speedIntervals?: Record<string, MeasuredInterval>;
  /**
   * How many eval samples the teacher and the student answer with each class (top-1), and the
   * teacher's most frequent class: the chance level behind `agreement.majority`. Absent when
   * agreement was not measured, and in reports written before it existed.
   */
  agreement?: ClassAgreement;
  /**
   * How student/ was written: `quantize` (none, float16, uint8: the weights that ship, which
   * `size.studentBytes` counts and the `quantized.*` metrics measure) and `output` (logits, or
   * probabilities through a final softmax, as the teacher answers). Absent in older reports.
   * `format: onnx` when student/ also holds student.onnx, and `onnx` its check: run in
   * onnxruntime-node against the TF.js student on a sample of eval rows (the max abs difference is
   * the `export.onnxMaxAbsDiff` metric), or why it was skipped or failed.
   */
  export?: {
    quantize: 'none' | 'float16' | 'uint8';
    output: 'logits' | 'probabilities';
    format?: 'onnx';
    onnx?: OnnxStudentCheck;
  };
  /**
   * The base branch's teacher against this one (`status` compared, unchanged or unavailable, where
   * it came from, why not, and the classes whose share of its answers moved most); the figures are
   * the `teacherDiff.*` metrics. Absent when no base teacher was asked for.
   */
  teacherDiff?: TeacherDiff;
  /**
   * The sweep (config `students:`): each candidate student trained from the same soft targets, its
   * size, speed and agreement, and the names on the Pareto front of size against agreement. The
   * configured student is among the candidates (`configured: true`). Information only: the gates
   * judge the configured student alone. Absent when the config has no `students:`.
   */
  sweep?: Sweep;
  /** Where the agreement metrics were computed: logits from the run's backend, compared on the host in float64. */
  metricsComputedOn: string;
  /** The backend speed was timed on when `measure.backend` named one other than the run's. */
  speedBackend?: string;
  /** Wall time of each phase the run finished before its report was built, in seconds. Absent in older reports. */
  phases?: Partial<Record<'load' | 'teacher pass' | 'distillation' | 'measuring' | 'report', number>>;
  /** Failing relative gates turned into warnings by a PR label (an intended regression). */
  override?: { label: string; by: string; gates: string[] } | null;
  config: string;
  createdAt: string;
  commit?: string;
  /** The workflow run that recorded this report in the baseline store; set by the store, so that a later report can link the run it compared with. */
  runUrl?: string;
}

/** What a run (or a re-read or merged report) gives the shells to publish: the report, its markdown and where they lie. */
export interface RunResult {
  report: Report;
  markdown: string;
  reportPath: string;
  studentPath: string;
  /** Set when the report could not be written to disk; the report itself is intact in memory. */
  writeError?: InputError;
  /**
   * The run was forced to end (a second cancel signal, the budget's end) and this report holds
   * what existed then; stages may still be running, so the shell publishes and exits at once.
   */
  cutShort?: boolean;
}
