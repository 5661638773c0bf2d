import * as github from '@actions/github';
import pRetry from 'p-retry';

export type GitHubClient = ReturnType<typeof github.getOctokit>;

interface HttpError {
  status?: number;
  message?: string;
  response?: { headers?: Record<string, string | number | undefined> };
  request?: { url?: string };
  cause?: unknown;
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
  /** Says what the facade did that the caller did not ask for (a comment left alone, a damaged file passed over): onWarning, else onRetry's log. */
  warn(message: string): void;
}

/** How long one request may wait for GitHub's answer before it counts as a network failure (and is retried). */
export const REQUEST_TIMEOUT_MS = 30_000;

/**
 * GITHUB_API_URL is honoured by getOctokit, so GHES and the tests' loopback server both work.
 * Every request gets a deadline (`requestTimeoutMs`): fetch itself waits forever for a server or
 * proxy that accepted the connection and never answers, and no retry policy helps a request that
 * never ends.
 */
export function connect(token: string, repository: { owner: string; repo: string }, retry: RetryOptions = {}): Api {
  const timeoutMs = retry.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
  const fetchWithDeadline: typeof fetch = (input, init = {}) => {
    const deadline = AbortSignal.timeout(timeoutMs);
    return fetch(input, { ...init, signal: init.signal ? AbortSignal.any([init.signal, deadline]) : deadline }).catch(
      (error: unknown) => {
        if (!deadline.aborted) throw error;
        // Named as the socket errors are, so that it is told apart from GitHub's own answers and retried.
        throw Object.assign(new Error(`ETIMEDOUT: no answer within ${timeoutMs / 1000} s`), {
          code: 'ETIMEDOUT',
          cause: error,
        });
      },
    );
  };
  const client = github.getOctokit(token, {
    log: { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} },
    request: { fetch: fetchWithDeadline },
  });
  const warn = retry.onWarning ?? retry.onRetry ?? (() => {});
  return {
    client,
    ...repository,
    call: (what, request) => withRetry(what, request, retry),
    warn: (message) => warn(message),
  };
}

/** The socket errors of a request that never got an answer (Node's, and undici's UND_ERR_*). */
const NETWORK_CODES =
  /^(ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ECONNABORTED|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENETUNREACH|UND_ERR_\w+)$/;
const NETWORK_MESSAGES =
  /ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|socket hang up|other side closed|fetch failed/i;

/**
 * Why a request got no HTTP answer at all ("getaddrinfo ENOTFOUND api.github.com"), or undefined
 * when GitHub did answer. Octokit reports a failed fetch as a RequestError with status 500 and no
 * response, so the status alone cannot tell a DNS failure from GitHub's own 500: the socket's
 * error code is in the cause chain (RequestError -> TypeError "fetch failed" -> the system error).
 */
export function networkFailure(error: unknown): string | undefined {
  const { response, message = '' } = (error ?? {}) as HttpError;
  if (response) return undefined;
  let found: { code: string; message: string } | undefined;
  // The innermost coded cause is the system error itself; a cycle or a deep chain ends the walk.
  for (
    let link: unknown = error, depth = 0;
    link && typeof link === 'object' && depth < 8;
    link = (link as HttpError).cause, depth++
  ) {
    const { code, message: text = '' } = link as { code?: unknown; message?: string };
    if (typeof code === 'string' && NETWORK_CODES.test(code)) found = { code, message: text };
  }
  if (found)
    return found.message.includes(found.code)
      ? found.message
      : `${found.code}${found.message ? `: ${found.message}` : ''}`;
  return NETWORK_MESSAGES.test(message) ? message.split('\n')[0] : undefined;
}

/** The host a failed request was for, from octokit's request options. */
function hostOf(error: unknown): string {
  const url = (error as HttpError | undefined)?.request?.url;
  try {
    return url ? new URL(url).host : 'the GitHub API';
  } catch {
    return 'the GitHub API';
  }
}

/** Network failures, 5xx, 429 and rate limits pass; anything else (401, 403, 404, 422) will not. */
export function isTransient(error: unknown): boolean {
  if (networkFailure(error)) return true;
  const { status } = (error ?? {}) as HttpError;
  if (status === undefined) return false;
  return status >= 500 || rateLimit(error) !== undefined;
}

export interface RateLimit {
  /** "secondary": too many requests at once (GitHub says how long to wait); "primary": the token's hourly allowance is spent. */
  kind: 'primary' | 'secondary';
  /** When a request may succeed again: the allowance's reset, or now plus Retry-After; undefined when GitHub did not say. */
  until?: Date;
}

/**
 * Whether a 403 or 429 is GitHub's rate limit rather than a refusal: x-ratelimit-remaining 0, a
 * Retry-After, or GitHub's "rate limit" message (primary: "API rate limit exceeded for ...";
 * secondary: "You have exceeded a secondary rate limit"). A 403 is otherwise a missing permission.
 */
export function rateLimit(error: unknown, now = Date.now()): RateLimit | undefined {
  const { status, message = '', response } = (error ?? {}) as HttpError;
  if (status !== 403 && status !== 429) return undefined;
  const headers = response?.headers ?? {};
  const spent = String(headers['x-ratelimit-remaining'] ?? '').trim() === '0';
  const retryAfter = Number(headers['retry-after']);
  const hasRetryAfter = headers['retry-after'] !== undefined && Number.isFinite(retryAfter) && retryAfter >= 0;
  if (status === 403 && !spent && !hasRetryAfter && !/rate limit/i.test(message)) return undefined;
  // A 429 or a Retry-After without the allowance spent is the secondary limit, whatever the message says.
  const secondary = !spent && (/secondary rate limit|abuse/i.test(message) || hasRetryAfter || status === 429);
  const reset = Number(headers['x-ratelimit-reset']);
  const until = hasRetryAfter
    ? new Date(now + retryAfter * 1000)
    : spent && Number.isFinite(reset) && reset > 0
      ? new Date(reset * 1000)
      : undefined;
  return { kind: secondary ? 'secondary' : 'primary', ...(until ? { until } : {}) };
}

/** "12:34:56 UTC (in about 41 min)": when a rate limit lifts. */
function whenLifted(until: Date, now = Date.now()): string {
  const minutes = Math.ceil((until.getTime() - now) / 60_000);
  const clock = `${until.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
  return minutes <= 0 ? `${clock} (now)` : `${clock} (in about ${minutes} min)`;
}

/** How long a rate-limited call must wait before a retry can succeed; undefined when GitHub did not say. */
function rateLimitWaitMs(error: unknown): number | undefined {
  const until = rateLimit(error)?.until;
  return until ? Math.max(0, until.getTime() - Date.now()) : undefined;
}

export interface RetryOptions {
  retries?: number;
  /** Upper bound on the time spent retrying one call, so a sick API cannot hold the job. */
  maxRetryTimeMs?: number;
  minTimeoutMs?: number;
  onRetry?: (message: string) => void;
  /** How long one request may go unanswered (REQUEST_TIMEOUT_MS by default); tests shorten it. */
  requestTimeoutMs?: number;
  /**
   * Where the facade's warnings go (core.warning): a sticky-comment marker written by another
   * account, a damaged file of the baseline store. Without it they go to onRetry's log.
   */
  onWarning?: (message: string) => void;
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
    shouldRetry: ({ error }) => retryable(error),
    onFailedAttempt: async ({ error, attemptNumber, retriesLeft }) => {
      if (!retryable(error) || retriesLeft === 0) return;
      options.onRetry?.(`${what}: ${describeStatus(error)}; retrying (attempt ${attemptNumber + 1})`);
      const wait = rateLimitWaitMs(error);
      if (wait !== undefined && wait > 0) await new Promise((r) => setTimeout(r, wait));
    },
  });
  /** Transient, and not a rate limit that lifts only after the time this call may take (an hour's allowance spent): that fails at once. */
  function retryable(error: unknown): boolean {
    const wait = rateLimitWaitMs(error);
    return isTransient(error) && (wait === undefined || wait <= maxRetryTime / 2);
  }
}

/** "HTTP 403 (GitHub's message)", or "network error reaching <host> (<socket error>)" when GitHub never answered. */
export function describeStatus(error: unknown): string {
  const network = networkFailure(error);
  if (network) return `network error reaching ${hostOf(error)} (${network})`;
  const { status, message } = (error ?? {}) as HttpError;
  if (!status) return String(message ?? error);
  const limited = rateLimit(error);
  const because = limited ? `, rate limited${limited.until ? ` until ${whenLifted(limited.until)}` : ''}` : '';
  return `HTTP ${status}${because}${message ? ` (${message.split('\n')[0].slice(0, 200)})` : ''}`;
}

/** What the warnings of the report's own calls (comment, issue, baseline store) end with. */
export const REPORT_IS_SAFE = 'The report is in the job summary and on disk; the verdict still decides this step.';

/**
 * Turns an API failure into a warning that says what to do. The token is never part of it:
 * Octokit's errors carry the status and GitHub's message, not the request headers.
 * `permission` is the one a 403 asks for: the comment and issue need `pull-requests: write`,
 * the baseline store `contents: write` to record and `contents: read` to read. `outcome` says
 * what the step does without the call.
 */
export function explainFailure(
  what: string,
  error: unknown,
  permission = 'pull-requests: write',
  outcome = REPORT_IS_SAFE,
): string {
  const { status } = (error ?? {}) as HttpError;
  const base = `${what} failed: ${describeStatus(error)}.`;
  const limited = rateLimit(error);
  const fix = networkFailure(error)
    ? "GitHub could not be reached, even after retries: check the runner's network, DNS and proxy (HTTPS_PROXY), and GITHUB_API_URL on GitHub Enterprise Server."
    : limited
      ? limited.kind === 'primary'
        ? `GitHub's API rate limit for this token is used up (not a missing permission): ${limited.until ? `it resets at ${whenLifted(limited.until)}` : 'it resets within the hour'}. Jobs and steps that share the token share its allowance; a GitHub App's token has a larger one.`
        : `GitHub's secondary rate limit stopped this call (too many requests at once; not a missing permission)${limited.until ? `: it lifts at ${whenLifted(limited.until)}` : ''}. Fewer jobs calling the API at the same moment avoid it.`
      : status === 401
        ? 'The token is invalid or expired; pass a valid `github-token`.'
        : status === 403
          ? permission.endsWith(': write')
            ? `The token may not write here: give the job \`permissions: ${permission}\` (and \`issues: write\` for tracking issues). Pull requests from forks get a read-only token: use the workflow_run pattern of docs/action.md (mode: report).`
            : `The token may not read this: give the job \`permissions: ${permission}\`.`
          : status === 404
            ? 'The pull request or issue was not found (deleted, or the token cannot see this repository).'
            : status === 422
              ? 'GitHub refused the content (too long or invalid).'
              : isTransient(error)
                ? 'GitHub kept failing after retries.'
                : '';
  return `${base} ${fix} ${outcome}`.replace(/ {2}/g, ' ');
}
