import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { sampleReport } from './sample-report.js';

const calls = vi.hoisted(() => ({
  inputs: {} as Record<string, string>,
  outputs: {} as Record<string, string>,
  failed: [] as string[],
  warnings: [] as string[],
  errors: [] as string[],
  summary: [] as string[],
  summaryFails: false,
}));

vi.mock('@actions/core', () => ({
  getInput: (name: string) => calls.inputs[name] ?? '',
  getMultilineInput: (name: string) => (calls.inputs[name] ?? '').split('\n').filter(Boolean),
  setOutput: (name: string, value: string) => void (calls.outputs[name] = value),
  setFailed: (message: string) => void calls.failed.push(message),
  setSecret: () => {},
  warning: (message: string) => void calls.warnings.push(message),
  error: (message: string) => void calls.errors.push(message),
  info: () => {},
  startGroup: () => {},
  endGroup: () => {},
  summary: {
    addRaw(text: string) {
      calls.summary.push(text);
      return this;
    },
    async write() {
      if (calls.summaryFails) throw new Error('disk full');
      return this;
    },
  },
}));
vi.mock('@actions/github', () => ({
  context: { eventName: 'push', payload: {}, sha: 'abc', repo: { owner: 'acme', repo: 'models' }, serverUrl: 'https://github.test', runId: 1 },
  getOctokit: () => {
    throw new Error('no API in unit tests');
  },
}));

const { run } = await import('../src/main.js');

async function reportFile(report = sampleReport()): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-main-'));
  const file = path.join(dir, 'report.json');
  await writeFile(file, JSON.stringify(report));
  return file;
}

beforeEach(() => {
  Object.assign(calls, { inputs: {}, outputs: {}, failed: [], warnings: [], errors: [], summary: [], summaryFails: false });
});

describe('run() with the toolkit mocked', () => {
  it('publishes a passing report: summary, outputs, no failure', async () => {
    calls.inputs = { mode: 'report', report: await reportFile() };
    await run();
    expect(calls.failed).toEqual([]);
    expect(calls.summary[0]).toContain('## ✅ distill-gate: pass');
    expect(calls.outputs).toMatchObject({ verdict: 'pass', agreement: '0.95', speedup: '4', 'size-ratio': '0.05', 'comment-url': '' });
    expect(calls.warnings).toContain('No github-token: skipping the PR comment. The report is in the job summary and on disk.');
  });

  it('fails the step on a failing gate, annotating it', async () => {
    const report = sampleReport({
      verdict: 'fail',
      gates: [{ metric: 'size.ratio', op: '<=', threshold: 0.01, relative: false, level: 'error', value: 0.05, baseline: null, pass: false, status: 'fail', expected: '<= 0.01' }],
    });
    calls.inputs = { mode: 'report', report: await reportFile(report) };
    await run();
    expect(calls.errors).toEqual(['size.ratio = 0.05, expected <= 0.01']);
    expect(calls.failed).toEqual(['distill-gate: failing gates: size.ratio (<= 0.01)']);
  });

  it('a summary that cannot be written warns, and outputs and the verdict still follow', async () => {
    calls.summaryFails = true;
    calls.inputs = { mode: 'report', report: await reportFile(sampleReport({ verdict: 'fail', reasons: ['Training stopped after 2 of 5 epochs: received SIGTERM.'] })) };
    await run();
    expect(calls.warnings.some((w) => w.startsWith('Writing the job summary failed: disk full'))).toBe(true);
    expect(calls.outputs.verdict).toBe('fail');
    expect(calls.failed).toEqual(['distill-gate: Training stopped after 2 of 5 epochs: received SIGTERM.']);
  });

  it.each([
    [{ backend: 'gpu' }, /input backend: "gpu" is not a backend; use one of auto, tensorflow-gpu/],
    [{ mode: 'both' }, /input mode: "both" is not a mode; use run, report or merge/],
    [{ mode: 'merge' }, /input reports: mode merge needs the report\.json files to merge/],
    [{ mode: 'merge', reports: '/nonexistent/*/report.json' }, /\/nonexistent\/\*\/report\.json: matches no report\.json files/],
    [{ comment: 'maybe' }, /input comment: "maybe" is not a boolean/],
    [{ mode: 'report', report: '/nonexistent/report.json' }, /\/nonexistent\/report\.json: cannot be read \(ENOENT\)/],
  ])('refuses bad inputs %j with one message', async (inputs, pattern) => {
    calls.inputs = inputs;
    await run();
    expect(calls.failed).toHaveLength(1);
    expect(calls.failed[0]).toMatch(pattern);
  });

  it('refuses a report of an unknown schema version', async () => {
    calls.inputs = { mode: 'report', report: await reportFile({ ...sampleReport(), schemaVersion: 99 as 1 }) };
    await run();
    expect(calls.failed[0]).toMatch(/has schemaVersion 99; this distill-gate reads version 1/);
  });
});
