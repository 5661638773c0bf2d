import type { Tensor } from '@tensorflow/tfjs';
import type { Tf } from '../backend/resolve.js';
import type { MeasureSettings } from '../config/schema.js';
import type { Dataset } from '../data/dataset.js';
import type { LoadedModel } from '../models/model.js';

export interface SpeedMetrics {
  'speed.teacherMs': number;
  'speed.studentMs': number;
  'speed.speedup': number;
  'speed.teacherThroughput': number;
  'speed.studentThroughput': number;
  'speed.throughputSpeedup': number;
}

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

async function interleave(a: LoadedModel, b: LoadedModel, input: Tensor, warmup: number, rounds: number): Promise<{ teacher: number; student: number }> {
  for (let i = 0; i < warmup; i++) {
    await timeOnce(a, input);
    await timeOnce(b, input);
  }
  const teacherTimes: number[] = [];
  const studentTimes: number[] = [];
  for (let round = 0; round < rounds; round++) {
    if (round % 2 === 0) {
      teacherTimes.push(await timeOnce(a, input));
      studentTimes.push(await timeOnce(b, input));
    } else {
      studentTimes.push(await timeOnce(b, input));
      teacherTimes.push(await timeOnce(a, input));
    }
  }
  return { teacher: median(teacherTimes), student: median(studentTimes) };
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
