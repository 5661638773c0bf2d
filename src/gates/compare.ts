import type { GateSpec } from '../config/schema.js';
import { renderMarkdown } from '../report/markdown.js';
import { sameEnvironment, type Environment, type Report } from '../report/report.js';
import { decide, type SpeedComparison } from '../measure/paired-speed.js';
import { evaluateGates, parseGates, verdictOf, type GateCheck, type GateResult } from './gates.js';

export interface BaselineJudgement {
  gates: GateResult[];
  environmentDiffers: boolean;
}

/**
 * Checks metrics against absolute bounds and a baseline report. Speed measured on another machine
 * or backend is not evidence about this change: its deltas are shown but not gated.
 */
export function judge(checks: GateCheck[], metrics: Record<string, number>, environment: Environment, baseline?: Report, paired?: PairedSpeedJudgement): BaselineJudgement {
  const environmentDiffers = baseline ? !sameEnvironment(baseline.environment, environment) : false;
  const gates = evaluateGates(checks, metrics, baseline?.metrics).map((r): GateResult => {
    if (paired && isPairedSpeedCheck(r)) return judgePaired(r, paired);
    return environmentDiffers && r.metric.startsWith('speed.') && (r.op === 'maxDrop' || r.op === 'maxIncrease')
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
  const base = { ...result, value: comparison.currentMs, baseline: comparison.baselineMs, note: `timed against the baseline's student in this run: ${interval}` };
  if (verdict === 'pass') return { ...base, pass: true, status: 'pass' };
  if (verdict === 'fail') return { ...base, pass: false, status: result.level === 'warn' ? 'warn' : 'fail' };
  const passes = inconclusive === 'pass';
  return { ...base, pass: passes, status: passes ? 'inconclusive' : result.level === 'warn' ? 'warn' : 'fail', note: `inconclusive (counted as ${inconclusive}): ${interval}` };
}

/** `distill-gate compare`: re-judges a finished run against a baseline, running nothing. */
export function compareReports(current: Report, baseline: Report, baselinePath: string, gates?: Record<string, GateSpec>) {
  const checks: GateCheck[] = gates
    ? parseGates(gates, Object.keys(current.metrics))
    : current.gates.map(({ metric, op, threshold, relative, level }) => ({ metric, op, threshold, relative, level }));
  const judged = judge(checks, current.metrics, current.environment, baseline);
  // A run that failed without a failing gate (non-finite loss, cancelled) stays failed.
  const failedOutright = current.verdict === 'fail' && current.gates.every((g) => g.status !== 'fail');
  const report: Report = {
    ...current,
    gates: judged.gates,
    verdict: failedOutright ? 'fail' : verdictOf(judged.gates),
    baseline: { path: baselinePath, createdAt: baseline.createdAt, commit: baseline.commit, environmentDiffers: judged.environmentDiffers },
  };
  return { verdict: report.verdict, report, markdown: renderMarkdown(report) };
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
