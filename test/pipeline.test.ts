import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.js';
import { InputError } from '../src/errors.js';
import * as tf from '@tensorflow/tfjs';
import { runPipeline } from '../src/pipeline.js';
import { exampleWorkspace, quickConfig } from './helpers.js';

async function run(top: string) {
  const dir = await exampleWorkspace(
    quickConfig({ top, distill: '{ epochs: 1, batchSize: 64, seed: 3 }' }).replace('measure: { warmup: 1, rounds: 3, throughputBatch: 64 }\n', ''),
  );
  const config = await loadConfig(path.join(dir, 'distill-gate.yml'));
  const lines: string[] = [];
  const result = await runPipeline(config, { outDir: path.join(dir, 'out'), searchFrom: [dir], log: (line) => lines.push(line) });
  return { result, log: lines.join('\n') };
}

describe('measure.backend', () => {
  it('times teacher and student on the named backend while the rest of the run stays on its own', async () => {
    const { result, log } = await run('measure: { warmup: 1, rounds: 3, throughputBatch: 64, backend: cpu }\nbackend: wasm');
    expect(result.report.backend).toBe('wasm');
    expect(result.report.speedBackend).toBe('cpu');
    // Resolving cpu for timing did not move the rest of the run there: it ends on wasm, and the
    // environment later runs compare timings with is the one speed was timed on.
    expect(tf.getBackend()).toBe('wasm');
    expect(result.report.environment.backend).toBe('cpu');
    expect(log).toMatch(/training: kernel step on wasm; inference on wasm/);
    expect(log).toMatch(/speed: timed on cpu \(measure\.backend\)/);
    expect(result.report.metrics['speed.studentMs']).toBeGreaterThan(0);
  });

  it("is left out of the report when it is the run's own backend", async () => {
    const { result, log } = await run('measure: { warmup: 1, rounds: 3, throughputBatch: 64, backend: wasm }\nbackend: wasm');
    expect(result.report.speedBackend).toBeUndefined();
    expect(log).not.toMatch(/speed: timed on/);
  });

  it('fails before training, naming measure.backend, when that backend is not installed', async () => {
    const error = await run('measure: { warmup: 1, rounds: 3, throughputBatch: 64, backend: tensorflow }\nbackend: wasm').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).culprit).toBe('measure.backend');
    expect((error as Error).message).toMatch(/@tensorflow\/tfjs-node/);
  });
});

describe('a student TF.js cannot train', () => {
  it('exits 2 naming student.layers before any training, not as an internal error an hour in', async () => {
    const dir = await exampleWorkspace(
      quickConfig({
        student:
          '  layers:\n    - { type: reshape, targetShape: [8, 8, 1] }\n    - { type: conv2d, filters: 2, kernelSize: 3, dilationRate: 2 }\n    - { type: flatten }\n    - { type: dense, units: 10 }',
      }),
    );
    const config = await loadConfig(path.join(dir, 'distill-gate.yml'));
    const error = await runPipeline(config, { outDir: path.join(dir, 'out'), searchFrom: [dir] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).culprit).toBe('student.layers');
    expect((error as Error).message).toMatch(/cannot train this student on any backend \(.*dilation/);
  });
});
