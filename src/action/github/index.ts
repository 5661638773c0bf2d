/**
 * The action's one door to GitHub: built once per step from the token, the event context and the
 * retry policy, so that nothing after it handles a client, a repository or retry options. The
 * modules beside this one are its internals.
 */
import type { HistoryEntry } from '../../report/history.js';
import type { Report } from '../../report/report.js';
import { connect, type RetryOptions } from './api.js';
import { readStoredBaseline, storeRun, type StoredBaseline, type StoreLocation } from './baseline-store.js';
import { updateStickyComment, upsertStickyComment, type StickyComment } from './comment.js';
import { pullRequestFiles, setCommitStatus, type CommitState } from './commit-status.js';
import {
  defaultBranch,
  findPullRequestBySha,
  labelledBy,
  pullRequestLabels,
  runUrl,
  type EventContext,
  type PullRequestSearch,
} from './event.js';
import { syncTrackingIssue, type TrackingResult } from './tracking-issue.js';

export { explainFailure, REPORT_IS_SAFE, type RetryOptions } from './api.js';
export { whyNotKept, type StoredBaseline, type StoreLocation } from './baseline-store.js';
export type { StickyComment } from './comment.js';
export { statusDescription, type CommitState } from './commit-status.js';
export {
  branchOf,
  pullRequestNumber,
  PULL_REQUEST_EVENTS,
  STORING_EVENTS,
  type EventContext,
  type PullRequestSearch,
} from './event.js';
export type { TrackingResult } from './tracking-issue.js';

/**
 * How long the job waits for one facade call that can hang (a request, its retries): past it, or
 * once the run is stopped, the caller goes on without the answer (see underClock in run-control.ts).
 * A call's retries give up after a minute; this leaves room for the last request.
 */
export const GITHUB_CALL_DEADLINE_MS = 90_000;

export interface GitHub {
  /** The repository's default branch: from the payload, or the API when the payload lacks it. */
  defaultBranch(): Promise<string>;
  /** Downloads the latest baseline at `location` into `dir`; undefined when none was stored yet. */
  readStoredBaseline(location: StoreLocation, dir: string): Promise<StoredBaseline | undefined>;
  /** Records this run (report, student, history entry) at `location`, from this event's commit. */
  storeRun(location: StoreLocation, report: Report, studentDir: string | undefined): Promise<HistoryEntry[]>;
  /** Creates or updates the one PR comment carrying `key`'s marker. */
  upsertStickyComment(issueNumber: number, key: string, markdown: string): Promise<StickyComment>;
  /** Updates that comment where it exists; undefined, posting nothing, where it does not. */
  updateStickyComment(issueNumber: number, key: string, markdown: string): Promise<StickyComment | undefined>;
  /** Opens, updates or closes the labelled tracking issue of `key`, linking this run. */
  syncTrackingIssue(
    target: { key: string; label: string },
    verdict: 'pass' | 'fail',
    markdown: string,
  ): Promise<TrackingResult>;
  /** The open PR whose head is `sha` (the workflow_run pattern), if any, and how it was looked for. A step asks once (resolvePullRequest). */
  findPullRequestBySha(sha: string): Promise<PullRequestSearch>;
  /** The PR's labels now, from the API: not the event's, which a re-run replays unchanged. */
  pullRequestLabels(issueNumber: number): Promise<string[]>;
  /** Who last put `label` on the PR: "@login", or "someone" when GitHub does not say. */
  labelledBy(issueNumber: number, label: string): Promise<string>;
  /** Sets the commit status `name` on `sha`, linking this workflow run. */
  setCommitStatus(sha: string, name: string, state: CommitState, description: string): Promise<void>;
  /** The files the PR changes and its base commit, from GitHub; `complete` is false past GitHub's 3,000-file listing. */
  pullRequestFiles(issueNumber: number): Promise<{ files: string[]; baseSha: string; complete: boolean }>;
}

export function createGitHub(token: string, context: EventContext, retry: RetryOptions = {}): GitHub {
  const api = connect(token, context.repo, retry);
  return {
    defaultBranch: () => defaultBranch(api, context),
    readStoredBaseline: (location, dir) => readStoredBaseline(api, location, dir),
    storeRun: (location, report, studentDir) =>
      storeRun(api, location, report, studentDir, {
        fromSha: context.sha,
        event: context.eventName,
        runUrl: runUrl(context),
      }),
    upsertStickyComment: (issueNumber, key, markdown) =>
      upsertStickyComment(api, issueNumber, key, markdown, context.serverUrl),
    updateStickyComment: (issueNumber, key, markdown) =>
      updateStickyComment(api, issueNumber, key, markdown, context.serverUrl),
    syncTrackingIssue: (target, verdict, markdown) =>
      syncTrackingIssue(api, { ...target, runUrl: runUrl(context) }, verdict, markdown),
    findPullRequestBySha: (sha) => findPullRequestBySha(api, sha),
    pullRequestLabels: (issueNumber) => pullRequestLabels(api, issueNumber),
    labelledBy: (issueNumber, label) => labelledBy(api, issueNumber, label),
    setCommitStatus: (sha, name, state, description) =>
      setCommitStatus(api, sha, name, { state, description, targetUrl: runUrl(context) }),
    pullRequestFiles: (issueNumber) => pullRequestFiles(api, issueNumber),
  };
}
