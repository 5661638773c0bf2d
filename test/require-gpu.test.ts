/**
 * require-gpu: a GPU runner whose GPU installs failed resolves a CPU backend under auto; with
 * require-gpu the run ends as soon as that is known, with a report that says so, instead of
 * distilling on the CPU unnoticed. This machine has no GPU, so auto resolves wasm here.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.js';
import { runPipeline } from '../src/pipeline.js';
import { exampleWorkspace, quickConfig } from './helpers.js';

describe('runPipeline with requireGpu', () => {
  it('ends before the teacher pass when auto resolves no GPU backend, with a failing report naming why', async () => {
    const dir = await exampleWorkspace(quickConfig());
    const config = await loadConfig(path.join(dir, 'distill-gate.yml'));
    const lines: string[] = [];
    const outDir = path.join(dir, 'out');
    const result = await runPipeline(config, {
      outDir,
      searchFrom: [dir],
      requireGpu: true,
      log: (line) => lines.push(line),
    });

    expect(result.report).toMatchObject({ verdict: 'fail', status: 'incomplete' });
    expect(result.report.reasons).toHaveLength(1);
    const [reason] = result.report.reasons;
    expect(reason).toMatch(
      /^The run was cut short while preparing: require-gpu is set, but the run resolved wasm \(bundled\), not a GPU backend \(tensorflow-gpu or webgpu\)\. /,
    );
    // Why each GPU backend was passed over: here neither GPU package is loadable from the workspace.
    expect(reason).toMatch(/Passed over: tensorflow-gpu: @tensorflow\/tfjs-node-gpu is not installed in .*; webgpu: /);
    expect(reason).toContain('Check the GPU install steps of the job');
    // Nothing was distilled: no training, no student, and the files on disk say the same.
    expect(result.report.training).toMatchObject({ epochs: 0, loss: [], seconds: 0 });
    expect(result.studentPath).toBe('');
    expect(existsSync(path.join(outDir, 'student'))).toBe(false);
    expect(JSON.parse(await readFile(path.join(outDir, 'report.json'), 'utf8'))).toMatchObject({
      verdict: 'fail',
      reasons: [reason],
    });
    expect(await readFile(path.join(outDir, 'report.md'), 'utf8')).toContain('require-gpu is set');
    expect(lines.some((line) => line.startsWith('epoch'))).toBe(false);
  });

  it('without it, the same run distils on the CPU backend and passes', async () => {
    const dir = await exampleWorkspace(quickConfig());
    const config = await loadConfig(path.join(dir, 'distill-gate.yml'));
    const result = await runPipeline(config, { outDir: path.join(dir, 'out'), searchFrom: [dir] });
    expect(result.report).toMatchObject({ verdict: 'pass', status: 'complete', backend: 'wasm' });
  });
});
