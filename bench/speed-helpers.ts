// What the speed benchmarks (bench:speed, bench:speed-gates) share: the reference student, a
// latency measured after a long warm-up, and a tally of verdicts.
import type { Tensor } from '@tensorflow/tfjs';
import type { LayerSpec } from '../src/config/schema.js';
import { median } from '../src/measure/intervals.js';
import { timeOnce, type Timed } from '../src/measure/timing.js';

/** The reference student of issue #6 and of the bundled example: a Dense 32 -> 10 head on 64 features. */
export const REFERENCE_STUDENT: { layers: LayerSpec[] } = {
  layers: [
    { type: 'dense', units: 32, activation: 'relu' },
    { type: 'dense', units: 10 },
  ],
};

/**
 * A model's median batch-1 latency after a long warm-up: the first few hundred calls run slower
 * while V8 and the backend warm up, so the first third of the calls is left out.
 */
export async function warmMedianMs(model: Timed, input: Tensor, calls = 3000): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < calls; i++) samples.push(await timeOnce(model, input));
  return median(samples.slice(Math.floor(calls / 3)));
}

/** "18 inconclusive, 2 fail": how many times each verdict came up. */
export function tally(verdicts: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const verdict of verdicts) counts.set(verdict, (counts.get(verdict) ?? 0) + 1);
  return [...counts].map(([verdict, n]) => `${n} ${verdict}`).join(', ');
}
