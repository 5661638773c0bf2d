import type { Tensor } from '@tensorflow/tfjs';
import type { Tf } from '../backend/resolve.js';
import type { MeasureSettings } from '../config/schema.js';
import type { Dataset } from '../data/dataset.js';
import type { LoadedModel } from '../models/model.js';
import type { StageMetrics } from './metrics.js';

/** The speed stage's metrics, as the catalogue names them: a missing or misspelt one does not compile. */
export type SpeedMetrics = StageMetrics<'speed'>;

/**
 * Batch-1 latency and large-batch throughput of teacher and student, timed interleaved in the same
 * loop after a warm-up, alternating which goes first each round, so that machine noise (another
 * job, thermal drift, a GC) lands on both alike instead of on whichever ran second.
 */
export async function measureSpeed(tf: Tf, teacher: LoadedModel, student: LoadedModel, data: Dataset, settings: MeasureSettings): Promise<SpeedMetrics> {
  const single = await sampleBatch(tf, data, 1);
  const batchSize = Math.min(settings.throughputBatch, data.size);
  const batch = await sampleBatch(tf, data, batchSize);
  try {
    const latency = await interleave(teacher, student, single, settings.warmup, settings.rounds);
    // Large batches take longer each: a third of the rounds keeps the phase short.
    const throughput = await interleave(teacher, student, batch, Math.min(settings.warmup, 2), Math.max(3, Math.ceil(settings.rounds / 3)));
    const teacherThroughput = (batchSize * 1000) / throughput.teacher;
    const studentThroughput = (batchSize * 1000) / throughput.student;
    return {
      'speed.teacherMs': latency.teacher,
      'speed.studentMs': latency.student,
      'speed.speedup': latency.teacher / latency.student,
      'speed.teacherThroughput': teacherThroughput,
      'speed.studentThroughput': studentThroughput,
      'speed.throughputSpeedup': studentThroughput / teacherThroughput,
    };
  } finally {
    single.dispose();
    batch.dispose();
  }
}

async function sampleBatch(tf: Tf, data: Dataset, rows: number): Promise<Tensor> {
  return tf.tensor(await data.read(0, rows), [rows, ...data.sampleShape]);
}

async function interleave(
  teacher: LoadedModel,
  student: LoadedModel,
  input: Tensor,
  warmup: number,
  rounds: number,
): Promise<{ teacher: number; student: number }> {
  const times = await timeInterleaved(teacher, student, input, rounds, warmup);
  return { teacher: median(times.first), student: median(times.second) };
}

export interface InterleavedTimes {
  first: number[];
  second: number[];
}

/**
 * Times two models on the same input round by round after a warm-up, alternating which goes
 * first, so that drift within a round lands on both alike. Appends to `times` when given, so a
 * caller can keep measuring in blocks.
 */
export async function timeInterleaved(
  first: Pick<LoadedModel, 'predict'>,
  second: Pick<LoadedModel, 'predict'>,
  input: Tensor,
  rounds: number,
  warmup = 0,
  times: InterleavedTimes = { first: [], second: [] },
): Promise<InterleavedTimes> {
  for (let i = 0; i < warmup; i++) {
    await timeOnce(first, input);
    await timeOnce(second, input);
  }
  for (let round = 0; round < rounds; round++) {
    if (times.first.length % 2 === 0) {
      times.first.push(await timeOnce(first, input));
      times.second.push(await timeOnce(second, input));
    } else {
      times.second.push(await timeOnce(second, input));
      times.first.push(await timeOnce(first, input));
    }
  }
  return times;
}

/** Wall time of one forward pass including the read-back, which forces asynchronous backends to finish. */
export async function timeOnce(model: Pick<LoadedModel, 'predict'>, input: Tensor): Promise<number> {
  const start = performance.now();
  const output = model.predict(input);
  await output.data();
  const elapsed = performance.now() - start;
  output.dispose();
  return elapsed;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}
