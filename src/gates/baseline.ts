import { decide, formatConfidence, type Bound, type MeasuredInterval } from '../measure/intervals.js';
import { isMachineDependent, metricSpec } from '../measure/metrics.js';
import { formatMetric } from '../measure/metric-format.js';
import type { SpeedComparison } from '../measure/paired-speed.js';
import type { MetricBound } from '../measure/timing.js';
import { evaluateGates, type GateCheck, type GateResult } from './gates.js';

/** What makes timings comparable: the backend, TF.js and the hardware they ran on. */
export interface SpeedEnvironment {
  backend: string;
  tfjsVersion: string;
  cpu: string;
  gpu: string | null;
}

/** The part of an earlier run (a baseline report) that the gates judge against. */
export interface BaselineRun {
  metrics: Record<string, number>;
  environment: SpeedEnvironment;
}

export interface BaselineJudgement {
  gates: GateResult[];
  environmentDiffers: boolean;
}

/** Two runs are comparable for speed only on the same backend, TF.js, CPU and GPU. */
export function sameEnvironment(a: SpeedEnvironment, b: SpeedEnvironment): boolean {
  return a.backend === b.backend && a.tfjsVersion === b.tfjsVersion && a.cpu === b.cpu && a.gpu === b.gpu;
}

/**
 * Checks metrics against absolute bounds and a baseline report. Speed timed in this run is judged
 * on its interval (`timed`): absolute speed bounds on the intervals of the teacher/student timing,
 * the relative latency gate on the paired timing against the baseline's student. Speed measured on
 * another machine or backend is not evidence about this change: its deltas are shown but not gated.
 */
export function judgeGates(
  checks: GateCheck[],
  metrics: Record<string, number>,
  environment: SpeedEnvironment,
  baseline?: BaselineRun,
  timed?: TimedSpeed,
): BaselineJudgement {
  const environmentDiffers = baseline ? !sameEnvironment(baseline.environment, environment) : false;
  const gates = evaluateGates(checks, metrics, baseline?.metrics).map((r): GateResult => {
    if (timed?.comparison && isPairedSpeedCheck(r)) return judgePaired(r, timed.comparison, timed.inconclusive);
    const bound = intervalBound(r);
    const interval = bound && timed?.intervals?.[r.metric];
    if (bound && interval) return judgeTimed(r, interval, bound, timed.inconclusive);
    // A metric this run did not measure stays a failure: the baseline's environment does not excuse it.
    return environmentDiffers &&
      isMachineDependent(r.metric) &&
      (r.op === 'maxDrop' || r.op === 'maxIncrease') &&
      Number.isFinite(r.value ?? NaN)
      ? { ...r, pass: null, status: 'skipped', note: 'baseline from another environment' }
      : r;
  });
  return { gates, environmentDiffers };
}

/** Speed as this run timed it, for the gates to judge on intervals rather than on medians alone. */
export interface TimedSpeed {
  /**
   * Speed metrics timed in this run, each the median over rounds with its confidence interval.
   * Without one (a report from before intervals), an absolute speed gate is judged on the median.
   */
  intervals?: Readonly<Record<string, MeasuredInterval>>;
  /** The new student timed against the baseline's, which decides the relative latency gate. */
  comparison?: SpeedComparison;
  /** How an interval that straddles its bound counts (measure.inconclusive). */
  inconclusive: 'pass' | 'fail';
}

/**
 * The bound of an absolute gate on a timed metric (speed-up, latency, throughput), which is judged
 * on the metric's interval and for which the speed stage times more rounds; undefined for any other gate.
 */
export function intervalBound(check: GateCheck): MetricBound | undefined {
  if (check.op === 'maxDrop' || check.op === 'maxIncrease' || !isMachineDependent(check.metric)) return undefined;
  return { metric: check.metric, op: check.op, threshold: check.threshold };
}

/** Relative latency gates are the ones a paired, same-run timing of both students can decide. */
export function isPairedSpeedCheck(check: GateCheck): boolean {
  return check.metric === 'speed.studentMs' && check.op === 'maxIncrease';
}

/** The ratio the check allows: 1.1 for "10%", (baseline + t) / baseline for an absolute t ms. */
export function allowedRatio(check: GateCheck, baselineMs: number): number {
  return check.relative ? 1 + check.threshold : (baselineMs + check.threshold) / baselineMs;
}

function judgePaired(
  result: GateResult,
  comparison: SpeedComparison,
  inconclusive: TimedSpeed['inconclusive'],
): GateResult {
  const allowed = allowedRatio(result, comparison.baselineMs);
  const interval = `ratio ${comparison.ratio.toFixed(3)}, ${formatConfidence(comparison.confidence)} CI [${comparison.low.toFixed(3)}, ${comparison.high.toFixed(3)}] over ${comparison.rounds} paired rounds; allowed ${allowed.toFixed(3)}`;
  return judgeOnInterval(
    { ...result, value: comparison.currentMs, baseline: comparison.baselineMs },
    comparison,
    { op: '<=', threshold: allowed },
    inconclusive,
    interval,
    "timed against the baseline's student in this run",
  );
}

function judgeTimed(
  result: GateResult,
  interval: MeasuredInterval,
  bound: Bound,
  inconclusive: TimedSpeed['inconclusive'],
): GateResult {
  const show = (value: number) =>
    metricSpec(result.metric)?.unit === 'ratio' ? value.toFixed(3) : formatMetric(result.metric, value);
  const spread = Number.isFinite(interval.low)
    ? `, ${formatConfidence(interval.confidence)} CI [${show(interval.low)}, ${show(interval.high)}] over ${interval.rounds} rounds`
    : ` over ${interval.rounds} rounds, too few for a ${formatConfidence(interval.confidence)} interval`;
  return judgeOnInterval(
    { ...result, value: interval.value },
    interval,
    bound,
    inconclusive,
    `median ${show(interval.value)}${spread}; needs ${result.expected}`,
  );
}

/**
 * The one rule for a gate on a timed metric: pass only when the whole interval satisfies the
 * bound, fail only when the whole interval violates it, and otherwise inconclusive, counted as
 * `inconclusive` says (status inconclusive when it counts as a pass). The note shows the interval.
 */
function judgeOnInterval(
  result: GateResult,
  interval: Pick<MeasuredInterval, 'low' | 'high'>,
  bound: Bound,
  inconclusive: TimedSpeed['inconclusive'],
  description: string,
  context?: string,
): GateResult {
  const failed = result.level === 'warn' ? 'warn' : 'fail';
  switch (decide(interval, bound)) {
    case 'pass':
      return { ...result, pass: true, status: 'pass', note: context ? `${context}: ${description}` : description };
    case 'fail':
      return { ...result, pass: false, status: failed, note: context ? `${context}: ${description}` : description };
    case 'inconclusive': {
      const passes = inconclusive === 'pass';
      return {
        ...result,
        pass: passes,
        status: passes ? 'inconclusive' : failed,
        note: `inconclusive (counted as ${inconclusive}): ${description}`,
      };
    }
  }
}

export interface RegressionAcceptance {
  label: string;
  /** Who put the label on the PR, as GitHub reports it. */
  by: string;
}

/**
 * A PR labelled as an intended regression: its failing relative gates become warnings, and the
 * report and history say who accepted which. Absolute bounds still fail: a label can accept a
 * step back, not a student below the floor.
 */
export function acceptRegressions(
  gates: GateResult[],
  acceptance: RegressionAcceptance,
): { gates: GateResult[]; overridden: string[] } {
  const overridden: string[] = [];
  const result = gates.map((g): GateResult => {
    if (g.status !== 'fail' || (g.op !== 'maxDrop' && g.op !== 'maxIncrease')) return g;
    overridden.push(`${g.metric} ${g.expected}`);
    return {
      ...g,
      status: 'warn',
      note: `accepted as an intended regression (label "${acceptance.label}" by ${acceptance.by})${g.note ? `; ${g.note}` : ''}`,
    };
  });
  return { gates: result, overridden };
}
