import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { exampleWorkspace, quickConfig } from '../helpers.js';
import { failingSizeGate, sampleReport } from '../sample-report.js';
import * as toolkit from './toolkit.js';

vi.mock('@actions/core', () => import('./toolkit.js'));
vi.mock('@actions/github', async () => (await import('./toolkit.js')).github);
// The facade is replaced by typed mocks: what run() asks of GitHub is what these tests check.
const facade = vi.hoisted(() => ({ current: undefined as ReturnType<typeof toolkit.fakeGitHub> | undefined }));
vi.mock('../../src/action/github/index.js', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../../src/action/github/index.js')>()),
  createGitHub: vi.fn(() => facade.current),
}));

const { run } = await import('../../src/action/run.js');
const { createGitHub } = await import('../../src/action/github/index.js');

const TOKEN = 'ghs_unit_token';

async function reportFile(report = sampleReport()): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-main-'));
  const file = path.join(dir, 'report.json');
  await writeFile(file, JSON.stringify(report));
  return file;
}

beforeEach(() => {
  toolkit.reset();
  facade.current = toolkit.fakeGitHub();
});

describe('run() with the toolkit mocked', () => {
  it('publishes a passing report: summary, outputs, no failure', async () => {
    toolkit.reset({ mode: 'report', report: await reportFile() });
    await run();
    expect(toolkit.failures()).toEqual([]);
    expect(toolkit.summaryState.lines[0]).toContain('## ✅ distill-gate: pass');
    expect(toolkit.outputs()).toMatchObject({
      verdict: 'pass',
      agreement: '0.95',
      speedup: '4',
      'size-ratio': '0.05',
      'comment-url': '',
    });
    expect(toolkit.warnings()).toContain(
      'No github-token: skipping the PR comment. The report is in the job summary and on disk.',
    );
    expect(createGitHub).not.toHaveBeenCalled();
  });

  it('fails the step on a failing gate, annotating it', async () => {
    toolkit.reset({
      mode: 'report',
      report: await reportFile(sampleReport({ verdict: 'fail', gates: [failingSizeGate] })),
    });
    await run();
    expect(toolkit.errors()).toEqual(['size.ratio = 0.05, expected <= 0.01']);
    expect(toolkit.failures()).toEqual(['distill-gate: failing gates: size.ratio (<= 0.01)']);
  });

  it('with fail-on-gate false, a failing gate warns and the step passes', async () => {
    toolkit.reset({
      mode: 'report',
      'fail-on-gate': 'false',
      report: await reportFile(sampleReport({ verdict: 'fail', gates: [failingSizeGate] })),
    });
    await run();
    expect(toolkit.failures()).toEqual([]);
    expect(toolkit.warnings()).toContain(
      'distill-gate: failing gates: size.ratio (<= 0.01) (fail-on-gate is false, so the step passes)',
    );
  });

  it('a summary that cannot be written warns, and outputs and the verdict still follow', async () => {
    toolkit.reset({
      mode: 'report',
      report: await reportFile(
        sampleReport({ verdict: 'fail', reasons: ['Training stopped after 2 of 5 epochs: received SIGTERM.'] }),
      ),
    });
    toolkit.summaryState.failsWith = 'disk full';
    await run();
    expect(toolkit.warnings().some((w) => w.startsWith('Writing the job summary failed: disk full'))).toBe(true);
    expect(toolkit.outputs().verdict).toBe('fail');
    expect(toolkit.failures()).toEqual(['distill-gate: Training stopped after 2 of 5 epochs: received SIGTERM.']);
  });

  it.each([
    [{ backend: 'gpu' }, /input backend: "gpu" is not a backend; use one of auto, tensorflow-gpu/],
    [{ mode: 'both' }, /input mode: "both" is not a mode; use run, report, merge or changes/],
    [{ mode: 'merge' }, /input reports: mode merge needs the report\.json files to merge/],
    [
      { mode: 'merge', reports: '/nonexistent/*/report.json' },
      /\/nonexistent\/\*\/report\.json: matches no report\.json files/,
    ],
    [{ comment: 'maybe' }, /input comment: "maybe" is not a boolean/],
    [{ budget: '0' }, /input budget: "0" is not a number of minutes above 0/],
    [{ mode: 'report', report: '/nonexistent/report.json' }, /\/nonexistent\/report\.json: cannot be read \(ENOENT\)/],
  ])('refuses bad inputs %j with one message', async (inputs, pattern) => {
    toolkit.reset(inputs);
    await run();
    expect(toolkit.failures()).toHaveLength(1);
    expect(toolkit.failures()[0]).toMatch(pattern);
    expect(toolkit.setOutput).not.toHaveBeenCalled();
  });

  it('refuses a report of an unknown schema version', async () => {
    toolkit.reset({ mode: 'report', report: await reportFile({ ...sampleReport(), schemaVersion: 99 as 1 }) });
    await run();
    expect(toolkit.failures()[0]).toMatch(/has schemaVersion 99; this distill-gate reads version 1/);
  });

  it('a bug is reported as one, with its stack', async () => {
    toolkit.reset({ mode: 'report' });
    toolkit.getInput.mockImplementationOnce(() => {
      throw new TypeError('boom');
    });
    await run();
    expect(toolkit.failures()).toHaveLength(1);
    expect(toolkit.failures()[0]).toMatch(
      /^distill-gate internal error \(a bug, please report it\): TypeError: boom\n\s+at /,
    );
  });
});

describe('run() within what GitHub shows', () => {
  it('a report over the 1 MiB job summary is shortened with a note, and annotations stop at 10 of a kind, each cut, counting the rest', async () => {
    const huge = `The teacher said ${'very '.repeat(220_000)}much.`;
    const reasons = [huge, ...Array.from({ length: 14 }, (_, i) => `note ${i}`)];
    toolkit.reset({ mode: 'report', report: await reportFile(sampleReport({ verdict: 'fail', reasons })) });
    await run();
    const summary = toolkit.summaryState.lines.join('');
    expect(Buffer.byteLength(huge)).toBeGreaterThan(1_048_576);
    expect(Buffer.byteLength(summary)).toBeLessThanOrEqual(1_000_000);
    expect(summary).toMatch(
      /> \*\*Report shortened\*\* to fit GitHub's 1 MiB job summary: the whole report is in .*report\.md\.\n$/,
    );
    const annotations = toolkit.warning.mock.calls
      .filter(([, properties]) => properties?.title === 'distill-gate')
      .map(([text]) => String(text));
    expect(annotations).toHaveLength(10);
    expect(annotations.every((text) => text.length <= 1000)).toBe(true);
    expect(annotations[0]).toMatch(/^The teacher said very .*… \(cut; the job summary has it whole\)$/);
    expect(annotations[9]).toBe('6 more like these are in the job summary (GitHub shows 10 of a kind per step).');
    expect(toolkit.failures()).toHaveLength(1);
    expect(toolkit.failures()[0].length).toBeLessThanOrEqual(1000);
  });

  it('a summary that fits is left whole', async () => {
    toolkit.reset({ mode: 'report', report: await reportFile() });
    await run();
    expect(toolkit.summaryState.lines.join('')).not.toContain('Report shortened');
  });
});

describe('run() publishing through the GitHub facade', () => {
  it('masks the token, builds the facade once, and posts the sticky comment on the PR of the payload', async () => {
    toolkit.reset(
      { mode: 'report', report: await reportFile(), 'github-token': TOKEN },
      { eventName: 'pull_request', payload: { pull_request: { number: 7 } } },
    );
    await run({ retries: 0 });
    expect(toolkit.setSecret).toHaveBeenCalledWith(TOKEN);
    expect(createGitHub).toHaveBeenCalledTimes(1);
    expect(vi.mocked(createGitHub).mock.calls[0][0]).toBe(TOKEN);
    expect(vi.mocked(createGitHub).mock.calls[0][2]).toMatchObject({ retries: 0 });
    expect(facade.current!.upsertStickyComment).toHaveBeenCalledWith(
      7,
      'distill-gate.yml',
      expect.stringContaining('## ✅ distill-gate: pass'),
    );
    expect(toolkit.outputs()['comment-url']).toBe('https://github.test/acme/models/pull/7#issuecomment-1');
    expect(toolkit.infos()).toContain(
      'distill-gate: posted the report comment https://github.test/acme/models/pull/7#issuecomment-1',
    );
    expect(toolkit.warnings()).toEqual([]);
    expect(facade.current!.syncTrackingIssue).not.toHaveBeenCalled();
  });

  it('mode report under workflow_run finds the PR by the head SHA', async () => {
    toolkit.reset(
      { mode: 'report', report: await reportFile(), 'github-token': TOKEN, 'comment-key': 'student-a' },
      { eventName: 'workflow_run', payload: { workflow_run: { head_sha: 'f0f0f0', pull_requests: [] } } },
    );
    await run();
    // Worked out once a step: the labels and the comment both use this lookup.
    expect(facade.current!.findPullRequestBySha.mock.calls).toEqual([['f0f0f0']]);
    expect(facade.current!.pullRequestLabels).toHaveBeenCalledWith(12);
    expect(facade.current!.upsertStickyComment).toHaveBeenCalledWith(12, 'student-a', expect.any(String));
    expect(toolkit.infos()).toContain('distill-gate: reporting on PR #12, found by its head commit f0f0f0');
  });

  it("under workflow_run, takes a PR the run lists only if it is this repository's, for this commit", async () => {
    const listed = (number: number, owner: string, sha = 'f0f0f0') => ({
      number,
      head: { sha },
      base: { repo: { url: `https://api.github.com/repos/${owner}/models` } },
    });
    // A fork's own PR of the same branch, and a PR of this repository for an older commit: their
    // numbers mean other PRs here.
    const foreign = [listed(3, 'someone'), listed(5, 'acme', '0ld5ha')];
    toolkit.reset(
      { mode: 'report', report: await reportFile(), 'github-token': TOKEN },
      {
        eventName: 'workflow_run',
        payload: { workflow_run: { head_sha: 'f0f0f0', pull_requests: [...foreign, listed(9, 'Acme')] } },
      },
    );
    await run();
    expect(facade.current!.findPullRequestBySha).not.toHaveBeenCalled();
    expect(facade.current!.upsertStickyComment).toHaveBeenCalledWith(9, 'distill-gate.yml', expect.any(String));
    expect(toolkit.infos()).toContain('distill-gate: reporting on PR #9, named by the workflow_run event');

    toolkit.reset(
      { mode: 'report', report: await reportFile(), 'github-token': TOKEN },
      { eventName: 'workflow_run', payload: { workflow_run: { head_sha: 'f0f0f0', pull_requests: foreign } } },
    );
    await run();
    expect(facade.current!.findPullRequestBySha).toHaveBeenCalledWith('f0f0f0');
    expect(facade.current!.upsertStickyComment).toHaveBeenCalledWith(12, 'distill-gate.yml', expect.any(String));
  });

  it('no PR for the commit: a warning, no comment', async () => {
    toolkit.reset(
      { mode: 'report', report: await reportFile(), 'github-token': TOKEN },
      { eventName: 'workflow_run', payload: { workflow_run: { head_sha: 'f0f0f0' } } },
    );
    const how =
      'no open PR has head f0f0f0: GitHub links no open PR to commit f0f0f0, as with fork PRs, and none of the 3 open PRs has it';
    facade.current!.findPullRequestBySha.mockResolvedValue({ number: undefined, how });
    await run();
    expect(facade.current!.upsertStickyComment).not.toHaveBeenCalled();
    expect(toolkit.warnings()).toContain(
      `No pull request found for this run (${how}), so no comment was posted. The report is in the job summary.`,
    );
  });

  it('a comment GitHub refuses warns with the fix, and the failing verdict still fails the step', async () => {
    toolkit.reset(
      {
        mode: 'report',
        report: await reportFile(sampleReport({ verdict: 'fail', gates: [failingSizeGate] })),
        'github-token': TOKEN,
      },
      { eventName: 'pull_request', payload: { pull_request: { number: 7 } } },
    );
    facade.current!.upsertStickyComment.mockRejectedValue(
      Object.assign(new Error('Resource not accessible by integration'), { status: 403 }),
    );
    await run();
    expect(toolkit.warnings()).toEqual([
      expect.stringMatching(/^Posting the PR comment failed: HTTP 403 .*`permissions: pull-requests: write`/),
    ]);
    expect(toolkit.outputs()['comment-url']).toBe('');
    expect(toolkit.failures()).toEqual(['distill-gate: failing gates: size.ratio (<= 0.01)']);
  });

  it('comment false posts nothing on a PR', async () => {
    toolkit.reset(
      { mode: 'report', report: await reportFile(), 'github-token': TOKEN, comment: 'false' },
      { eventName: 'pull_request', payload: { pull_request: { number: 7 } } },
    );
    await run();
    expect(facade.current!.upsertStickyComment).not.toHaveBeenCalled();
    expect(facade.current!.syncTrackingIssue).not.toHaveBeenCalled();
  });

  it('on schedule with issue-on-failure, the tracking issue follows the verdict; without it, nothing is filed', async () => {
    const failing = await reportFile(sampleReport({ verdict: 'fail', gates: [failingSizeGate] }));
    toolkit.reset(
      { mode: 'report', report: failing, 'github-token': TOKEN, 'issue-on-failure': 'true', 'issue-label': 'nightly' },
      { eventName: 'schedule' },
    );
    await run();
    expect(facade.current!.syncTrackingIssue).toHaveBeenCalledWith(
      { key: 'distill-gate.yml', label: 'nightly' },
      'fail',
      expect.stringContaining('distill-gate: fail'),
    );
    expect(toolkit.infos()).toContain('distill-gate: tracking issue opened: https://github.test/acme/models/issues/3');
    expect(facade.current!.upsertStickyComment).not.toHaveBeenCalled();

    toolkit.reset({ mode: 'report', report: failing, 'github-token': TOKEN }, { eventName: 'schedule' });
    facade.current = toolkit.fakeGitHub();
    await run();
    expect(facade.current.syncTrackingIssue).not.toHaveBeenCalled();
  });

  it('a config that cannot be read fails the step before any GitHub call', async () => {
    toolkit.reset(
      { config: 'missing.yml', 'github-token': TOKEN },
      { eventName: 'pull_request', payload: { pull_request: { number: 7, base: { ref: 'main' } } } },
    );
    await run();
    expect(toolkit.failures()).toEqual([
      expect.stringMatching(/^distill-gate: .*missing\.yml: cannot read the config file \(ENOENT\)/),
    ]);
    for (const method of Object.values(facade.current!)) expect(method).not.toHaveBeenCalled();
  });

  it('records a default-branch run in the baseline store only after everything is published', async () => {
    const dir = await exampleWorkspace(quickConfig({ gates: '  size.ratio: "<= 10"' }));
    toolkit.reset({
      config: path.join(dir, 'distill-gate.yml'),
      'output-dir': path.join(dir, 'out'),
      'github-token': TOKEN,
      'issue-on-failure': 'true',
    });
    await run();
    expect(toolkit.failures()).toEqual([]);
    const recorded = facade.current!.storeRun.mock.invocationCallOrder[0];
    const lastPublished = Math.max(
      ...toolkit.setOutput.mock.invocationCallOrder,
      ...facade.current!.syncTrackingIssue.mock.invocationCallOrder,
    );
    expect(recorded).toBeGreaterThan(lastPublished);
  });
});
