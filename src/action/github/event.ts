import { describeStatus, networkFailure, type Api } from './api.js';

/** The slice of the Actions context distill-gate acts on. */
export interface EventContext {
  eventName: string;
  payload: Record<string, unknown> & {
    pull_request?: {
      number: number;
      head?: { sha?: string; repo?: { full_name?: string } | null };
      base?: { ref?: string; sha?: string };
      labels?: Array<{ name?: string }>;
    };
    repository?: { default_branch?: string };
    workflow_run?: {
      head_sha?: string;
      /** How the untrusted run ended: success, failure, cancelled, ... */
      conclusion?: string | null;
      pull_requests?: Array<{
        number: number;
        head?: { sha?: string };
        base?: { ref?: string; repo?: { url?: string } };
      }>;
    };
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

/**
 * The PR the event names: a pull_request's own, or one a workflow_run lists for its head commit in
 * this repository. GitHub also lists there PRs of other repositories that share the branch (a
 * fork's own PRs), whose numbers mean other PRs here.
 */
export function pullRequestNumber(context: EventContext): number | undefined {
  if (context.payload.pull_request) return context.payload.pull_request.number;
  const run = context.payload.workflow_run;
  const thisRepository = `/repos/${context.repo.owner}/${context.repo.repo}`.toLowerCase();
  return run?.pull_requests?.find(
    (pr) =>
      (!pr.head?.sha || !run.head_sha || pr.head.sha === run.head_sha) &&
      (!pr.base?.repo?.url || pr.base.repo.url.toLowerCase().endsWith(thisRepository)),
  )?.number;
}

export function runUrl(context: EventContext): string {
  return `${context.serverUrl}/${context.repo.owner}/${context.repo.repo}/actions/runs/${context.runId}`;
}

export function branchOf(ref: string): string | undefined {
  return ref.startsWith('refs/heads/') ? ref.slice('refs/heads/'.length) : undefined;
}

/** How far the open-PR listing goes: the PRs updated most recently come first, so a fresh push is on page 1. */
export const OPEN_PULL_REQUEST_PAGES = 10;

/** The PR a commit belongs to, and how it was found (or looked for), for the log. */
export interface PullRequestSearch {
  number: number | undefined;
  how: string;
}

/**
 * In the workflow_run pattern the triggering run of a fork PR lists no pull request: find the
 * open PR whose head is that commit. GitHub links a commit to its PRs, but not a fork's, and that
 * lookup needs `contents: read`, which a report-only workflow may not grant (403): either way the
 * open PRs are listed instead. A network failure is not worked around: the listing would fail too.
 */
export async function findPullRequestBySha(api: Api, sha: string): Promise<PullRequestSearch> {
  const { client, owner, repo } = api;
  let lookup: string;
  try {
    const associated = await api.call('finding the PR of this commit', () =>
      client.rest.repos.listPullRequestsAssociatedWithCommit({ owner, repo, commit_sha: sha }),
    );
    const direct = associated.data.find((pr) => pr.state === 'open' && pr.head.sha === sha);
    if (direct) return { number: direct.number, how: `found by its head commit ${sha}` };
    lookup = `GitHub links no open PR to commit ${sha}, as with fork PRs`;
  } catch (error) {
    if (networkFailure(error)) throw error;
    lookup = `the commit's PR lookup failed: ${describeStatus(error)}`;
  }
  let listed = 0;
  let capped = false;
  const matches = await api.call('listing open PRs', () => {
    let pages = 0;
    listed = 0;
    capped = false;
    return client.paginate(
      client.rest.pulls.list,
      { owner, repo, state: 'open', sort: 'updated', direction: 'desc', per_page: 100 },
      (response, done) => {
        listed += response.data.length;
        const found = response.data.filter((pr) => pr.head.sha === sha);
        capped = ++pages >= OPEN_PULL_REQUEST_PAGES && /rel="next"/.test(response.headers.link ?? '');
        if (found.length > 0 || capped) done();
        return found;
      },
    );
  });
  if (matches.length > 0) return { number: matches[0].number, how: `found among the open PRs (${lookup})` };
  const scope = capped ? `the ${listed} most recently updated open PRs` : `the ${listed} open PRs`;
  return { number: undefined, how: `no open PR has head ${sha}: ${lookup}, and none of ${scope} has it` };
}

/** The PR's labels as they are now. The event's payload holds those of when the event happened, and a re-run replays it. */
export async function pullRequestLabels(api: Api, issueNumber: number): Promise<string[]> {
  const { client, owner, repo } = api;
  const labels = await api.call("reading the PR's labels", () =>
    client.paginate(client.rest.issues.listLabelsOnIssue, { owner, repo, issue_number: issueNumber, per_page: 100 }),
  );
  return labels.map((label) => label.name);
}

/** The repository's default branch, from the payload or (schedule payloads lack it) the API. */
export async function defaultBranch(api: Api, context: EventContext): Promise<string> {
  const fromPayload = context.payload.repository?.default_branch;
  if (fromPayload) return fromPayload;
  const { data } = await api.call('reading the repository', () =>
    api.client.rest.repos.get({ owner: api.owner, repo: api.repo }),
  );
  return data.default_branch;
}

/** Who last put `label` on the PR, from its timeline; "someone" when GitHub does not say. */
export async function labelledBy(api: Api, issueNumber: number, label: string): Promise<string> {
  const { client, owner, repo } = api;
  const events = await api.call("reading the PR's label events", () =>
    client.paginate(client.rest.issues.listEvents, { owner, repo, issue_number: issueNumber, per_page: 100 }),
  );
  const labelled = events.filter(
    (e) => e.event === 'labeled' && (e as { label?: { name?: string } }).label?.name === label,
  );
  const actor = labelled[labelled.length - 1]?.actor?.login;
  return actor ? `@${actor}` : 'someone';
}
