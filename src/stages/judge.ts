import type { Config } from '../config/load.js';
import type { GateResult } from '../gates/gates.js';
import { acceptRegressions, judge, type RegressionAcceptance } from '../gates/judge.js';
import { failsOutright, runVerdict } from '../gates/verdict.js';
import { chanceWarning } from '../measure/agreement.js';
import type { Distillation } from './distill.js';
import type { Measurement } from './measure.js';
import type { Session } from './prepare.js';

/** The verdict and everything that explains it. */
export interface Judgement {
  verdict: 'pass' | 'fail';
  status: 'complete' | 'incomplete';
  gates: GateResult[];
  /** Why the verdict is fail without a failing gate, or why the run is incomplete; notes for the reader. */
  reasons: string[];
  environmentDiffers: boolean;
  /** Failing relative gates turned into warnings by the accept-regression label. */
  override?: { label: string; by: string; gates: string[] };
}

/** What judging needs beyond the stages' results. */
export interface JudgeOptions {
  /** Set when the PR carries the accept-regression label. */
  acceptance?: RegressionAcceptance;
  /**
   * A cancel (SIGINT, SIGTERM) that arrived after training ended, while measuring: the metrics are
   * what a few seconds gave, so the run fails, incomplete, whatever its gates say.
   */
  cancelledWhileMeasuring?: string;
}

/** Stage 4: gates against the metrics and the baseline, the accept-regression label, and how the run ended. Pure. */
export function judgeRun(
  session: Pick<Session, 'checks' | 'baseline'>,
  config: Config,
  distillation: Distillation,
  measurement: Measurement,
  { acceptance, cancelledWhileMeasuring }: JudgeOptions = {},
): Judgement {
  const { training, overBudget } = distillation;
  const { metrics, speedIntervals, speedComparison, environment } = measurement;
  const judged = judge(session.checks, metrics, environment, session.baseline?.report, {
    intervals: speedIntervals,
    comparison: speedComparison,
    inconclusive: config.measure.inconclusive,
  });
  const accepted = acceptance ? acceptRegressions(judged.gates, acceptance) : undefined;
  const gates = accepted?.gates ?? judged.gates;
  const reasons: string[] = [...training.notes];
  if (training.stoppedBecause)
    reasons.push(`Training stopped after ${training.epochsCompleted} of ${config.distill.epochs} epochs: ${training.stoppedBecause}.`);
  if (cancelledWhileMeasuring)
    reasons.push(`The run was cancelled while measuring (${cancelledWhileMeasuring}): its metrics are what the few seconds left gave.`);
  if (judged.environmentDiffers)
    reasons.push('The baseline ran on a different backend, TF.js version, CPU or GPU: speed deltas against it are shown but not gated.');
  // Whatever the gates say: a top-1 agreement a constant student matches must not read as a good student.
  const nearChance = chanceWarning(metrics);
  if (nearChance) reasons.push(nearChance);
  return {
    // A budget stop is judged by the gates on what was reached; a non-finite loss or a
    // cancellation fails the run whatever the gates say.
    verdict: runVerdict(gates, failsOutright({ stopKind: training.stopKind, overBudget }) || cancelledWhileMeasuring !== undefined),
    status: training.stoppedBecause || cancelledWhileMeasuring ? 'incomplete' : 'complete',
    gates,
    reasons,
    environmentDiffers: judged.environmentDiffers,
    ...(accepted && acceptance && accepted.overridden.length > 0
      ? { override: { label: acceptance.label, by: acceptance.by, gates: accepted.overridden } }
      : {}),
  };
}
