import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { parse as parseStream } from 'csv-parse';
import { parse } from 'csv-parse/sync';
import type { DataSplitSpec } from '../config/schema.js';
import { InputError } from '../errors.js';
import { assertFileNotLfsPointer } from './lfs.js';
import { openNpy, readNpy, readNpyElements, type NpyArray } from './npy.js';

/**
 * One split: features read as float32 rows, labels (small) held as int32 where given. Features
 * are held in memory, or, for a .npy file too large for that, read from disk a chunk at a time.
 */
export interface Dataset {
  /** Where it came from, for messages. */
  source: string;
  /** Shape of one sample (without the batch dimension). */
  sampleShape: number[];
  size: number;
  y?: Int32Array;
  /** File holding the labels, for messages. */
  labelSource?: string;
  /** Rows [start, start + count) as float32, row-major (a view for in-memory splits). */
  read(start: number, count: number): Promise<Float32Array>;
  /** Rows to hold at once when iterating: the whole split in memory, or one chunk of a streamed one. */
  chunkRows: number;
  streamed: boolean;
  /** Image folders: the class names, in the order of the teacher's outputs (label i is classes[i]). */
  classes?: string[];
}

export interface LoadOptions {
  /** Stream a .npy whose features exceed this many bytes as float32 (default 256 MiB). */
  streamAboveBytes?: number;
  /** Rows per chunk when streaming (default: about 16 MiB of features). */
  chunkRows?: number;
}

export const DEFAULT_STREAM_ABOVE = 256 * 2 ** 20;
export const CHUNK_BYTES = 16 * 2 ** 20;

export function inMemoryDataset(
  source: string,
  x: Float32Array,
  sampleShape: number[],
  labels?: { y: Int32Array; source: string },
): Dataset {
  const width = sampleShape.reduce((a, b) => a * b, 1);
  const size = width === 0 ? 0 : x.length / width;
  return {
    source,
    sampleShape,
    size,
    ...(labels ? { y: labels.y, labelSource: labels.source } : {}),
    read: async (start, count) => x.subarray(start * width, (start + count) * width),
    chunkRows: Math.max(size, 1),
    streamed: false,
  };
}

/** A split held in a data file; image folders load through loadSplits (the splits share one class list). */
export async function loadSplit(spec: DataSplitSpec, name: string, options: LoadOptions = {}): Promise<Dataset> {
  if ('images' in spec) throw new Error(`the ${name} split is an image folder: load it with loadSplits`);
  const dataset =
    'csv' in spec
      ? await readCsvSplit(spec.csv, spec.label, options)
      : await readNpySplit(spec.x, spec.y, name, options);
  assertNotEmpty(dataset.size, dataset.source, name);
  return dataset;
}

function assertNotEmpty(size: number, source: string, name: string): void {
  if (size === 0) throw new InputError(source, `the ${name} split is empty; it needs at least one sample.`);
}

async function readNpySplit(
  xFile: string,
  yFile: string | undefined,
  name: string,
  options: LoadOptions,
): Promise<Dataset> {
  const { handle, header } = await openNpy(xFile);
  await handle.close();
  if (header.shape.length < 2) {
    throw new InputError(
      xFile,
      `has shape [${header.shape.join(', ')}]; features need shape [N, ...features] (one row per sample).`,
    );
  }
  const [size, ...sampleShape] = header.shape;
  // Before the labels: an empty split is the problem to report, not a label count of 0.
  assertNotEmpty(size, xFile, name);
  const width = sampleShape.reduce((a, b) => a * b, 1);
  const readRows = async (start: number, count: number) => {
    const file = await openNpy(xFile);
    try {
      return toFloat32(await readNpyElements(file.handle, file.header, start * width, count * width));
    } finally {
      await file.handle.close();
    }
  };
  let labels: { y: Int32Array; source: string } | undefined;
  if (yFile) {
    const read = await readNpy(yFile);
    const shape = read.header.shape;
    if (!(shape.length === 1 || (shape.length === 2 && shape[1] === 1)) || shape[0] !== size) {
      throw new InputError(
        yFile,
        `has shape [${shape.join(', ')}]; labels need shape [${size}] (one class index per row of ${xFile}).`,
      );
    }
    labels = { y: toLabels(read.data, yFile), source: yFile };
  }
  if (size * width * 4 <= (options.streamAboveBytes ?? DEFAULT_STREAM_ABOVE)) {
    const x = await readRows(0, size);
    assertFinite(x, width, xFile);
    return inMemoryDataset(xFile, x, sampleShape, labels);
  }
  // Too large to hold: validated chunk by chunk now, read chunk by chunk while training.
  const chunkRows = options.chunkRows ?? Math.max(1, Math.floor(CHUNK_BYTES / (width * 4)));
  for (let start = 0; start < size; start += chunkRows) {
    assertFinite(await readRows(start, Math.min(chunkRows, size - start)), width, xFile, start);
  }
  return {
    source: xFile,
    sampleShape,
    size,
    ...(labels ? { y: labels.y, labelSource: labels.source } : {}),
    read: readRows,
    chunkRows,
    streamed: true,
  };
}

const CSV_OPTIONS = { skip_empty_lines: true, trim: true } as const;

interface CsvLayout {
  header: string[];
  labelIndex: number;
  featureCount: number;
}

function csvLayout(header: string[], file: string, labelColumn?: string): CsvLayout {
  const labelIndex = labelColumn === undefined ? -1 : header.indexOf(labelColumn);
  if (labelColumn !== undefined && labelIndex < 0) {
    throw new InputError(file, `has no label column "${labelColumn}"; its columns are: ${header.join(', ')}.`);
  }
  const featureCount = header.length - (labelIndex >= 0 ? 1 : 0);
  if (featureCount === 0) throw new InputError(file, 'has no feature columns.');
  return { header, labelIndex, featureCount };
}

/**
 * Writes one CSV record's features into `x` at `offset` and returns its label cell's value.
 * `line` is the record's line in the file (the header is line 1), for messages.
 */
function parseCsvRecord(
  record: string[],
  layout: CsvLayout,
  file: string,
  line: number,
  x: Float32Array,
  offset: number,
): number {
  let label = NaN;
  let f = 0;
  record.forEach((cell, c) => {
    const value = cell === '' ? NaN : Number(cell);
    if (Number.isNaN(value) && !/^nan$/i.test(cell)) {
      throw new InputError(
        `${file}:${line}`,
        `column "${layout.header[c]}" holds ${JSON.stringify(cell.slice(0, 30))}, which is not a number.`,
      );
    }
    if (c === layout.labelIndex) label = value;
    else x[offset + f++] = value;
  });
  return label;
}

async function readCsvSplit(file: string, labelColumn: string | undefined, options: LoadOptions): Promise<Dataset> {
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch (error) {
    throw new InputError(file, `cannot read the data file (${(error as NodeJS.ErrnoException).code ?? error}).`);
  }
  await assertFileNotLfsPointer(file);
  // Text is longer than its float32 values: a CSV that would stream by value size streams.
  if (size / 2 > (options.streamAboveBytes ?? DEFAULT_STREAM_ABOVE)) return streamCsvSplit(file, labelColumn, options);
  const text = await readFile(file, 'utf8');
  let rows: string[][];
  try {
    rows = parse(text, CSV_OPTIONS);
  } catch (error) {
    throw new InputError(
      file,
      `is not valid CSV: ${(error as Error).message} (every row needs as many cells as the header).`,
    );
  }
  if (rows.length === 0) throw new InputError(file, 'is empty; expected a header row and one row per sample.');
  const [header, ...body] = rows;
  const layout = csvLayout(header, file, labelColumn);
  const x = new Float32Array(body.length * layout.featureCount);
  const y = layout.labelIndex >= 0 ? new Float64Array(body.length) : undefined;
  body.forEach((record, r) => {
    const label = parseCsvRecord(record, layout, file, r + 2, x, r * layout.featureCount);
    if (y) y[r] = label;
  });
  // Row numbers in CSV messages are file lines (the header is line 1).
  assertFinite(x, layout.featureCount, file, 2);
  const labelSource = `${file} column "${labelColumn}"`;
  return inMemoryDataset(
    file,
    x,
    [layout.featureCount],
    y ? { y: toLabels(y, labelSource, 2), source: labelSource } : undefined,
  );
}

/**
 * A CSV too large to hold: one validating pass records the labels and the byte offset where each
 * chunk of rows starts; reads then parse from the nearest chunk start.
 */
async function streamCsvSplit(file: string, labelColumn: string | undefined, options: LoadOptions): Promise<Dataset> {
  let layout: CsvLayout | undefined;
  let chunkRows = options.chunkRows ?? 0;
  const offsets: number[] = [];
  let labels: Float64Array = new Float64Array(1024);
  let rows = 0;
  let previousBytes = 0;
  let row = new Float32Array(0);
  try {
    for await (const { record, info } of createReadStream(file).pipe(
      parseStream({ ...CSV_OPTIONS, info: true }),
    ) as AsyncIterable<{
      record: string[];
      info: { bytes: number };
    }>) {
      if (!layout) {
        layout = csvLayout(record, file, labelColumn);
        chunkRows ||= Math.max(1, Math.floor(CHUNK_BYTES / (layout.featureCount * 4)));
        row = new Float32Array(layout.featureCount);
      } else {
        if (rows % chunkRows === 0) offsets.push(previousBytes);
        const label = parseCsvRecord(record, layout, file, rows + 2, row, 0);
        assertFinite(row, layout.featureCount, file, rows + 2);
        if (rows === labels.length) labels = growTo(labels, rows * 2);
        labels[rows++] = label;
      }
      previousBytes = info.bytes;
    }
  } catch (error) {
    if (error instanceof InputError) throw error;
    throw new InputError(
      file,
      `is not valid CSV: ${(error as Error).message} (every row needs as many cells as the header).`,
    );
  }
  if (!layout) throw new InputError(file, 'is empty; expected a header row and one row per sample.');
  const known = layout;
  const read = async (start: number, count: number): Promise<Float32Array> => {
    const out = new Float32Array(count * known.featureCount);
    const chunk = Math.floor(start / chunkRows);
    const source = createReadStream(file, { start: offsets[chunk] });
    const records = source.pipe(parseStream(CSV_OPTIONS)) as AsyncIterable<string[]> & { destroy(): void };
    let index = chunk * chunkRows;
    let filled = 0;
    try {
      for await (const record of records) {
        if (index >= start) parseCsvRecord(record, known, file, index + 2, out, filled++ * known.featureCount);
        index++;
        if (filled === count) break;
      }
    } finally {
      source.destroy();
    }
    return out;
  };
  const labelSource = `${file} column "${labelColumn}"`;
  return {
    source: file,
    sampleShape: [known.featureCount],
    size: rows,
    ...(known.labelIndex >= 0 ? { y: toLabels(labels.subarray(0, rows), labelSource, 2), labelSource } : {}),
    read,
    chunkRows,
    streamed: true,
  };
}

function growTo(values: Float64Array, length: number): Float64Array {
  const grown = new Float64Array(length);
  grown.set(values);
  return grown;
}

function toFloat32(data: NpyArray): Float32Array {
  if (data instanceof Float32Array) return data;
  const out = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = Number(data[i]);
  return out;
}

function assertFinite(values: Float32Array, rowLength: number, source: string, firstRow = 0): void {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) {
      const row = Math.floor(i / rowLength);
      throw new InputError(
        `${source} row ${row + firstRow}`,
        `holds ${values[i]} at feature ${i % rowLength}; every feature must be a finite number.`,
      );
    }
  }
}

function toLabels(data: ArrayLike<number | bigint>, source: string, firstRow = 0): Int32Array {
  const labels = new Int32Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const value = Number(data[i]);
    if (!Number.isInteger(value) || value < 0) {
      throw new InputError(
        `${source} row ${i + firstRow}`,
        `label ${value} is not a class index (a non-negative integer).`,
      );
    }
    labels[i] = value;
  }
  return labels;
}

/** Checks the split against the teacher: feature shape and label range. */
export function checkAgainstTeacher(
  dataset: Dataset,
  inputShape: (number | null)[],
  classes: number,
  teacherFile: string,
): void {
  const fits =
    inputShape.length === dataset.sampleShape.length &&
    inputShape.every((d, i) => d === null || d === dataset.sampleShape[i]);
  if (!fits) {
    throw new InputError(
      dataset.source,
      `samples have shape [${dataset.sampleShape.join(', ')}] but the teacher (${teacherFile}) takes [${inputShape.map((d) => d ?? 'any').join(', ')}].`,
    );
  }
  if (dataset.classes && dataset.classes.length !== classes) {
    throw new InputError(
      'data.classes',
      `names ${dataset.classes.length} classes (${dataset.classes.join(', ')}) but the teacher (${teacherFile}) has ${classes} outputs: list one class per output, in the order of its outputs.`,
    );
  }
  if (!dataset.y) return;
  const labels = dataset.y;
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] >= classes) {
      throw new InputError(
        `${dataset.labelSource} row ${i}`,
        `label ${labels[i]} is out of range: the teacher has ${classes} outputs, so labels must be in [0, ${classes - 1}].`,
      );
    }
  }
}
