/**
 * `npm run bench:workers`: the teacher's soft-target pass over a large transfer set on the wasm
 * backend, on this thread and in one worker per core, measured in one run. Not a test.
 *
 *   npm run bench:workers -- --rows 200000
 */
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { resolveBackend } from '../src/backend/resolve.js';
import { inMemoryDataset } from '../src/data/dataset.js';
import { predictLogitsInWorkers, workersFor } from '../src/distill/teacher-workers.js';
import { loadModel } from '../src/models/model.js';
import { predictLogits } from '../src/models/predict.js';
import { synthetic } from '../fixtures/generate.js';

const { values } = parseArgs({ options: { rows: { type: 'string', default: '200000' } } });
const modelJson = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../fixtures/example/models/teacher/model.json',
);
const { tf } = await resolveBackend('wasm');
const teacher = await loadModel(tf, modelJson, 'teacher');
const rows = Number(values.rows);
const dataset = inMemoryDataset('bench', synthetic(rows, 1).x, [64]);
const workers = workersFor(dataset, 'wasm');
let started = performance.now();
const single = await predictLogits(tf, teacher, dataset);
const oneThread = (performance.now() - started) / 1000;
started = performance.now();
const parallel = await predictLogitsInWorkers(teacher, modelJson, 'wasm', dataset, workers);
const inWorkers = (performance.now() - started) / 1000;
const identical = Buffer.from(single.buffer).equals(Buffer.from(parallel.buffer));
console.log(
  `teacher soft targets, ${rows.toLocaleString('en-US')} rows, bundled example teacher (216k params), wasm, ${os.cpus().length} logical cores:`,
);
console.log(
  `  one thread ${oneThread.toFixed(2)} s; ${workers} workers ${inWorkers.toFixed(2)} s (worker start-up included): ${(oneThread / inWorkers).toFixed(2)}x; logits bit-identical: ${identical}`,
);
