import { decide, type SpeedComparison } from '../measure/paired-speed.js';
import { isMachineDependent } from '../measure/metrics.js';
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
 * Checks metrics against absolute bounds and a baseline report. Speed measured on another machine
 * or backend is not evidence about this change: its deltas are shown but not gated.
 */
export function judge(
  checks: GateCheck[],
  metrics: Record<string, number>,
  environment: SpeedEnvironment,
  baseline?: BaselineRun,
  paired?: PairedSpeedJudgement,
): BaselineJudgement {
  const environmentDiffers = baseline ? !sameEnvironment(baseline.environment, environment) : false;
  const gates = evaluateGates(checks, metrics, baseline?.metrics).map((r): GateResult => {
    if (paired && isPairedSpeedCheck(r)) return judgePaired(r, paired);
    return environmentDiffers && isMachineDependent(r.metric) && (r.op === 'maxDrop' || r.op === 'maxIncrease')
      ? { ...r, pass: null, status: 'skipped', note: 'baseline from another environment' }
      : r;
  });
  return { gates, environmentDiffers };
}

export interface PairedSpeedJudgement {
  comparison: SpeedComparison;
  inconclusive: 'pass' | 'fail';
}

/** Relative latency gates are the ones a paired, same-run timing of both students can decide. */
export function isPairedSpeedCheck(check: GateCheck): boolean {
  return check.metric === 'speed.studentMs' && check.op === 'maxIncrease';
}

/** The ratio the check allows: 1.1 for "10%", (baseline + t) / baseline for an absolute t ms. */
export function allowedRatio(check: GateCheck, baselineMs: number): number {
  return check.relative ? 1 + check.threshold : (baselineMs + check.threshold) / baselineMs;
}

function judgePaired(result: GateResult, { comparison, inconclusive }: PairedSpeedJudgement): GateResult {
  const allowed = allowedRatio(result, comparison.baselineMs);
  const verdict = decide(comparison, allowed);
  const interval = `ratio ${comparison.ratio.toFixed(3)}, ${Math.round(comparison.confidence * 100)}% CI [${comparison.low.toFixed(3)}, ${comparison.high.toFixed(3)}] over ${comparison.rounds} paired rounds; allowed ${allowed.toFixed(3)}`;
  const base = {
    ...result,
    value: comparison.currentMs,
    baseline: comparison.baselineMs,
    note: `timed against the baseline's student in this run: ${interval}`,
  };
  if (verdict === 'pass') return { ...base, pass: true, status: 'pass' };
  if (verdict === 'fail') return { ...base, pass: false, status: result.level === 'warn' ? 'warn' : 'fail' };
  const passes = inconclusive === 'pass';
  return {
    ...base,
    pass: passes,
    status: passes ? 'inconclusive' : result.level === 'warn' ? 'warn' : 'fail',
    note: `inconclusive (counted as ${inconclusive}): ${interval}`,
  };
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
export function acceptRegressions(gates: GateResult[], acceptance: RegressionAcceptance): { gates: GateResult[]; overridden: string[] } {
  const overridden: string[] = [];
  const result = gates.map((g): GateResult => {
    if (g.status !== 'fail' || (g.op !== 'maxDrop' && g.op !== 'maxIncrease')) return g;
    overridden.push(`${g.metric} ${g.expected}`);
    return { ...g, status: 'warn', note: `accepted as an intended regression (label "${acceptance.label}" by ${acceptance.by})${g.note ? `; ${g.note}` : ''}` };
  });
  return { gates: result, overridden };
}
