// Speed verdicts that do not flake. A timed quantity (a latency, a throughput, a speed-up, the
// ratio against the baseline's student) is measured over rounds and judged on a distribution-free
// confidence interval of its median, never on the median alone: a bound passes only when the whole
// interval satisfies it, fails only when the whole interval violates it, and is inconclusive
// otherwise. Pure statistics; the timing that feeds it is in timing.ts.

/** A quantity timed over rounds: the median of its per-round values and a confidence interval of that median. */
export interface MeasuredInterval {
  /** The median over rounds. */
  value: number;
  /** The interval's ends: -Infinity and Infinity when too few rounds bound it (fewer than MIN_BOUNDED_ROUNDS). */
  low: number;
  high: number;
  rounds: number;
  confidence: number;
}

/**
 * How many times a gate's interval is looked at: after the fixed rounds, then each time the rounds
 * have doubled. Every look is a chance to decide wrongly, so a gate that may look again and again
 * ("measure until it clears") would, given time, clear any threshold on noise alone.
 */
export const MAX_LOOKS = 5;

/**
 * Each look's confidence. Five looks at 99.9% decide a commit whose speed sits exactly at its
 * threshold, either way, in at most 0.5% of reruns (Bonferroni): at 95%, one rerun in twenty
 * would flip, which is the flake the intervals are there to end.
 */
export const CONFIDENCE = 0.999;

/**
 * The median of `values` with its distribution-free confidence interval: the classic
 * order-statistic interval [x(k), x(n-k+1)], k from the binomial(n, 1/2) distribution. Its coverage
 * holds for any distribution of timings, where a bootstrap of the median runs narrow on the small
 * samples a CI job can afford.
 */
export function medianInterval(values: readonly number[], confidence = CONFIDENCE): MeasuredInterval {
  const sorted = [...values].sort((a, b) => a - b);
  const n = sorted.length;
  const k = orderStatisticRank(n, confidence);
  return {
    value: median(sorted),
    low: k > 0 ? sorted[k - 1] : -Infinity,
    high: k > 0 ? sorted[n - k] : Infinity,
    rounds: n,
    confidence,
  };
}

/** The largest k with P(Binomial(n, 1/2) < k) <= (1 - confidence) / 2, or 0 when n is too small. */
export function orderStatisticRank(n: number, confidence: number): number {
  const tail = (1 - confidence) / 2;
  let cumulative = 0;
  // P(X = i) in logarithms: 2^-n underflows to 0 from n = 1075 on, which made every rank pass.
  let logTerm = -n * Math.LN2;
  let k = 0;
  for (let i = 0; i < n; i++) {
    const term = Math.exp(logTerm);
    if (cumulative + term > tail) break;
    cumulative += term;
    k = i + 1;
    logTerm += Math.log(n - i) - Math.log(i + 1);
  }
  return k;
}

/** The fewest rounds whose interval of the median is bounded at CONFIDENCE ([min, max] of n rounds misses it with probability 2^(1-n)): 11 at 99.9%. */
export const MIN_BOUNDED_ROUNDS = Math.ceil(Math.log2(2 / (1 - CONFIDENCE)));

export type Comparison = '>=' | '<=' | '>' | '<' | '==';

/** What a gate demands of a timed quantity, e.g. speed-up >= 1.5. */
export interface Bound {
  op: Comparison;
  threshold: number;
}

export type SpeedVerdict = 'pass' | 'fail' | 'inconclusive';

/** Pass when the whole interval satisfies the bound, fail when the whole interval violates it, else inconclusive. */
export function decide({ low, high }: Pick<MeasuredInterval, 'low' | 'high'>, { op, threshold }: Bound): SpeedVerdict {
  switch (op) {
    case '>=':
      return low >= threshold ? 'pass' : high < threshold ? 'fail' : 'inconclusive';
    case '>':
      return low > threshold ? 'pass' : high <= threshold ? 'fail' : 'inconclusive';
    case '<=':
      return high <= threshold ? 'pass' : low > threshold ? 'fail' : 'inconclusive';
    case '<':
      return high < threshold ? 'pass' : low >= threshold ? 'fail' : 'inconclusive';
    case '==':
      return low === threshold && high === threshold ? 'pass' : low > threshold || high < threshold ? 'fail' : 'inconclusive';
  }
}

/** A confidence as the report writes it: 99.9%, 95%. */
export function formatConfidence(confidence: number): string {
  return `${Number((confidence * 100).toPrecision(3))}%`;
}

/** The median of any array (sorted here); NaN for none. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const middle = sorted.length >> 1;
  if (sorted.length === 0) return NaN;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}
