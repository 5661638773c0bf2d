import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { resolveBackend } from '../../src/backend/resolve.js';
import { inMemoryDataset } from '../../src/data/dataset.js';
import { MIN_ROWS_FOR_WORKERS, predictLogitsInWorkers, workersFor } from '../../src/distill/teacher-workers.js';
import { loadModel } from '../../src/models/model.js';
import { predictLogits } from '../../src/models/predict.js';
import { synthetic } from '../../fixtures/generate.js';
import { EXAMPLE } from '../helpers.js';

describe('teacher soft targets in worker threads', () => {
  it('uses workers only for large in-memory splits on the CPU backends', () => {
    const big = inMemoryDataset('big', new Float32Array(MIN_ROWS_FOR_WORKERS * 2), [1]);
    const small = inMemoryDataset('small', new Float32Array(100), [1]);
    expect(workersFor(big, 'wasm', 2)).toBe(2);
    expect(workersFor(big, 'wasm', 1)).toBe(1);
    expect(workersFor(small, 'wasm', 8)).toBe(1);
    expect(workersFor(big, 'webgpu', 8)).toBe(1);
    expect(workersFor({ ...big, streamed: true }, 'wasm', 8)).toBe(1);
  });

  it('gives logits bit-identical to one thread', async () => {
    const { tf } = await resolveBackend('wasm');
    const modelJson = path.join(EXAMPLE, 'models/teacher/model.json');
    const teacher = await loadModel(tf, modelJson, 'teacher');
    const { x } = synthetic(MIN_ROWS_FOR_WORKERS + 700, 11);
    const dataset = inMemoryDataset('mem', x, [64]);
    const single = await predictLogits(tf, teacher, dataset);
    const parallel = await predictLogitsInWorkers(teacher, modelJson, 'wasm', dataset, 2);
    expect(parallel.length).toBe(single.length);
    expect(Buffer.from(parallel.buffer).equals(Buffer.from(single.buffer))).toBe(true);
    teacher.dispose();
  });

  it('a stop ends every worker at once and keeps no rows: their ranges finish in no useful order', async () => {
    const { tf } = await resolveBackend('wasm');
    const modelJson = path.join(EXAMPLE, 'models/teacher/model.json');
    const teacher = await loadModel(tf, modelJson, 'teacher');
    const dataset = inMemoryDataset('mem', synthetic(MIN_ROWS_FOR_WORKERS * 2, 11).x, [64]);
    const stop = new AbortController();
    setTimeout(() => stop.abort(new Error('received SIGINT')), 20);
    const logits = await predictLogitsInWorkers(teacher, modelJson, 'wasm', dataset, 2, 64, stop.signal);
    expect(logits.length).toBe(0);
    teacher.dispose();
  });
});
