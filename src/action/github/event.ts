import type { Api } from './api.js';

/** The slice of the Actions context distill-gate acts on. */
export interface EventContext {
  eventName: string;
  payload: Record<string, unknown> & {
    pull_request?: { number: number; head?: { sha?: string }; base?: { ref?: string }; labels?: Array<{ name?: string }> };
    repository?: { default_branch?: string };
    workflow_run?: { head_sha?: string; pull_requests?: Array<{ number: number }> };
  };
  sha: string;
  /** refs/heads/<branch> or refs/tags/<tag> (refs/pull/... on PRs). */
  ref: string;
  repo: { owner: string; repo: string };
  serverUrl: string;
  runId: number;
}

export const PULL_REQUEST_EVENTS = ['pull_request', 'pull_request_target'];

/** Events whose runs on the default branch write the baseline store. */
export const STORING_EVENTS = ['push', 'schedule', 'workflow_dispatch'];

export function pullRequestNumber(context: EventContext): number | undefined {
  if (context.payload.pull_request) return context.payload.pull_request.number;
  return context.payload.workflow_run?.pull_requests?.[0]?.number;
}

export function runUrl(context: EventContext): string {
  return `${context.serverUrl}/${context.repo.owner}/${context.repo.repo}/actions/runs/${context.runId}`;
}

export function branchOf(ref: string): string | undefined {
  return ref.startsWith('refs/heads/') ? ref.slice('refs/heads/'.length) : undefined;
}

/**
 * In the workflow_run pattern the triggering run of a fork PR lists no pull request: find the
 * open PR whose head is that commit.
 */
export async function findPullRequestBySha(api: Api, sha: string): Promise<number | undefined> {
  const { client, owner, repo } = api;
  const associated = await api.call('finding the PR of this commit', () =>
    client.rest.repos.listPullRequestsAssociatedWithCommit({ owner, repo, commit_sha: sha }),
  );
  const direct = associated.data.find((pr) => pr.state === 'open' && pr.head.sha === sha);
  if (direct) return direct.number;
  const open = await api.call('listing open PRs', () => client.paginate(client.rest.pulls.list, { owner, repo, state: 'open', per_page: 100 }));
  return open.find((pr) => pr.head.sha === sha)?.number;
}

/** The repository's default branch, from the payload or (schedule payloads lack it) the API. */
export async function defaultBranch(api: Api, context: EventContext): Promise<string> {
  const fromPayload = context.payload.repository?.default_branch;
  if (fromPayload) return fromPayload;
  const { data } = await api.call('reading the repository', () => api.client.rest.repos.get({ owner: api.owner, repo: api.repo }));
  return data.default_branch;
}

/** Who last put `label` on the PR, from its timeline; "someone" when GitHub does not say. */
export async function labelledBy(api: Api, issueNumber: number, label: string): Promise<string> {
  const { client, owner, repo } = api;
  const events = await api.call("reading the PR's label events", () =>
    client.paginate(client.rest.issues.listEvents, { owner, repo, issue_number: issueNumber, per_page: 100 }),
  );
  const labelled = events.filter((e) => e.event === 'labeled' && (e as { label?: { name?: string } }).label?.name === label);
  const actor = labelled[labelled.length - 1]?.actor?.login;
  return actor ? `@${actor}` : 'someone';
}
