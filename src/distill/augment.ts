import type { Tf } from '../backend/resolve.js';
import { onBackend } from '../backend/resolve.js';
import type { AugmentSettings } from '../config/schema.js';
import { inMemoryDataset, type Dataset } from '../data/dataset.js';
import { InputError } from '../errors.js';
import type { LoadedModel } from '../models/loaded-model.js';
import { passBatch, predictLogits } from '../models/predict.js';
import { seededRandom } from './random.js';

/** What one epoch trains on: its (augmented) rows and the teacher's logits on exactly those rows. */
export interface EpochData {
  rows: Dataset;
  teacherLogits: Float32Array;
}

/** distill.augment needs image rows, [N, height, width, channels]: refused on anything else before training. */
export function checkAugment(sampleShape: readonly number[], where: string): void {
  if (sampleShape.length !== 3) {
    throw new InputError(
      where,
      `needs image-shaped inputs [N, height, width, channels], but the train split's samples have shape [${sampleShape.join(', ')}]; remove distill.augment for this data.`,
    );
  }
}

/** The seed of one row's draws in one epoch: the same row and epoch draw the same, however the rows are batched. */
function rowSeed(seed: number, epoch: number, row: number): number {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ epoch, 0xc2b2ae35);
  h = Math.imul(h ^ row, 0x27d4eb2f);
  return (h ^ (h >>> 15)) >>> 0;
}

/**
 * One [height, width, channels] row augmented in place: crop (a shift with zero fill), flip,
 * brightness, contrast, in that order, each drawn from `random` only when it is set.
 */
export function augmentRow(
  row: Float32Array,
  [height, width, channels]: readonly number[],
  settings: AugmentSettings,
  random: () => number,
  scratch: Float32Array,
): void {
  const padding = settings.crop?.padding ?? 0;
  const dy = padding > 0 ? Math.floor(random() * (2 * padding + 1)) - padding : 0;
  const dx = padding > 0 ? Math.floor(random() * (2 * padding + 1)) - padding : 0;
  const flip = settings.flip && random() < 0.5;
  if (dy !== 0 || dx !== 0 || flip) {
    scratch.set(row);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const sy = y + dy;
        // The flip mirrors the cropped image: its column x is the crop's column width - 1 - x.
        const sx = (flip ? width - 1 - x : x) + dx;
        const to = (y * width + x) * channels;
        const inside = sy >= 0 && sy < height && sx >= 0 && sx < width;
        for (let c = 0; c < channels; c++) row[to + c] = inside ? scratch[(sy * width + sx) * channels + c] : 0;
      }
    }
  }
  if (settings.brightness > 0) {
    const delta = (random() * 2 - 1) * settings.brightness;
    for (let i = 0; i < row.length; i++) row[i] += delta;
  }
  if (settings.contrast > 0) {
    const factor = 1 + (random() * 2 - 1) * settings.contrast;
    const pixels = height * width;
    for (let c = 0; c < channels; c++) {
      let sum = 0;
      for (let p = 0; p < pixels; p++) sum += row[p * channels + c];
      const mean = sum / pixels;
      for (let p = 0; p < pixels; p++) row[p * channels + c] = (row[p * channels + c] - mean) * factor + mean;
    }
  }
}

/** Rows [first, first + count) of `x` (a copy), augmented as epoch `epoch` draws them. */
export function augmentRows(
  x: Float32Array,
  sampleShape: readonly number[],
  first: number,
  epoch: number,
  settings: AugmentSettings,
  seed: number,
): Float32Array {
  const width = sampleShape.reduce((a, b) => a * b, 1);
  const out = Float32Array.from(x);
  const scratch = new Float32Array(width);
  for (let i = 0; i < out.length / width; i++) {
    augmentRow(
      out.subarray(i * width, (i + 1) * width),
      sampleShape,
      settings,
      seededRandom(rowSeed(seed, epoch, first + i)),
      scratch,
    );
  }
  return out;
}

/** The split as epoch `epoch` augments it: held whole when the split is, else augmented as each chunk is read. */
export async function augmentedSplit(
  train: Dataset,
  epoch: number,
  settings: AugmentSettings,
  seed: number,
): Promise<Dataset> {
  if (!train.streamed) {
    const x = augmentRows(await train.read(0, train.size), train.sampleShape, 0, epoch, settings, seed);
    return {
      ...inMemoryDataset(
        train.source,
        x,
        train.sampleShape,
        train.y ? { y: train.y, source: train.labelSource ?? train.source } : undefined,
      ),
      classes: train.classes,
    };
  }
  return {
    ...train,
    read: async (start, count) =>
      augmentRows(await train.read(start, count), train.sampleShape, start, epoch, settings, seed),
  };
}

export interface AugmentPass {
  tf: Tf;
  teacher: LoadedModel;
  train: Dataset;
  settings: AugmentSettings;
  /** distill.augment.seed, else distill.seed. */
  seed: number;
  /** The inference backend (a TF.js registry name) and its name for the batch rule: the teacher runs there, whatever the student trains on. */
  engine: string;
  backend: string;
  stop?: AbortSignal;
}

/**
 * Each epoch's rows, augmented afresh, and the teacher's logits on them: one teacher pass per
 * epoch, never cached (the rows differ every epoch). A pass cut short by `stop` returns fewer logits.
 */
export function augmentedEpochs({
  tf,
  teacher,
  train,
  settings,
  seed,
  engine,
  backend,
  stop,
}: AugmentPass): (epoch: number) => Promise<EpochData> {
  return async (epoch) => {
    const rows = await augmentedSplit(train, epoch, settings, seed);
    const batch = passBatch(train.sampleShape, teacher.runtime?.label ?? backend);
    const teacherLogits = await onBackend(tf, engine, () => predictLogits(tf, teacher, rows, rows.size, batch, stop));
    return { rows, teacherLogits };
  };
}
