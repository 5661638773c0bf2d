import { describe, expect, it } from 'vitest';
import { MAX_LOOKS, MIN_BOUNDED_ROUNDS } from '../../src/measure/intervals.js';
import {
  InterleavedTimer,
  LATENCY_SETTLE,
  speedLimits,
  timeUntilDecided,
  TimedMetrics,
  type MetricBound,
} from '../../src/measure/timing.js';
import { FakeClock, fakeModel, noisyLatency } from './fake-timing.js';

const input = {} as never;

/** Teacher (3 ms) against student (1 ms) on the fake clock, with the speed-up as their metric. */
function speedupPair(
  clock: FakeClock,
  bounds: MetricBound[],
  { rounds = 50, seed = 1, onCall }: { rounds?: number; seed?: number; onCall?: () => void } = {},
) {
  const teacher = fakeModel(clock, noisyLatency(3, seed));
  const student = fakeModel(clock, noisyLatency(1, seed + 1000), onCall);
  return new TimedMetrics(
    new InterleavedTimer(teacher, student, input, clock.read),
    { 'speed.speedup': (teacherMs, studentMs) => teacherMs / studentMs },
    { warmup: 3, rounds },
    () => bounds,
  );
}
const speedup = (op: MetricBound['op'], threshold: number): MetricBound => ({ metric: 'speed.speedup', op, threshold });
/** speedupPair's median speed-up (both draw their noise from one distribution, scaled): a bound there stays undecided. */
const MEDIAN_SPEEDUP = 3;

describe('InterleavedTimer', () => {
  it('alternates which model goes first round by round, also across calls', async () => {
    const calls: string[] = [];
    const fake = (name: string) => ({
      predict: () => (calls.push(name), { data: async () => new Float32Array(1), dispose: () => {} }) as never,
    });
    const timer = new InterleavedTimer(fake('a'), fake('b'), input);
    await timer.warmUp(1);
    await timer.time(3);
    await timer.time(2);
    expect(calls.join('')).toBe(`ab${'ab' + 'ba' + 'ab'}${'ba' + 'ab'}`);
    expect([timer.first.length, timer.second.length, timer.rounds]).toEqual([5, 5, 5]);
  });
});

describe('InterleavedTimer.warmUp with a settle (issue #23: a student timed mid-warm-up)', () => {
  it('goes on past the warm-up calls while calls are cheap: a model that speeds up after 300 calls is timed fast', async () => {
    const clock = new FakeClock();
    // Like a batch-1 TF.js predict: 0.4 ms for its first 300 calls, 0.05 ms after (V8's optimizing tiers).
    let studentCalls = 0;
    const student = fakeModel(clock, () => (studentCalls++ < 300 ? 0.4 : 0.05));
    const teacher = fakeModel(clock, () => 0.06);
    const timer = new InterleavedTimer(teacher, student, input, clock.read);
    await timer.warmUp(100, undefined, LATENCY_SETTLE);
    expect(student.calls).toBe(LATENCY_SETTLE.calls);
    await timer.time(10);
    expect(Math.max(...timer.second)).toBeCloseTo(0.05, 9);
  });

  it('adds nothing for a slow model, whose warm-up calls already last the settle time, nor with warmup 0', async () => {
    const clock = new FakeClock();
    const slow = fakeModel(clock, () => 20);
    const timer = new InterleavedTimer(
      slow,
      fakeModel(clock, () => 1),
      input,
      clock.read,
    );
    await timer.warmUp(100, undefined, LATENCY_SETTLE);
    expect(slow.calls).toBe(100);
    const none = fakeModel(clock, () => 0.01);
    await new InterleavedTimer(
      none,
      fakeModel(clock, () => 0.01),
      input,
      clock.read,
    ).warmUp(0, undefined, LATENCY_SETTLE);
    expect(none.calls).toBe(0);
  });

  it('stops at the settle time when many calls are not cheap enough, and when stopped', async () => {
    const clock = new FakeClock();
    const model = fakeModel(clock, () => 2);
    await new InterleavedTimer(
      model,
      fakeModel(clock, () => 2),
      input,
      clock.read,
    ).warmUp(10, undefined, LATENCY_SETTLE);
    // 4 ms a pair: the settle's 1000 ms end it at 250 pairs.
    expect(model.calls).toBe(LATENCY_SETTLE.ms / 4);
    const stopped = fakeModel(clock, () => 0.01);
    await new InterleavedTimer(
      stopped,
      fakeModel(clock, () => 0.01),
      input,
      clock.read,
    ).warmUp(10, () => stopped.calls >= 5, LATENCY_SETTLE);
    expect(stopped.calls).toBe(5);
  });
});

describe('timeUntilDecided', () => {
  it('times only the fixed rounds when no gate bounds the pair: no extra time', async () => {
    const clock = new FakeClock();
    const pair = speedupPair(clock, []);
    await timeUntilDecided([pair], speedLimits(20, { clock: clock.read }));
    expect(pair.timer.rounds).toBe(50);
  });

  it('stops after the fixed rounds when they already decide the gate', async () => {
    const clock = new FakeClock();
    const pair = speedupPair(clock, [speedup('>=', 2)]);
    await timeUntilDecided([pair], speedLimits(20, { clock: clock.read }));
    expect(pair.timer.rounds).toBe(50);
    expect(pair.interval('speed.speedup').low).toBeGreaterThan(2);
  });

  it('doubles the rounds of an undecided gate, up to MAX_LOOKS looks', async () => {
    const clock = new FakeClock();
    const pair = speedupPair(clock, [speedup('>=', MEDIAN_SPEEDUP)]);
    await timeUntilDecided([pair], speedLimits(1000, { clock: clock.read }));
    expect(pair.timer.rounds).toBe(50 * 2 ** (MAX_LOOKS - 1));
    expect(pair.undecided()).toBe(true);
  });

  it('overruns the budget by at most one round', async () => {
    const clock = new FakeClock();
    const pair = speedupPair(clock, [speedup('>=', MEDIAN_SPEEDUP)]);
    const limits = speedLimits(0.5, { clock: clock.read });
    await timeUntilDecided([pair], limits);
    // A round is one call of each model: at most 3.6 * 3 + 1.2 * 3 ms with the noise's spikes.
    expect(clock.now).toBeGreaterThan(limits.extendUntil);
    expect(clock.now - limits.extendUntil).toBeLessThan(15);
    expect(pair.timer.rounds).toBeGreaterThan(50);
  });

  it('shares the budget among undecided pairs', async () => {
    const clock = new FakeClock();
    const first = speedupPair(clock, [speedup('>=', MEDIAN_SPEEDUP)], { seed: 1 });
    const second = speedupPair(clock, [speedup('>=', MEDIAN_SPEEDUP)], { seed: 2 });
    await timeUntilDecided([first, second], speedLimits(2, { clock: clock.read }));
    // About 1.5 s left after both pairs' fixed rounds, at ~5 ms a round: ~150 more rounds each.
    const extra = [first.timer.rounds - 50, second.timer.rounds - 50];
    expect(Math.min(...extra)).toBeGreaterThan(120);
    expect(Math.max(...extra) / Math.min(...extra)).toBeLessThan(1.2);
  });

  it('on a cancel, adds no more rounds and keeps what it has, at least MIN_BOUNDED_ROUNDS', async () => {
    const clock = new FakeClock();
    const cancel = new AbortController();
    let calls = 0;
    // Cancelled during the fixed rounds, at the student's 4th call after warm-up.
    const pair = speedupPair(clock, [speedup('>=', MEDIAN_SPEEDUP)], {
      onCall: () => ++calls === 3 + 4 && cancel.abort(),
    });
    await timeUntilDecided([pair], speedLimits(20, { clock: clock.read, signal: cancel.signal }));
    expect(pair.timer.rounds).toBe(MIN_BOUNDED_ROUNDS);
    expect(Number.isFinite(pair.interval('speed.speedup').low)).toBe(true);
  });

  it('on a cancel while adding rounds, stops at once', async () => {
    const clock = new FakeClock();
    const cancel = new AbortController();
    let calls = 0;
    const pair = speedupPair(clock, [speedup('>=', MEDIAN_SPEEDUP)], {
      onCall: () => ++calls === 3 + 60 && cancel.abort(),
    });
    await timeUntilDecided([pair], speedLimits(20, { clock: clock.read, signal: cancel.signal }));
    expect(pair.timer.rounds).toBe(60);
  });

  it("cuts the fixed rounds short when the run's time is up, keeping MIN_BOUNDED_ROUNDS", async () => {
    const clock = new FakeClock();
    const pair = speedupPair(clock, [speedup('>=', MEDIAN_SPEEDUP)]);
    // 20 s of speed budget, but only 30 ms left of the run: warm-up and rounds stop early.
    await timeUntilDecided([pair], speedLimits(20, { clock: clock.read, speedBudgetMs: 30 }));
    expect(pair.timer.rounds).toBe(MIN_BOUNDED_ROUNDS);
  });
});
