/**
 * The WebGPU backend on Dawn, on this machine's software adapter (Mesa llvmpipe through Dawn's
 * OpenGL ES backend; `.ci/run` installs the Debian packages): the same distillation must give the
 * same numbers as the cpu backend within float32 tolerance, and leak no tensors.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveBackend } from '../../src/backend/resolve.js';
import { loadConfig, withOverrides } from '../../src/config/load.js';
import { runPipeline } from '../../src/pipeline.js';
import { exampleWorkspace, quickConfig } from '../helpers.js';

describe('webgpu backend (Dawn, software adapter)', () => {
  it('auto never picks a software adapter, and says why', async () => {
    const backend = await resolveBackend('auto');
    expect(backend.name).not.toBe('webgpu');
    expect(backend.notes.find((n) => n.startsWith('webgpu:'))).toMatch(
      /webgpu: no usable WebGPU adapter: .*opengles: only a software adapter \(.*llvmpipe.*\), which auto never picks/,
    );
  });

  it('distils the fixture to the same metrics as the cpu backend', async () => {
    const dir = await exampleWorkspace(
      quickConfig({ distill: '{ temperature: 4, alpha: 0.9, epochs: 4, batchSize: 64, learningRate: 0.01, seed: 7 }' }),
    );
    const config = await loadConfig(path.join(dir, 'distill-gate.yml'));
    const cpu = (await runPipeline(withOverrides(config, { backend: 'cpu' }), { outDir: path.join(dir, 'cpu') }))
      .report;
    const gpu = (await runPipeline(withOverrides(config, { backend: 'webgpu' }), { outDir: path.join(dir, 'webgpu') }))
      .report;
    expect(gpu.backend).toBe('webgpu');
    expect(gpu.environment.gpu).toMatch(/via Dawn (opengles|vulkan)/);
    // float32 with other reduction orders: per-epoch losses agree to 1e-4 relative ...
    gpu.training.loss.forEach((loss, epoch) =>
      expect(Math.abs(loss - cpu.training.loss[epoch]) / cpu.training.loss[epoch]).toBeLessThan(1e-4),
    );
    // ... and the gated metrics, computed on the host from each backend's logits, agree.
    expect(Math.abs(gpu.metrics['agreement.top1'] - cpu.metrics['agreement.top1'])).toBeLessThanOrEqual(0.005);
    expect(Math.abs(gpu.metrics.kl - cpu.metrics.kl)).toBeLessThan(1e-3);
    expect(gpu.metrics['size.studentBytes']).toBe(cpu.metrics['size.studentBytes']);
    expect(gpu.gates.map((g) => g.status)).toEqual(cpu.gates.map((g) => g.status));
    expect(gpu.training.epochs).toBe(4);
  });

  it('keeps the live tensor count flat across epochs on webgpu', async () => {
    const { tf } = await resolveBackend('webgpu');
    const { buildStudent } = await import('../../src/models/student.js');
    const { distill } = await import('../../src/distill/train.js');
    const { synthetic } = await import('../../fixtures/generate.js');
    const { x, y } = synthetic(64, 3, 8, 4);
    const student = await buildStudent(
      tf,
      {
        layers: [
          { type: 'dense', units: 8, activation: 'relu' },
          { type: 'dense', units: 4 },
        ],
      },
      [8],
      1,
    );
    const counts: number[] = [];
    const { inMemoryDataset } = await import('../../src/data/dataset.js');
    await distill(tf, student, inMemoryDataset('mem', x, [8], { y, source: 'mem' }), {
      settings: { temperature: 2, alpha: 0.5, epochs: 6, batchSize: 16, learningRate: 0.01, seed: 1 },
      teacherLogits: new Float32Array(64 * 4),
      onEpoch: (p) => counts.push(p.tensors),
    });
    expect(new Set(counts.slice(1)).size).toBe(1);
    student.dispose();
  });
});
