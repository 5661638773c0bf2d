import type { GateSpec } from '../config/schema.js';
import { parseGates, type GateCheck } from '../gates/gates.js';
import { judge } from '../gates/judge.js';
import { failedOutright, runVerdict } from '../gates/verdict.js';
import { renderMarkdown } from './markdown.js';
import type { Report } from './report.js';

/** `distill-gate compare`: re-judges a finished run against a baseline, running nothing. */
export function compareReports(current: Report, baseline: Report, baselinePath: string, gates?: Record<string, GateSpec>) {
  const checks: GateCheck[] = gates
    ? parseGates(gates, Object.keys(current.metrics))
    : current.gates.map(({ metric, op, threshold, relative, level }) => ({ metric, op, threshold, relative, level }));
  const judged = judge(checks, current.metrics, current.environment, baseline);
  // A run that failed without a failing gate (non-finite loss, cancelled) stays failed.
  const report: Report = {
    ...current,
    gates: judged.gates,
    verdict: runVerdict(judged.gates, failedOutright(current)),
    baseline: { path: baselinePath, createdAt: baseline.createdAt, commit: baseline.commit, environmentDiffers: judged.environmentDiffers },
  };
  return { verdict: report.verdict, report, markdown: renderMarkdown(report) };
}
