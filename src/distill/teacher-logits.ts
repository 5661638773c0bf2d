import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { BundledBackend } from '../backend/bundled.js';
import type { ConcreteBackend, Tf } from '../backend/resolve.js';
import { predictLogitsInWorkers, workersFor } from './teacher-workers.js';
import type { Dataset } from '../data/dataset.js';
import type { LoadedModel } from '../models/loaded-model.js';
import { passBatch, predictLogits } from '../models/predict.js';

/**
 * Bump when the stored layout or what the logits mean changes, so old entries stop matching.
 * 2: the key names the teacher's head and width (one-unit heads became two classes).
 */
const CACHE_FORMAT = 2;

/** The teacher's logits over a split (the soft targets' source), and where they came from. */
export interface TeacherLogits {
  logits: Float32Array;
  source: 'computed' | 'cache';
  /** Worker threads that computed them (1: this thread). */
  workers?: number;
  /** Where the entry lives, when a cache folder was given. */
  cacheFile?: string;
  /** Rows the logits cover: fewer than the split's when `stop` ended the pass early. */
  rows: number;
  /** What computed them: the TF.js backend, the training kernel ("kernel simd128") or the teacher's runtime. */
  computedBy: string;
}

/**
 * The teacher's logits over the transfer set, computed once per run, or read from a
 * content-addressed cache: the key hashes the teacher's topology and weights, the data, the
 * teacher-output setting and the backend (float32 reductions differ between backends, and the
 * same config must give the same student on the same backend). A hit skips the teacher entirely.
 * `stop` (a cancel, the time budget) ends the pass between batches; a partial pass is never cached.
 * `onRows` is told the rows done as the pass goes (progress).
 */
export async function teacherLogits(
  tf: Tf,
  teacher: LoadedModel,
  train: Dataset,
  backend: ConcreteBackend,
  cacheDir?: string,
  modelJson?: string,
  stop?: AbortSignal,
  onRows?: (done: number) => void,
): Promise<TeacherLogits> {
  const expectedLength = train.size * teacher.outputWidth;
  // A teacher in its own runtime (ONNX), or in the training kernel, computes the same logits
  // whatever the TF.js backend: its runtime (version, execution provider) or the kernel's build
  // is what the entry depends on.
  const computedBy = teacher.rowPass?.label ?? teacher.runtime?.label ?? backend;
  const cacheFile =
    cacheDir && teacher.fingerprint
      ? path.join(
          cacheDir,
          `soft-targets-${await cacheKey(teacher, train, [computedBy, teacher.rowPass?.build].filter(Boolean).join(' '))}.f32`,
        )
      : undefined;
  if (cacheFile) {
    const cached = await readFile(cacheFile).catch(() => undefined);
    // A truncated entry (a job killed mid-write elsewhere) is ignored and rewritten.
    if (cached && cached.length === expectedLength * 4) {
      const logits = new Float32Array(cached.buffer.slice(cached.byteOffset, cached.byteOffset + cached.byteLength));
      return { logits, source: 'cache', cacheFile, rows: train.size, computedBy };
    }
  }
  // onnxruntime runs its own intra-op threads on every core: TF.js workers are for TF.js teachers.
  // A teacher in the kernel on several threads has its cores already.
  const ownThreads = teacher.runtime || (teacher.rowPass?.threads ?? 1) > 1;
  const workers = modelJson && !ownThreads ? workersFor(train, backend) : 1;
  // One batch size, from the sample size and the backend's memory, for this thread and the workers.
  const batch = passBatch(train.sampleShape, computedBy);
  // workersFor gives more than one only on the bundled backends (wasm, cpu).
  const logits =
    workers > 1 && modelJson
      ? await predictLogitsInWorkers(teacher, modelJson, backend as BundledBackend, train, workers, batch, stop, onRows)
      : await predictLogits(tf, teacher, train, train.size, batch, stop, onRows);
  const rows = logits.length / teacher.outputWidth;
  if (cacheFile && rows === train.size) {
    await mkdir(path.dirname(cacheFile), { recursive: true });
    // Write then rename: readers never see half an entry.
    const partial = `${cacheFile}.${process.pid}.partial`;
    await writeFile(partial, Buffer.from(logits.buffer, logits.byteOffset, logits.byteLength));
    await rename(partial, cacheFile);
  }
  return { logits, source: 'computed', workers, rows, computedBy, ...(cacheFile ? { cacheFile } : {}) };
}

/** The cache entry's name: the teacher (its fingerprint, head, width, output), what computed its logits (a TF.js backend, or the runtime), and the data. */
export async function cacheKey(teacher: LoadedModel, train: Dataset, backend: string): Promise<string> {
  const hash = createHash('sha256').update(
    `distill-gate soft targets v${CACHE_FORMAT}\n${teacher.fingerprint}\n${teacher.head ?? ''}\n${teacher.outputWidth}\n${teacher.output}\n${backend}\n${train.sampleShape.join('x')}\n`,
  );
  for (let start = 0; start < train.size; start += train.chunkRows) {
    const rows = await train.read(start, Math.min(train.chunkRows, train.size - start));
    hash.update(new Uint8Array(rows.buffer, rows.byteOffset, rows.byteLength));
  }
  return hash.digest('hex').slice(0, 32);
}
