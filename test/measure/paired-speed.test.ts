import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../src/distill/random.js';
import { decide, orderStatisticRank } from '../../src/measure/intervals.js';
import { comparePairedSpeed, ratioInterval } from '../../src/measure/paired-speed.js';
import { allowedRatio } from '../../src/gates/baseline.js';
import { FakeClock, fakeModel, noisyLatency } from './fake-timing.js';

/** Latencies with shared per-round drift and heavy-tailed spikes, like a busy shared runner. */
function noisyTimings(seed: number, slowdown: number, rounds = 60, jitter = 0.05) {
  const random = seededRandom(seed);
  const current: number[] = [];
  const baseline: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const drift = 1 + 0.3 * Math.sin(r / 5) + 0.2 * random();
    const spike = () => (random() < 0.08 ? 1 + 4 * random() : 1);
    baseline.push(0.2 * drift * spike() * (1 + jitter * random()));
    current.push(0.2 * slowdown * drift * spike() * (1 + jitter * random()));
  }
  return { current, baseline };
}

const atMost = (threshold: number) => ({ op: '<=' as const, threshold });

describe('paired speed verdict', () => {
  it('gives the same commit the same verdict, pass, on ten noisy runs', () => {
    const verdicts = Array.from({ length: 10 }, (_, seed) =>
      decide(ratioInterval(noisyTimings(seed, 1.0)), atMost(1.1)),
    );
    expect(verdicts).toEqual(Array(10).fill('pass'));
  });

  it('catches a student made 30% slower on every one of ten noisy runs', () => {
    const intervals = Array.from({ length: 10 }, (_, seed) => ratioInterval(noisyTimings(100 + seed, 1.3)));
    expect(intervals.map((i) => decide(i, atMost(1.1)))).toEqual(Array(10).fill('fail'));
    for (const interval of intervals) expect(interval.value).toBeGreaterThan(1.2);
  });

  it('calls a change right at the threshold inconclusive rather than guessing', () => {
    // Thirty rounds whose ratios spread evenly around exactly the allowed 1.1.
    const interval = ratioInterval({
      current: Array.from({ length: 30 }, (_, i) => 1.1 + (i - 14.5) / 100),
      baseline: Array(30).fill(1),
    });
    expect(interval.low).toBeLessThan(1.1);
    expect(interval.high).toBeGreaterThan(1.1);
    expect(decide(interval, atMost(1.1))).toBe('inconclusive');
  });

  it('uses the binomial order statistics of the median', () => {
    // n = 30 at 95%: [x(10), x(21)], the textbook ranks.
    expect(orderStatisticRank(30, 0.95)).toBe(10);
    expect(orderStatisticRank(5, 0.95)).toBe(0);
    const ratios = Array.from({ length: 30 }, (_, i) => 1 + i / 100);
    const interval = ratioInterval({ current: ratios, baseline: Array(30).fill(1) }, 0.95);
    expect([interval.low, interval.high]).toEqual([1.09, 1.2]);
  });

  it('keeps its coverage: a true 10% slowdown lies inside the 95% interval in at least 90% of 200 noisy runs', () => {
    const covered = Array.from({ length: 200 }, (_, seed) =>
      ratioInterval(noisyTimings(1000 + seed, 1.1, 40, 0.4), 0.95),
    ).filter((i) => i.low <= 1.1 && 1.1 <= i.high).length;
    expect(covered).toBeGreaterThanOrEqual(180);
  });

  it('turns relative and absolute bounds into an allowed ratio', () => {
    expect(
      allowedRatio({ metric: 'speed.studentMs', op: 'maxIncrease', threshold: 0.1, relative: true, level: 'error' }, 2),
    ).toBeCloseTo(1.1);
    expect(
      allowedRatio(
        { metric: 'speed.studentMs', op: 'maxIncrease', threshold: 0.5, relative: false, level: 'error' },
        2,
      ),
    ).toBeCloseTo(1.25);
  });
});

describe('comparePairedSpeed', () => {
  it('times both students on one clock and reports the ratio of their latencies', async () => {
    const clock = new FakeClock();
    // A student 30% slower than the baseline's, with noise on both.
    const current = fakeModel(clock, noisyLatency(1.3, 1));
    const baseline = fakeModel(clock, noisyLatency(1, 2));
    const comparison = await comparePairedSpeed(current, baseline, {} as never, {
      allowedRatio: 1.1,
      warmup: 2,
      clock: clock.read,
    });
    expect(comparison).toMatchObject({ verdict: 'fail', allowedRatio: 1.1, rounds: 40, confidence: 0.999 });
    expect(comparison.ratio).toBeGreaterThan(1.2);
    expect(comparison.low).toBeGreaterThan(1.1);
    expect(comparison.currentMs / comparison.baselineMs).toBeCloseTo(1.3, 1);
  });
});
