import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { glob } from 'tinyglobby';
import { resizeBilinearOnCpu } from '../backend/resize.js';
import type { Tf } from '../backend/tf.js';
import type { ImageSplitSpec, NormalizeSettings } from '../config/schema.js';
import { InputError } from '../errors.js';
import { CHUNK_BYTES, DEFAULT_STREAM_ABOVE, type Dataset } from './dataset.js';
import { decodeImage, type DecodedImage } from './decode.js';

/**
 * Bump when what an entry holds changes (decoding, resizing, normalising; an update of pngjs or
 * jpeg-js that decodes differently), so old entries stop matching; TF.js's version, whose kernel
 * resizes, is in the key. The key hashes the files' contents, not their modification times: a
 * fresh checkout (every CI run) writes every file anew, and a key on mtime would never hit there.
 */
const CACHE_FORMAT = 1;

/** An image split's files, found by its glob, in code-unit order of their paths (the same on every runner). */
export interface ImageListing {
  name: 'train' | 'eval';
  spec: ImageSplitSpec;
  files: string[];
  /** Each file's parent folder's name: its class. */
  folders: string[];
}

export interface ImageLoadOptions {
  tf: Tf;
  normalize?: NormalizeSettings;
  /** The run's cache folder: decoded splits are kept there (`images-<key>.f32`). */
  cacheDir?: string;
  streamAboveBytes?: number;
  chunkRows?: number;
  /** The config file, to name it beside a key in messages. */
  configFile?: string;
  log?: (line: string) => void;
  /** The decoder (tests count its calls). */
  decode?: (file: string, bytes: Uint8Array) => DecodedImage;
}

const at = (configFile: string | undefined, key: string) => (configFile ? `${configFile} ${key}` : key);

export async function listImages(
  name: 'train' | 'eval',
  spec: ImageSplitSpec,
  configFile?: string,
): Promise<ImageListing> {
  const files = (await glob(spec.images, { absolute: true, onlyFiles: true, expandDirectories: false })).sort((a, b) =>
    a < b ? -1 : a > b ? 1 : 0,
  );
  if (files.length === 0) {
    throw new InputError(
      at(configFile, `data.${name}.images`),
      `the pattern ${JSON.stringify(spec.images)} matches no files; expected one folder per class holding PNG or JPEG files.`,
    );
  }
  return { name, spec, files, folders: files.map((file) => path.basename(path.dirname(file))) };
}

/**
 * The class list: `data.classes` as written (the teacher's output order), or the folder names in
 * alphabetical order when it says `sorted` (as Keras' image_dataset_from_directory and
 * torchvision's ImageFolder number them). Never guessed: without `classes` the error lists the
 * folders found and how to write it; a folder the list does not name is an error.
 */
export function resolveClasses(
  listings: ImageListing[],
  classes: string[] | 'sorted' | undefined,
  configFile?: string,
): string[] {
  const found = [...new Set(listings.flatMap((l) => l.folders))].sort();
  if (classes === undefined) {
    throw new InputError(
      at(configFile, 'data.classes'),
      `is not set; the image folders name ${found.length} classes: ${found.join(', ')}. List them in the order of the teacher's outputs, ` +
        `\`classes: [${found.join(', ')}]\`, or write \`classes: sorted\` if the teacher numbers them alphabetically (Keras, torchvision).`,
    );
  }
  if (classes === 'sorted') return found;
  const twice = classes.find((name, i) => classes.indexOf(name) !== i);
  if (twice !== undefined)
    throw new InputError(
      at(configFile, 'data.classes'),
      `lists ${JSON.stringify(twice)} twice; each class once, in the order of the teacher's outputs.`,
    );
  for (const listing of listings) {
    const i = listing.folders.findIndex((folder) => !classes.includes(folder));
    if (i >= 0) {
      throw new InputError(
        listing.files[i],
        `is in folder ${JSON.stringify(listing.folders[i])}, which data.classes does not list (${classes.join(', ')}); add it in the teacher's output order, or move the folder out of data.${listing.name}.images.`,
      );
    }
  }
  return classes;
}

/** Pixels (0..255) to the teacher's input: (pixel * scale - mean[c]) / std[c]. */
function normaliser(settings: NormalizeSettings | undefined, channels: number): (values: Float32Array) => Float32Array {
  const scale = settings?.scale ?? 1 / 255;
  const perChannel = (v: number | number[] | undefined, fallback: number) =>
    Array.from({ length: channels }, (_, c) =>
      v === undefined ? fallback : typeof v === 'number' ? v : v.length === 1 ? v[0] : v[c],
    );
  const mean = perChannel(settings?.mean, 0);
  const std = perChannel(settings?.std, 1);
  return (values) => {
    for (let i = 0; i < values.length; i++) values[i] = (values[i] * scale - mean[i % channels]) / std[i % channels];
    return values;
  };
}

/** One image, decoded, checked, resized and normalised into `out` at `offset`. */
function imageRow(
  file: string,
  bytes: Uint8Array,
  listing: ImageListing,
  options: ImageLoadOptions,
  normalise: (v: Float32Array) => Float32Array,
): Float32Array {
  const { spec, name } = listing;
  const image = (options.decode ?? decodeImage)(file, bytes);
  if (image.channels !== spec.channels) {
    const kind = ['', 'grey', 'grey and alpha', 'RGB', 'RGBA'][image.channels];
    throw new InputError(
      file,
      `has ${image.channels} channel${image.channels === 1 ? '' : 's'} (${kind}) but data.${name}.channels is ${spec.channels}; convert the image, or set channels to what the teacher takes.`,
    );
  }
  const [height, width] = spec.size;
  const pixels = Float32Array.from(image.pixels);
  const resized =
    image.height === height && image.width === width
      ? pixels
      : resizeBilinearOnCpu(options.tf, pixels, [image.height, image.width, image.channels], [height, width]);
  return normalise(resized);
}

async function readBytes(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (error) {
    throw new InputError(file, `cannot read the image (${(error as NodeJS.ErrnoException).code ?? error}).`);
  }
}

/** The cache entry's name: the preprocessing settings and every file's bytes, in order. */
async function cacheKey(
  listing: ImageListing,
  normalize: NormalizeSettings | undefined,
  tfVersion: string,
): Promise<string> {
  const { size, channels } = listing.spec;
  const hash = createHash('sha256').update(
    `distill-gate images v${CACHE_FORMAT}\n${tfVersion}\n${size.join('x')}x${channels}\n${JSON.stringify(normalize ?? {})}\n${listing.files.length}\n`,
  );
  for (const file of listing.files) {
    const bytes = await readBytes(file);
    hash.update(`${bytes.length}\n`).update(bytes);
  }
  return hash.digest('hex').slice(0, 32);
}

/**
 * An image split as a Dataset of float32 [height, width, channels] rows, labelled by folder.
 * Decoded once: kept in memory, or (above `streamAboveBytes`) read a chunk at a time; with a
 * cache folder the decoded rows are stored there and a later run reads them instead of decoding.
 */
export async function loadImageSplit(
  listing: ImageListing,
  classes: string[],
  options: ImageLoadOptions,
): Promise<Dataset> {
  const { spec, files } = listing;
  const sampleShape = [...spec.size, spec.channels];
  const width = sampleShape.reduce((a, b) => a * b, 1);
  const size = files.length;
  const y = Int32Array.from(listing.folders, (folder) => classes.indexOf(folder));
  const normalise = normaliser(options.normalize, spec.channels);
  const decodeRows = async (start: number, count: number, out = new Float32Array(count * width)) => {
    for (let i = 0; i < count; i++)
      out.set(imageRow(files[start + i], await readBytes(files[start + i]), listing, options, normalise), i * width);
    return out;
  };
  const base = { source: spec.images, sampleShape, size, y, labelSource: `data.${listing.name}.images`, classes };
  const streamed = size * width * 4 > (options.streamAboveBytes ?? DEFAULT_STREAM_ABOVE);
  const chunkRows = streamed
    ? (options.chunkRows ?? Math.max(1, Math.floor(CHUNK_BYTES / (width * 4))))
    : Math.max(size, 1);
  const log = (line: string) => options.log?.(`data: ${size} images for ${listing.name} (${line})`);
  const entry = options.cacheDir
    ? path.join(options.cacheDir, `images-${await cacheKey(listing, options.normalize, options.tf.version_core)}.f32`)
    : undefined;
  const bytes = size * width * 4;
  const cached = entry ? await open(entry, 'r').catch(() => undefined) : undefined;
  // A truncated entry (a job killed mid-write elsewhere) is ignored and rewritten.
  const hit = cached ? (await cached.stat()).size === bytes : false;
  await cached?.close();
  if (entry && !hit) await writeEntry(entry, size, chunkRows, width, decodeRows);
  if (!entry) {
    // No cache folder: decoded now (every file checked before training), and again per read when streamed.
    if (!streamed) {
      log('decoded');
      return { ...base, read: inMemory(await decodeRows(0, size), width), chunkRows, streamed };
    }
    for (let start = 0; start < size; start += chunkRows) await decodeRows(start, Math.min(chunkRows, size - start));
    log(`decoded; decoded again for each pass, as it is above data.streamAboveMB: set cacheDir to decode once`);
    return { ...base, read: decodeRows, chunkRows, streamed };
  }
  log(hit ? `from the cache, ${entry}` : `decoded into the cache, ${entry}`);
  if (!streamed) {
    const data = await readFile(entry);
    return {
      ...base,
      read: inMemory(new Float32Array(data.buffer, data.byteOffset, data.byteLength / 4), width),
      chunkRows,
      streamed,
    };
  }
  const readRows = async (start: number, count: number) => {
    const out = new Float32Array(count * width);
    const handle = await open(entry, 'r');
    try {
      await handle.read(new Uint8Array(out.buffer), 0, out.byteLength, start * width * 4);
    } finally {
      await handle.close();
    }
    return out;
  };
  return { ...base, read: readRows, chunkRows, streamed };
}

const inMemory = (x: Float32Array, width: number) => async (start: number, count: number) =>
  x.subarray(start * width, (start + count) * width);

/** Decodes the split chunk by chunk into the entry: written then renamed, so readers never see half of one. */
async function writeEntry(
  entry: string,
  size: number,
  chunkRows: number,
  width: number,
  decodeRows: (start: number, count: number) => Promise<Float32Array>,
): Promise<void> {
  await mkdir(path.dirname(entry), { recursive: true });
  const partial = `${entry}.${process.pid}.partial`;
  const handle = await open(partial, 'w');
  try {
    for (let start = 0; start < size; start += chunkRows) {
      const rows = await decodeRows(start, Math.min(chunkRows, size - start));
      await handle.write(
        new Uint8Array(rows.buffer, rows.byteOffset, rows.byteLength),
        0,
        rows.byteLength,
        start * width * 4,
      );
    }
  } catch (error) {
    await handle.close();
    await rm(partial, { force: true });
    throw error;
  }
  await handle.close();
  await rename(partial, entry);
}
