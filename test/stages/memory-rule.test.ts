import { existsSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Tensor } from '@tensorflow/tfjs';
import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { resolveBackend } from '../../src/backend/resolve.js';
import { loadConfig } from '../../src/config/load.js';
import { encodeNpy } from '../../src/data/npy.js';
import { writeModelArtifacts } from '../../src/models/artifacts.js';
import type { LoadedModel } from '../../src/models/loaded-model.js';
import { INFERENCE_BUDGET_BYTES, inferenceBatch } from '../../src/models/predict.js';
import { throughputRows } from '../../src/measure/speed.js';
import { runPipeline } from '../../src/pipeline.js';
import type { Report } from '../../src/report/report.js';

// A 224x224x3 teacher whose forward pass overflows "the heap" (throws what the wasm backend throws,
// "memory access out of bounds") whenever it is given more rows than the memory rule allows:
// the rule's budget is lowered here, so that a few rows stand for the issue's 300-row split.

/** How the guarded teacher fails: beyond the memory rule, on every one-row call, or on every call. */
const guard = { mode: 'rule' as 'rule' | 'one row' | 'always', largest: 0 };

vi.mock('../../src/models/pair.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../src/models/pair.js')>();
  const { inferenceBatch: rule } = await import('../../src/models/predict.js');
  const overflow = () => new Error('RuntimeError: memory access out of bounds at BackendWasm.disposeData');
  return {
    ...original,
    loadTeacherAndStudent: async (...args: Parameters<typeof original.loadTeacherAndStudent>) => {
      const loaded = await original.loadTeacherAndStudent(...args);
      const teacher: LoadedModel = {
        ...loaded.teacher,
        // Not a LayersModel as far as the run knows: its pass stays on TF.js, where this guard is.
        layers: undefined,
        predict: (x: Tensor) => {
          const rows = x.shape[0];
          guard.largest = Math.max(guard.largest, rows);
          if (guard.mode === 'always' || (guard.mode === 'one row' && rows === 1)) throw overflow();
          if (rows > rule(x.shape.slice(1) as number[], args[0].getBackend())) throw overflow();
          return loaded.teacher.predict(x);
        },
      };
      return { teacher, student: loaded.student };
    },
  };
});

const ROWS = 24;
const SHAPE = [224, 224, 3];
const budgets = { ...INFERENCE_BUDGET_BYTES };
let dir: string;

beforeAll(async () => {
  await resolveBackend('cpu');
  dir = await mkdtemp(path.join(os.tmpdir(), 'memory-rule-'));
  const teacher = tf.sequential({
    layers: [
      tf.layers.conv2d({
        inputShape: SHAPE,
        filters: 4,
        kernelSize: 8,
        strides: 8,
        activation: 'relu',
        kernelInitializer: tf.initializers.heNormal({ seed: 1 }),
      }),
      tf.layers.globalAveragePooling2d({}),
      tf.layers.dense({ units: 3, kernelInitializer: tf.initializers.heNormal({ seed: 2 }) }),
    ],
  });
  await teacher.save(
    tf.io.withSaveHandler(async (artifacts) => {
      await writeModelArtifacts(path.join(dir, 'teacher'), artifacts);
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  teacher.dispose();
  const width = SHAPE.reduce((a, b) => a * b, 1);
  const x = new Float32Array(ROWS * width);
  for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.001) + Math.cos(i * 0.37);
  await writeFile(path.join(dir, 'x.npy'), encodeNpy(x, [ROWS, ...SHAPE]));
});

afterEach(() => {
  Object.assign(INFERENCE_BUDGET_BYTES, budgets);
  guard.mode = 'rule';
  guard.largest = 0;
});

/** The memory rule's budget lowered to 3 rows of 224x224x3 (the wasm default gives 13). */
function lowerBudget(): number {
  INFERENCE_BUDGET_BYTES.cpu = INFERENCE_BUDGET_BYTES.wasm = 3 * 224 * 224 * 3 * 4 * 32;
  return inferenceBatch(SHAPE, 'cpu');
}

async function run(out: string) {
  await writeFile(
    path.join(dir, 'distill-gate.yml'),
    [
      'teacher: teacher/model.json',
      'student: { layers: [ { type: conv2d, filters: 2, kernelSize: 16, strides: 16, activation: relu }, { type: globalAveragePooling2d }, { type: dense, units: 3 } ] }',
      'data: { train: { x: x.npy }, eval: { x: x.npy } }',
      'distill: { epochs: 1, batchSize: 8 }',
      // The default throughput batch, 256, is more than the split: today's timing sent all 24 rows at once.
      'measure: { warmup: 1, rounds: 3 }',
      'backend: cpu',
      'gates: { agreement.top1: ">= 0", agreement.kappa: ">= -1" }',
      '',
    ].join('\n'),
  );
  const config = await loadConfig(path.join(dir, 'distill-gate.yml'));
  const lines: string[] = [];
  const result = await runPipeline(config, {
    outDir: path.join(dir, out),
    searchFrom: [dir],
    log: (line) => lines.push(line),
  });
  const written = JSON.parse(await readFile(path.join(dir, out, 'report.json'), 'utf8')) as Report;
  return { result, written, log: lines.join('\n') };
}

describe('every inference call obeys the memory rule', () => {
  it('caps the throughput batch at what the rule allows, as the teacher pass is capped', () => {
    expect(throughputRows(256, { size: 300, sampleShape: SHAPE }, 'wasm')).toBe(13);
    expect(throughputRows(256, { size: 300, sampleShape: [64] }, 'wasm')).toBe(256);
    expect(throughputRows(256, { size: 40, sampleShape: [64] }, 'wasm')).toBe(40);
    expect(throughputRows(8, { size: 300, sampleShape: SHAPE }, 'wasm')).toBe(8);
  });

  it('a 224x224 teacher and an eval split larger than the rule: the run measures speed instead of overflowing', async () => {
    const rule = lowerBudget();
    expect(rule).toBe(3);
    const before = tf.memory().numTensors;
    const { result, written } = await run('out-rule');
    expect(result.cutShort).toBeUndefined();
    expect(written.status).toBe('complete');
    expect(guard.largest).toBe(rule);
    expect(written.metrics['speed.teacherThroughput']).toBeGreaterThan(0);
    expect(written.metrics['agreement.top1']).toBeGreaterThanOrEqual(0);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('a run always ends with a report', () => {
  it('out of memory in the teacher pass: the cut-short report names the phase and the cause', async () => {
    lowerBudget();
    guard.mode = 'always';
    const { result, written } = await run('out-teacher');
    expect(result.cutShort).toBe(true);
    expect(written.verdict).toBe('fail');
    expect(written.status).toBe('incomplete');
    expect(written.reasons[0]).toMatch(
      /^The run was cut short while running the teacher's pass: it ran out of memory \(.*memory access out of bounds.*\); lower /,
    );
    expect(existsSync(path.join(dir, 'out-teacher', 'report.md'))).toBe(true);
  });

  it('out of memory while measuring: the report holds the training and names measuring', async () => {
    lowerBudget();
    guard.mode = 'one row';
    const { result, written, log } = await run('out-measure');
    expect(result.cutShort).toBe(true);
    expect(written.reasons[0]).toMatch(/^The run was cut short while measuring: it ran out of memory/);
    expect(written.training.epochs).toBe(1);
    expect(log).toMatch(/error: the run failed while measuring/);
    const markdown = await readFile(path.join(dir, 'out-measure', 'report.md'), 'utf8');
    expect(markdown).toMatch(/phase times: load <?[\d.]+ s, teacher pass <?[\d.]+ s, distillation <?[\d.]+ s/);
  });
});
