import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { RunResult } from '../../src/report/report.js';
import { sampleReport } from '../sample-report.js';
import * as toolkit from './toolkit.js';

vi.mock('@actions/core', () => import('./toolkit.js'));

const { planStore, readBaseline, recordRun } = await import('../../src/action/store.js');
const never = new AbortController().signal;

const inputs = { baselineBranch: 'distill-gate-data', commentKey: '.github/distill-gate.yml' };
const at = (forBranch: string) => ({ branch: 'distill-gate-data', key: '.github/distill-gate.yml', forBranch });
const event = (eventName: string, ref: string, payload: Record<string, unknown> = {}) => ({
  ...toolkit.context,
  eventName,
  ref,
  payload,
});
const refused = (status: number) => Object.assign(new Error('Resource not accessible by integration'), { status });

beforeEach(() => toolkit.reset());

describe('planning the baseline store', () => {
  it("a PR reads its base branch's records and never writes", async () => {
    const github = toolkit.fakeGitHub();
    expect(
      await planStore(
        github,
        inputs,
        event('pull_request', 'refs/pull/7/merge', { pull_request: { number: 7, base: { ref: 'release-2' } } }),
        never,
      ),
    ).toEqual({
      location: at('release-2'),
      write: false,
    });
    expect(github.defaultBranch).not.toHaveBeenCalled();
  });

  it.each([
    ['push', 'refs/heads/main', { location: at('main'), write: true }],
    ['schedule', 'refs/heads/main', { location: at('main'), write: true }],
    ['workflow_dispatch', 'refs/heads/main', { location: at('main'), write: true }],
    ['push', 'refs/heads/feature/x', { location: at('feature/x'), write: false }],
    ['release', 'refs/tags/v1.2.0', undefined],
    ['workflow_run', 'refs/heads/main', undefined],
  ])('%s on %s', async (eventName, ref, plan) => {
    expect(await planStore(toolkit.fakeGitHub(), inputs, event(eventName, ref), never)).toEqual(plan);
  });

  it('no store when baseline-branch is off', async () => {
    expect(
      await planStore(toolkit.fakeGitHub(), { ...inputs, baselineBranch: '' }, event('push', 'refs/heads/main'), never),
    ).toBeUndefined();
  });

  it('a default branch that cannot be read warns and leaves the store alone', async () => {
    const github = toolkit.fakeGitHub();
    github.defaultBranch.mockRejectedValue(refused(404));
    expect(await planStore(github, inputs, event('schedule', 'refs/heads/main'), never)).toBeUndefined();
    expect(toolkit.warnings()).toEqual([
      expect.stringMatching(/^Finding the default branch for the baseline store failed: HTTP 404/),
    ]);
  });
});

describe('reading and recording', () => {
  const plan = { location: at('main'), write: true };
  const result = (extra: Partial<RunResult> = {}): RunResult => ({
    report: sampleReport(),
    markdown: '',
    reportPath: '/out/report.json',
    studentPath: '/out/student/model.json',
    ...extra,
  });

  it('says what it found, and a store it cannot read is a warning that asks for contents: read', async () => {
    const github = toolkit.fakeGitHub();
    github.readStoredBaseline.mockResolvedValue({
      reportPath: '/tmp/b/report.json',
      studentPath: '/tmp/b/student/model.json',
      history: [],
    });
    expect((await readBaseline(github, plan, '/tmp/b', never))?.reportPath).toBe('/tmp/b/report.json');
    expect(toolkit.infos()).toEqual(['distill-gate: baseline from distill-gate-data for main, with its student']);

    github.readStoredBaseline.mockRejectedValue(refused(403));
    expect(await readBaseline(github, plan, '/tmp/b', never)).toBeUndefined();
    expect(toolkit.warnings()).toEqual([
      expect.stringMatching(
        /^Reading the baseline from branch distill-gate-data failed: HTTP 403 .*`permissions: contents: read`/,
      ),
    ]);
  });

  it('records the student folder of a written run, only when the plan writes', async () => {
    const github = toolkit.fakeGitHub();
    await recordRun(github, plan, result());
    expect(github.storeRun).toHaveBeenCalledWith(
      at('main'),
      expect.objectContaining({ verdict: 'pass' }),
      '/out/student',
    );
    await recordRun(github, { ...plan, write: false }, result());
    expect(github.storeRun).toHaveBeenCalledTimes(1);
  });

  it.each([
    ['failed', { verdict: 'fail' as const }],
    ['is incomplete', { status: 'incomplete' as const }],
    ['failed and is incomplete', { verdict: 'fail' as const, status: 'incomplete' as const }],
  ])(
    'keeps a run that %s out of the store, saying why, so relative gates never ratchet down to it',
    async (why, fields) => {
      const github = toolkit.fakeGitHub();
      await recordRun(github, plan, result({ report: sampleReport(fields) }));
      expect(github.storeRun).not.toHaveBeenCalled();
      expect(toolkit.infos()).toEqual([
        `distill-gate: not recording this run in distill-gate-data: it ${why}; the baseline stays the last complete, passing run`,
      ]);
    },
  );

  it('warns when the store holds a run that is no baseline (written before only passing runs were kept), and compares with nothing', async () => {
    const github = toolkit.fakeGitHub();
    github.readStoredBaseline.mockResolvedValue({
      history: [],
      notKept: 'its latest run (commit abc123, 2026-01-01) failed',
    });
    const stored = await readBaseline(github, plan, '/tmp/b', never);
    expect(stored?.reportPath).toBeUndefined();
    expect(toolkit.warnings()).toEqual([
      'distill-gate: the baseline store distill-gate-data holds a run for main that is not a baseline: its latest run (commit abc123, 2026-01-01) failed (recorded before distill-gate kept complete, passing runs only). Relative gates are skipped until such a run there records one.',
    ]);
  });

  it('records nothing when the report never reached the disk', async () => {
    const github = toolkit.fakeGitHub();
    const { InputError } = await import('../../src/errors.js');
    await recordRun(github, plan, result({ writeError: new InputError('/out', 'cannot write') }));
    expect(github.storeRun).not.toHaveBeenCalled();
  });

  it('a store it cannot write is a warning that asks for contents: write', async () => {
    const github = toolkit.fakeGitHub();
    github.storeRun.mockRejectedValue(refused(403));
    await recordRun(github, plan, result());
    expect(toolkit.warnings()).toEqual([
      expect.stringMatching(
        /^Recording the baseline in branch distill-gate-data failed: HTTP 403 .*`permissions: contents: write`/,
      ),
    ]);
  });
});
