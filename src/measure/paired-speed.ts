import type { Tensor } from '@tensorflow/tfjs';
import { CONFIDENCE, decide, medianInterval, type MeasuredInterval, type SpeedVerdict } from './intervals.js';
import {
  InterleavedTimer,
  LATENCY_SETTLE,
  speedLimits,
  timeUntilDecided,
  TimedMetrics,
  type Clock,
  type Timed,
} from './timing.js';

// The new student against the baseline's: both timed in the same process, interleaved round by
// round, and judged on the interval of the median per-round ratio of their latencies. A round's
// ratio cancels the drift that both saw (another job, clock changes), and the median shrugs off
// spikes that hit only one of them.

/** Latencies of both students, one entry per round. */
export interface PairedTimings {
  current: number[];
  baseline: number[];
}

/** The median per-round ratio current/baseline (above 1: the new student is slower) and its interval. */
export function ratioInterval(timings: PairedTimings, confidence = CONFIDENCE): MeasuredInterval {
  const n = Math.min(timings.current.length, timings.baseline.length);
  return medianInterval(
    Array.from({ length: n }, (_, i) => timings.current[i] / timings.baseline[i]),
    confidence,
  );
}

/** As report.json keeps it (`speedComparison`). */
export interface SpeedComparison {
  /** Median over rounds of current/baseline: above 1 means the new student is slower. */
  ratio: number;
  low: number;
  high: number;
  rounds: number;
  verdict: SpeedVerdict;
  /** The largest ratio the strictest gate allows (e.g. 1.1 for maxIncrease 10%). */
  allowedRatio: number;
  baselineMs: number;
  currentMs: number;
  confidence: number;
}

/** The comparison's ratio as the interval it was timed as, e.g. to check one read from a report (intervalProblem). */
export function comparisonInterval({ ratio, low, high, rounds, confidence }: SpeedComparison): MeasuredInterval {
  return { value: ratio, low, high, rounds, confidence };
}

/** The ratio's metric, and the baseline student's latency, as the catalogue names them. */
const VS_BASELINE = 'speed.vsBaseline';
const BASELINE_MS = 'speed.baselineStudentMs';

/** Rounds always timed in the comparison with the baseline's student, before its first look. */
export const PAIRED_ROUNDS = 40;

export interface PairedTimingOptions {
  /** The largest ratio allowed, from the baseline's latency (an absolute maxIncrease in ms depends on it). */
  allowedRatio: (baselineMs: number) => number;
  warmup: number;
  clock?: Clock;
}

/** The new student (first) against the baseline's (second) on `input`, to time with the other speed pairs. */
export function pairedTiming(
  current: Timed,
  baseline: Timed,
  input: Tensor,
  { allowedRatio, warmup, clock }: PairedTimingOptions,
): TimedMetrics {
  return new TimedMetrics(
    new InterleavedTimer(current, baseline, input, clock),
    { [VS_BASELINE]: (currentMs, baselineMs) => currentMs / baselineMs, [BASELINE_MS]: (_, baselineMs) => baselineMs },
    { warmup, rounds: PAIRED_ROUNDS, settle: LATENCY_SETTLE },
    (timing) => [{ metric: VS_BASELINE, op: '<=', threshold: allowedRatio(timing.interval(BASELINE_MS).value) }],
  );
}

/** The comparison's summary for the report, judged against the strictest allowed ratio. */
export function comparisonOf(timing: TimedMetrics, allowedRatio: (baselineMs: number) => number): SpeedComparison {
  const ratio = timing.interval(VS_BASELINE);
  const baselineMs = timing.interval(BASELINE_MS).value;
  const allowed = allowedRatio(baselineMs);
  return {
    ratio: ratio.value,
    low: ratio.low,
    high: ratio.high,
    rounds: ratio.rounds,
    verdict: decide(ratio, { op: '<=', threshold: allowed }),
    allowedRatio: allowed,
    baselineMs,
    currentMs: medianInterval(timing.timer.first).value,
    confidence: ratio.confidence,
  };
}

export interface PairedOptions {
  allowedRatio: number;
  /** Stop adding rounds after this long and call the comparison inconclusive. */
  budgetMs?: number;
  warmup?: number;
  clock?: Clock;
}

/** Times `current` against `baseline` on `input` until the interval decides, or the budget runs out (bench:speed). */
export async function comparePairedSpeed(
  current: Timed,
  baseline: Timed,
  input: Tensor,
  options: PairedOptions,
): Promise<SpeedComparison> {
  const allowed = () => options.allowedRatio;
  const timing = pairedTiming(current, baseline, input, {
    allowedRatio: allowed,
    warmup: options.warmup ?? 5,
    clock: options.clock,
  });
  await timeUntilDecided([timing], speedLimits((options.budgetMs ?? 20_000) / 1000, { clock: options.clock }));
  return comparisonOf(timing, allowed);
}
