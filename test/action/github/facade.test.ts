import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import type { EventContext } from '../../../src/action/github/index.js';
import { FakeGitHub } from '../../e2e/github-server.js';

// @actions/github reads GITHUB_API_URL when it is first imported.
const api = await new FakeGitHub().start();
process.env.GITHUB_API_URL = api.url;
const { createGitHub } = await import('../../../src/action/github/index.js');

const context = (extra: Partial<EventContext> = {}): EventContext => ({
  eventName: 'schedule',
  payload: {},
  sha: 'abc123',
  ref: 'refs/heads/main',
  repo: { owner: 'acme', repo: 'models' },
  serverUrl: 'https://github.test',
  runId: 42,
  ...extra,
});

afterAll(() => api.stop());
beforeEach(() => {
  api.clearFaults();
  Object.assign(api, {
    comments: [],
    issues: [],
    pulls: [],
    labelEvents: [],
    labelsOn: new Map(),
    requests: [],
    commitsListTheirPulls: true,
  });
});

describe('the GitHub facade, built once', () => {
  it("sends every call to the context's repository with the token, retrying with the options it was built with", async () => {
    const retries: string[] = [];
    const github = createGitHub('ghs_facade', context({ repo: { owner: 'octo', repo: 'nets' } }), {
      minTimeoutMs: 1,
      onRetry: (message) => retries.push(message),
    });
    api.fail('GET', /\/issues\/3\/comments$/, 502);
    await github.upsertStickyComment(3, 'k', 'report');
    expect(retries).toEqual([expect.stringMatching(/^listing PR comments: HTTP 502 .*retrying \(attempt 2\)$/)]);
    expect(
      api.requests.every((r) => r.path.startsWith('/repos/octo/nets/') && r.authorization === 'token ghs_facade'),
    ).toBe(true);
  });

  it('keeps one sticky comment per key, updating it in place', async () => {
    const github = createGitHub('t', context());
    const first = await github.upsertStickyComment(7, 'k', 'one');
    const second = await github.upsertStickyComment(7, 'k', 'two');
    expect([first.created, second.created, second.id]).toEqual([true, false, first.id]);
    expect(api.comments.map((c) => c.body)).toEqual(['<!-- distill-gate:k -->\ntwo']);
  });

  it('links this run from the tracking issue, and closes it when the gates pass', async () => {
    const github = createGitHub('t', context());
    expect(await github.syncTrackingIssue({ key: 'k', label: 'nightly' }, 'fail', 'report')).toMatchObject({
      action: 'opened',
    });
    expect(api.issues[0].body).toContain(
      'The scheduled distill-gate run https://github.test/acme/models/actions/runs/42 failed its gates.',
    );
    expect(api.issues[0].labels).toEqual([{ name: 'nightly' }]);
    expect(await github.syncTrackingIssue({ key: 'k', label: 'nightly' }, 'pass', 'report')).toMatchObject({
      action: 'closed',
    });
    expect(api.issues[0].state).toBe('closed');
    expect(api.comments[0].body).toBe('Gates pass again in https://github.test/acme/models/actions/runs/42; closing.');
  });

  it('finds a PR by its head commit, also when GitHub does not associate the two (fork PRs), saying how', async () => {
    api.pulls = [{ number: 12, state: 'open', head: { sha: 'f0f0f0' } }];
    const github = createGitHub('t', context());
    expect(await github.findPullRequestBySha('f0f0f0')).toEqual({ number: 12, how: 'found by its head commit f0f0f0' });
    api.commitsListTheirPulls = false;
    // A facade of its own: one step asks GitHub once a sha (see below).
    expect(await createGitHub('t', context()).findPullRequestBySha('f0f0f0')).toEqual({
      number: 12,
      how: 'found among the open PRs (GitHub links no open PR to commit f0f0f0, as with fork PRs)',
    });
    expect(await github.findPullRequestBySha('0000')).toEqual({
      number: undefined,
      how: 'no open PR has head 0000: GitHub links no open PR to commit 0000, as with fork PRs, and none of the 1 open PRs has it',
    });
  });

  it.each([403, 404, 422, 500])("lists the open PRs when the commit's PR lookup answers HTTP %i", async (status) => {
    api.pulls = [
      { number: 11, state: 'open', head: { sha: 'aaaa' } },
      { number: 12, state: 'open', head: { sha: 'f0f0f0' } },
    ];
    api.fail('GET', /\/commits\/f0f0f0\/pulls$/, status, 99);
    const found = await createGitHub('t', context(), { retries: 1, minTimeoutMs: 1 }).findPullRequestBySha('f0f0f0');
    expect(found).toEqual({
      number: 12,
      how: `found among the open PRs (the commit's PR lookup failed: HTTP ${status} (injected ${status}))`,
    });
  });

  it('does not work around a network failure of the lookup: the listing would fail the same way', async () => {
    api.pulls = [{ number: 12, state: 'open', head: { sha: 'f0f0f0' } }];
    api.drop('GET', /\/commits\/f0f0f0\/pulls$/, 99);
    const github = createGitHub('t', context(), { retries: 1, minTimeoutMs: 1 });
    await expect(github.findPullRequestBySha('f0f0f0')).rejects.toMatchObject({
      status: 500,
      message: 'other side closed',
    });
    expect(api.requests.filter((r) => r.path.endsWith('/pulls')).map((r) => r.path)).toEqual([
      '/repos/acme/models/commits/f0f0f0/pulls',
      '/repos/acme/models/commits/f0f0f0/pulls',
    ]);
  });

  it('lists the open PRs page by page, stopping at the match or after 10 pages', async () => {
    api.commitsListTheirPulls = false;
    api.pulls = Array.from({ length: 1050 }, (_, i) => ({
      number: i + 1,
      state: 'open',
      head: { sha: `sha${i + 1}` },
    }));
    const github = createGitHub('t', context());
    const listings = () => api.requests.filter((r) => r.path === '/repos/acme/models/pulls').length;
    expect((await github.findPullRequestBySha('sha150')).number).toBe(150);
    expect(listings()).toBe(2);
    api.requests = [];
    expect(await github.findPullRequestBySha('sha1020')).toEqual({
      number: undefined,
      how: 'no open PR has head sha1020: GitHub links no open PR to commit sha1020, as with fork PRs, and none of the 1000 most recently updated open PRs has it',
    });
    expect(listings()).toBe(10);
  });

  it("reads the PR's labels as they are now, every page of them", async () => {
    api.labelsOn.set(7, [...Array.from({ length: 120 }, (_, i) => `area-${i}`), 'distill-gate:accept-regression']);
    const labels = await createGitHub('t', context()).pullRequestLabels(7);
    expect(labels).toHaveLength(121);
    expect(labels.at(-1)).toBe('distill-gate:accept-regression');
    expect(api.requests.map((r) => r.path)).toEqual([
      '/repos/acme/models/issues/7/labels',
      '/repos/acme/models/issues/7/labels',
    ]);
  });

  it('retries a dropped connection, naming it a network error', async () => {
    const retries: string[] = [];
    api.drop('GET', /\/issues\/7\/labels$/);
    api.labelsOn.set(7, ['x']);
    const github = createGitHub('t', context(), { minTimeoutMs: 1, onRetry: (message) => retries.push(message) });
    expect(await github.pullRequestLabels(7)).toEqual(['x']);
    expect(retries).toEqual([
      `reading the PR's labels: network error reaching ${new URL(api.url).host} (UND_ERR_SOCKET: other side closed); retrying (attempt 2)`,
    ]);
  });

  it('a request GitHub never answers ends at its deadline as a network error, and is retried', async () => {
    const retries: string[] = [];
    api.hang('GET', /\/issues\/7\/labels$/);
    api.labelsOn.set(7, ['x']);
    const github = createGitHub('t', context(), {
      minTimeoutMs: 1,
      requestTimeoutMs: 300,
      onRetry: (message) => retries.push(message),
    });
    expect(await github.pullRequestLabels(7)).toEqual(['x']);
    expect(retries).toEqual([
      `reading the PR's labels: network error reaching ${new URL(api.url).host} (ETIMEDOUT: no answer within 0.3 s); retrying (attempt 2)`,
    ]);
  });

  it('reads the default branch from the payload, or asks the API when the payload lacks it', async () => {
    api.defaultBranch = 'trunk';
    expect(
      await createGitHub('t', context({ payload: { repository: { default_branch: 'main' } } })).defaultBranch(),
    ).toBe('main');
    expect(api.requests).toEqual([]);
    expect(await createGitHub('t', context()).defaultBranch()).toBe('trunk');
  });

  it('names who last put a label on the PR', async () => {
    api.labelEvents = [
      { event: 'labeled', label: { name: 'accept' }, actor: { login: 'bob' } },
      { event: 'labeled', label: { name: 'other' }, actor: { login: 'carol' } },
      { event: 'labeled', label: { name: 'accept' }, actor: { login: 'alice' } },
    ];
    const github = createGitHub('t', context());
    expect(await github.labelledBy(7, 'accept')).toBe('@alice');
    expect(await github.labelledBy(7, 'missing')).toBe('someone');
  });
});
