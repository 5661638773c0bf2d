import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import type { EventContext } from '../../../src/action/github/index.js';
import { FakeGitHub } from '../../e2e/github-server.js';

// @actions/github reads GITHUB_API_URL when it is first imported.
const api = await new FakeGitHub().start();
process.env.GITHUB_API_URL = api.url;
const { createGitHub } = await import('../../../src/action/github/index.js');
const { writtenBy } = await import('../../../src/action/github/comment.js');

const context: EventContext = {
  eventName: 'pull_request',
  payload: {},
  sha: 'abc123',
  ref: 'refs/pull/7/merge',
  repo: { owner: 'acme', repo: 'models' },
  serverUrl: 'https://github.test',
  runId: 42,
};
const marker = '<!-- distill-gate:k -->';
const forkAuthor = { login: 'mallory', type: 'User' } as const;

/** The facade with `token`, and what it warned. */
function facade(token = 'ghs_workflow') {
  const warnings: string[] = [];
  const github = createGitHub(token, context, { minTimeoutMs: 1, onWarning: (message) => warnings.push(message) });
  return { github, warnings };
}

afterAll(() => api.stop());
beforeEach(() => {
  api.clearFaults();
  Object.assign(api, {
    comments: [],
    issues: [],
    requests: [],
    identities: new Map(),
    graphqlAnswers: true,
    commentUrls: true,
  });
});

describe('the sticky comment is only ever our own', () => {
  it('leaves a comment with our marker that someone else wrote alone, creates ours, and updates ours (not theirs) next time', async () => {
    const planted = api.plantComment(7, `${marker}\n## distill-gate: pass`, forkAuthor);
    const { github, warnings } = facade();
    const first = await github.upsertStickyComment(7, 'k', 'fail: agreement dropped');
    expect(first.created).toBe(true);
    expect(first.id).not.toBe(planted.id);
    expect(first.notes).toEqual([
      expect.stringContaining(
        `ignored a comment on PR #7 that carries this report's marker but was not written by the token's account (@github-actions[bot]): ${planted.html_url} by @mallory`,
      ),
    ]);
    expect(warnings).toEqual(first.notes);
    const second = await github.upsertStickyComment(7, 'k', 'fail again');
    expect([second.created, second.id]).toEqual([false, first.id]);
    expect(api.comments.map((c) => [c.user?.login, c.body])).toEqual([
      ['mallory', `${marker}\n## distill-gate: pass`],
      ['github-actions[bot]', `${marker}\nfail again`],
    ]);
    expect(api.requests.filter((r) => r.method === 'DELETE')).toEqual([]);
  });

  it('takes neither another bot nor a user named like ours for us', async () => {
    api.plantComment(7, `${marker}\npass`, { login: 'evil-app[bot]', type: 'Bot' });
    api.plantComment(7, `${marker}\npass`, { login: 'github-actions', type: 'User' });
    const { github, warnings } = facade();
    expect((await github.upsertStickyComment(7, 'k', 'report')).created).toBe(true);
    expect(warnings).toEqual([
      expect.stringMatching(/ignored 2 comments .* by @evil-app\[bot\], .* by @github-actions\. Left unchanged/),
    ]);
    expect(api.comments.map((c) => c.body)).toEqual([`${marker}\npass`, `${marker}\npass`, `${marker}\nreport`]);
  });

  it("with a GitHub App's token, its own bot's comment is ours and the workflow token's is not", async () => {
    api.identities.set('ghs_app', { login: 'distill-bot[bot]', type: 'Bot' });
    const workflows = api.plantComment(7, `${marker}\nold`, { login: 'github-actions[bot]', type: 'Bot' });
    const { github } = facade('ghs_app');
    const first = await github.upsertStickyComment(7, 'k', 'one');
    expect([first.created, first.notes]).toEqual([
      true,
      [expect.stringContaining(`${workflows.html_url} by @github-actions[bot]`)],
    ]);
    const second = await github.upsertStickyComment(7, 'k', 'two');
    expect([second.created, second.id]).toEqual([false, first.id]);
    expect(api.comments.find((c) => c.id === workflows.id)!.body).toBe(`${marker}\nold`);
    // The account is asked once a step.
    expect(api.requests.filter((r) => r.path === '/graphql')).toHaveLength(1);
  });

  it("with a person's token and no GraphQL, asks GET /user who it is", async () => {
    api.identities.set('ghp_pat', { login: 'Octocat', type: 'User' });
    api.graphqlAnswers = false;
    api.plantComment(7, `${marker}\nmine`, { login: 'octocat', type: 'User' });
    const { github, warnings } = facade('ghp_pat');
    const comment = await github.upsertStickyComment(7, 'k', 'updated');
    expect([comment.created, warnings]).toEqual([false, []]);
    expect(api.comments.map((c) => c.body)).toEqual([`${marker}\nupdated`]);
  });

  it('assumes the workflow token when GitHub cannot say who the token is, and says so', async () => {
    api.graphqlAnswers = false;
    api.plantComment(7, `${marker}\nmine`, { login: 'github-actions[bot]', type: 'Bot' });
    const { github, warnings } = facade();
    expect((await github.upsertStickyComment(7, 'k', 'updated')).created).toBe(false);
    expect(warnings).toEqual([
      expect.stringMatching(
        /did not say which account the token is \(GraphQL: HTTP 404 .*; GET \/user: HTTP 403 .*\); taking it for github-actions\[bot\]/,
      ),
    ]);
  });

  it('compares accounts by name, bot with bot', () => {
    const bot = { login: 'github-actions[bot]', bot: true };
    expect(writtenBy({ login: 'github-actions[bot]', type: 'Bot' }, bot)).toBe(true);
    expect(writtenBy({ login: 'GitHub-Actions[bot]' }, bot)).toBe(true);
    expect(writtenBy({ login: 'github-actions', type: 'User' }, bot)).toBe(false);
    expect(writtenBy({ login: 'octocat', type: 'User' }, { login: 'octocat', bot: false })).toBe(true);
    expect(writtenBy({ login: 'octocat[bot]', type: 'Bot' }, { login: 'octocat', bot: false })).toBe(false);
    expect(writtenBy(null, bot)).toBe(false);
    expect(writtenBy({}, bot)).toBe(false);
  });
});

describe('creating the sticky comment', () => {
  it('does not post a second copy when GitHub created the comment but answered 502', async () => {
    api.failAfterServing('POST', /\/issues\/7\/comments$/, 502);
    const { github, warnings } = facade();
    const comment = await github.upsertStickyComment(7, 'k', 'report');
    expect(api.comments.map((c) => c.body)).toEqual([`${marker}\nreport`]);
    expect([comment.created, comment.id]).toEqual([true, api.comments[0].id]);
    expect(warnings).toEqual([
      expect.stringContaining("the report comment was posted although GitHub's answer failed"),
    ]);
    expect(api.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/comments'))).toHaveLength(1);
  });

  it('still posts it when the failed create did not land', async () => {
    api.fail('POST', /\/issues\/7\/comments$/, 502);
    const { github, warnings } = facade();
    expect((await github.upsertStickyComment(7, 'k', 'report')).created).toBe(true);
    expect(api.comments.map((c) => c.body)).toEqual([`${marker}\nreport`]);
    expect(warnings).toEqual([]);
  });

  it("gives a usable link when GitHub's answer has no html_url: the PR's, at the comment", async () => {
    api.commentUrls = false;
    const { github } = facade();
    const created = await github.upsertStickyComment(7, 'k', 'one');
    expect(created.url).toBe(`https://github.test/acme/models/pull/7#issuecomment-${created.id}`);
    const updated = await github.upsertStickyComment(7, 'k', 'two');
    expect([updated.created, updated.url]).toEqual([false, created.url]);
  });
});

describe('the tracking issue is only ever our own', () => {
  it('neither updates nor closes a labelled issue with our marker that someone else opened', async () => {
    const body = '<!-- distill-gate:issue:k -->\nplanted';
    api.issues.push({
      number: 1,
      title: 't',
      body,
      state: 'open',
      labels: [{ name: 'nightly' }],
      html_url: 'https://github.test/issues/1',
      user: forkAuthor,
    });
    const { github, warnings } = facade();
    expect(await github.syncTrackingIssue({ key: 'k', label: 'nightly' }, 'pass', 'report')).toEqual({
      action: 'none',
    });
    expect(await github.syncTrackingIssue({ key: 'k', label: 'nightly' }, 'fail', 'report')).toMatchObject({
      action: 'opened',
    });
    expect(await github.syncTrackingIssue({ key: 'k', label: 'nightly' }, 'fail', 'again')).toMatchObject({
      action: 'updated',
    });
    expect(api.issues.map((issue) => [issue.user?.login, issue.state, issue.body.endsWith('planted')])).toEqual([
      ['mallory', 'open', true],
      ['github-actions[bot]', 'open', false],
    ]);
    expect(warnings[0]).toMatch(
      /ignored https:\/\/github\.test\/issues\/1 by @mallory: labelled nightly with this key's marker, but not opened by the token's account/,
    );
  });
});
