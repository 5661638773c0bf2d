import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { cancellable, parseBudgetMinutes } from '../src/run-control.js';

/** Resolves with the abort reason once the signal aborts. */
const aborted = (signal: AbortSignal) => new Promise<string>((resolve) => signal.addEventListener('abort', () => resolve((signal.reason as Error).message)));

describe('cancellable', () => {
  it.each(['SIGINT', 'SIGTERM'] as const)('%s aborts the run with a reason naming it', async (name) => {
    const signals = new EventEmitter();
    const reason = await cancellable(
      async (signal) => {
        expect(signal.aborted).toBe(false);
        const reason = aborted(signal);
        signals.emit(name, name);
        return reason;
      },
      { signals },
    );
    expect(reason).toBe(`received ${name}`);
  });

  it('words the reason as the shell asks', async () => {
    const signals = new EventEmitter();
    const reason = await cancellable(
      (signal) => {
        queueMicrotask(() => signals.emit('SIGINT', 'SIGINT'));
        return aborted(signal);
      },
      { signals, reason: (name) => `the job was cancelled (${name})` },
    );
    expect(reason).toBe('the job was cancelled (SIGINT)');
  });

  it('removes its listeners when the run ends, however it ends', async () => {
    const signals = new EventEmitter();
    await cancellable(
      async () => {
        expect([signals.listenerCount('SIGINT'), signals.listenerCount('SIGTERM')]).toEqual([1, 1]);
      },
      { signals },
    );
    expect([signals.listenerCount('SIGINT'), signals.listenerCount('SIGTERM')]).toEqual([0, 0]);
    await expect(
      cancellable(
        async () => {
          throw new Error('failed');
        },
        { signals },
      ),
    ).rejects.toThrow('failed');
    expect([signals.listenerCount('SIGINT'), signals.listenerCount('SIGTERM')]).toEqual([0, 0]);
  });

  it('listens on the process by default', async () => {
    const before = [process.listenerCount('SIGINT'), process.listenerCount('SIGTERM')];
    await cancellable(async () => {
      expect([process.listenerCount('SIGINT'), process.listenerCount('SIGTERM')]).toEqual([before[0] + 1, before[1] + 1]);
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
    ['NaN', undefined],
  ])('%j -> %s', (text, minutes) => {
    expect(parseBudgetMinutes(text)).toBe(minutes);
  });
});
