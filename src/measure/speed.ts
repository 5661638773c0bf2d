import type { Tensor } from '@tensorflow/tfjs';
import type { Tf } from '../backend/resolve.js';
import type { MeasureSettings } from '../config/schema.js';
import type { Dataset } from '../data/dataset.js';
import { inferenceBatch } from '../models/predict.js';
import type { MeasuredInterval } from './intervals.js';
import type { StageMetrics } from './metrics.js';
import { comparisonOf, pairedTiming, type SpeedComparison } from './paired-speed.js';
import {
  InterleavedTimer,
  LATENCY_SETTLE,
  speedLimits,
  timeUntilDecided,
  TimedMetrics,
  type MetricBound,
  type PerRound,
  type SpeedLimits,
  type Timed,
} from './timing.js';

/** The speed stage's metrics, as the catalogue names them: a missing or misspelt one does not compile. */
export type SpeedMetrics = StageMetrics<'speed'>;

export interface SpeedRequest {
  /** Absolute gates on speed metrics: their pair's rounds go on until each is decided or the budget is spent. */
  bounds?: readonly MetricBound[];
  /** The baseline's student, timed against the new one on the batch-1 input, and the largest latency ratio its gates allow. */
  baseline?: { student: Timed; allowedRatio: (baselineMs: number) => number };
  /** By default `measure.speedBudgetSeconds` from now. */
  limits?: SpeedLimits;
}

export interface SpeedResult {
  metrics: SpeedMetrics & StageMetrics<'paired speed'>;
  /** Every speed metric's median over rounds with its confidence interval: what speed gates are judged on. */
  intervals: Record<string, MeasuredInterval>;
  /** The new student against the baseline's, when one was given. */
  comparison?: SpeedComparison;
}

/**
 * Batch-1 latency and large-batch throughput of teacher and student, timed interleaved in the same
 * loop after a warm-up, alternating which goes first each round, so that machine noise (another
 * job, thermal drift, a GC) lands on both alike instead of on whichever ran second; and the new
 * student against the baseline's when asked. Every metric is the median of its per-round values
 * (a speed-up is the median of the per-round ratios) with the interval of that median. Without
 * bounds the fixed rounds are all that is timed; with bounds, the pairs they concern get more
 * rounds until every bound is decided or the budget is spent.
 */
export async function measureSpeed(
  tf: Tf,
  teacher: Timed,
  student: Timed,
  data: Dataset,
  settings: MeasureSettings,
  { bounds = [], baseline, limits = speedLimits(settings.speedBudgetSeconds) }: SpeedRequest = {},
): Promise<SpeedResult> {
  const single = await sampleBatch(tf, data, 1);
  const batchSize = throughputRows(settings.throughputBatch, data, tf.getBackend());
  const batch = await sampleBatch(tf, data, batchSize);
  try {
    const fixed = () => bounds;
    const latencyRounds = {
      'speed.teacherMs': (teacherMs) => teacherMs,
      'speed.studentMs': (_, studentMs) => studentMs,
      'speed.speedup': (teacherMs, studentMs) => teacherMs / studentMs,
    } satisfies Partial<Record<keyof SpeedMetrics, PerRound>>;
    const throughputRounds = {
      'speed.teacherThroughput': (teacherMs) => (batchSize * 1000) / teacherMs,
      'speed.studentThroughput': (_, studentMs) => (batchSize * 1000) / studentMs,
      'speed.throughputSpeedup': (teacherMs, studentMs) => teacherMs / studentMs,
    } satisfies Partial<Record<keyof SpeedMetrics, PerRound>>;
    // Every speed metric is timed by one of the two pairs: a metric missing here does not compile.
    const everyMetric: Record<keyof SpeedMetrics, PerRound> = { ...latencyRounds, ...throughputRounds };
    const latency = new TimedMetrics(
      new InterleavedTimer(teacher, student, single, limits.clock),
      latencyRounds,
      { warmup: settings.warmup, rounds: settings.rounds, settle: LATENCY_SETTLE },
      fixed,
    );
    const throughput = new TimedMetrics(
      new InterleavedTimer(teacher, student, batch, limits.clock),
      throughputRounds,
      // Large batches take longer each: a third of the rounds keeps the phase short, and a cut
      // (a cancel, the run's end) keeps only a few of them.
      { warmup: Math.min(settings.warmup, 2), rounds: Math.max(3, Math.ceil(settings.rounds / 3)), minRounds: 3 },
      fixed,
    );
    const paired = baseline
      ? pairedTiming(student, baseline.student, single, {
          allowedRatio: baseline.allowedRatio,
          warmup: settings.warmup,
          clock: limits.clock,
        })
      : undefined;
    await timeUntilDecided(paired ? [latency, throughput, paired] : [latency, throughput], limits);
    const intervals: Record<string, MeasuredInterval> = {
      ...latency.intervals(),
      ...throughput.intervals(),
      ...paired?.intervals(),
    };
    const timed = [...Object.keys(everyMetric), ...(paired?.metrics ?? [])];
    const metrics = Object.fromEntries(timed.map((name) => [name, intervals[name].value])) as SpeedResult['metrics'];
    return {
      metrics,
      intervals,
      ...(paired && baseline ? { comparison: comparisonOf(paired, baseline.allowedRatio) } : {}),
    };
  } finally {
    single.dispose();
    batch.dispose();
  }
}

/**
 * Rows of the throughput batch: `measure.throughputBatch`, at most the eval split, and at most
 * what the memory rule of every inference call allows (`inferenceBatch`, the teacher's pass's
 * rule): a 224x224x3 split gets 13 rows on wasm, where 64 rows overflowed its heap.
 */
export function throughputRows(
  throughputBatch: number,
  data: Pick<Dataset, 'size' | 'sampleShape'>,
  backend: string,
): number {
  return Math.max(1, Math.min(throughputBatch, data.size, inferenceBatch(data.sampleShape, backend)));
}

async function sampleBatch(tf: Tf, data: Dataset, rows: number): Promise<Tensor> {
  return tf.tensor(await data.read(0, rows), [rows, ...data.sampleShape]);
}
