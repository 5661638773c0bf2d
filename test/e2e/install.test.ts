import { execFileSync, spawnSync } from 'node:child_process';
import { cp, mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Report } from '../../src/report/report.js';

// Issue #23: the CLI installed outside this repository, as the release's tarball is: `npm pack`
// (which runs `prepare`, compiling lib/), then `npm install <tarball>` into an empty project, whose
// dependencies come from the registry. One pack and one install, shared by the tests below.

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const npx = process.platform === 'win32' ? 'npx.cmd' : 'npx';
const SET_UP_MS = 600_000;

let tarball: string;
let project: string;
let files: string[];

beforeAll(async () => {
  const packed = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-pack-'));
  const name = execFileSync(npm, ['pack', '--silent', '--pack-destination', packed], {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  })
    .trim()
    .split('\n')
    .pop()!;
  tarball = path.join(packed, name);
  files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map((file) => file.replace(/^package\//, ''));
  project = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-consumer-'));
  await writeFile(
    path.join(project, 'package.json'),
    `${JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }, null, 2)}\n`,
  );
  execFileSync(npm, ['install', '--ignore-scripts=false', '--no-audit', '--no-fund', tarball], {
    cwd: project,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}, SET_UP_MS);

describe('the CLI from its release tarball, in an empty project', () => {
  it('ships bin, the compiled lib with its type declarations, README, LICENSE and CHANGELOG; not the action bundle', async () => {
    const manifest = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as {
      types: string;
      bin: Record<string, string>;
    };
    for (const file of [
      'bin/distill-gate.js',
      'lib/cli/index.js',
      'lib/pipeline.js',
      manifest.types,
      'README.md',
      'LICENSE',
      'CHANGELOG.md',
      'package.json',
    ])
      expect(files, file).toContain(file.replace(/^\.\//, ''));
    expect(
      files.filter((file) => file.startsWith('dist/') || file.startsWith('src/') || file.startsWith('test/')),
    ).toEqual([]);
    expect(manifest.bin['distill-gate']).toBe('bin/distill-gate.js');
  });

  it('npx distill-gate --version prints the package version', async () => {
    const { version } = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const result = spawnSync(npx, ['--no-install', 'distill-gate', '--version'], { cwd: project, encoding: 'utf8' });
    expect(result.stderr).toBe('');
    expect([result.status, result.stdout.trim()]).toEqual([0, version]);
  });

  it('runs the bundled example from a copy of it, and passes', async () => {
    const example = path.join(project, 'example');
    await cp(path.join(ROOT, 'fixtures/example'), example, { recursive: true });
    const out = path.join(project, 'distill-report');
    const result = spawnSync(
      npx,
      ['--no-install', 'distill-gate', 'run', '--config', path.join(example, 'distill-gate.yml'), '--out', out],
      {
        cwd: project,
        encoding: 'utf8',
      },
    );
    expect(result.stderr).toMatch(/backend: using (wasm|cpu)/);
    expect(result.status, result.stderr).toBe(0);
    const report = JSON.parse(await readFile(path.join(out, 'report.json'), 'utf8')) as Report;
    expect(report.verdict).toBe('pass');
    expect(await readdir(path.join(out, 'student'))).toContain('model.json');
    expect(result.stdout).toContain('agreement.top1');
  });
});
