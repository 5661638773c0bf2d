/**
 * The sweep (config `students:`): candidate students trained from the run's one teacher pass and
 * measured as the configured student is, and their Pareto front of size against agreement. Pure:
 * the pipeline and merge build the candidates, `buildSweep` puts the report's `sweep` together.
 */

import { evaluateGates, type GateCheck, type GateResult } from '../gates/gates.js';
import { metricSpec } from '../measure/metrics.js';

/** The stages a candidate is measured in, and so the gates it is judged on: the others (quantized, ONNX, paired speed, teacher diff) concern the shipped student alone. */
export const SWEPT_STAGES: ReadonlySet<string> = new Set(['size', 'speed', 'agreement']);

/** A run's metrics of the stages a candidate is measured in. */
export function sweptMetrics(metrics: Record<string, number>): Record<string, number> {
  return Object.fromEntries(
    Object.entries(metrics).filter(([name]) => SWEPT_STAGES.has(metricSpec(name)?.stage ?? '')),
  );
}

/** Whether a candidate passes every gate of `checks` on the stages it is measured in (relative ones against `baseline`), and the gates it fails. */
export function judgeCandidate(
  checks: readonly GateCheck[],
  metrics: Record<string, number>,
  baseline?: Record<string, number>,
): Pick<SweepCandidate, 'passesGates' | 'failingGates'> {
  const swept = checks.filter((check) => SWEPT_STAGES.has(metricSpec(check.metric)?.stage ?? ''));
  return verdictOf(evaluateGates([...swept], metrics, baseline));
}

/** `passesGates` and `failingGates` from judged gates: a gate at level error that failed fails the candidate. */
export function verdictOf(gates: readonly GateResult[]): Pick<SweepCandidate, 'passesGates' | 'failingGates'> {
  const failing = gates.filter((g) => g.status === 'fail').map((g) => `${g.metric} (${g.expected})`);
  return { passesGates: failing.length === 0, ...(failing.length > 0 ? { failingGates: failing } : {}) };
}

/**
 * An uploaded report's sweep, believing none of its conclusions: each candidate re-judged with the
 * checks the report is re-judged with, the configured one by the re-judged gates, the front
 * recomputed from the metrics. Candidates not measured stay as they are.
 */
export function rejudgeSweep(
  sweep: Sweep,
  checks: readonly GateCheck[],
  gates: readonly GateResult[],
  baseline?: Record<string, number>,
): Sweep {
  return buildSweep(
    sweep.candidates.map(({ onFront: _, failingGates: __, ...c }) =>
      c.status !== 'measured'
        ? { ...c, passesGates: null }
        : { ...c, ...(c.configured ? verdictOf(gates) : judgeCandidate(checks, c.metrics, baseline)) },
    ),
    sweep.timedOn,
  );
}

/** The metrics the front is drawn on: bytes (smaller is better) against top-1 agreement (higher is better). */
export const FRONT_SIZE = 'size.studentBytes';
export const FRONT_AGREEMENT = 'agreement.top1';

export interface SweepCandidate {
  /** As the config named it (user text: escaped wherever it is shown). */
  name: string;
  /** `layers`, or the model.json the candidate was loaded from. */
  from: string;
  /** The configured student (`student:`), the one the gates judge and that ships. */
  configured?: boolean;
  /** `not run`: the run's time ran out (or the run was cancelled) before it, or during its training; `failed`: it could not be trained or measured. */
  status: 'measured' | 'not run' | 'failed';
  /** Why it was not run or failed. */
  reason?: string;
  /** Its size, speed and agreement metrics, named as the catalogue names them; empty when not measured. */
  metrics: Record<string, number>;
  /** Whether no other measured candidate is at least as small and agrees at least as well, and strictly better in one. */
  onFront: boolean;
  /** Whether it passes every gate of the config (judged on its metrics, information only); null when not measured. */
  passesGates: boolean | null;
  /** The gates it fails, as `metric (expected)`. */
  failingGates?: string[];
  /** Epochs trained and the wall time of its training and measuring, in seconds. */
  epochs?: number;
  seconds?: number;
}

/** report.json's `sweep`: every candidate (the configured student among them) and the names on the front, smallest first. */
export interface Sweep {
  candidates: SweepCandidate[];
  front: string[];
  /** The backend the candidates were timed on. */
  timedOn?: string;
}

/** A point for the front: a name, its size and its agreement. */
export interface FrontPoint {
  name: string;
  size: number;
  agreement: number;
}

/**
 * The Pareto front of size (lower is better) against agreement (higher is better): the points no
 * other point dominates (at most as large and at least as agreeing, strictly better in one).
 * Equal points dominate neither: both stay. Points without a finite size and agreement are never
 * on it. Returned smallest first (then the better agreement, then by name).
 */
export function paretoFront(points: readonly FrontPoint[]): FrontPoint[] {
  const valid = points.filter((p) => Number.isFinite(p.size) && Number.isFinite(p.agreement));
  const dominates = (a: FrontPoint, b: FrontPoint) =>
    a.size <= b.size && a.agreement >= b.agreement && (a.size < b.size || a.agreement > b.agreement);
  return valid.filter((p) => !valid.some((q) => dominates(q, p))).sort(bySize);
}

const bySize = (a: FrontPoint, b: FrontPoint) =>
  a.size - b.size || b.agreement - a.agreement || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

const pointOf = (c: Pick<SweepCandidate, 'name' | 'metrics' | 'status'>): FrontPoint => ({
  name: c.name,
  size: c.status === 'measured' ? (c.metrics[FRONT_SIZE] ?? NaN) : NaN,
  agreement: c.status === 'measured' ? (c.metrics[FRONT_AGREEMENT] ?? NaN) : NaN,
});

/** The report's `sweep` from its candidates: the front computed here, once, and each candidate marked. */
export function buildSweep(candidates: ReadonlyArray<Omit<SweepCandidate, 'onFront'>>, timedOn?: string): Sweep {
  const front = paretoFront(candidates.map(pointOf)).map((p) => p.name);
  return {
    candidates: candidates.map((c) => ({ ...c, onFront: front.includes(c.name) })),
    front,
    ...(timedOn ? { timedOn } : {}),
  };
}

/** The smallest measured candidate that passes every gate (ties: the better agreement, then the name), if any. */
export function smallestPassing(sweep: Sweep): SweepCandidate | undefined {
  const passing = sweep.candidates.filter((c) => c.status === 'measured' && c.passesGates === true);
  const sorted = passing
    .map((c) => ({ c, p: pointOf(c) }))
    .sort((a, b) => (Number.isFinite(a.p.size) ? 0 : 1) - (Number.isFinite(b.p.size) ? 0 : 1) || bySize(a.p, b.p));
  return sorted[0]?.c;
}
