import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkAgainstTeacher, loadSplit } from '../../src/data/dataset.js';
import { encodeNpy, readNpy } from '../../src/data/npy.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-data-'));
});
const file = async (name: string, content: Buffer | string) => {
  const target = path.join(dir, name);
  await writeFile(target, content);
  return target;
};

describe('npy', () => {
  it('round-trips float32, float64, int32 and int64 in C order', async () => {
    const f32 = await readNpy(await file('a.npy', encodeNpy(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3])));
    expect(f32.header.shape).toEqual([2, 3]);
    expect(Array.from(f32.data as Float32Array)).toEqual([1, 2, 3, 4, 5, 6]);
    const f64 = await readNpy(await file('b.npy', encodeNpy(new Float64Array([0.5, 1.5]), [2])));
    expect(Array.from(f64.data as Float64Array)).toEqual([0.5, 1.5]);
    const i64 = await readNpy(await file('c.npy', encodeNpy(new BigInt64Array([3n, 9n]), [2])));
    expect(Array.from(i64.data, Number)).toEqual([3, 9]);
  });

  it('loads a split, converting float64 features and int64 labels', async () => {
    const x = await file('x.npy', encodeNpy(new Float64Array([1, 2, 3, 4]), [2, 2]));
    const y = await file('y.npy', encodeNpy(new BigInt64Array([1n, 0n]), [2]));
    const split = await loadSplit({ x, y }, 'train');
    expect(await split.read(0, 2)).toEqual(new Float32Array([1, 2, 3, 4]));
    expect(split.sampleShape).toEqual([2]);
    expect(Array.from(split.y!)).toEqual([1, 0]);
  });

  it.each([
    ['wrong magic', () => Buffer.from('not a numpy file at all'), /is not a \.npy file \(wrong magic bytes/],
    [
      'Fortran order',
      () =>
        Buffer.from(
          encodeNpy(new Float32Array(4), [2, 2])
            .toString('latin1')
            .replace("'fortran_order': False", "'fortran_order': True "),
          'latin1',
        ),
      /Fortran order; save it in C order/,
    ],
    [
      'unsupported dtype',
      () => Buffer.from(encodeNpy(new Float32Array(4), [2, 2]).toString('latin1').replace("'<f4'", "'<c8'"), 'latin1'),
      /dtype "<c8".*supported: float32/,
    ],
    [
      'truncated body',
      () => encodeNpy(new Float32Array(6), [2, 3]).subarray(0, -5),
      /is truncated: shape \[2, 3\] of f4 needs 24 bytes of data, the file holds 19/,
    ],
    [
      'big-endian',
      () => Buffer.from(encodeNpy(new Float32Array(4), [2, 2]).toString('latin1').replace("'<f4'", "'>f4'"), 'latin1'),
      /dtype ">f4"/,
    ],
  ])('refuses %s, naming the file', async (name, make, pattern) => {
    const target = await file(`${name}.npy`, make());
    await expect(readNpy(target)).rejects.toThrow(pattern);
    await expect(readNpy(target)).rejects.toThrow(target);
  });

  it('names the file and row holding NaN or Inf', async () => {
    const x = await file('nan.npy', encodeNpy(new Float32Array([1, 2, 3, NaN, 5, 6]), [3, 2]));
    await expect(loadSplit({ x }, 'train')).rejects.toThrow(`${x} row 1: holds NaN at feature 1`);
    const inf = await file('inf.npy', encodeNpy(new Float32Array([1, Infinity]), [1, 2]));
    await expect(loadSplit({ x: inf }, 'train')).rejects.toThrow(/row 0: holds Infinity/);
  });

  it('refuses non-integer and negative labels and a label count that differs from the rows', async () => {
    const x = await file('x2.npy', encodeNpy(new Float32Array(4), [2, 2]));
    const fractional = await file('yf.npy', encodeNpy(new Float32Array([0, 1.5]), [2]));
    await expect(loadSplit({ x, y: fractional }, 'train')).rejects.toThrow(
      /yf\.npy row 1: label 1\.5 is not a class index/,
    );
    const short = await file('ys.npy', encodeNpy(new Int32Array([0]), [1]));
    await expect(loadSplit({ x, y: short }, 'train')).rejects.toThrow(/labels need shape \[2\]/);
  });

  it('refuses an empty split and 1-D features', async () => {
    const empty = await file('empty.npy', encodeNpy(new Float32Array(0), [0, 4]));
    await expect(loadSplit({ x: empty }, 'eval')).rejects.toThrow(/the eval split is empty/);
    const flat = await file('flat.npy', encodeNpy(new Float32Array(4), [4]));
    await expect(loadSplit({ x: flat }, 'train')).rejects.toThrow(/features need shape \[N, \.\.\.features\]/);
  });

  it('checks samples and labels against the teacher', async () => {
    const x = await file('x3.npy', encodeNpy(new Float32Array(6), [2, 3]));
    const y = await file('y3.npy', encodeNpy(new Int32Array([0, 4]), [2]));
    const split = await loadSplit({ x, y }, 'train');
    expect(() => checkAgainstTeacher(split, [4], 5, 'teacher.json')).toThrow(
      /samples have shape \[3\] but the teacher \(teacher\.json\) takes \[4\]/,
    );
    expect(() => checkAgainstTeacher(split, [3], 4, 'teacher.json')).toThrow(
      /y3\.npy row 1: label 4 is out of range: .* \[0, 3\]/,
    );
    expect(() => checkAgainstTeacher(split, [null], 5, 'teacher.json')).not.toThrow();
  });
});

describe('csv', () => {
  it('reads features and the named label column', async () => {
    const csv = await file('ok.csv', 'a,label,b\n1,0,2\n3,1,4\n');
    const split = await loadSplit({ csv, label: 'label' }, 'train');
    expect(Array.from(await split.read(0, split.size))).toEqual([1, 2, 3, 4]);
    expect(Array.from(split.y!)).toEqual([0, 1]);
    expect(split.sampleShape).toEqual([2]);
  });

  it.each([
    ['ragged rows', 'a,b\n1,2\n3\n', undefined, /is not valid CSV: .*every row needs as many cells as the header/],
    ['a non-numeric cell', 'a,b\n1,2\n3,x\n', undefined, /:3: column "b" holds "x", which is not a number/],
    ['a missing label column', 'a,b\n1,2\n', 'label', /has no label column "label"; its columns are: a, b/],
    ['an empty file', '', undefined, /is empty; expected a header row/],
    ['a header with no rows', 'a,b\n', undefined, /the train split is empty/],
    ['NaN', 'a,b\n1,2\nnan,4\n', undefined, /row 3: holds NaN at feature 0/],
  ])('refuses %s', async (name, text, label, pattern) => {
    const csv = await file(`${name}.csv`, text);
    await expect(loadSplit({ csv, ...(label ? { label } : {}) }, 'train')).rejects.toThrow(pattern);
  });
});

describe('streamed .npy splits', () => {
  it('reads rows from disk by chunk and gives the same rows as loading whole', async () => {
    const values = Float64Array.from({ length: 50 * 3 }, (_, i) => i / 7);
    const x = await file('stream_x.npy', encodeNpy(values, [50, 3]));
    const whole = await loadSplit({ x }, 'train');
    const streamed = await loadSplit({ x }, 'train', { streamAboveBytes: 0, chunkRows: 8 });
    expect([whole.streamed, streamed.streamed, streamed.chunkRows]).toEqual([false, true, 8]);
    expect(await streamed.read(13, 5)).toEqual(await whole.read(13, 5));
    expect(await streamed.read(0, 50)).toEqual(await whole.read(0, 50));
  });

  it('names the row of a NaN found in a later chunk', async () => {
    const values = new Float32Array(40 * 2);
    values[33 * 2 + 1] = NaN;
    const x = await file('stream_nan.npy', encodeNpy(values, [40, 2]));
    await expect(loadSplit({ x }, 'train', { streamAboveBytes: 0, chunkRows: 8 })).rejects.toThrow(
      `${x} row 33: holds NaN at feature 1`,
    );
  });
});

describe('streamed CSV splits', () => {
  const rows = (n: number) =>
    `a,label,b\n${Array.from({ length: n }, (_, r) => `${r},${r % 3},${r / 2}`).join('\n')}\n`;

  it('validates in one pass, then reads rows from the nearest chunk, as loading whole would', async () => {
    const csv = await file('stream.csv', rows(50));
    const whole = await loadSplit({ csv, label: 'label' }, 'train');
    const streamed = await loadSplit({ csv, label: 'label' }, 'train', { streamAboveBytes: 0, chunkRows: 8 });
    expect([whole.streamed, streamed.streamed, streamed.size]).toEqual([false, true, 50]);
    expect(Array.from(streamed.y!)).toEqual(Array.from(whole.y!));
    expect(await streamed.read(13, 9)).toEqual(await whole.read(13, 9));
    expect(await streamed.read(0, 50)).toEqual(await whole.read(0, 50));
    expect(await streamed.read(48, 2)).toEqual(new Float32Array([48, 24, 49, 24.5]));
  });

  it.each([
    [
      'a non-numeric cell',
      (t: string) => t.replace('\n30,0,15\n', '\n30,0,x\n'),
      /stream\d\.csv:32: column "b" holds "x", which is not a number/,
    ],
    [
      'Inf',
      (t: string) => t.replace('\n30,0,15\n', '\n30,0,Infinity\n'),
      /stream\d\.csv row 32: holds Infinity at feature 1/,
    ],
    [
      'ragged rows',
      (t: string) => t.replace('\n30,0,15\n', '\n30,0\n'),
      /stream\d\.csv: is not valid CSV: .*every row needs as many cells as the header/,
    ],
    [
      'a missing label column',
      (t: string) => t.replace('a,label,b', 'a,target,b'),
      /has no label column "label"; its columns are: a, target, b/,
    ],
  ])('refuses %s in the validating pass', async (name, breakIt, pattern) => {
    const csv = await file(`stream${name.length % 10}.csv`, breakIt(rows(50)));
    await expect(loadSplit({ csv, label: 'label' }, 'train', { streamAboveBytes: 0, chunkRows: 8 })).rejects.toThrow(
      pattern,
    );
  });
});
