import { beforeAll, describe, expect, it } from 'vitest';
import { resolveBackend, type Tf } from '../../src/backend/resolve.js';
import type { AugmentSettings } from '../../src/config/schema.js';
import { inMemoryDataset, type Dataset } from '../../src/data/dataset.js';
import { augmentedEpochs, augmentedSplit, augmentRows, checkAugment } from '../../src/distill/augment.js';
import { distill } from '../../src/distill/train.js';
import { InputError } from '../../src/errors.js';
import { buildStudent } from '../../src/models/student.js';
import { predictLogits } from '../../src/models/predict.js';
import { randomArray } from '../helpers.js';

let tf: Tf;
beforeAll(async () => {
  ({ tf } = await resolveBackend('cpu'));
});

const SHAPE = [6, 5, 2] as const;
const WIDTH = 6 * 5 * 2;
const ROWS = 32;
const none: AugmentSettings = { flip: false, brightness: 0, contrast: 0 };
const x = randomArray(ROWS * WIDTH, 3);
const row = (data: Float32Array, r: number) => Array.from(data.subarray(r * WIDTH, (r + 1) * WIDTH));
const at = (data: number[], y: number, col: number, c: number) => data[(y * SHAPE[1] + col) * SHAPE[2] + c];

describe('distill.augment: the transforms', () => {
  it('is the same for the same seed, epoch and row however the rows are batched, and differs by seed and epoch', () => {
    const settings: AugmentSettings = { flip: true, crop: { padding: 2 }, brightness: 0.2, contrast: 0.3 };
    const a = augmentRows(x, SHAPE, 0, 1, settings, 7);
    expect(Array.from(augmentRows(x, SHAPE, 0, 1, settings, 7))).toEqual(Array.from(a));
    // Rows 10..13 augmented alone, as a streamed chunk would be.
    const part = augmentRows(x.subarray(10 * WIDTH, 14 * WIDTH), SHAPE, 10, 1, settings, 7);
    expect(Array.from(part)).toEqual(Array.from(a.subarray(10 * WIDTH, 14 * WIDTH)));
    expect(Array.from(augmentRows(x, SHAPE, 0, 1, settings, 8))).not.toEqual(Array.from(a));
    expect(Array.from(augmentRows(x, SHAPE, 0, 2, settings, 7))).not.toEqual(Array.from(a));
    // The input is left as it was.
    expect(Array.from(x)).toEqual(Array.from(randomArray(ROWS * WIDTH, 3)));
  });

  it('flip: each row is itself or its exact left-right mirror, and both happen', () => {
    const out = augmentRows(x, SHAPE, 0, 1, { ...none, flip: true }, 7);
    let flipped = 0;
    for (let r = 0; r < ROWS; r++) {
      const [before, after] = [row(x, r), row(out, r)];
      const mirror = before.map((_, i) => {
        const c = i % SHAPE[2];
        const p = (i - c) / SHAPE[2];
        const [y, col] = [Math.floor(p / SHAPE[1]), p % SHAPE[1]];
        return at(before, y, SHAPE[1] - 1 - col, c);
      });
      if (after.every((v, i) => v === mirror[i])) flipped++;
      else expect(after).toEqual(before);
    }
    expect(flipped).toBeGreaterThan(4);
    expect(flipped).toBeLessThan(ROWS - 4);
  });

  it('crop: each row is shifted by at most `padding` each way, zero where the shift uncovers', () => {
    const padding = 2;
    const out = augmentRows(x, SHAPE, 0, 1, { ...none, crop: { padding } }, 7);
    const shifts = new Set<string>();
    for (let r = 0; r < ROWS; r++) {
      const [before, after] = [row(x, r), row(out, r)];
      const match = [];
      for (let dy = -padding; dy <= padding; dy++)
        for (let dx = -padding; dx <= padding; dx++) {
          const shifted = after.every((v, i) => {
            const c = i % SHAPE[2];
            const p = (i - c) / SHAPE[2];
            const [sy, sx] = [Math.floor(p / SHAPE[1]) + dy, (p % SHAPE[1]) + dx];
            return v === (sy >= 0 && sy < SHAPE[0] && sx >= 0 && sx < SHAPE[1] ? at(before, sy, sx, c) : 0);
          });
          if (shifted) match.push(`${dy},${dx}`);
        }
      expect(match).toHaveLength(1);
      shifts.add(match[0]);
    }
    expect(shifts.size).toBeGreaterThan(5);
  });

  it('brightness adds one value in [-b, b] to a row; contrast scales each channel about its mean by one factor in [1 - c, 1 + c]', () => {
    const bright = augmentRows(x, SHAPE, 0, 1, { ...none, brightness: 0.25 }, 7);
    const deltas = new Set<number>();
    for (let r = 0; r < ROWS; r++) {
      const delta = bright[r * WIDTH] - x[r * WIDTH];
      expect(Math.abs(delta)).toBeLessThanOrEqual(0.25 + 1e-6);
      for (let i = r * WIDTH; i < (r + 1) * WIDTH; i++) expect(bright[i] - x[i]).toBeCloseTo(delta, 5);
      deltas.add(Math.round(delta * 1e4));
    }
    expect(deltas.size).toBeGreaterThan(20);

    const contrast = augmentRows(x, SHAPE, 0, 1, { ...none, contrast: 0.5 }, 7);
    for (let r = 0; r < ROWS; r++) {
      const [before, after] = [row(x, r), row(contrast, r)];
      const mean = (data: number[], c: number) =>
        data.filter((_, i) => i % 2 === c).reduce((a, b) => a + b, 0) / (WIDTH / 2);
      const factor = (after[0] - mean(after, 0)) / (before[0] - mean(before, 0));
      expect(factor).toBeGreaterThanOrEqual(0.5 - 1e-4);
      expect(factor).toBeLessThanOrEqual(1.5 + 1e-4);
      for (const c of [0, 1]) {
        expect(mean(after, c)).toBeCloseTo(mean(before, c), 5);
        for (let i = c; i < WIDTH; i += 2)
          expect(after[i] - mean(after, c)).toBeCloseTo((before[i] - mean(before, c)) * factor, 4);
      }
    }
  });

  it('is refused on rows that are not [height, width, channels]', () => {
    expect(() => checkAugment([64], 'cfg.yml distill.augment')).toThrow(InputError);
    expect(() => checkAugment([64], 'cfg.yml distill.augment')).toThrow(
      /cfg\.yml distill\.augment: needs image-shaped inputs \[N, height, width, channels\], but the train split's samples have shape \[64\]/,
    );
    expect(() => checkAugment([6, 5, 2], 'x')).not.toThrow();
  });
});

describe('distill.augment: the teacher and the loop', () => {
  const labels = Int32Array.from({ length: ROWS }, (_, i) => i % 3);
  const train: Dataset = inMemoryDataset('x', x, [...SHAPE], { y: labels, source: 'y' });
  const settings: AugmentSettings = { flip: true, crop: { padding: 1 }, brightness: 0.1, contrast: 0.1 };
  const teacherOf = () =>
    buildStudent(tf, { layers: [{ type: 'flatten' }, { type: 'dense', units: 3 }] }, [...SHAPE], 5);

  it("answers each epoch with the teacher's logits on that epoch's augmented rows", async () => {
    const teacher = await teacherOf();
    const epochs = augmentedEpochs({ tf, teacher, train, settings, seed: 7, engine: 'cpu', backend: 'cpu' });
    const plain = await predictLogits(tf, teacher, train);
    for (const epoch of [1, 2]) {
      const { rows, teacherLogits } = await epochs(epoch);
      const augmented = await rows.read(0, ROWS);
      expect(Array.from(augmented)).toEqual(Array.from(augmentRows(x, SHAPE, 0, epoch, settings, 7)));
      expect(Array.from(rows.y!)).toEqual(Array.from(labels));
      const expected = tf.tidy(() =>
        (teacher.predict(tf.tensor(augmented, [ROWS, ...SHAPE])) as ReturnType<typeof tf.tensor>).dataSync().slice(),
      );
      expect(Array.from(teacherLogits)).toEqual(Array.from(expected));
      expect(Array.from(teacherLogits)).not.toEqual(Array.from(plain));
    }
    teacher.dispose();
  });

  it('streams: a streamed split is augmented chunk by chunk as it is read, the same rows as whole', async () => {
    const streamed: Dataset = { ...train, streamed: true, chunkRows: 5 };
    const whole = await (await augmentedSplit(train, 3, settings, 7)).read(0, ROWS);
    const lazy = await augmentedSplit(streamed, 3, settings, 7);
    const read: number[] = [];
    for (let start = 0; start < ROWS; start += 5) read.push(...(await lazy.read(start, Math.min(5, ROWS - start))));
    expect(read).toEqual(Array.from(whole));
  });

  for (const step of ['kernel', 'autodiff'] as const) {
    it(`trains each epoch on that epoch's rows and targets, the tensor count flat (${step} step)`, async () => {
      const teacher = await teacherOf();
      const student = await buildStudent(
        tf,
        { layers: [{ type: 'flatten' }, { type: 'dense', units: 8, activation: 'relu' }, { type: 'dense', units: 3 }] },
        [...SHAPE],
        1,
      );
      const epochs = augmentedEpochs({ tf, teacher, train, settings, seed: 7, engine: 'cpu', backend: 'cpu' });
      const asked: number[] = [];
      const counts: number[] = [];
      const distillSettings = {
        temperature: 2,
        alpha: 0.9,
        epochs: 6,
        batchSize: 8,
        learningRate: 0.01,
        seed: 7,
        augment: settings,
      };
      const result = await distill(tf, student, train, {
        settings: distillSettings,
        teacherLogits: await predictLogits(tf, teacher, train),
        step,
        epochData: (epoch) => (asked.push(epoch), epochs(epoch)),
        onEpoch: (p) => counts.push(p.tensors),
      });
      expect(result.epochsCompleted).toBe(6);
      expect(asked).toEqual([1, 2, 3, 4, 5, 6]);
      expect(new Set(counts).size).toBe(1);
      expect(result.loss.every(Number.isFinite)).toBe(true);
      // Without augmentation the same seed trains another student: the rows did change.
      const plainStudent = await buildStudent(
        tf,
        { layers: [{ type: 'flatten' }, { type: 'dense', units: 8, activation: 'relu' }, { type: 'dense', units: 3 }] },
        [...SHAPE],
        1,
      );
      const plain = await distill(tf, plainStudent, train, {
        settings: distillSettings,
        teacherLogits: await predictLogits(tf, teacher, train),
        step,
      });
      expect(plain.loss).not.toEqual(result.loss);
      for (const model of [teacher, student, plainStudent]) model.dispose();
    });
  }
});
