import { existsSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { BundledBackend } from '../backend/bundled.js';
import type { Dataset } from '../data/dataset.js';
import type { LoadedModel } from '../models/loaded-model.js';
import { passBatch } from '../models/predict.js';
import type { TeacherJob } from './teacher-worker.js';

/** Below this many rows one thread finishes before workers would have loaded the teacher. */
export const MIN_ROWS_FOR_WORKERS = 16_384;

/**
 * The wasm backend runs one thread under Node. For the teacher's pass over a large in-memory
 * transfer set, each core gets a worker with its own backend and copy of the teacher, and a
 * contiguous range of rows. Ranges are cut at multiples of the inference batch (chosen from the
 * sample size and the backend, as on one thread), so every batch is the one a single thread would
 * run and the logits are bit-identical.
 */
export function workersFor(dataset: Dataset, backend: string, cores = availableCores()): number {
  if (
    dataset.streamed ||
    (backend !== 'wasm' && backend !== 'cpu') ||
    dataset.size < MIN_ROWS_FOR_WORKERS ||
    !workerScript()
  )
    return 1;
  return Math.max(1, Math.min(cores, 8, Math.floor(dataset.size / (MIN_ROWS_FOR_WORKERS / 2))));
}

function availableCores(): number {
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

/**
 * The worker's script: beside this module once compiled (lib/), a separate bundle in the action's
 * dist/ (teacher-worker/index.js), or the TypeScript source under tsx (tests, scripts).
 */
function workerScript(): { url: URL; typescript: boolean } | undefined {
  const candidates: Array<[string, boolean]> = [
    ['./teacher-worker.js', false],
    ['./teacher-worker/index.js', false],
    ['./teacher-worker.ts', true],
  ];
  for (const [relative, typescript] of candidates) {
    const url = new URL(relative, import.meta.url);
    if (url.protocol === 'file:' && existsSync(fileURLToPath(url))) return { url, typescript };
  }
  return undefined;
}

export async function predictLogitsInWorkers(
  teacher: LoadedModel,
  modelJson: string,
  backend: BundledBackend,
  dataset: Dataset,
  workers: number,
  batch = passBatch(dataset.sampleShape, backend),
  stop?: AbortSignal,
  /** Told the rows done each time a worker finishes its range (progress). */
  onRows?: (done: number) => void,
): Promise<Float32Array> {
  const script = workerScript();
  if (!script)
    throw new Error("the teacher worker script is missing beside distill-gate's code (a broken install or bundle)");
  const rowsPerWorker = Math.ceil(Math.ceil(dataset.size / batch) / workers) * batch;
  const out = new Float32Array(dataset.size * teacher.outputWidth);
  const jobs: Array<Promise<void>> = [];
  const running = new Set<Worker>();
  let finished = 0;
  for (let start = 0; start < dataset.size; start += rowsPerWorker) {
    const end = Math.min(dataset.size, start + rowsPerWorker);
    jobs.push(
      (async () => {
        const rows = (await dataset.read(start, end - start)).slice();
        // A stop that came while reading: this range's worker is never started.
        if (stop?.aborted) return;
        const logits = await runWorker(script, running, {
          backend,
          modelJson,
          options: teacher.teacherOptions ?? {},
          output: teacher.output,
          sampleShape: dataset.sampleShape,
          batch,
          kernelPass: teacher.rowPass !== undefined,
          rows,
        });
        out.set(logits, start * teacher.outputWidth);
        finished += end - start;
        onRows?.(finished);
      })(),
    );
  }
  // A stop ends every worker at once: their rows finish in no useful order, so none are kept.
  let onStop = () => {};
  const stopped = new Promise<'stopped'>((resolve) => {
    onStop = () => resolve('stopped');
    if (stop?.aborted) onStop();
    stop?.addEventListener('abort', onStop, { once: true });
  });
  const outcome = await Promise.race([Promise.all(jobs), stopped]);
  stop?.removeEventListener('abort', onStop);
  if (outcome === 'stopped' || stop?.aborted) {
    for (const worker of running) void worker.terminate();
    // The terminated workers' jobs reject; nobody awaits them any more.
    for (const job of jobs) job.catch(() => {});
    return out.subarray(0, 0);
  }
  return out;
}

function runWorker(
  script: { url: URL; typescript: boolean },
  running: Set<Worker>,
  job: TeacherJob,
): Promise<Float32Array> {
  const options = { workerData: job, transferList: [job.rows.buffer as ArrayBuffer] };
  // Under tsx the worker is TypeScript: it registers tsx's loader itself, then imports the source.
  const worker = script.typescript
    ? new Worker(
        `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(script.url.href)}); });`,
        {
          ...options,
          eval: true,
        },
      )
    : new Worker(script.url, options);
  running.add(worker);
  worker.once('exit', () => running.delete(worker));
  return new Promise((resolve, reject) => {
    worker.once('message', (logits: Float32Array) => resolve(logits));
    worker.once('error', reject);
    worker.once('exit', (code) => code !== 0 && reject(new Error(`a teacher worker exited with code ${code}`)));
  });
}
