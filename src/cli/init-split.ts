import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import type { SplitSpec } from '../config/schema.js';
import type { Dataset } from '../data/dataset.js';
import { encodeNpy } from '../data/npy.js';
import { permutation, seededRandom } from '../distill/random.js';
import { InputError } from '../errors.js';

// `distill-gate init` with one data file: the config needs a train and an eval split
// (data.train, data.eval) and cannot split one file itself, so init writes the split as new files
// beside the data: a seeded shuffle (distill.seed) puts EVAL_FRACTION of the rows in the eval
// split, the rest in the train split, each in the file's row order. A .npy pair becomes
// <name>.train.npy and <name>.eval.npy for the features and for the labels (features as float32,
// labels as int32: what a run reads them as); a CSV becomes <name>.train.csv and <name>.eval.csv
// with the header row in each.

export const EVAL_FRACTION = 0.2;

/** A file the split writes: its final path and contents. */
export interface SplitFile {
  path: string;
  contents: Buffer;
}

export interface DataSplit {
  train: SplitSpec;
  eval: SplitSpec;
  trainRows: number;
  evalRows: number;
  files: SplitFile[];
}

/** The file beside `file` named <name>.<part><ext>. */
export function splitFileName(file: string, part: 'train' | 'eval'): string {
  const ext = path.extname(file);
  return path.join(path.dirname(file), `${path.basename(file, ext)}.${part}${ext}`);
}

/** Which rows go where: a seeded permutation's last EVAL_FRACTION to eval; each part in file order. */
export function splitRows(rows: number, seed: number): { train: Int32Array; eval: Int32Array } {
  if (rows < 2)
    throw new InputError(
      '--data',
      `has ${rows} row; splitting it into train and eval needs at least 2 (or give --eval-data).`,
    );
  const evalRows = Math.max(1, Math.round(rows * EVAL_FRACTION));
  const order = permutation(rows, seededRandom(seed));
  const sorted = (part: Int32Array) => part.slice().sort();
  return { train: sorted(order.subarray(0, rows - evalRows)), eval: sorted(order.subarray(rows - evalRows)) };
}

/** The split of one data file (`spec`, absolute paths; `dataset` loaded from it), as files to write. */
export async function splitData(spec: SplitSpec, dataset: Dataset, seed: number): Promise<DataSplit> {
  if (dataset.streamed)
    throw new InputError(
      '--data',
      `${dataset.source} is too large to split in memory; split it yourself and give --eval-data (and --eval-labels) for the eval part.`,
    );
  const rows = splitRows(dataset.size, seed);
  const counts = { trainRows: rows.train.length, evalRows: rows.eval.length };
  if ('csv' in spec) {
    const [header, ...body]: string[][] = parse(await readFile(spec.csv, 'utf8'), {
      skip_empty_lines: true,
      trim: true,
    });
    const csv = (part: Int32Array) => Buffer.from([header, ...Array.from(part, (i) => body[i])].map(csvLine).join(''));
    const train = splitFileName(spec.csv, 'train');
    const evalFile = splitFileName(spec.csv, 'eval');
    return {
      train: { ...spec, csv: train },
      eval: { ...spec, csv: evalFile },
      ...counts,
      files: [
        { path: train, contents: csv(rows.train) },
        { path: evalFile, contents: csv(rows.eval) },
      ],
    };
  }
  const width = dataset.sampleShape.reduce((a, b) => a * b, 1);
  const x = await dataset.read(0, dataset.size);
  const features = (part: Int32Array) => {
    const out = new Float32Array(part.length * width);
    part.forEach((row, i) => out.set(x.subarray(row * width, (row + 1) * width), i * width));
    return encodeNpy(out, [part.length, ...dataset.sampleShape]);
  };
  const files: SplitFile[] = [
    { path: splitFileName(spec.x, 'train'), contents: features(rows.train) },
    { path: splitFileName(spec.x, 'eval'), contents: features(rows.eval) },
  ];
  const { y } = dataset;
  if (spec.y && y) {
    const labels = (part: Int32Array) =>
      encodeNpy(
        Int32Array.from(part, (row) => y[row]),
        [part.length],
      );
    files.push(
      { path: splitFileName(spec.y, 'train'), contents: labels(rows.train) },
      { path: splitFileName(spec.y, 'eval'), contents: labels(rows.eval) },
    );
  }
  const part = (name: 'train' | 'eval'): SplitSpec => ({
    x: splitFileName(spec.x, name),
    ...(spec.y ? { y: splitFileName(spec.y, name) } : {}),
  });
  return { train: part('train'), eval: part('eval'), ...counts, files };
}

/** One CSV record with its line end; cells holding a comma, quote or line break are quoted. */
function csvLine(cells: string[]): string {
  return `${cells.map((cell) => (/[",\r\n]/.test(cell) ? `"${cell.replace(/"/g, '""')}"` : cell)).join(',')}\n`;
}
