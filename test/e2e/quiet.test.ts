/**
 * A run's stderr is distill-gate's own: no native warnings from Dawn (the optional `webgpu`
 * package, a devDependency here, whose Vulkan backend fails to load on a machine without
 * libvulkan1), and the backends auto passed over in one line, not a line each. Real processes,
 * because Dawn writes to file descriptor 2 from native code, past any capture in the process.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { Report } from '../../src/report/report.js';
import { exampleWorkspace, quickConfig } from '../helpers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const NATIVE_NOISE = /Vulkan|Dawn|BackendVk|node-webgpu|artificially reduced|^Warning:/m;

function cli(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  // cwd is the repository, whose node_modules holds the `webgpu` package: auto searches there.
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/index.ts'), ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

describe('quiet by default', () => {
  it('a run prints no Dawn lines and one backend line; -q prints nothing at all', async () => {
    const dir = await exampleWorkspace(quickConfig());
    const run = await cli('run', '--config', path.join(dir, 'distill-gate.yml'), '--out', path.join(dir, 'out'));
    expect(run.code).toBe(0);
    expect(run.stderr).not.toMatch(NATIVE_NOISE);
    expect(run.stderr).not.toMatch(
      /skipped (tensorflow-gpu|webgpu|tensorflow)|install tfjs-node|npm install --no-save/,
    );
    const backendLines = run.stderr.split('\n').filter((line) => line.startsWith('backend:'));
    expect(backendLines).toHaveLength(1);
    expect(backendLines[0]).toMatch(
      /^backend: using (wasm|cpu) \(bundled\); passed over tensorflow-gpu \(not installed\), webgpu \([^)]+\), tensorflow \(not installed\); `distill-gate doctor` says more$/,
    );

    // The reasons are kept whole in the report's environment (and doctor), not in the log.
    const report = JSON.parse(await readFile(path.join(dir, 'out', 'report.json'), 'utf8')) as Report;
    expect(report.environment.backendNotes).toEqual([
      expect.stringMatching(/^tensorflow-gpu: @tensorflow\/tfjs-node-gpu is not installed .*npm install --no-save/),
      expect.stringMatching(/^webgpu: /),
      expect.stringMatching(/^tensorflow: @tensorflow\/tfjs-node is not installed/),
    ]);

    const quiet = await cli(
      'run',
      '--config',
      path.join(dir, 'distill-gate.yml'),
      '--out',
      path.join(dir, 'quiet'),
      '-q',
    );
    expect(quiet.code).toBe(0);
    expect(quiet.stderr).toBe('');
  });

  it("doctor prints Dawn's messages once, in its report on stdout, none on stderr", async () => {
    const { code, stdout, stderr } = await cli('doctor');
    expect(code).toBe(0);
    expect(stderr).not.toMatch(NATIVE_NOISE);
    expect(stdout).toMatch(/webgpu/);
    // Whatever Dawn printed on this machine appears once, under doctor's heading (on a machine
    // without libvulkan1, "Couldn't load Vulkan").
    const heading =
      'Dawn (the webgpu package) printed this while looking for an adapter; runs keep it out of their log:';
    if (stdout.includes("Couldn't load Vulkan")) {
      expect(stdout.split(heading)).toHaveLength(2);
      expect(stdout.split("Couldn't load Vulkan")).toHaveLength(2);
    }
  });
});
