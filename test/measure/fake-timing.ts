import { seededRandom } from '../../src/distill/random.js';
import type { Timed } from '../../src/measure/timing.js';

// Models whose predict time is decided by the test, on a clock the test owns: timing logic is
// tested without real timings, so nothing here depends on how busy the machine is.

/** A clock that only the fake models move. */
export class FakeClock {
  now = 0;
  readonly read = (): number => this.now;
}

/** A model each of whose calls takes `latencyMs()` on `clock`; `onCall` runs after each (e.g. to abort). */
export function fakeModel(clock: FakeClock, latencyMs: () => number, onCall?: () => void): Timed & { calls: number } {
  const model = {
    calls: 0,
    predict: () => {
      clock.now += latencyMs();
      model.calls++;
      onCall?.();
      return { data: async () => new Float32Array(1), dispose: () => {} } as never;
    },
  };
  return model;
}

/**
 * Latencies like a busy shared runner's: `baseMs` with 20% uniform jitter, and one call in
 * twelve hit by a spike of up to 3x. Seeded, so a test's timings are the same on every run.
 */
export function noisyLatency(baseMs: number, seed: number): () => number {
  const random = seededRandom(seed);
  return () => baseMs * (1 + 0.2 * random()) * (random() < 1 / 12 ? 1 + 2 * random() : 1);
}
