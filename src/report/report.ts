import { readFile } from 'node:fs/promises';
import type { GateResult } from '../gates/gates.js';
import type { ClassAgreement } from '../measure/agreement.js';
import type { SpeedComparison } from '../measure/paired-speed.js';
import { InputError } from '../errors.js';

export const SCHEMA_VERSION = 1;

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
    trainSamples: number;
    evalSamples: number;
    temperature: number;
    alpha: number;
    seed: number;
    labels: boolean;
    /** How the student was trained: the step (kernel, dense, autodiff) and its backend; inference ran on `backend`. */
    step?: { kind: string; backend: string; whyNotKernel?: string };
  };
  environment: Environment;
  teacher: { path: string; format: string; output: string; params: number; bytes: number };
  student: { path: string; params: number; bytes: number; from: string };
  baseline: { path: string; createdAt?: string; commit?: string; environmentDiffers: boolean; student?: string } | null;
  /** The new student timed against the baseline's in this run, when relative latency gates asked for it. */
  speedComparison?: SpeedComparison | null;
  /** Where the agreement metrics were computed: logits from the run's backend, compared on the host in float64. */
  metricsComputedOn: string;
  /**
   * How many eval samples the teacher and the student answer with each class (top-1), and the
   * teacher's most frequent class: the chance level behind `agreement.majority`. Absent when
   * agreement was not measured, and in reports written before it existed.
   */
  agreement?: ClassAgreement;
  /** The backend speed was timed on when `measure.backend` named one other than the run's. */
  speedBackend?: string;
  /** Failing relative gates turned into warnings by a PR label (an intended regression). */
  override?: { label: string; by: string; gates: string[] } | null;
  config: string;
  createdAt: string;
  commit?: string;
}

export async function readReport(file: string): Promise<Report> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    const reason = error instanceof SyntaxError ? `is not valid JSON (${error.message})` : `cannot be read (${(error as NodeJS.ErrnoException).code ?? error})`;
    throw new InputError(file, `${reason}; expected a report.json written by distill-gate.`);
  }
  const report = parsed as Partial<Report>;
  if (typeof report !== 'object' || report === null || report.schemaVersion === undefined) {
    throw new InputError(file, 'has no schemaVersion; expected a report.json written by distill-gate.');
  }
  if (report.schemaVersion !== SCHEMA_VERSION) {
    throw new InputError(
      file,
      `has schemaVersion ${JSON.stringify(report.schemaVersion)}; this distill-gate reads version ${SCHEMA_VERSION}. Regenerate it with this version.`,
    );
  }
  if (typeof report.metrics !== 'object' || report.metrics === null) throw new InputError(file, 'has no "metrics" object.');
  return report as Report;
}

/** What a run (or a re-read or merged report) gives the shells to publish: the report, its markdown and where they lie. */
export interface RunResult {
  report: Report;
  markdown: string;
  reportPath: string;
  studentPath: string;
  /** Set when the report could not be written to disk; the report itself is intact in memory. */
  writeError?: InputError;
}
