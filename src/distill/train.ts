import type { LayersModel, Scalar, Tensor } from '@tensorflow/tfjs';
import type { Tf } from '../backend/resolve.js';
import type { DistillSettings } from '../config/schema.js';
import { rowLength } from '../data/batches.js';
import type { Dataset } from '../data/dataset.js';
import type { LoadedModel } from '../models/loaded-model.js';
import { isOutOfMemory } from '../errors.js';
import { nonFiniteRows } from '../measure/agreement.js';
import { abortReason, eventLoopPauser } from '../run-control.js';
import { permutation, seededRandom } from './random.js';
import { batchTargets, kdRunTargets, kdTerms } from './targets.js';
import type { EpochData } from './augment.js';
import { KernelTrap } from './net-kernel.js';
import { trainingStep, type TrainingStep } from './training-step.js';

export interface EpochProgress {
  epoch: number;
  epochs: number;
  loss: number;
  /** Top-1 agreement with the teacher on a fixed probe of the eval split, when one is given. */
  agreement?: number;
  /** Cohen's kappa of the same answers: near 0 for a student that always answers one class, whatever its agreement. */
  kappa?: number;
  tensors: number;
}

export interface TrainOptions {
  settings: DistillSettings;
  /** Teacher logits (or log-probabilities) for every training row, computed once beforehand. */
  teacherLogits: Float32Array;
  onEpoch?: (progress: EpochProgress) => void;
  /**
   * Measures agreement (and kappa) after each epoch for progress lines; optional. With the kernel
   * step it is given `predict`, the student's logits on rows of features straight from the
   * kernel's memory (inference mode): the probe then needs no copy of the weights into TF.js and
   * no TF.js inference. Without it, the student's variables are up to date for a TF.js pass.
   */
  probe?: (
    predict?: (x: Float32Array, rows: number) => Float32Array,
  ) => Promise<number | { agreement: number; kappa: number }>;
  /** Told after each step how many rows training has done, over every epoch, of how many. */
  onRows?: (done: number, total: number) => void;
  /** Aborts between batches (SIGTERM, a time budget); the epochs done so far are kept. */
  signal?: AbortSignal;
  /** Pins the training step; by default `trainingStep` picks the fastest for the student and backend. */
  step?: TrainingStep['kind'];
  /** Told once which step trains the student, on which backend, and why not the kernel if not. */
  onStep?: (path: TrainingPath) => void;
  /**
   * Each epoch's rows and the teacher's logits on them (distill.augment: rows augmented afresh);
   * without it every epoch trains on `train` and `teacherLogits`. Logits for fewer rows than the
   * split (a pass stopped by the signal) end training as an abort.
   */
  epochData?: (epoch: number) => Promise<EpochData>;
}

/** How the student is trained: for the log and the report. */
export interface TrainingPath {
  kind: TrainingStep['kind'];
  backend: string;
  whyNotKernel?: string;
  /** The kernel step's module: relaxed-simd or simd128. */
  kernelModule?: string;
  /** The kernel step's threads (distill.threads, resolved). */
  threads?: number;
}

export interface TrainResult {
  epochsCompleted: number;
  loss: number[];
  /** Set when training stopped early: a non-finite loss or an abort. */
  stoppedBecause?: string;
  /** 'loss' for a non-finite loss, 'abort' for a signal or budget. */
  stopKind?: 'loss' | 'abort';
  /**
   * With a non-finite loss, what made it so when it was not training itself: the teacher's soft
   * targets were not finite, or the student's weights were not before its first step. The run
   * names the file at fault; without it, the learning rate or the data's scale is the suspect.
   */
  nonFiniteInput?: 'teacher outputs' | 'student weights';
  /** The batch size training ended with (lower than configured after out-of-memory retries). */
  batchSize: number;
  notes: string[];
}

/** The smallest batch size an out-of-memory retry may halve down to. */
export const MIN_BATCH_SIZE = 8;

/**
 * The KD loop. It is owned here rather than delegated to `model.fit`, because fit shuffles with
 * Math.random and reseeds nothing: this loop draws every permutation and dropout mask from the
 * config's seed, so the same config gives the same student.
 */
export async function distill(
  tf: Tf,
  student: LoadedModel,
  train: Dataset,
  options: TrainOptions,
): Promise<TrainResult> {
  const { settings, teacherLogits } = options;
  const model = student.layers as LayersModel;
  const step = trainingStep(tf, student, {
    learningRate: settings.learningRate,
    terms: kdTerms(settings, train.y !== undefined),
    sampleShape: train.sampleShape,
    maxRows: settings.batchSize,
    kind: options.step,
    seed: settings.seed,
    threads: settings.threads,
  });
  options.onStep?.({
    kind: step.kind,
    backend: tf.getBackend(),
    whyNotKernel: step.whyNotKernel,
    ...(step.kernelModule ? { kernelModule: step.kernelModule } : {}),
    ...(step.threads ? { threads: step.threads } : {}),
  });
  const random = seededRandom(settings.seed);
  const width = rowLength(train.sampleShape);
  const classes = student.outputWidth;
  const dropouts = model.layers.filter((l) => l.getClassName() === 'Dropout') as Array<{ seed?: number }>;
  const losses: number[] = [];
  const notes: string[] = [];
  let batchSize = settings.batchSize;
  let stepCount = 0;
  let rowsDone = 0;
  const pause = eventLoopPauser();
  const done = (extra: Partial<TrainResult> & { epochsCompleted: number }): TrainResult => ({
    loss: losses,
    batchSize,
    notes,
    ...extra,
  });
  // Read before any step changes them: a NaN loss from weights that were never finite is not the learning rate's.
  const brokenWeight = firstNonFiniteWeight(model);
  let epochLoss: EpochLoss | undefined;
  // The KD targets of every row, once per run: they do not change between epochs, unless each
  // epoch brings its own rows and teacher logits (augmentation), which recomputes them.
  const fixedTargets = options.epochData ? undefined : kdRunTargets(teacherLogits, train.y, classes, settings);
  let epochRows: Dataset = train;
  let epochLogits = teacherLogits;
  // The kernel copies a batch into its own memory at once, so one buffer serves every step; the
  // TF.js steps get fresh arrays, which a backend may keep without copying.
  const reuse = step.kind === 'kernel';
  let x = new Float32Array(batchSize * width);
  let targets = new Float32Array(batchSize * classes);
  try {
    const chunks = Math.ceil(train.size / train.chunkRows);
    for (let epoch = 1; epoch <= settings.epochs; epoch++) {
      if (options.epochData) {
        ({ rows: epochRows, teacherLogits: epochLogits } = await options.epochData(epoch));
        if (epochLogits.length < train.size * classes) {
          const why = `the teacher's pass over epoch ${epoch}'s augmented rows stopped: ${options.signal ? abortReason(options.signal) : 'it was cut short'}`;
          return done({ epochsCompleted: epoch - 1, stoppedBecause: why, stopKind: 'abort' });
        }
      }
      const runTargets = fixedTargets ?? kdRunTargets(epochLogits, train.y, classes, settings);
      // Shuffled by chunk order, then within each chunk: a streamed split holds one chunk at a
      // time. An in-memory split is one chunk, so this is a plain permutation of every row.
      const chunkOrder = chunks > 1 ? permutation(chunks, random) : [0];
      epochLoss = new EpochLoss(tf, train.size);
      for (const chunk of chunkOrder) {
        const base = chunk * train.chunkRows;
        const rows = Math.min(train.chunkRows, train.size - base);
        const features = await epochRows.read(base, rows);
        const order = permutation(rows, random);
        for (let start = 0; start < rows;) {
          await pause();
          if (options.signal?.aborted) {
            return done({
              epochsCompleted: epoch - 1,
              stoppedBecause: abortReason(options.signal, 'training was aborted'),
              stopKind: 'abort',
            });
          }
          const local = order.subarray(start, Math.min(start + batchSize, rows));
          const global = base === 0 ? local : local.map((i) => i + base);
          // Dropout layers draw their mask from their seed; a new seed per step keeps masks
          // different between steps and identical between runs.
          for (const layer of dropouts) layer.seed = settings.seed * 7919 + stepCount;
          if (!reuse) [x, targets] = [new Float32Array(local.length * width), new Float32Array(local.length * classes)];
          const constant = batchTargets(runTargets, global, classes, targets);
          gather(features, width, local, x);
          let batchLoss: number | Scalar;
          try {
            batchLoss = step.run(
              x.subarray(0, local.length * width),
              targets.subarray(0, local.length * classes),
              local.length,
            );
          } catch (error) {
            // A batch too large for the device: halve it and retry the same rows, down to a floor.
            if (error instanceof KernelTrap || !isOutOfMemory(error) || batchSize <= MIN_BATCH_SIZE) throw error;
            const halved = Math.max(MIN_BATCH_SIZE, Math.floor(batchSize / 2));
            notes.push(`Out of memory at batch size ${batchSize} in epoch ${epoch}; continued with ${halved}.`);
            batchSize = halved;
            continue;
          }
          epochLoss.add(batchLoss, local.length, constant);
          stepCount++;
          start += local.length;
          rowsDone += local.length;
          options.onRows?.(rowsDone, settings.epochs * train.size);
        }
      }
      const loss = await epochLoss.read();
      losses.push(loss);
      if (!Number.isFinite(loss))
        return done({
          epochsCompleted: epoch,
          stopKind: 'loss',
          ...whyNotFinite(loss, epoch, epochLogits, classes, brokenWeight),
        });
      // The weights go back into TF.js once, in `finally` (at the end, or when training is cut
      // short); a probe without the kernel's predict runs in TF.js and needs them now.
      if (options.probe && !step.predict) step.sync();
      const probed = options.probe ? await options.probe(step.predict) : undefined;
      const { agreement, kappa } =
        typeof probed === 'number' ? { agreement: probed, kappa: undefined } : (probed ?? {});
      options.onEpoch?.({ epoch, epochs: settings.epochs, loss, agreement, kappa, tensors: tf.memory().numTensors });
    }
    return done({ epochsCompleted: settings.epochs });
  } finally {
    // An epoch cut short (a signal, an error) leaves its device-side sum behind.
    epochLoss?.dispose();
    // Every way out (the last epoch, an abort, a non-finite loss, an error) leaves a usable student.
    step.sync();
    step.dispose();
  }
}

/** Rows `rows` of `source` ([*, width]) into `into`, one after another. */
function gather(source: Float32Array, width: number, rows: ArrayLike<number>, into: Float32Array): void {
  // A row at a time by TypedArray.set (a memcpy): an element loop cost 2% of an image student's epoch.
  for (let i = 0; i < rows.length; i++) into.set(source.subarray(rows[i] * width, (rows[i] + 1) * width), i * width);
}

/**
 * Why the loss of `epoch` is not finite, in words that blame the right thing: the teacher's soft
 * targets when they hold NaN or Infinity (the learning rate cannot cause those), the student's
 * weights when they were not finite before training began, and only otherwise the learning rate
 * or the data's scale.
 */
function whyNotFinite(
  loss: number,
  epoch: number,
  teacherLogits: Float32Array,
  classes: number,
  brokenWeight: string | undefined,
): Pick<TrainResult, 'stoppedBecause' | 'nonFiniteInput'> {
  const became = `the loss became ${loss} in epoch ${epoch}`;
  const teacher = nonFiniteRows(teacherLogits, classes);
  if (teacher.count > 0) {
    const rows = teacherLogits.length / classes;
    return {
      stoppedBecause: `${became} because the teacher's outputs are not finite (NaN or Infinity) on ${teacher.count} of ${rows} training rows (the first is row ${teacher.first}), not because of the learning rate; check the teacher and the data it is fed`,
      nonFiniteInput: 'teacher outputs',
    };
  }
  if (brokenWeight !== undefined) {
    return {
      stoppedBecause: `${became} because the student's initial weights are not finite (NaN or Infinity in ${brokenWeight}), not because of the learning rate; check the student's weights`,
      nonFiniteInput: 'student weights',
    };
  }
  return { stoppedBecause: `${became}; lower distill.learningRate or check the data's scale` };
}

/** The name of the first of a model's weights holding NaN or Infinity, or undefined when all are finite. */
export function firstNonFiniteWeight(model: LayersModel): string | undefined {
  for (const weight of model.weights) {
    const values = weight.read().dataSync();
    for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) return weight.originalName ?? weight.name;
  }
  return undefined;
}

/**
 * An epoch's mean loss: what steps left on the device, summed there and read once per epoch
 * (reading it every step would stall a GPU backend); what they returned to the host, and the
 * teacher-only part (see kdTargets), in float64.
 */
class EpochLoss {
  /** Created by the first loss left on the device: a step that returns numbers needs no tensor. */
  private onDevice?: Tensor;
  private onHost = 0;

  constructor(
    private readonly tf: Tf,
    private readonly rows: number,
  ) {}

  /** A batch of `count` rows: its loss, and its share of the teacher-only constant. */
  add(loss: number | Scalar, count: number, constant: number): void {
    if (typeof loss === 'number') {
      this.onHost += (loss * count) / this.rows;
    } else {
      const sum = this.tf.tidy(() =>
        this.tf.add(this.onDevice ?? this.tf.scalar(0), this.tf.mul(loss, count / this.rows)),
      );
      this.onDevice?.dispose();
      loss.dispose();
      this.onDevice = sum;
    }
    this.onHost += constant / this.rows;
  }

  async read(): Promise<number> {
    const loss = (this.onDevice ? (await this.onDevice.data())[0] : 0) + this.onHost;
    this.dispose();
    return loss;
  }

  dispose(): void {
    this.onDevice?.dispose();
    this.onDevice = undefined;
  }
}
