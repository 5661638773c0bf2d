import * as github from '@actions/github';
import pRetry from 'p-retry';

export type GitHubClient = ReturnType<typeof github.getOctokit>;

interface HttpError {
  status?: number;
  message?: string;
  response?: { headers?: Record<string, string | number | undefined> };
}

/**
 * What every request of the facade goes through: the client, the repository, and `call`, which
 * runs one request with the retry policy chosen once when the facade was built.
 */
export interface Api {
  client: GitHubClient;
  owner: string;
  repo: string;
  call<T>(what: string, request: () => Promise<T>): Promise<T>;
}

/** GITHUB_API_URL is honoured by getOctokit, so GHES and the tests' loopback server both work. */
export function connect(token: string, repository: { owner: string; repo: string }, retry: RetryOptions = {}): Api {
  const client = github.getOctokit(token, { log: { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} } });
  return { client, ...repository, call: (what, request) => withRetry(what, request, retry) };
}

/** 5xx, 429 and secondary rate limits pass; anything else (401, 403, 404, 422) will not. */
export function isTransient(error: unknown): boolean {
  const { status, message = '', response } = (error ?? {}) as HttpError;
  if (status === undefined) return /ECONNRESET|ETIMEDOUT|ECONNREFUSED|socket hang up|fetch failed/i.test(message);
  if (status >= 500 || status === 429) return true;
  return status === 403 && (/rate limit/i.test(message) || response?.headers?.['retry-after'] !== undefined);
}

export interface RetryOptions {
  retries?: number;
  /** Upper bound on the time spent retrying one call, so a sick API cannot hold the job. */
  maxRetryTimeMs?: number;
  minTimeoutMs?: number;
  onRetry?: (message: string) => void;
}

/** Runs one API call, retrying transient failures with exponential backoff (honouring Retry-After). */
export async function withRetry<T>(what: string, call: () => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const maxRetryTime = options.maxRetryTimeMs ?? 60_000;
  return pRetry(call, {
    retries: options.retries ?? 4,
    minTimeout: options.minTimeoutMs ?? 1000,
    maxTimeout: 16_000,
    factor: 2,
    maxRetryTime,
    shouldRetry: ({ error }) => isTransient(error),
    onFailedAttempt: async ({ error, attemptNumber, retriesLeft }) => {
      if (!isTransient(error) || retriesLeft === 0) return;
      options.onRetry?.(`${what}: ${describeStatus(error)}; retrying (attempt ${attemptNumber + 1})`);
      const retryAfter = Number((error as HttpError).response?.headers?.['retry-after']);
      if (Number.isFinite(retryAfter) && retryAfter > 0) await new Promise((r) => setTimeout(r, Math.min(retryAfter * 1000, maxRetryTime / 2)));
    },
  });
}

function describeStatus(error: unknown): string {
  const { status, message } = (error ?? {}) as HttpError;
  return status ? `HTTP ${status}${message ? ` (${message.split('\n')[0].slice(0, 200)})` : ''}` : String(message ?? error);
}

/**
 * Turns an API failure into a warning that says what to do. The token is never part of it:
 * Octokit's errors carry the status and GitHub's message, not the request headers.
 * `permission` is the one a 403 asks for: the comment and issue need `pull-requests: write`,
 * the baseline store `contents: write` to record and `contents: read` to read.
 */
export function explainFailure(what: string, error: unknown, permission = 'pull-requests: write'): string {
  const { status } = (error ?? {}) as HttpError;
  const base = `${what} failed: ${describeStatus(error)}.`;
  const fix =
    status === 401
      ? 'The token is invalid or expired; pass a valid `github-token`.'
      : status === 403
        ? `The token may not write here: give the job \`permissions: ${permission}\` (and \`issues: write\` for tracking issues). Pull requests from forks get a read-only token: use the workflow_run pattern in the README (mode: report).`
        : status === 404
          ? 'The pull request or issue was not found (deleted, or the token cannot see this repository).'
          : status === 422
            ? 'GitHub refused the content (too long or invalid).'
            : isTransient(error)
              ? 'GitHub kept failing after retries; the report is still in the job summary and on disk.'
              : '';
  return `${base} ${fix} The report is in the job summary and on disk; the verdict still decides this step.`.replace(/ {2}/g, ' ');
}
