import type { Api } from './api.js';

/** The states a commit status can take; GitHub's own words. */
export type CommitState = 'pending' | 'success' | 'failure' | 'error';

/** GitHub cuts a status's description at this many characters. */
export const STATUS_DESCRIPTION_LIMIT = 140;

export interface CommitStatus {
  state: CommitState;
  /** One line: the verdict and what decided it. */
  description: string;
  /** The workflow run, where the report is. */
  targetUrl: string;
}

/** A description GitHub takes as it is: one line, at most 140 characters, cut with an ellipsis. */
export function statusDescription(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length <= STATUS_DESCRIPTION_LIMIT ? line : `${line.slice(0, STATUS_DESCRIPTION_LIMIT - 1)}…`;
}

/**
 * Sets the commit status `context` on `sha` (needs `statuses: write`). A commit status, not a check
 * run: a workflow's token can set one on any commit of its repository, a fork's pull_request run
 * cannot (its token is read-only), and branch protection can require it by name.
 */
export async function setCommitStatus(api: Api, sha: string, context: string, status: CommitStatus): Promise<void> {
  const { client, owner, repo } = api;
  await api.call(`setting the commit status ${context}`, () =>
    client.rest.repos.createCommitStatus({
      owner,
      repo,
      sha,
      context,
      state: status.state,
      description: statusDescription(status.description),
      target_url: status.targetUrl,
    }),
  );
}

/** GitHub lists at most this many files of a pull request (3,000); a longer list is not the whole PR. */
export const PULL_REQUEST_FILES_LIMIT = 3000;

/** The files a pull request changes, from GitHub (trusted: not from the PR's job), and its base commit. */
export async function pullRequestFiles(
  api: Api,
  issueNumber: number,
): Promise<{ files: string[]; baseSha: string; complete: boolean }> {
  const { client, owner, repo } = api;
  const { data: pull } = await api.call('reading the pull request', () =>
    client.rest.pulls.get({ owner, repo, pull_number: issueNumber }),
  );
  const listed = await api.call("listing the pull request's files", () =>
    client.paginate(client.rest.pulls.listFiles, { owner, repo, pull_number: issueNumber, per_page: 100 }),
  );
  // A rename changes both names: the file that left a relevant folder matters as much as the one that came in.
  const files = listed.flatMap((file) => [file.filename, ...(file.previous_filename ? [file.previous_filename] : [])]);
  return {
    files,
    baseSha: pull.base.sha,
    complete: listed.length < PULL_REQUEST_FILES_LIMIT && listed.length >= pull.changed_files,
  };
}
