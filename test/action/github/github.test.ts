import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { getOctokit } from '@actions/github';
import { describe, expect, it } from 'vitest';
import { explainFailure, isTransient, networkFailure, withRetry } from '../../../src/action/github/api.js';
import { FakeGitHub } from '../../e2e/github-server.js';
import { COMMENT_LIMIT, commentMarker, fitComment } from '../../../src/action/github/comment.js';

describe('sticky comment body', () => {
  it('keeps the marker an inert HTML comment whatever the key', () => {
    expect(commentMarker('.github/distill-gate.yml')).toBe('<!-- distill-gate:.github/distill-gate.yml -->');
    const hostile = commentMarker('a --> <script>');
    expect(hostile).toMatch(/^<!-- distill-gate:[A-Za-z0-9._/:_-]+ -->$/);
    expect(hostile.slice(4, -4)).not.toContain('--');
    expect(commentMarker('x--y')).toBe('<!-- distill-gate:x-y -->');
  });

  it('leaves a short body alone', () => {
    expect(fitComment('short')).toEqual({ body: 'short', truncated: false });
  });

  it('shortens a long body at a line break under the limit, closing an open code fence, with a note', () => {
    const long = `## report\n\`\`\`mermaid\n${'line of chart\n'.repeat(10_000)}\`\`\`\n`;
    const { body, truncated } = fitComment(long);
    expect(truncated).toBe(true);
    expect(body.length).toBeLessThanOrEqual(COMMENT_LIMIT);
    expect(body).toMatch(/line of chart\n```\n\n> \*\*Report shortened\*\* .*job summary/);
    expect((body.match(/```/g) ?? []).length % 2).toBe(0);
  });
});

describe('API failures', () => {
  const error = (status: number, message = 'x', headers: Record<string, string> = {}) =>
    Object.assign(new Error(message), { status, response: { headers } });

  it.each([
    [500, 'boom', {}, true],
    [502, 'bad gateway', {}, true],
    [429, 'slow down', {}, true],
    [403, 'You have exceeded a secondary rate limit', {}, true],
    [403, 'forbidden', { 'retry-after': '3' }, true],
    [403, 'Resource not accessible by integration', {}, false],
    [401, 'Bad credentials', {}, false],
    [404, 'Not Found', {}, false],
    [422, 'Validation Failed', {}, false],
  ])('HTTP %i (%s) is transient: %s', (status, message, headers, transient) => {
    expect(isTransient(error(status, message, headers))).toBe(transient);
  });

  it('retries transient failures and gives up at once on others', async () => {
    let calls = 0;
    const value = await withRetry(
      'x',
      async () => {
        calls++;
        if (calls < 3) throw error(503);
        return 'ok';
      },
      { minTimeoutMs: 1 },
    );
    expect([value, calls]).toEqual(['ok', 3]);
    calls = 0;
    await expect(
      withRetry(
        'x',
        async () => {
          calls++;
          throw error(404, 'Not Found');
        },
        { minTimeoutMs: 1 },
      ),
    ).rejects.toThrow('Not Found');
    expect(calls).toBe(1);
  });

  it('stops retrying after the retry budget', async () => {
    let calls = 0;
    await expect(
      withRetry(
        'x',
        async () => {
          calls++;
          throw error(500);
        },
        { retries: 2, minTimeoutMs: 1 },
      ),
    ).rejects.toThrow();
    expect(calls).toBe(3);
  });

  it.each([
    [401, /token is invalid or expired/],
    [403, /permissions: pull-requests: write.*workflow_run pattern/],
    [404, /not found \(deleted/],
    [422, /refused the content/],
    [500, /kept failing after retries/],
  ])('explains HTTP %i with a fix', (status, pattern) => {
    const text = explainFailure('Posting', error(status, 'msg'));
    expect(text).toMatch(pattern);
    expect(text).toMatch(/report is in the job summary and on disk/);
  });

  it('asks a 403 for the permission the call needs, in the same words', () => {
    const forbidden = error(403, 'Resource not accessible by integration');
    const comment = explainFailure('Posting the PR comment', forbidden);
    expect(comment).toContain(
      'give the job `permissions: pull-requests: write` (and `issues: write` for tracking issues)',
    );
    expect(explainFailure('Recording the baseline', forbidden, 'contents: write')).toBe(
      comment
        .replace('Posting the PR comment', 'Recording the baseline')
        .replace('pull-requests: write', 'contents: write'),
    );
    expect(explainFailure('Reading', forbidden, 'contents: read')).toContain('`permissions: contents: read`');
    expect(explainFailure('Reading', error(404), 'contents: read')).not.toContain('permissions');
  });
});

describe('rate limits', () => {
  const limited = (status: number, message: string, headers: Record<string, string>) =>
    Object.assign(new Error(message), { status, response: { headers } });
  const inMinutes = (minutes: number) => String(Math.floor(Date.now() / 1000) + minutes * 60);

  it('explains a spent allowance (x-ratelimit-remaining 0) as a rate limit with its reset, not as a missing permission', () => {
    const reset = inMinutes(40);
    const error = limited(403, 'API rate limit exceeded for installation ID 42.', {
      'x-ratelimit-remaining': '0',
      'x-ratelimit-reset': reset,
    });
    const text = explainFailure('Posting the PR comment', error);
    const clock = `${new Date(Number(reset) * 1000).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
    expect(text).toContain(`HTTP 403, rate limited until ${clock}`);
    expect(text).toMatch(
      /rate limit for this token is used up \(not a missing permission\): it resets at .* UTC \(in about (39|40|41) min\)/,
    );
    expect(text).not.toMatch(/permissions:|may not write/);
    expect(text).toMatch(/report is in the job summary and on disk/);
  });

  it('recognises the allowance spent from the header alone, and the secondary limit from its message or Retry-After', () => {
    const bare = explainFailure(
      'Reading',
      limited(403, 'Forbidden', { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': inMinutes(5) }),
      'contents: read',
    );
    expect(bare).toMatch(/rate limit for this token is used up/);
    expect(bare).not.toContain('permissions: contents: read');
    const secondary = explainFailure(
      'Posting',
      limited(403, 'You have exceeded a secondary rate limit.', { 'retry-after': '60' }),
    );
    expect(secondary).toMatch(/secondary rate limit stopped this call .*: it lifts at .* UTC \(in about 1 min\)/);
    expect(secondary).not.toContain('may not write');
    expect(explainFailure('Posting', limited(429, 'Too many requests', {}))).toMatch(
      /secondary rate limit stopped this call \(too many requests at once; not a missing permission\)\. Fewer/,
    );
    expect(
      explainFailure(
        'Posting',
        limited(403, 'Resource not accessible by integration', { 'x-ratelimit-remaining': '4999' }),
      ),
    ).toMatch(/may not write here/);
  });

  it('does not wait out an allowance that resets after the retry budget, and retries one that resets within it', async () => {
    let calls = 0;
    const far = limited(403, 'API rate limit exceeded', {
      'x-ratelimit-remaining': '0',
      'x-ratelimit-reset': inMinutes(30),
    });
    await expect(
      withRetry(
        'x',
        async () => {
          calls++;
          throw far;
        },
        { minTimeoutMs: 1 },
      ),
    ).rejects.toBe(far);
    expect(calls).toBe(1);
    calls = 0;
    const spentJustNow = limited(403, 'Forbidden', {
      'x-ratelimit-remaining': '0',
      'x-ratelimit-reset': String(Math.floor(Date.now() / 1000) - 1),
    });
    const value = await withRetry(
      'x',
      async () => {
        if (++calls === 1) throw spentJustNow;
        return 'ok';
      },
      { minTimeoutMs: 1 },
    );
    expect([value, calls]).toEqual(['ok', 2]);
  });
});

describe('network failures, as octokit reports them', () => {
  /** The error of one real request to `baseUrl`: octokit calls a request that got no answer "status 500". */
  const failureAt = (baseUrl: string) =>
    getOctokit('t', { baseUrl })
      .rest.repos.get({ owner: 'acme', repo: 'models' })
      .then(
        () => expect.unreachable('the request should fail'),
        (error: unknown) => error,
      );

  /** A loopback port that nothing listens on. */
  async function closedPort(): Promise<number> {
    const server = http.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    return port;
  }

  it('names a DNS failure as a network error reaching the host, not as HTTP 500, and retries it', async () => {
    const error = await failureAt('http://api.github.invalid');
    expect(error).toMatchObject({ status: 500 });
    const text = explainFailure('Posting the PR comment', error);
    expect(text).toMatch(
      /^Posting the PR comment failed: network error reaching api\.github\.invalid \(getaddrinfo (ENOTFOUND|EAI_AGAIN) api\.github\.invalid\)\./,
    );
    expect(text).not.toContain('HTTP 500');
    expect(text).toContain("check the runner's network, DNS and proxy");
    expect(isTransient(error)).toBe(true);
  });

  it('names a refused connection and a dropped one', async () => {
    const port = await closedPort();
    const refused = await failureAt(`http://127.0.0.1:${port}`);
    expect(explainFailure('Reading', refused)).toContain(
      `failed: network error reaching 127.0.0.1:${port} (connect ECONNREFUSED 127.0.0.1:${port}).`,
    );
    const api = await new FakeGitHub().start();
    try {
      api.drop('GET', /^\/repos\/acme\/models$/);
      const dropped = await failureAt(api.url);
      expect(networkFailure(dropped)).toBe('UND_ERR_SOCKET: other side closed');
      expect(explainFailure('Reading', dropped)).toContain(
        `failed: network error reaching ${new URL(api.url).host} (UND_ERR_SOCKET: other side closed).`,
      );
      expect([isTransient(refused), isTransient(dropped)]).toEqual([true, true]);
    } finally {
      await api.stop();
    }
  });

  it("keeps GitHub's own 500 an HTTP 500", async () => {
    const api = await new FakeGitHub().start();
    try {
      api.fail('GET', /^\/repos\/acme\/models$/, 500);
      const error = await failureAt(api.url);
      expect(networkFailure(error)).toBeUndefined();
      expect(explainFailure('Reading', error)).toMatch(
        /^Reading failed: HTTP 500 \(injected 500\)\. GitHub kept failing after retries\./,
      );
    } finally {
      await api.stop();
    }
  });

  it('says what the step does instead, when the caller says it', () => {
    const forbidden = Object.assign(new Error('Resource not accessible by integration'), {
      status: 403,
      response: { headers: {} },
    });
    expect(
      explainFailure("Reading the PR's labels", forbidden, 'pull-requests: read', 'The event payload decides instead.'),
    ).toBe(
      "Reading the PR's labels failed: HTTP 403 (Resource not accessible by integration). The token may not read this: give the job `permissions: pull-requests: read`. The event payload decides instead.",
    );
  });
});
