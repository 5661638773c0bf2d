import type { GateSpec } from '../config/schema.js';
import { renderMarkdown } from '../report/markdown.js';
import { sameEnvironment, type Environment, type Report } from '../report/report.js';
import { evaluateGates, parseGates, verdictOf, type GateCheck, type GateResult } from './gates.js';

export interface BaselineJudgement {
  gates: GateResult[];
  environmentDiffers: boolean;
}

/**
 * Checks metrics against absolute bounds and a baseline report. Speed measured on another machine
 * or backend is not evidence about this change: its deltas are shown but not gated.
 */
export function judge(checks: GateCheck[], metrics: Record<string, number>, environment: Environment, baseline?: Report): BaselineJudgement {
  const environmentDiffers = baseline ? !sameEnvironment(baseline.environment, environment) : false;
  const gates = evaluateGates(checks, metrics, baseline?.metrics).map((r): GateResult =>
    environmentDiffers && r.metric.startsWith('speed.') && (r.op === 'maxDrop' || r.op === 'maxIncrease')
      ? { ...r, pass: null, status: 'skipped', note: 'baseline from another environment' }
      : r,
  );
  return { gates, environmentDiffers };
}

/** `distill-gate compare`: re-judges a finished run against a baseline, running nothing. */
export function compareReports(current: Report, baseline: Report, gates?: Record<string, GateSpec>) {
  const checks: GateCheck[] = gates
    ? parseGates(gates, Object.keys(current.metrics))
    : current.gates.map(({ metric, op, threshold, relative, level }) => ({ metric, op, threshold, relative, level }));
  const judged = judge(checks, current.metrics, current.environment, baseline);
  const report: Report = {
    ...current,
    gates: judged.gates,
    verdict: current.reasons.length > 0 && current.verdict === 'fail' && current.gates.every((g) => g.status !== 'fail') ? 'fail' : verdictOf(judged.gates),
    baseline: { path: 'baseline report', createdAt: baseline.createdAt, commit: baseline.commit, environmentDiffers: judged.environmentDiffers },
  };
  return { verdict: report.verdict, report, markdown: renderMarkdown(report) };
}
