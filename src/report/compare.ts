import type { GateSpec, MeasureSettings } from '../config/schema.js';
import { parseGates, type GateCheck } from '../gates/gates.js';
import { judgeGates } from '../gates/baseline.js';
import { failedOutright, runVerdict } from '../gates/verdict.js';
import { renderMarkdown } from './markdown.js';
import type { Report } from './report.js';

/**
 * `distill-gate compare`: re-judges a finished run against a baseline, running nothing. `config`
 * (the gates and how an inconclusive speed interval counts) replaces the report's own gates.
 */
export function compareReports(
  current: Report,
  baseline: Report,
  baselinePath: string,
  config?: { gates: Record<string, GateSpec>; measure: Pick<MeasureSettings, 'inconclusive'> },
) {
  const gates = config?.gates;
  const checks: GateCheck[] = gates
    ? parseGates(gates, Object.keys(current.metrics))
    : current.gates.map(({ metric, op, threshold, relative, level }) => ({ metric, op, threshold, relative, level }));
  // Speed gates are judged on the intervals the run measured, as the run itself judged them.
  const judged = judgeGates(checks, current.metrics, current.environment, baseline, {
    ...(current.speedIntervals ? { intervals: current.speedIntervals } : {}),
    inconclusive: config?.measure.inconclusive ?? 'pass',
  });
  // A run that failed without a failing gate (non-finite loss, cancelled) stays failed.
  const report: Report = {
    ...current,
    gates: judged.gates,
    verdict: runVerdict(judged.gates, failedOutright(current)),
    baseline: {
      path: baselinePath,
      createdAt: baseline.createdAt,
      commit: baseline.commit,
      environmentDiffers: judged.environmentDiffers,
    },
  };
  return { verdict: report.verdict, report, markdown: renderMarkdown(report) };
}
