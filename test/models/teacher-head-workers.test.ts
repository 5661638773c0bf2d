import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveBackend } from '../../src/backend/resolve.js';
import { inMemoryDataset } from '../../src/data/dataset.js';
import { predictLogitsInWorkers } from '../../src/distill/teacher-workers.js';
import { loadModel } from '../../src/models/model.js';
import { predictLogits } from '../../src/models/predict.js';
import { GRAPH_MODELS } from '../../fixtures/graph-models.js';

describe('teacher worker threads load the teacher as the main thread did', () => {
  it('with its head and as two classes, bit-identical to one thread at the same batch', async () => {
    const { tf } = await resolveBackend('wasm');
    const modelJson = path.join(GRAPH_MODELS, 'two-head/model.json');
    const teacher = await loadModel(tf, modelJson, 'teacher', { head: 'Identity_1' });
    expect(teacher.outputWidth).toBe(2);
    const x = Float32Array.from({ length: 1000 * 4 }, (_, i) => Math.sin(i * 0.37) * 2);
    const dataset = inMemoryDataset('mem', x, [4]);
    const single = await predictLogits(tf, teacher, dataset, dataset.size, 64);
    const parallel = await predictLogitsInWorkers(teacher, modelJson, 'wasm', dataset, 2, 64);
    expect(parallel.length).toBe(1000 * 2);
    expect(Buffer.from(parallel.buffer).equals(Buffer.from(single.buffer))).toBe(true);
    teacher.dispose();
  });
});
