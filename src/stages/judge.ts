import type { Config } from '../config/load.js';
import { DEFAULT_QUANTIZED_AGREEMENT_DROP } from '../config/schema.js';
import type { GateResult } from '../gates/gates.js';
import { defaultGateBasis, withDefaultGates } from '../gates/defaults.js';
import { judgeGates, type RegressionAcceptance } from '../gates/baseline.js';
import { addChanceWarning, failsOutright, runVerdict, withAcceptance, type Override } from '../gates/verdict.js';
import { formatPercent } from '../format.js';
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
  override?: Override;
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
  const checks = withDefaultGates(session.checks, config, metrics);
  const judged = judgeGates(checks, metrics, environment, session.baseline?.report, {
    intervals: speedIntervals,
    comparison: speedComparison,
    inconclusive: config.measure.inconclusive,
  });
  const defaulted = judged.gates.map((g, i) =>
    i < session.checks.length ? g : { ...g, note: defaultGateNote(g, config, metrics) },
  );
  const { gates, override } = withAcceptance(defaulted, acceptance);
  const reasons: string[] = [...training.notes];
  if (training.stoppedBecause)
    reasons.push(
      `Training stopped after ${training.epochsCompleted} of ${config.distill.epochs} epochs: ${training.stoppedBecause}${culpritFile(training, config)}.`,
    );
  if (cancelledWhileMeasuring)
    reasons.push(
      `The run was cancelled while measuring (${cancelledWhileMeasuring}): its metrics are what the few seconds left gave.`,
    );
  if (judged.environmentDiffers)
    reasons.push(
      'The baseline ran on a different backend, TF.js version, CPU or GPU: speed deltas against it are shown but not gated.',
    );
  addChanceWarning(reasons, metrics);
  // Outputs that are not finite (the teacher's, the student's, the shipped student's), and weights clipped at export.
  reasons.push(...(measurement.warnings ?? []));
  const broken = shippedStudentWarning(config, metrics);
  if (broken) reasons.push(broken);
  // A config without gates measures and reports, and passes whatever it measured: say so, once.
  if (session.checks.length === 0) reasons.push(NO_GATES);
  return {
    // A budget stop is judged by the gates on what was reached; a non-finite loss or a
    // cancellation fails the run whatever the gates say.
    verdict: runVerdict(
      gates,
      failsOutright({ stopKind: training.stopKind, overBudget }) || cancelledWhileMeasuring !== undefined,
    ),
    status: training.stoppedBecause || cancelledWhileMeasuring ? 'incomplete' : 'complete',
    gates,
    reasons,
    environmentDiffers: judged.environmentDiffers,
    ...(override ? { override } : {}),
  };
}

/** The warning of a run whose config sets no gates. */
export const NO_GATES =
  "No gates: the config sets none, so this run passes whatever it measures (only distill-gate's default gates apply); add gates, e.g. agreement.top1 and agreement.kappa.";

/** The file a non-finite loss comes from, when training found one: the teacher's, or the student's model.json. */
function culpritFile(training: Distillation['training'], config: Config): string {
  if (training.nonFiniteInput === 'teacher outputs') return ` (the teacher: ${config.teacher})`;
  if (training.nonFiniteInput === 'student weights')
    return ` (the student: ${'model' in config.student ? config.student.model : 'student.layers, as initialised'})`;
  return '';
}

function defaultGateNote(gate: GateResult, config: Config, metrics: Record<string, number>): string {
  const basis =
    gate.metric === 'agreement.kappa' || gate.metric === 'export.onnxMaxAbsDiff'
      ? defaultGateBasis(gate.metric, config, metrics)
      : `default gate (export.quantize ${config.export.quantize}): at most ${DEFAULT_QUANTIZED_AGREEMENT_DROP * 100} points below the float32 student's ${formatPercent(metrics['agreement.top1'])}; gate a quantized.* metric to set your own`;
  return gate.note ? `${basis}; ${gate.note}` : basis;
}

/**
 * The warning a run carries when the student as it ships agrees with the teacher far less than
 * the float32 student it was quantized from (more than DEFAULT_QUANTIZED_AGREEMENT_DROP below),
 * whatever its gates: the folded Shipped student section alone would hide it.
 */
function shippedStudentWarning(config: Config, metrics: Record<string, number>): string | undefined {
  const float = metrics['agreement.top1'];
  const shipped = metrics['quantized.agreement.top1'];
  if (config.export.quantize === 'none' || !Number.isFinite(float) || !Number.isFinite(shipped)) return undefined;
  if (float - shipped <= DEFAULT_QUANTIZED_AGREEMENT_DROP + 1e-12) return undefined;
  return (
    `The shipped student (export.quantize ${config.export.quantize}) agrees with the teacher on ${formatPercent(shipped)} of eval rows, ` +
    `${((float - shipped) * 100).toFixed(2)} points below the float32 student's ${formatPercent(float)}: quantization broke it. ` +
    (config.export.quantize === 'uint8'
      ? 'Try export.quantize: float16, or ship float32 (none).'
      : 'Ship float32 (export.quantize: none).')
  );
}
