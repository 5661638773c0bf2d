import { mkdtemp, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import type { EventContext, StoreLocation } from '../../../src/action/github/index.js';
import { FakeGitHub } from '../../e2e/github-server.js';
import { sampleReport } from '../../sample-report.js';

// @actions/github reads GITHUB_API_URL when it is first imported.
const api = await new FakeGitHub().start();
process.env.GITHUB_API_URL = api.url;
const { createGitHub } = await import('../../../src/action/github/index.js');
const { storeFolder } = await import('../../../src/action/github/baseline-store.js');
const location: StoreLocation = { branch: 'distill-gate-data', key: '.github/distill-gate.yml', forBranch: 'main' };
/** The facade as a push to main builds it; `sha` is the commit a new data branch starts from. */
const gitHub = (sha = 'abc123') => {
  const context: EventContext = {
    eventName: 'push',
    payload: {},
    sha,
    ref: 'refs/heads/main',
    repo: { owner: 'acme', repo: 'models' },
    serverUrl: 'https://github.test',
    runId: 1,
  };
  return createGitHub('t', context, { minTimeoutMs: 1 });
};

afterAll(() => api.stop());
beforeEach(() => {
  api.files.clear();
  api.refs.clear();
});

async function studentDir(bytes: number): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-student-'));
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'model.json'), JSON.stringify({ weightsManifest: [{ paths: ['group1-shard1of1.bin'], weights: [] }] }));
  await writeFile(path.join(dir, 'group1-shard1of1.bin'), Buffer.alloc(bytes, 7));
  return dir;
}

describe('baseline store', () => {
  it('keeps each config and branch in its own folder, with safe names only', () => {
    expect(storeFolder({ key: '.github/distill-gate.yml', forBranch: 'main' })).toBe('distill-gate/_github_distill-gate.yml/main');
    const hostile = storeFolder({ key: '../../etc', forBranch: 'feature/x' }).split('/');
    expect(hostile).toHaveLength(3);
    expect(hostile.every((segment) => segment !== '..' && /^[A-Za-z0-9._-]+$/.test(segment))).toBe(true);
  });

  it('creates the data branch, records a run, and gives it back with its student (a shard over 1 MB included)', async () => {
    const github = gitHub('abc123');
    const report = sampleReport({ commit: 'abc123def456' });
    const history = await github.storeRun(location, report, await studentDir(1_500_000));
    expect(api.refs.has('distill-gate-data')).toBe(true);
    expect(history).toHaveLength(1);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-read-'));
    const stored = await github.readStoredBaseline(location, dir);
    expect(JSON.parse(await readFile(stored!.reportPath!, 'utf8')).commit).toBe('abc123def456');
    expect((await readFile(path.join(dir, 'student/group1-shard1of1.bin'))).length).toBe(1_500_000);
    expect(stored!.studentPath).toBe(path.join(dir, 'student/model.json'));
    expect(stored!.history.map((h) => [h.commit, h.event, h.verdict])).toEqual([['abc123def456', 'push', 'pass']]);
  });

  it('records the run that wrote the stored report, so that a later report can link it', async () => {
    const github = gitHub('abc123');
    await github.storeRun(location, sampleReport({ commit: 'abc123def456' }), undefined);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-read-'));
    const stored = await github.readStoredBaseline(location, dir);
    expect(JSON.parse(await readFile(stored!.reportPath!, 'utf8')).runUrl).toBe('https://github.test/acme/models/actions/runs/1');
  });

  it('does not compare with a failing or incomplete run an older store holds, nor fetch its student, and keeps the history', async () => {
    const github = gitHub('abc123');
    await github.storeRun(location, sampleReport({ commit: 'abc123def456', verdict: 'fail', status: 'incomplete' }), await studentDir(10));
    const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-read-'));
    const stored = await github.readStoredBaseline(location, dir);
    expect(stored).toEqual({
      history: [expect.objectContaining({ commit: 'abc123def456', verdict: 'fail' })],
      notKept: 'its latest run (commit abc123def456, 2026-01-01) failed and is incomplete',
    });
    expect(await readdir(dir)).toEqual([]);
  });

  it('a stored report that is not one is an error naming the branch, the file and the JSON path', async () => {
    const github = gitHub('abc123');
    await github.storeRun(location, { ...sampleReport(), verdict: 'maybe' as 'pass' }, undefined);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-read-'));
    await expect(github.readStoredBaseline(location, dir)).rejects.toThrow(
      'distill-gate-data:distill-gate/_github_distill-gate.yml/main/report.json: verdict: Invalid option',
    );
  });

  it('answers "no baseline yet" when nothing was stored', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-read-'));
    expect(await gitHub().readStoredBaseline(location, dir)).toBeUndefined();
  });

  it('loses no entry when two runs append to the history at once', async () => {
    const github = gitHub('a');
    await github.storeRun(location, sampleReport({ commit: 'first' }), undefined);
    await Promise.all([
      github.storeRun(location, sampleReport({ commit: 'second' }), undefined),
      github.storeRun(location, sampleReport({ commit: 'third' }), undefined),
    ]);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-read-'));
    const stored = await github.readStoredBaseline(location, dir);
    expect(stored!.history.map((h) => h.commit).sort()).toEqual(['first', 'second', 'third']);
  });
});
