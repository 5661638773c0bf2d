import { mkdir, mkdtemp, readdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { convertPathToPattern } from 'tinyglobby';
import type { RawConfig } from '../../src/config/schema.js';
import type { Dataset } from '../../src/data/dataset.js';
import { decodeImage } from '../../src/data/decode.js';
import { loadSplits } from '../../src/data/splits.js';
import { InputError } from '../../src/errors.js';
import { CLASS_COLOURS, encodeJpeg, encodePng, noisyImage, writeImageTree } from '../../fixtures/images.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const scratch = () => mkdtemp(path.join(os.tmpdir(), 'distill-gate-images-'));
const glob = (dir: string, pattern: string) => `${convertPathToPattern(dir)}/${pattern}`;

function dataOf(
  dir: string,
  extra: Partial<RawConfig['data']> = {},
  size: [number, number] = [8, 8],
  channels: 1 | 3 | 4 = 3,
): RawConfig['data'] {
  return {
    train: { images: glob(dir, 'train/**/*.{png,jpg}'), size, channels },
    eval: { images: glob(dir, 'eval/**/*.{png,jpg}'), size, channels },
    streamAboveMB: 256,
    classes: ['cat', 'dog'],
    ...extra,
  };
}

/** A decoder that counts its calls. */
function countingDecoder() {
  const counter = {
    calls: 0,
    decode: (file: string, bytes: Uint8Array) => (counter.calls++, decodeImage(file, bytes)),
  };
  return counter;
}

async function errorOf(work: Promise<unknown>): Promise<InputError> {
  const error = await work.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(InputError);
  return error as InputError;
}

async function rows(dataset: Dataset): Promise<Float32Array> {
  return Float32Array.from(await dataset.read(0, dataset.size));
}

/** An RGBA gradient whose samples are known: R = 16 row + 2 col, G = 255 - R, B = 7 col. */
function gradient(size: number): Uint8Array {
  const rgba = new Uint8Array(size * size * 4);
  for (let r = 0; r < size; r++)
    for (let c = 0; c < size; c++) {
      const i = (r * size + c) * 4;
      rgba[i] = 16 * r + 2 * c;
      rgba[i + 1] = 255 - rgba[i];
      rgba[i + 2] = 7 * c;
      rgba[i + 3] = 255;
    }
  return rgba;
}

describe('image folders: decoding and resizing', () => {
  it('reads a PNG at its own size exactly, and halves it by 2x2 averages (bilinear, half-pixel centres)', async () => {
    const dir = await scratch();
    for (const split of ['train', 'eval']) {
      await mkdir(path.join(dir, split, 'cat'), { recursive: true });
      await writeFile(path.join(dir, split, 'cat', 'a.png'), encodePng(gradient(8), 8, 8));
    }
    const identity = { scale: 1, mean: 0, std: 1 };
    const full = await loadSplits(dataOf(dir, { classes: ['cat'], normalize: identity }), { tf });
    const x = await rows(full.train);
    expect(full.train.sampleShape).toEqual([8, 8, 3]);
    expect([x[0], x[1], x[2]]).toEqual([0, 255, 0]);
    // Row 3, column 5: R = 58, G = 197, B = 35.
    expect(Array.from(x.subarray((3 * 8 + 5) * 3, (3 * 8 + 5) * 3 + 3))).toEqual([58, 197, 35]);

    const half = await loadSplits(dataOf(dir, { classes: ['cat'], normalize: identity }, [4, 4]), { tf });
    const h = await rows(half.train);
    expect(half.train.sampleShape).toEqual([4, 4, 3]);
    for (let r = 0; r < 4; r++)
      for (let c = 0; c < 4; c++) {
        // The mean of source rows 2r, 2r+1 and columns 2c, 2c+1.
        const red = 16 * (2 * r + 0.5) + 2 * (2 * c + 0.5);
        expect(h[(r * 4 + c) * 3]).toBeCloseTo(red, 4);
        expect(h[(r * 4 + c) * 3 + 1]).toBeCloseTo(255 - red, 4);
        expect(h[(r * 4 + c) * 3 + 2]).toBeCloseTo(7 * (2 * c + 0.5), 4);
      }
    // The same floats as tf.image.resizeBilinear with half-pixel centres.
    const reference = tf.tidy(() =>
      tf.image
        .resizeBilinear(tf.tensor3d(Float32Array.from(x), [8, 8, 3]), [4, 4], false, true)
        .dataSync()
        .slice(),
    );
    expect(Array.from(h)).toEqual(Array.from(reference));
  });

  it('reads a JPEG within its compression error, and tells PNG and JPEG apart by their bytes', () => {
    const colour: [number, number, number] = [200, 100, 50];
    const jpg = decodeImage('x.png', encodeJpeg(noisyImage(colour, 8, 8, 1, 0), 8, 8, 100));
    expect([jpg.width, jpg.height, jpg.channels]).toEqual([8, 8, 3]);
    for (let i = 0; i < 64 * 3; i++) expect(Math.abs(jpg.pixels[i] - colour[i % 3])).toBeLessThanOrEqual(2);
    const grey = decodeImage('g.png', encodePng(noisyImage(colour, 2, 2, 1, 0), 2, 2, 0));
    expect(grey.channels).toBe(1);
    const rgba = decodeImage('a.png', encodePng(noisyImage(colour, 2, 2, 1, 0), 2, 2, 6));
    expect(rgba.channels).toBe(4);
    expect(Array.from(rgba.pixels.subarray(0, 4))).toEqual([200, 100, 50, 255]);
  });

  it('labels each image by its folder in the order of classes, or alphabetically with classes: sorted', async () => {
    const dir = await scratch();
    await writeImageTree(path.join(dir, 'train'), 2, 1);
    await writeImageTree(path.join(dir, 'eval'), 1, 2);
    const given = await loadSplits(dataOf(dir, { classes: ['dog', 'cat'] }), { tf });
    // Files in path order: cat/00.png, cat/01.jpg, dog/00.png, dog/01.jpg.
    expect(Array.from(given.train.y!)).toEqual([1, 1, 0, 0]);
    expect(given.train.classes).toEqual(['dog', 'cat']);
    const sorted = await loadSplits(dataOf(dir, { classes: 'sorted' }), { tf });
    expect(Array.from(sorted.train.y!)).toEqual([0, 0, 1, 1]);
    expect(Array.from(sorted.evalSet.y!)).toEqual([0, 1]);
    expect(sorted.evalSet.classes).toEqual(['cat', 'dog']);
  });

  it('normalises (pixel * scale - mean) / std per channel', async () => {
    const dir = await scratch();
    const [r, g, b] = CLASS_COLOURS.cat;
    for (const split of ['train', 'eval']) {
      await mkdir(path.join(dir, split, 'cat'), { recursive: true });
      await writeFile(path.join(dir, split, 'cat', 'a.png'), encodePng(noisyImage([r, g, b], 8, 8, 1, 0), 8, 8));
    }
    const normalize = { scale: 1 / 255, mean: [0.5, 0.4, 0.3], std: [0.5, 0.25, 0.1] };
    const { train } = await loadSplits(dataOf(dir, { classes: ['cat'], normalize }), { tf });
    const x = await rows(train);
    const expected = [r, g, b].map((v, c) => Math.fround((v / 255 - normalize.mean[c]) / normalize.std[c]));
    for (let i = 0; i < x.length; i++) expect(x[i]).toBe(expected[i % 3]);
    const single = await loadSplits(dataOf(dir, { classes: ['cat'], normalize: { scale: 2, mean: 10, std: 4 } }), {
      tf,
    });
    expect(Array.from((await rows(single.train)).subarray(0, 3))).toEqual([r, g, b].map((v) => (v * 2 - 10) / 4));
  });

  it('creates no tensors and leaves no data in the cpu backend', async () => {
    const dir = await scratch();
    await writeImageTree(path.join(dir, 'train'), 4, 1);
    await writeImageTree(path.join(dir, 'eval'), 2, 2);
    const cpu = tf.findBackend('cpu');
    const before = { tensors: tf.memory().numTensors, ids: cpu.numDataIds() };
    await loadSplits(dataOf(dir), { tf });
    expect({ tensors: tf.memory().numTensors, ids: cpu.numDataIds() }).toEqual(before);
  });
});

describe('image folders: the cache and streaming', () => {
  it('a second load reads the cache and decodes nothing; a changed file is decoded again', async () => {
    const dir = await scratch();
    const cacheDir = path.join(dir, 'cache');
    const files = await writeImageTree(path.join(dir, 'train'), 3, 1);
    await writeImageTree(path.join(dir, 'eval'), 1, 2);
    const first = countingDecoder();
    const logs: string[] = [];
    const a = await loadSplits(dataOf(dir), { tf, cacheDir, decode: first.decode, log: (l) => logs.push(l) });
    expect(first.calls).toBe(8);
    expect((await readdir(cacheDir)).filter((f) => f.startsWith('images-'))).toHaveLength(2);
    const second = countingDecoder();
    const b = await loadSplits(dataOf(dir), { tf, cacheDir, decode: second.decode, log: (l) => logs.push(l) });
    expect(second.calls).toBe(0);
    expect(logs.filter((l) => l.includes('from the cache'))).toHaveLength(2);
    expect(Array.from(await rows(b.train))).toEqual(Array.from(await rows(a.train)));
    expect(Array.from(b.train.y!)).toEqual(Array.from(a.train.y!));
    // Other preprocessing: another entry.
    const third = countingDecoder();
    await loadSplits(dataOf(dir, { normalize: { scale: 1, mean: 0, std: 1 } }), { tf, cacheDir, decode: third.decode });
    expect(third.calls).toBe(8);
    // Other bytes in one file: the train split is decoded again, eval is not.
    await writeFile(files[0], encodePng(noisyImage([1, 2, 3], 8, 8, 9), 8, 8));
    const fourth = countingDecoder();
    await loadSplits(dataOf(dir), { tf, cacheDir, decode: fourth.decode });
    expect(fourth.calls).toBe(6);
  });

  it('streams a split above streamAboveBytes in chunks, with and without a cache, as the in-memory rows', async () => {
    const dir = await scratch();
    await writeImageTree(path.join(dir, 'train'), 5, 1);
    await writeImageTree(path.join(dir, 'eval'), 1, 2);
    const whole = await loadSplits(dataOf(dir), { tf });
    expect(whole.train.streamed).toBe(false);
    const expected = Array.from(await rows(whole.train));
    for (const cacheDir of [undefined, path.join(dir, 'cache')]) {
      const streamed = await loadSplits(dataOf(dir), { tf, cacheDir, streamAboveBytes: 1000, chunkRows: 3 });
      expect(streamed.train.streamed).toBe(true);
      expect(streamed.train.chunkRows).toBe(3);
      const read: number[] = [];
      for (let start = 0; start < streamed.train.size; start += 3)
        read.push(...(await streamed.train.read(start, Math.min(3, streamed.train.size - start))));
      expect(read).toEqual(expected);
    }
  });
});

describe('image folders: errors name the culprit', () => {
  async function tree(): Promise<string> {
    const dir = await scratch();
    await writeImageTree(path.join(dir, 'train'), 2, 1);
    await writeImageTree(path.join(dir, 'eval'), 1, 2);
    return dir;
  }

  it('an empty glob names its pattern', async () => {
    const dir = await tree();
    const error = await errorOf(
      loadSplits(
        { ...dataOf(dir), eval: { images: glob(dir, 'nowhere/**/*.png'), size: [8, 8], channels: 3 } },
        { tf, configFile: 'cfg.yml' },
      ),
    );
    expect(error.message).toMatch(
      /^cfg\.yml data\.eval\.images: the pattern ".*nowhere\/\*\*\/\*\.png" matches no files/,
    );
  });

  it('without classes, lists the folders found and how to write classes (never guesses an order)', async () => {
    const dir = await tree();
    const error = await errorOf(loadSplits(dataOf(dir, { classes: undefined }), { tf }));
    expect(error.message).toMatch(
      /data\.classes: is not set; the image folders name 2 classes: cat, dog\. .*`classes: \[cat, dog\]`.*`classes: sorted`/,
    );
  });

  it('a folder the classes do not list names the file and the folder', async () => {
    const dir = await tree();
    const error = await errorOf(loadSplits(dataOf(dir, { classes: ['cat'] }), { tf }));
    expect(error.message).toMatch(
      /train\/dog\/00\.png: is in folder "dog", which data\.classes does not list \(cat\); .* data\.train\.images/,
    );
  });

  it('a file that does not decode names the file', async () => {
    const dir = await tree();
    await writeFile(path.join(dir, 'train/cat/00.png'), Buffer.concat([encodePng(gradient(8), 8, 8).subarray(0, 40)]));
    const error = await errorOf(loadSplits(dataOf(dir), { tf }));
    expect(error.message).toMatch(/train\/cat\/00\.png: cannot be decoded \(.+\); re-save it as PNG or JPEG/);
    await writeFile(path.join(dir, 'train/cat/00.png'), 'not an image at all');
    expect((await errorOf(loadSplits(dataOf(dir), { tf }))).message).toMatch(
      /train\/cat\/00\.png: is neither a PNG nor a JPEG/,
    );
  });

  it("an image whose channels are not the split's names the file and both counts", async () => {
    const dir = await tree();
    await writeFile(path.join(dir, 'train/dog/00.png'), encodePng(gradient(8), 8, 8, 0));
    const error = await errorOf(loadSplits(dataOf(dir), { tf }));
    expect(error.message).toMatch(/train\/dog\/00\.png: has 1 channel \(grey\) but data\.train\.channels is 3/);
  });
});
