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
/** The facade as a push to main builds it; `sha` is the commit a new data branch starts from; its warnings go to `warnings`. */
const gitHub = (sha = 'abc123', warnings: string[] = []) => {
  const context: EventContext = {
    eventName: 'push',
    payload: {},
    sha,
    ref: 'refs/heads/main',
    repo: { owner: 'acme', repo: 'models' },
    serverUrl: 'https://github.test',
    runId: 1,
  };
  return createGitHub('t', context, { minTimeoutMs: 1, retries: 1, onWarning: (message) => warnings.push(message) });
};
const folder = 'distill-gate/_github_distill-gate.yml/main';
/** Replaces a stored file's content, as a hand edit or a broken write would. */
const damage = (file: string, content: string | Buffer) => {
  const entry = api.files.get('distill-gate-data')!.get(`${folder}/${file}`)!;
  entry.content = Buffer.from(content).toString('base64');
};
const stored = (file: string) =>
  Buffer.from(api.files.get('distill-gate-data')!.get(`${folder}/${file}`)!.content, 'base64');
const readDir = () => mkdtemp(path.join(os.tmpdir(), 'distill-gate-read-'));

afterAll(() => api.stop());
beforeEach(() => {
  api.clearFaults();
  api.files.clear();
  api.refs.clear();
});

async function studentDir(bytes: number): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-student-'));
  await mkdir(dir, { recursive: true });
  const weights = [{ name: 'w', shape: [bytes / 4], dtype: 'float32' }];
  await writeFile(
    path.join(dir, 'model.json'),
    JSON.stringify({
      format: 'layers-model',
      modelTopology: { class_name: 'Sequential' },
      weightsManifest: [{ paths: ['group1-shard1of1.bin'], weights }],
    }),
  );
  await writeFile(path.join(dir, 'group1-shard1of1.bin'), Buffer.alloc(bytes, 7));
  return dir;
}

describe('baseline store', () => {
  it('keeps each config and branch in its own folder, with safe names only', () => {
    expect(storeFolder({ key: '.github/distill-gate.yml', forBranch: 'main' })).toBe(
      'distill-gate/_github_distill-gate.yml/main',
    );
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
    expect(JSON.parse(await readFile(stored!.reportPath!, 'utf8')).runUrl).toBe(
      'https://github.test/acme/models/actions/runs/1',
    );
  });

  it('does not compare with a failing or incomplete run an older store holds, nor fetch its student, and keeps the history', async () => {
    const github = gitHub('abc123');
    await github.storeRun(
      location,
      sampleReport({ commit: 'abc123def456', verdict: 'fail', status: 'incomplete' }),
      await studentDir(12),
    );
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

  it('a damaged history loses only the trend: the report and its student are still the baseline, and the warning names the file', async () => {
    await gitHub().storeRun(location, sampleReport({ commit: 'abc123def456' }), await studentDir(16));
    for (const [content, fault] of [
      ['{"runs": [', /history\.json: is not valid JSON/],
      [
        JSON.stringify([{ createdAt: '2026-01-01', verdict: 'pass', metrics: {}, commit: 42 }]),
        /history\.json: is not a distill-gate history file: run 1 of 1 has a "commit" that is not text/,
      ],
    ] as const) {
      damage('history.json', content);
      const warnings: string[] = [];
      const dir = await readDir();
      const baseline = await gitHub('abc123', warnings).readStoredBaseline(location, dir);
      expect(JSON.parse(await readFile(baseline!.reportPath!, 'utf8')).commit).toBe('abc123def456');
      expect(baseline!.studentPath).toBe(path.join(dir, 'student/model.json'));
      expect(baseline!.history).toEqual([]);
      expect(baseline!.damaged).toEqual([expect.stringMatching(fault)]);
      expect(baseline!.damaged![0]).toContain(`distill-gate-data:${folder}/history.json`);
      expect(baseline!.damaged![0]).toMatch(
        /The trend leaves it out; the baseline report is still used\. The next recorded run starts the history afresh\.$/,
      );
      expect(warnings).toEqual([`distill-gate: the baseline store's ${baseline!.damaged![0]}`]);
    }
  });

  it('a history that cannot be read loses only the trend', async () => {
    await gitHub().storeRun(location, sampleReport({ commit: 'abc123def456' }), undefined);
    api.fail('GET', /history\.json$/, 502, 9);
    const baseline = await gitHub().readStoredBaseline(location, await readDir());
    expect(baseline!.reportPath).toBeDefined();
    expect(baseline!.damaged).toEqual([
      `distill-gate-data:${folder}/history.json could not be read (HTTP 502 (injected 502)). The trend leaves it out; the baseline report is still used.`,
    ]);
  });

  it.each([
    [
      'model.json',
      'not valid JSON',
      () => damage('student/model.json', '{"weightsManifest": '),
      /student\/model\.json: is not valid JSON/,
    ],
    [
      'a shard',
      'truncated',
      () => damage('student/group1-shard1of1.bin', Buffer.alloc(8)),
      /student\/model\.json: is not a usable model \(.*hold 8 bytes but the manifest's 1 weights need 16/,
    ],
    [
      'a shard',
      'missing',
      () => api.files.get('distill-gate-data')!.delete(`${folder}/student/group1-shard1of1.bin`),
      /student\/group1-shard1of1\.bin: is missing \(model\.json lists it\)/,
    ],
    [
      'model.json',
      'naming a file outside its folder',
      () =>
        damage(
          'student/model.json',
          JSON.stringify({ modelTopology: {}, weightsManifest: [{ paths: ['../report.json'], weights: [] }] }),
        ),
      /student\/model\.json: has a weights manifest that is not a list of weight files in its own folder/,
    ],
  ])(
    'a stored student whose %s is %s loses only the student, named, and leaves none of it behind',
    async (_file, _how, breakIt, fault) => {
      await gitHub().storeRun(location, sampleReport({ commit: 'abc123def456' }), await studentDir(16));
      breakIt();
      const warnings: string[] = [];
      const dir = await readDir();
      const baseline = await gitHub('abc123', warnings).readStoredBaseline(location, dir);
      expect(JSON.parse(await readFile(baseline!.reportPath!, 'utf8')).commit).toBe('abc123def456');
      expect(baseline!.history).toHaveLength(1);
      expect(baseline!.studentPath).toBeUndefined();
      expect(baseline!.damaged).toEqual([expect.stringMatching(fault)]);
      expect(baseline!.damaged![0]).toMatch(
        new RegExp(
          `^distill-gate-data:${folder}/student/.*The student is left out \\(no paired timing with it\\); the baseline report is still used\\.$`,
        ),
      );
      expect(warnings).toHaveLength(1);
      // measure looks for the baseline's student beside its report.json: nothing of the damaged one may be found there.
      expect(await readdir(dir)).toEqual(['report.json']);
    },
  );

  it("points the downloaded report's student at the downloaded student, not at a path on the runner that recorded it", async () => {
    await gitHub().storeRun(location, sampleReport({ commit: 'abc123def456' }), undefined);
    expect(JSON.parse(stored('report.json').toString()).student.path).not.toContain('distill-gate-read-');
    const dir = await readDir();
    const baseline = await gitHub().readStoredBaseline(location, dir);
    expect([baseline!.studentPath, baseline!.damaged]).toEqual([undefined, undefined]);
    expect(JSON.parse(await readFile(baseline!.reportPath!, 'utf8')).student.path).toBe(
      path.join(dir, 'student/model.json'),
    );
  });

  it('a damaged report.json is still no baseline, named', async () => {
    await gitHub().storeRun(location, sampleReport({ commit: 'abc123def456' }), undefined);
    damage('report.json', '{"schemaVersion": ');
    await expect(gitHub().readStoredBaseline(location, await readDir())).rejects.toThrow(
      `distill-gate-data:${folder}/report.json: is not valid JSON`,
    );
  });

  it('the next record rebuilds a damaged history, saying so, instead of failing', async () => {
    await gitHub().storeRun(location, sampleReport({ commit: 'first' }), undefined);
    damage('history.json', 'garbage');
    const warnings: string[] = [];
    const history = await gitHub('abc123', warnings).storeRun(location, sampleReport({ commit: 'second' }), undefined);
    expect(history.map((h) => h.commit)).toEqual(['second']);
    expect(warnings).toEqual([
      expect.stringMatching(
        new RegExp(
          `^distill-gate: the baseline store's distill-gate-data:${folder}/history\\.json: is not valid JSON .*Rebuilt it: the history starts afresh with this run`,
        ),
      ),
    ]);
    const baseline = await gitHub().readStoredBaseline(location, await readDir());
    expect([baseline!.history.map((h) => h.commit), baseline!.damaged]).toEqual([['second'], undefined]);
    expect(JSON.parse(stored('report.json').toString()).commit).toBe('second');
  });
});
