import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

interface Step {
  uses?: string;
  with?: Record<string, unknown>;
}

describe('example workflows', async () => {
  const action = parse(await readFile(path.join(ROOT, 'action.yml'), 'utf8')) as { inputs: Record<string, unknown>; runs: { using: string; main: string } };
  const files = (await readdir(path.join(ROOT, 'examples/workflows'))).filter((f) => f.endsWith('.yml'));

  it('there are examples for PRs, main, nightly, release, a matrix and the fork-safe split', () => {
    expect(files.sort()).toEqual(['fork-report.yml', 'fork-untrusted.yml', 'main.yml', 'matrix.yml', 'nightly.yml', 'pull-request.yml', 'release.yml']);
  });

  it.each(files)('%s uses only inputs that action.yml declares', async (file) => {
    const workflow = parse(await readFile(path.join(ROOT, 'examples/workflows', file), 'utf8')) as { jobs: Record<string, { steps: Step[] }> };
    const ours = Object.values(workflow.jobs)
      .flatMap((job) => job.steps)
      .filter((step) => step.uses?.startsWith('distill-gate/distill-gate@'));
    expect(ours.length).toBeGreaterThan(0);
    for (const step of ours) {
      for (const key of Object.keys(step.with ?? {})) expect(Object.keys(action.inputs), `${file}: with.${key}`).toContain(key);
    }
  });

  it('the README documents every input and output of action.yml', async () => {
    const readme = await readFile(path.join(ROOT, 'README.md'), 'utf8');
    const outputs = Object.keys((parse(await readFile(path.join(ROOT, 'action.yml'), 'utf8')) as { outputs: Record<string, unknown> }).outputs);
    expect(Object.keys(action.inputs).filter((input) => !readme.includes(`| \`${input}\` |`))).toEqual([]);
    expect(outputs.filter((output) => !readme.includes(`\`${output}\``))).toEqual([]);
  });

  it('action.yml runs the bundle on the current runtime', () => {
    expect(action.runs).toEqual({ using: 'node24', main: 'dist/index.js' });
  });
});
