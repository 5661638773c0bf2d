import type { Tensor } from '@tensorflow/tfjs';
import type { LoadedModel } from '../models/model.js';
import { median, timeInterleaved } from './speed.js';

// A speed verdict that does not flake: the new student and the baseline's student are timed in
// the same process, interleaved round by round, and judged on a distribution-free confidence
// interval of the median ratio of their latencies (`ratioInterval`). A gate fails only when the
// whole interval is past the threshold, passes only when it is inside, and otherwise more rounds
// are measured, up to a time budget, before the comparison is called inconclusive.

/** Latencies of both students, one entry per round. */
export interface PairedTimings {
  current: number[];
  baseline: number[];
}

export interface RatioInterval {
  /** Median over rounds of current/baseline: above 1 means the new student is slower. */
  ratio: number;
  low: number;
  high: number;
  rounds: number;
}

export type SpeedVerdict = 'pass' | 'fail' | 'inconclusive';

export interface SpeedComparison extends RatioInterval {
  verdict: SpeedVerdict;
  /** The largest ratio the gate allows (e.g. 1.1 for maxIncrease 10%). */
  allowedRatio: number;
  baselineMs: number;
  currentMs: number;
  confidence: number;
}

/**
 * The median per-round ratio with its distribution-free confidence interval. Each round times
 * both students back to back, so a round's ratio cancels the drift that both saw (another job,
 * clock changes), and the median shrugs off spikes that hit only one of them. The interval is the
 * classic order-statistic one for a median, [x(k), x(n-k+1)] with k from the binomial(n, 1/2)
 * distribution: its coverage holds for any distribution of timings, where a bootstrap of the
 * median runs narrow on the small samples a CI job can afford.
 */
export function ratioInterval(timings: PairedTimings, confidence = 0.95): RatioInterval {
  const n = Math.min(timings.current.length, timings.baseline.length);
  const ratios = Array.from({ length: n }, (_, i) => timings.current[i] / timings.baseline[i]).sort((a, b) => a - b);
  const k = orderStatisticRank(n, confidence);
  return {
    ratio: median(ratios),
    low: k > 0 ? ratios[k - 1] : -Infinity,
    high: k > 0 ? ratios[n - k] : Infinity,
    rounds: n,
  };
}

/** The largest k with P(Binomial(n, 1/2) < k) <= (1 - confidence) / 2, or 0 when n is too small. */
export function orderStatisticRank(n: number, confidence: number): number {
  const tail = (1 - confidence) / 2;
  let cumulative = 0;
  let term = 2 ** -n; // P(X = 0)
  let k = 0;
  for (let i = 0; i < n; i++) {
    if (cumulative + term > tail) break;
    cumulative += term;
    k = i + 1;
    term = (term * (n - i)) / (i + 1);
  }
  return k;
}

export function decide(interval: RatioInterval, allowedRatio: number): SpeedVerdict {
  if (interval.low > allowedRatio) return 'fail';
  if (interval.high <= allowedRatio) return 'pass';
  return 'inconclusive';
}

export interface PairedOptions {
  allowedRatio: number;
  /** Rounds per block; a verdict is tried after each block. */
  block?: number;
  minRounds?: number;
  /** Stop adding rounds after this long and call the comparison inconclusive. */
  budgetMs?: number;
  warmup?: number;
  confidence?: number;
}

/** Times `current` against `baseline` on `input` until the interval decides, or the budget runs out. */
export async function comparePairedSpeed(
  current: Pick<LoadedModel, 'predict'>,
  baseline: Pick<LoadedModel, 'predict'>,
  input: Tensor,
  options: PairedOptions,
): Promise<SpeedComparison> {
  const block = options.block ?? 20;
  const minRounds = options.minRounds ?? 40;
  const budgetMs = options.budgetMs ?? 20_000;
  const confidence = options.confidence ?? 0.95;
  const times = await timeInterleaved(current, baseline, input, 0, options.warmup ?? 5);
  const timings: PairedTimings = { current: times.first, baseline: times.second };
  const started = performance.now();
  let interval: RatioInterval;
  let verdict: SpeedVerdict;
  for (;;) {
    await timeInterleaved(current, baseline, input, block, 0, times);
    interval = ratioInterval(timings, confidence);
    verdict = decide(interval, options.allowedRatio);
    if (timings.current.length >= minRounds && verdict !== 'inconclusive') break;
    if (performance.now() - started > budgetMs) break;
    // Yield so that timers and signals are not starved while measuring.
    await new Promise((resolve) => setImmediate(resolve));
  }
  return { ...interval, verdict, allowedRatio: options.allowedRatio, baselineMs: median(timings.baseline), currentMs: median(timings.current), confidence };
}
