import type { LayersModel, Scalar, Tensor } from '@tensorflow/tfjs';
import type { Tf } from '../backend/resolve.js';
import type { DistillSettings } from '../config/schema.js';
import { gatherRows, rowLength } from '../data/batches.js';
import type { Dataset } from '../data/dataset.js';
import type { LoadedModel } from '../models/model.js';
import { permutation, seededRandom } from './random.js';
import { kdTargets, kdTerms } from './targets.js';
import { trainingStep, type TrainingStep } from './training-step.js';

export interface EpochProgress {
  epoch: number;
  epochs: number;
  loss: number;
  /** Top-1 agreement with the teacher on a fixed probe of the eval split, when one is given. */
  agreement?: number;
  tensors: number;
}

export interface TrainOptions {
  settings: DistillSettings;
  /** Teacher logits (or log-probabilities) for every training row, computed once beforehand. */
  teacherLogits: Float32Array;
  onEpoch?: (progress: EpochProgress) => void;
  /** Measures agreement after each epoch for progress lines; optional. */
  probe?: () => Promise<number>;
  /** Aborts between batches (SIGTERM, a time budget); the epochs done so far are kept. */
  signal?: AbortSignal;
  /** Pins the training step; by default `trainingStep` picks the fastest for the student and backend. */
  step?: TrainingStep['kind'];
  /** Told once which step trains the student, on which backend, and why not the kernel if not. */
  onStep?: (path: TrainingPath) => void;
}

/** How the student is trained: for the log and the report. */
export interface TrainingPath {
  kind: TrainingStep['kind'];
  backend: string;
  whyNotKernel?: string;
}

export interface TrainResult {
  epochsCompleted: number;
  loss: number[];
  /** Set when training stopped early: a non-finite loss or an abort. */
  stoppedBecause?: string;
  /** 'loss' for a non-finite loss, 'abort' for a signal or budget. */
  stopKind?: 'loss' | 'abort';
  /** The batch size training ended with (lower than configured after out-of-memory retries). */
  batchSize: number;
  notes: string[];
}

/** The smallest batch size an out-of-memory retry may halve down to. */
export const MIN_BATCH_SIZE = 8;

/** Messages TF.js backends use for device memory exhaustion (tfjs-node: ResourceExhausted/OOM; WebGL/WebGPU: allocation failures). */
const OUT_OF_MEMORY = /\bOOM\b|out of memory|ResourceExhausted|failed to allocate|allocation failed/i;

export function isOutOfMemory(error: unknown): boolean {
  return OUT_OF_MEMORY.test(error instanceof Error ? error.message : String(error));
}

/**
 * The KD loop. It is owned here rather than delegated to `model.fit`, because fit shuffles with
 * Math.random and reseeds nothing: this loop draws every permutation and dropout mask from the
 * config's seed, so the same config gives the same student.
 */
export async function distill(tf: Tf, student: LoadedModel, train: Dataset, options: TrainOptions): Promise<TrainResult> {
  const { settings, teacherLogits } = options;
  const model = student.layers as LayersModel;
  const step = trainingStep(tf, student, {
    learningRate: settings.learningRate,
    terms: kdTerms(settings, train.y !== undefined),
    sampleShape: train.sampleShape,
    maxRows: settings.batchSize,
    kind: options.step,
    seed: settings.seed,
  });
  options.onStep?.({ kind: step.kind, backend: tf.getBackend(), whyNotKernel: step.whyNotKernel });
  const random = seededRandom(settings.seed);
  const width = rowLength(train.sampleShape);
  const classes = student.outputWidth;
  const dropouts = model.layers.filter((l) => l.getClassName() === 'Dropout') as Array<{ seed?: number }>;
  const losses: number[] = [];
  const notes: string[] = [];
  let batchSize = settings.batchSize;
  let stepCount = 0;
  let lastYield = performance.now();
  const done = (extra: Partial<TrainResult> & { epochsCompleted: number }): TrainResult => ({ loss: losses, batchSize, notes, ...extra });
  try {
    const chunks = Math.ceil(train.size / train.chunkRows);
    for (let epoch = 1; epoch <= settings.epochs; epoch++) {
      // Shuffled by chunk order, then within each chunk: a streamed split holds one chunk at a
      // time. An in-memory split is one chunk, so this is a plain permutation of every row.
      const chunkOrder = chunks > 1 ? permutation(chunks, random) : [0];
      // The epoch's loss: what steps left on the device, summed there and read once per epoch;
      // what they returned to the host, and the teacher-only part (see kdTargets), in float64.
      let lossSum: Tensor = tf.scalar(0);
      let lossOnHost = 0;
      for (const chunk of chunkOrder) {
        const base = chunk * train.chunkRows;
        const rows = Math.min(train.chunkRows, train.size - base);
        const features = await train.read(base, rows);
        const order = permutation(rows, random);
        for (let start = 0; start < rows;) {
          // On CPU backends every await below resolves as a microtask, which would starve the event
          // loop: no timer (the time budget) and no signal handler (SIGTERM) could ever run.
          if (performance.now() - lastYield > 50) {
            await new Promise((resolve) => setImmediate(resolve));
            lastYield = performance.now();
          }
          if (options.signal?.aborted) {
            lossSum.dispose();
            return done({ epochsCompleted: epoch - 1, stoppedBecause: abortReason(options.signal), stopKind: 'abort' });
          }
          const local = order.subarray(start, Math.min(start + batchSize, rows));
          const global = base === 0 ? local : local.map((i) => i + base);
          // Dropout layers draw their mask from their seed; a new seed per step keeps masks
          // different between steps and identical between runs.
          for (const layer of dropouts) layer.seed = settings.seed * 7919 + stepCount;
          const batch = kdTargets(teacherLogits, train.y, global, classes, settings);
          let batchLoss: number | Scalar;
          try {
            batchLoss = step.run(gatherRows(features, width, local), batch.targets, local.length);
          } catch (error) {
            // A batch too large for the device: halve it and retry the same rows, down to a floor.
            if (!isOutOfMemory(error) || batchSize <= MIN_BATCH_SIZE) throw error;
            const halved = Math.max(MIN_BATCH_SIZE, Math.floor(batchSize / 2));
            notes.push(`Out of memory at batch size ${batchSize} in epoch ${epoch}; continued with ${halved}.`);
            batchSize = halved;
            continue;
          }
          if (typeof batchLoss === 'number') {
            lossOnHost += (batchLoss * local.length) / train.size;
          } else {
            const deviceLoss = batchLoss;
            const weighted = tf.tidy(() => tf.add(lossSum, tf.mul(deviceLoss, local.length / train.size)));
            lossSum.dispose();
            deviceLoss.dispose();
            lossSum = weighted;
          }
          lossOnHost += batch.constant / train.size;
          stepCount++;
          start += local.length;
        }
      }
      // One read per epoch: reading the loss every step would stall a GPU backend.
      const loss = (await lossSum.data())[0] + lossOnHost;
      lossSum.dispose();
      losses.push(loss);
      step.sync();
      if (!Number.isFinite(loss)) {
        return done({
          epochsCompleted: epoch,
          stoppedBecause: `the loss became ${loss} in epoch ${epoch}; lower distill.learningRate or check the data's scale`,
          stopKind: 'loss',
        });
      }
      const agreement = options.probe ? await options.probe() : undefined;
      options.onEpoch?.({ epoch, epochs: settings.epochs, loss, agreement, tensors: tf.memory().numTensors });
    }
    return done({ epochsCompleted: settings.epochs });
  } finally {
    step.sync();
    step.dispose();
  }
}

function abortReason(signal: AbortSignal): string {
  const reason = signal.reason;
  return reason instanceof Error ? reason.message : typeof reason === 'string' ? reason : 'training was aborted';
}
