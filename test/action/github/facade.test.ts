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
  Object.assign(api, { comments: [], issues: [], pulls: [], labelEvents: [], requests: [], commitsListTheirPulls: true });
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
    expect(api.requests.every((r) => r.path.startsWith('/repos/octo/nets/') && r.authorization === 'token ghs_facade')).toBe(true);
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
    expect(await github.syncTrackingIssue({ key: 'k', label: 'nightly' }, 'fail', 'report')).toMatchObject({ action: 'opened' });
    expect(api.issues[0].body).toContain('The scheduled distill-gate run https://github.test/acme/models/actions/runs/42 failed its gates.');
    expect(api.issues[0].labels).toEqual([{ name: 'nightly' }]);
    expect(await github.syncTrackingIssue({ key: 'k', label: 'nightly' }, 'pass', 'report')).toMatchObject({ action: 'closed' });
    expect(api.issues[0].state).toBe('closed');
    expect(api.comments[0].body).toBe('Gates pass again in https://github.test/acme/models/actions/runs/42; closing.');
  });

  it('finds a PR by its head commit, also when GitHub does not associate the two (fork PRs)', async () => {
    api.pulls = [{ number: 12, state: 'open', head: { sha: 'f0f0f0' } }];
    const github = createGitHub('t', context());
    expect(await github.findPullRequestBySha('f0f0f0')).toBe(12);
    api.commitsListTheirPulls = false;
    expect(await github.findPullRequestBySha('f0f0f0')).toBe(12);
    expect(await github.findPullRequestBySha('0000')).toBeUndefined();
  });

  it('reads the default branch from the payload, or asks the API when the payload lacks it', async () => {
    api.defaultBranch = 'trunk';
    expect(await createGitHub('t', context({ payload: { repository: { default_branch: 'main' } } })).defaultBranch()).toBe('main');
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
