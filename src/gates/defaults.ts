import type { Config } from '../config/load.js';
import { DEFAULT_QUANTIZED_AGREEMENT_DROP } from '../config/schema.js';
import type { GateCheck } from './gates.js';

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
  config: { export: Pick<Config['export'], 'quantize'> },
  metrics: Record<string, number>,
): GateCheck[] {
  const float = metrics['agreement.top1'];
  if (config.export.quantize === 'none' || checks.some((c) => c.metric.startsWith('quantized.')) || !Number.isFinite(float)) return [...checks];
  // Rounded down to 6 decimals, so that the threshold reads plainly and a shipped student exactly
  // 5 points below is not failed by the float rounding of the subtraction.
  const threshold = Math.max(0, Math.floor((float - DEFAULT_QUANTIZED_AGREEMENT_DROP) * 1e6 + 1e-6) / 1e6);
  return [...checks, { metric: 'quantized.agreement.top1', op: '>=', threshold, relative: false, level: 'error' }];
}
