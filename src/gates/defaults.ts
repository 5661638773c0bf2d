import type { Config } from '../config/load.js';
import { DEFAULT_QUANTIZED_AGREEMENT_DROP } from '../config/schema.js';
import type { GateCheck } from './gates.js';
import { DEFAULT_ONNX_MAX_ABS_DIFF } from '../models/onnx-student.js';

/**
 * The floor of the default chance-level gate, `agreement.kappa >= 0.2`: Cohen's kappa corrects
 * top-1 agreement for what a student answering at chance would score. A student that always
 * answers the majority class has kappa 0 however high its agreement (96.8% on a 97/3 split), and
 * 0.2 is the top of "slight" agreement on Landis and Koch's scale: below it the student has
 * learned next to nothing beyond the classes' shares.
 */
export const DEFAULT_KAPPA_FLOOR = 0.2;

/**
 * The run's gates with the defaults the config leaves to distill-gate: a quantized export
 * (`export.quantize` other than none) whose config gates no `quantized.*` metric gets
 * `quantized.agreement.top1 >= agreement.top1 - DEFAULT_QUANTIZED_AGREEMENT_DROP`, an error-level
 * gate, so that a student that quantization broke (NaN outputs, or agreement far below the float32
 * student's) fails the run. Not added when the float32 student's agreement was not measured (a
 * teacher's pass cut short): there is then nothing to be relative to. Pure, and the same for a
 * re-judged upload given the trusted config.
 */
export function withDefaultGates(
  checks: readonly GateCheck[],
  config: { export: Pick<Config['export'], 'quantize'> & Partial<Pick<Config['export'], 'format'>> },
  metrics: Record<string, number>,
): GateCheck[] {
  const float = metrics['agreement.top1'];
  const gates = [...checks];
  if (chanceGateApplies(checks, metrics))
    gates.push({
      metric: 'agreement.kappa',
      op: '>=',
      threshold: DEFAULT_KAPPA_FLOOR,
      relative: false,
      level: 'error',
    });
  // An ONNX student that was checked (or whose check failed: the metric is then NaN and the gate
  // fails as not measured); one left unchecked for want of onnxruntime-node has no metric and no gate.
  if (
    config.export.format === 'onnx' &&
    'export.onnxMaxAbsDiff' in metrics &&
    !checks.some((c) => c.metric === 'export.onnxMaxAbsDiff')
  )
    gates.push({
      metric: 'export.onnxMaxAbsDiff',
      op: '<=',
      threshold: DEFAULT_ONNX_MAX_ABS_DIFF,
      relative: false,
      level: 'error',
    });
  if (
    config.export.quantize === 'none' ||
    checks.some((c) => c.metric.startsWith('quantized.')) ||
    !Number.isFinite(float)
  )
    return gates;
  // Rounded down to 6 decimals, so that the threshold reads plainly and a shipped student exactly
  // 5 points below is not failed by the float rounding of the subtraction.
  const threshold = Math.max(0, Math.floor((float - DEFAULT_QUANTIZED_AGREEMENT_DROP) * 1e6 + 1e-6) / 1e6);
  gates.push({ metric: 'quantized.agreement.top1', op: '>=', threshold, relative: false, level: 'error' });
  return gates;
}

/**
 * The default chance-level gate, `agreement.kappa >= DEFAULT_KAPPA_FLOOR` (error level), is added
 * when the config gates no `agreement.kappa` itself (any gate on it replaces the default: a config
 * sets it off with `agreement.kappa: ">= -1"`) and kappa was measured. Not when the student
 * agrees with the teacher on every row: kappa is then 0 only because the teacher answered one
 * class throughout (no chance correction is possible), not because the student guessed.
 */
function chanceGateApplies(checks: readonly GateCheck[], metrics: Record<string, number>): boolean {
  if (checks.some((c) => c.metric === 'agreement.kappa')) return false;
  return Number.isFinite(metrics['agreement.kappa']) && metrics['agreement.top1'] !== 1;
}

/** Why a default gate is there, for its row in the report's Gates table. */
export function defaultGateBasis(
  metric: string,
  config: { export: Pick<Config['export'], 'quantize'> },
  metrics: Record<string, number>,
): string {
  if (metric === 'export.onnxMaxAbsDiff') {
    return `default gate (export.format onnx): student.onnx in onnxruntime within ${DEFAULT_ONNX_MAX_ABS_DIFF} of the TF.js student on every output checked; gate export.onnxMaxAbsDiff to set your own`;
  }
  if (metric === 'agreement.kappa') {
    return `default gate: a student at chance level fails (kappa 0 is what always answering one class scores); gate agreement.kappa to set your own, ">= -1" to turn it off`;
  }
  const float = metrics['agreement.top1'];
  return `default gate (export.quantize ${config.export.quantize}): at most ${DEFAULT_QUANTIZED_AGREEMENT_DROP * 100} points below the float32 student's ${Number.isFinite(float) ? `${(100 * float).toFixed(1)}%` : 'agreement'}; gate a quantized.* metric to set your own`;
}
