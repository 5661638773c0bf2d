import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../src/distill/random.js';
import {
  CONFIDENCE,
  decide,
  formatConfidence,
  intervalProblem,
  isBounded,
  MAX_LOOKS,
  medianInterval,
  MIN_BOUNDED_ROUNDS,
  orderStatisticRank,
  type Comparison,
} from '../../src/measure/intervals.js';

describe('medianInterval', () => {
  it('is bounded from MIN_BOUNDED_ROUNDS rounds on: [min, max] of 11 rounds at 99.9%', () => {
    expect(MIN_BOUNDED_ROUNDS).toBe(11);
    const ten = medianInterval([5, 1, 4, 2, 7, 3, 6, 10, 9, 8]);
    expect([ten.value, ten.low, ten.high, ten.rounds]).toEqual([5.5, -Infinity, Infinity, 10]);
    const eleven = medianInterval([5, 1, 4, 2, 7, 3, 6, 10, 9, 8, 11]);
    expect([eleven.value, eleven.low, eleven.high, eleven.confidence]).toEqual([6, 1, 11, CONFIDENCE]);
  });

  it('stays a proper interval around the median on thousands of rounds', () => {
    // 2^-n underflowed to 0 from n = 1075 on: every rank passed and the "interval" was [max, min].
    const random = seededRandom(3);
    const values = Array.from({ length: 5000 }, () => 1 + random());
    const interval = medianInterval(values);
    expect(interval.low).toBeLessThan(interval.value);
    expect(interval.high).toBeGreaterThan(interval.value);
    expect(interval.high - interval.low).toBeLessThan(0.1);
    // Ranks of the normal approximation: n/2 -+ 2.576 sqrt(n)/2 at 99%.
    expect(orderStatisticRank(5000, 0.99)).toBeGreaterThan(2500 - 2.6 * Math.sqrt(5000) * 0.5 - 2);
    expect(orderStatisticRank(5000, 0.99)).toBeLessThan(2500 - 2.5 * Math.sqrt(5000) * 0.5);
    expect(orderStatisticRank(5000, 0.95)).toBe(2431);
  });

  it('covers the true median at its confidence, on any distribution', () => {
    // Exponential latencies (skewed, like real ones): true median ln 2.
    const random = seededRandom(11);
    const runs = Array.from({ length: 400 }, () =>
      medianInterval(Array.from({ length: 50 }, () => -Math.log(1 - random()))),
    );
    const covered = runs.filter((i) => i.low <= Math.LN2 && Math.LN2 <= i.high).length;
    expect(covered / runs.length).toBeGreaterThanOrEqual(0.99);
  });

  it('looks few enough times for the looks together to err in at most 0.5% of reruns (Bonferroni)', () => {
    expect(MAX_LOOKS * (1 - CONFIDENCE)).toBeLessThanOrEqual(0.005 + 1e-12);
    expect([formatConfidence(CONFIDENCE), formatConfidence(0.95)]).toEqual(['99.9%', '95%']);
  });
});

describe('decide', () => {
  const above = { low: 3.1, high: 3.3 };
  const straddling = { low: 2.9, high: 3.1 };
  const below = { low: 2.7, high: 2.9 };
  const cases: [Comparison, string, string, string][] = [
    ['>=', 'pass', 'inconclusive', 'fail'],
    ['>', 'pass', 'inconclusive', 'fail'],
    ['<=', 'fail', 'inconclusive', 'pass'],
    ['<', 'fail', 'inconclusive', 'pass'],
    ['==', 'fail', 'inconclusive', 'fail'],
  ];
  it.each(cases)(
    '%s 3: passes or fails only when the whole interval is on one side',
    (op, whenAbove, whenStraddling, whenBelow) => {
      expect([
        decide(above, { op, threshold: 3 }),
        decide(straddling, { op, threshold: 3 }),
        decide(below, { op, threshold: 3 }),
      ]).toEqual([whenAbove, whenStraddling, whenBelow]);
    },
  );

  it('treats an interval touching the threshold as the bound says', () => {
    expect(decide({ low: 3, high: 3.2 }, { op: '>=', threshold: 3 })).toBe('pass');
    expect(decide({ low: 3, high: 3.2 }, { op: '>', threshold: 3 })).toBe('inconclusive');
    expect(decide({ low: 2.8, high: 3 }, { op: '<=', threshold: 3 })).toBe('pass');
    expect(decide({ low: 2.8, high: 3 }, { op: '<', threshold: 3 })).toBe('inconclusive');
    expect(decide({ low: 3, high: 3 }, { op: '==', threshold: 3 })).toBe('pass');
  });

  it('never decides on an unbounded interval', () => {
    for (const op of ['>=', '>', '<=', '<', '=='] as const)
      expect(decide({ low: -Infinity, high: Infinity }, { op, threshold: 1 })).toBe('inconclusive');
  });
});

describe('what an honest interval looks like', () => {
  it('is bounded exactly when the rounds give the order-statistic interval a rank', () => {
    for (const confidence of [0.5, 0.9, 0.95, 0.99, CONFIDENCE, 0.99999])
      for (let rounds = 0; rounds <= 80; rounds++)
        expect(isBounded(rounds, confidence), `${rounds} at ${confidence}`).toBe(
          orderStatisticRank(rounds, confidence) > 0,
        );
    expect([
      isBounded(MIN_BOUNDED_ROUNDS - 1, CONFIDENCE),
      isBounded(MIN_BOUNDED_ROUNDS, CONFIDENCE),
      isBounded(1e15, CONFIDENCE),
    ]).toEqual([false, true, true]);
  });

  it('accepts every interval medianInterval writes', () => {
    const random = seededRandom(5);
    for (const rounds of [1, 2, 3, 10, 11, 12, 40, 300, 2000]) {
      const interval = medianInterval(Array.from({ length: rounds }, () => 1 + random()));
      expect(intervalProblem(interval), `${rounds} rounds`).toBeUndefined();
    }
  });

  it.each([
    [
      'open ends over hundreds of rounds',
      { value: 4, low: -Infinity, high: Infinity, rounds: 300 },
      'low',
      /is open, but 300 rounds always bound the 99\.9% interval of their median \(from 11 rounds on\)/,
    ],
    ['an open upper end', { value: 4, low: 3, high: Infinity, rounds: 11 }, 'high', /is open/],
    [
      'ends where the rounds are too few',
      { value: 4, low: 3.9, high: 4.1, rounds: 10 },
      'low',
      /10 rounds are too few to bound the 99\.9% interval of their median \(it takes 11\)/,
    ],
    [
      'a median outside its interval',
      { value: 4, low: 4.1, high: 4.5, rounds: 60 },
      'low',
      /does not hold its own median/,
    ],
    ['ends in the wrong order', { value: 4, low: 4.5, high: 3.5, rounds: 60 }, 'low', /does not hold its own median/],
    [
      'a confidence of 1, which no rounds can bound',
      { value: 4, low: -Infinity, high: Infinity, rounds: 300, confidence: 1 },
      'confidence',
      /is not a confidence level/,
    ],
    ['no rounds', { value: 4, low: -Infinity, high: Infinity, rounds: 0 }, 'rounds', /is not a number of rounds/],
    [
      'no median',
      { value: NaN, low: -Infinity, high: Infinity, rounds: 3 },
      'value',
      /the median over 3 rounds is missing/,
    ],
  ])('refuses %s', (_name, interval, field, message) => {
    const problem = intervalProblem({ confidence: CONFIDENCE, ...interval });
    expect(problem?.field).toBe(field);
    expect(problem?.message).toMatch(message);
  });
});
