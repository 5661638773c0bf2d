import type { GitHubClient, RetryOptions } from './api.js';
import { withRetry } from './api.js';

/** The slice of the Actions context distill-gate acts on. */
export interface EventContext {
  eventName: string;
  payload: Record<string, unknown> & {
    pull_request?: { number: number; head?: { sha?: string } };
    workflow_run?: { head_sha?: string; pull_requests?: Array<{ number: number }> };
  };
  sha: string;
  repo: { owner: string; repo: string };
  serverUrl: string;
  runId: number;
}

export const PULL_REQUEST_EVENTS = ['pull_request', 'pull_request_target'];

export function pullRequestNumber(context: EventContext): number | undefined {
  if (context.payload.pull_request) return context.payload.pull_request.number;
  return context.payload.workflow_run?.pull_requests?.[0]?.number;
}

export function runUrl(context: EventContext): string {
  return `${context.serverUrl}/${context.repo.owner}/${context.repo.repo}/actions/runs/${context.runId}`;
}

/**
 * In the workflow_run pattern the triggering run of a fork PR lists no pull request: find the
 * open PR whose head is that commit.
 */
export async function findPullRequestBySha(client: GitHubClient, context: EventContext, sha: string, retry: RetryOptions = {}): Promise<number | undefined> {
  const { owner, repo } = context.repo;
  const associated = await withRetry('finding the PR of this commit', () => client.rest.repos.listPullRequestsAssociatedWithCommit({ owner, repo, commit_sha: sha }), retry);
  const direct = associated.data.find((pr) => pr.state === 'open' && pr.head.sha === sha);
  if (direct) return direct.number;
  const open = await withRetry('listing open PRs', () => client.paginate(client.rest.pulls.list, { owner, repo, state: 'open', per_page: 100 }), retry);
  return open.find((pr) => pr.head.sha === sha)?.number;
}
