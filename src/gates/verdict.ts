import { chanceWarning } from '../measure/agreement.js';
import { verdictOf, type GateResult } from './gates.js';
import { acceptRegressions, type RegressionAcceptance } from './baseline.js';

/** How training ended, as far as the verdict cares. */
export interface TrainingStop {
  /** Why training stopped early, if it did: a non-finite loss, or an abort (a signal or the time budget). */
  stopKind?: 'loss' | 'abort';
  /** The abort came from the run's own time budget, not from a cancellation (SIGINT, SIGTERM). */
  overBudget: boolean;
}

/**
 * "Failed outright": a run fails whatever its gates say when training ended in a non-finite loss
 * or was cancelled. A stop at the time budget is not one: the gates judge what was reached.
 */
export function failsOutright(stop: TrainingStop): boolean {
  return stop.stopKind === 'loss' || (stop.stopKind === 'abort' && !stop.overBudget);
}

/** A run's verdict: fail when it failed outright, else the gates' verdict. */
export function runVerdict(gates: GateResult[], failedOutright: boolean): 'pass' | 'fail' {
  return failedOutright ? 'fail' : verdictOf(gates);
}

/**
 * Whether a finished report failed outright. report.json keeps the verdict and the gates, not how
 * training stopped, so this is the verdict that `runVerdict` gave and its gates do not explain: a
 * fail with no failing gate. (A run that failed outright and on a gate reads as failed on its gates.)
 */
export function failedOutright(report: {
  verdict: 'pass' | 'fail';
  gates: ReadonlyArray<Pick<GateResult, 'status'>>;
}): boolean {
  return report.verdict === 'fail' && report.gates.every((g) => g.status !== 'fail');
}

/** Failing relative gates a PR's accept label turned into warnings: the label, who put it on, which gates. */
export interface Override {
  label: string;
  by: string;
  gates: string[];
}

/**
 * The accept-regression label applied to judged gates (acceptRegressions), for a run and for a
 * re-judged upload alike: the gates after it, and the override it records when it turned any gate
 * into a warning. Without an acceptance, the gates as judged.
 */
export function withAcceptance(
  gates: GateResult[],
  acceptance: RegressionAcceptance | undefined,
): { gates: GateResult[]; override?: Override } {
  if (!acceptance) return { gates };
  const accepted = acceptRegressions(gates, acceptance);
  return {
    gates: accepted.gates,
    ...(accepted.overridden.length > 0
      ? { override: { label: acceptance.label, by: acceptance.by, gates: accepted.overridden } }
      : {}),
  };
}

/**
 * Adds the chance-level warning (chanceWarning) to `reasons` unless they hold it already: whatever
 * the gates say, a top-1 agreement a constant student matches must not read as a good student. It
 * is derived from the metrics, for a run and for a re-judged upload alike, never taken from (or
 * dropped by) an upload.
 */
export function addChanceWarning(reasons: string[], metrics: Record<string, number>): void {
  const warning = chanceWarning(metrics);
  if (warning && !reasons.includes(warning)) reasons.push(warning);
}
