import type { Tensor } from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { describeSpeedPrecision } from '../../src/stages/measure/speed.js';
import {
  InterleavedTimer,
  SPEED_FLOOR_SECONDS,
  SPEED_PRECISION,
  SPEED_SHARE_OF_RUN,
  speedLimits,
  timeUntilDecided,
  TimedMetrics,
} from '../../src/measure/timing.js';
import { FakeClock, fakeModel, noisyLatency } from './fake-timing.js';

// Issue #24 item 6: a slow teacher timed to the same fixed rounds as a fast student cost more than
// distilling. The speed phase now has a time share of the run (SPEED_SHARE_OF_RUN of the time
// before measuring, never less than SPEED_FLOOR_SECONDS), and past the floor its fixed rounds also
// stop at the precision SPEED_PRECISION. All on a fake clock: no real timings.

const input = {} as Tensor;

/** A teacher taking `teacherMs` a call (noisy) against a 1 ms student, 50 fixed rounds. */
function slowPair(clock: FakeClock, teacherMs: number, noise = true) {
  const teacher = fakeModel(clock, noise ? noisyLatency(teacherMs, 3) : () => teacherMs);
  const student = fakeModel(clock, noise ? noisyLatency(1, 4) : () => 1);
  return new TimedMetrics(
    new InterleavedTimer(teacher, student, input, clock.read),
    { 'speed.teacherMs': (t) => t, 'speed.studentMs': (_, s) => s },
    { warmup: 2, rounds: 50 },
  );
}

describe("the speed phase's time share", () => {
  it('keeps every fixed round when they fit the floor, whatever the run took', async () => {
    const clock = new FakeClock();
    const pair = slowPair(clock, 50);
    await timeUntilDecided([pair], speedLimits(20, { clock: clock.read, runSeconds: 1 }));
    expect(pair.timer.rounds).toBe(50);
  });

  it('stops the fixed rounds of a slow teacher at its share of the run, keeping at least the few rounds that bound an interval', async () => {
    const clock = new FakeClock();
    // 2 s a teacher call: 50 rounds would take 100 s, after a 120 s run whose share is 30 s.
    const pair = slowPair(clock, 2000);
    await timeUntilDecided([pair], speedLimits(20, { clock: clock.read, runSeconds: 120 }));
    const shareMs = Math.max(SPEED_FLOOR_SECONDS, SPEED_SHARE_OF_RUN * 120) * 1000;
    expect(pair.timer.rounds).toBeLessThan(50);
    expect(pair.timer.rounds).toBeGreaterThanOrEqual(3);
    // No round starts after the share's end: at most one round past it.
    expect(clock.now).toBeLessThanOrEqual(shareMs + 2 * 2400 * 2 + 2 * 1.2);
  });

  it('stops past the floor once the rounds bought the precision aimed at', async () => {
    const clock = new FakeClock();
    // Noise-free calls of 500 ms: every interval is a point once bounded, so the precision is
    // reached as soon as the floor is passed, long before the share (a 1,000 s run: 250 s).
    const pair = slowPair(clock, 500, false);
    await timeUntilDecided([pair], speedLimits(20, { clock: clock.read, runSeconds: 1000 }));
    expect(pair.precision()).toBeLessThanOrEqual(SPEED_PRECISION);
    expect(pair.timer.rounds).toBeLessThan(50);
    expect(clock.now).toBeLessThan(SPEED_FLOOR_SECONDS * 1000 + 2 * 501);
  });

  it('is unchanged without runSeconds (library use): the fixed rounds all run', async () => {
    const clock = new FakeClock();
    const pair = slowPair(clock, 2000);
    await timeUntilDecided([pair], speedLimits(20, { clock: clock.read }));
    expect(pair.timer.rounds).toBe(50);
  });

  it('says what precision the rounds bought', () => {
    const line = describeSpeedPrecision(
      {
        'speed.teacherMs': { value: 100, low: 95, high: 107, rounds: 9, confidence: 0.95 },
        'speed.studentMs': { value: 2, low: 1.9, high: 2.1, rounds: 9, confidence: 0.95 },
        'speed.teacherThroughput': { value: 10, low: -Infinity, high: Infinity, rounds: 3, confidence: 0.95 },
        'speed.studentThroughput': { value: 500, low: 490, high: 510, rounds: 3, confidence: 0.95 },
      },
      12.34,
    );
    expect(line).toBe(
      'speed: 9 latency rounds (teacher ±6.0%, student ±5.0%) and 3 throughput rounds (teacher unbounded, student ±2.0%) in 12.3 s (95% intervals of the medians)',
    );
  });
});
