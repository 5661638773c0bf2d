import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import {
  MEASURE_AFTER_CANCEL_MS,
  parseBudgetMinutes,
  TRAINING_SHARE_OF_BUDGET,
  withRunClock,
  WRITE_RESERVE_MS,
} from '../src/run-control.js';

/** Resolves with the abort reason once the signal aborts. */
const aborted = (signal: AbortSignal) =>
  new Promise<string>((resolve) => signal.addEventListener('abort', () => resolve((signal.reason as Error).message)));

describe('withRunClock', () => {
  it.each(['SIGINT', 'SIGTERM'] as const)(
    'a first %s stops and hurries the run with a reason naming it, and does not force it',
    async (name) => {
      const signals = new EventEmitter();
      const clock = await withRunClock(
        async (clock) => {
          expect([clock.stop.aborted, clock.hurry.aborted, clock.force.aborted]).toEqual([false, false, false]);
          signals.emit(name, name);
          return clock;
        },
        { signals },
      );
      expect([clock.stop.aborted, clock.hurry.aborted, clock.force.aborted]).toEqual([true, true, false]);
      expect((clock.stop.reason as Error).message).toBe(`received ${name}`);
    },
  );

  it("the runner's sequence: SIGINT stops, SIGTERM forces, with reasons worded as the shell asks", async () => {
    const signals = new EventEmitter();
    const forced = await withRunClock(
      (clock) => {
        queueMicrotask(() => {
          signals.emit('SIGINT', 'SIGINT');
          signals.emit('SIGTERM', 'SIGTERM');
        });
        return aborted(clock.force);
      },
      { signals, reason: (name) => `the job was cancelled (${name})` },
    );
    expect(forced).toBe(
      'the job was cancelled (SIGTERM) again, while the run was finishing: the report holds what existed then',
    );
  });

  it('announces what each signal does, in the order its handler saw them', async () => {
    const signals = new EventEmitter();
    const lines: string[] = [];
    await withRunClock(
      (clock) => {
        queueMicrotask(() => {
          signals.emit('SIGTERM', 'SIGTERM');
          signals.emit('SIGINT', 'SIGINT');
        });
        return aborted(clock.force);
      },
      { signals, announce: (line) => lines.push(line) },
    );
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^cancel: received SIGTERM: stopping .* \(a second signal writes it at once\)$/);
    expect(lines[1]).toBe('cancel: received SIGINT again: writing the report of what exists now');
  });

  it('gives measuring what is left of the grace after a cancel, and of the budget less the writing reserve', async () => {
    const signals = new EventEmitter();
    let now = 1000;
    await withRunClock(
      async (clock) => {
        expect(clock.measureMs()).toBe(60_000 - WRITE_RESERVE_MS);
        now += 10_000;
        expect(clock.measureMs()).toBe(50_000 - WRITE_RESERVE_MS);
        signals.emit('SIGINT', 'SIGINT');
        expect(clock.measureMs()).toBe(MEASURE_AFTER_CANCEL_MS);
        now += MEASURE_AFTER_CANCEL_MS + 1;
        expect(clock.measureMs()).toBe(0);
      },
      { signals, budgetMinutes: 1, now: () => now },
    );
    await withRunClock(async (clock) => expect(clock.measureMs()).toBe(Infinity), { signals });
  });

  it(`stops the run at ${TRAINING_SHARE_OF_BUDGET * 100}% of the budget and forces it at its end`, async () => {
    const started = performance.now();
    const [stopAt, forceAt, stopWhy] = await withRunClock(
      async (clock) => {
        const stopWhy = await aborted(clock.stop);
        const stopAt = performance.now() - started;
        await aborted(clock.force);
        expect(clock.hurry.aborted).toBe(false);
        return [stopAt, performance.now() - started, stopWhy] as const;
      },
      { budgetMinutes: 0.005, signals: new EventEmitter() },
    );
    expect(stopAt).toBeGreaterThanOrEqual(0.005 * 60_000 * TRAINING_SHARE_OF_BUDGET - 5);
    expect(forceAt).toBeGreaterThanOrEqual(0.005 * 60_000 - 5);
    expect(stopWhy).toMatch(/the time budget of 0.005 min was nearly spent/);
  });

  it('keeps its listeners for the whole run, and removes them (and the budget) when the run ends, however it ends', async () => {
    const signals = new EventEmitter();
    const counts = () => [signals.listenerCount('SIGINT'), signals.listenerCount('SIGTERM')];
    const clock = await withRunClock(
      async (clock) => {
        signals.emit('SIGINT', 'SIGINT');
        // Still listening after the first signal: without a listener, a second SIGINT would kill Node.
        expect(counts()).toEqual([1, 1]);
        return clock;
      },
      { signals, budgetMinutes: 0.0001 },
    );
    expect(counts()).toEqual([0, 0]);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(clock.force.aborted).toBe(false);
    await expect(
      withRunClock(
        async () => {
          throw new Error('failed');
        },
        { signals },
      ),
    ).rejects.toThrow('failed');
    expect(counts()).toEqual([0, 0]);
  });

  it('listens on the process by default', async () => {
    const before = [process.listenerCount('SIGINT'), process.listenerCount('SIGTERM')];
    await withRunClock(async () => {
      expect([process.listenerCount('SIGINT'), process.listenerCount('SIGTERM')]).toEqual([
        before[0] + 1,
        before[1] + 1,
      ]);
    });
    expect([process.listenerCount('SIGINT'), process.listenerCount('SIGTERM')]).toEqual(before);
  });
});

describe('parseBudgetMinutes', () => {
  it.each([
    ['45', 45],
    ['0.5', 0.5],
    [' 30 ', 30],
    ['0', undefined],
    ['-1', undefined],
    ['', undefined],
    ['soon', undefined],
    ['Infinity', undefined],
    ['35000', 35000],
    // Beyond Node's longest timer the budget would fire at once.
    ['40000', undefined],
    ['NaN', undefined],
    ['1.5', 1.5],
    ['.5', 0.5],
    ['2.', 2],
    // Only plain decimal minutes: Number() reads these as other numbers, or as 0.
    ['0x10', undefined],
    ['0b11', undefined],
    ['0o7', undefined],
    ['1e3', undefined],
    ['+5', undefined],
    ['1_000', undefined],
    ['5 min', undefined],
    ['1,5', undefined],
    ['.', undefined],
  ])('%j -> %s', (text, minutes) => {
    expect(parseBudgetMinutes(text)).toBe(minutes);
  });
});
