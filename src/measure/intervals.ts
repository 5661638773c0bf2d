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

/**
 * Whether `rounds` rounds bound the interval of their median at `confidence` (at CONFIDENCE: from
 * MIN_BOUNDED_ROUNDS on). medianInterval then always gives finite ends, and never otherwise.
 */
export function isBounded(rounds: number, confidence: number): boolean {
  // orderStatisticRank's first step, without its loop (an upload's rounds can be any number):
  // k > 0 exactly when P(X = 0) = 2^-n is within the tail.
  return rounds > 0 && Math.exp(-rounds * Math.LN2) <= (1 - confidence) / 2;
}

/**
 * What rules out `interval` as one medianInterval wrote, or undefined when a run could have: a
 * confidence outside (0, 1), no rounds, a median that is not a number or lies outside its own
 * interval, ends in the wrong order, open ends (JSON's null) where the rounds bound the interval,
 * or finite ends where they do not. `field` is the one at fault. A forged interval with open ends
 * and hundreds of rounds would otherwise make any gate on it inconclusive, which may count as a pass.
 */
export function intervalProblem({
  value,
  low,
  high,
  rounds,
  confidence,
}: MeasuredInterval): { field: keyof MeasuredInterval; message: string } | undefined {
  if (!(confidence > 0 && confidence < 1))
    return {
      field: 'confidence',
      message: `${confidence} is not a confidence level; a run writes one between 0 and 1 (${CONFIDENCE}).`,
    };
  if (!(Number.isInteger(rounds) && rounds >= 1))
    return { field: 'rounds', message: `${rounds} is not a number of rounds; a run keeps at least one.` };
  if (!Number.isFinite(value))
    return { field: 'value', message: `the median over ${rounds} rounds is missing; a run with rounds has one.` };
  const shown = `[${low}, ${high}] around ${value}`;
  if (isBounded(rounds, confidence)) {
    if (!Number.isFinite(low) || !Number.isFinite(high)) {
      return {
        field: Number.isFinite(low) ? 'high' : 'low',
        message: `${shown} is open, but ${rounds} rounds always bound the ${formatConfidence(confidence)} interval of their median (from ${minBoundedRounds(confidence)} rounds on), so this interval was edited after its run.`,
      };
    }
  } else if (low !== -Infinity || high !== Infinity) {
    return {
      field: low !== -Infinity ? 'low' : 'high',
      message: `${shown} has ends, but ${rounds} rounds are too few to bound the ${formatConfidence(confidence)} interval of their median (it takes ${minBoundedRounds(confidence)}), so this interval was edited after its run.`,
    };
  }
  if (!(low <= value && value <= high)) {
    return {
      field: low <= value ? 'high' : 'low',
      message: `${shown} does not hold its own median; a run writes each median inside its interval, so this interval was edited after its run.`,
    };
  }
  return undefined;
}

/** The fewest rounds whose interval is bounded at `confidence` (MIN_BOUNDED_ROUNDS at CONFIDENCE). */
function minBoundedRounds(confidence: number): number {
  let rounds = Math.max(1, Math.ceil(Math.log2(2 / (1 - confidence))) - 1);
  while (!isBounded(rounds, confidence)) rounds++;
  return rounds;
}

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
      return low === threshold && high === threshold
        ? 'pass'
        : low > threshold || high < threshold
          ? 'fail'
          : 'inconclusive';
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
