import * as core from '@actions/core';
import { underClock, type RunClock } from '../run-control.js';
import {
  explainFailure,
  GITHUB_CALL_DEADLINE_MS,
  pullRequestNumber,
  PULL_REQUEST_EVENTS,
  type PullRequestSearch,
} from './github/index.js';
import type { Step } from './inputs.js';

/**
 * The pull request a step is about, worked out once and carried on the step: its labels (the accept
 * label), its changed files (mode report) and its comment all go to this one. A pull_request event
 * names it; under workflow_run (mode report, the fork-safe split) the event's list names it when it
 * holds this repository's PR for the run's head commit, else GitHub is asked which open PR has that
 * head (never a commit an upload names). Other runs have none.
 */
export async function resolvePullRequest(
  { inputs, context, github }: Omit<Step, 'pr'>,
  clock: RunClock,
): Promise<PullRequestSearch | undefined> {
  const forReport = inputs.mode === 'report' && context.eventName === 'workflow_run';
  if (!PULL_REQUEST_EVENTS.includes(context.eventName) && !forReport) return undefined;
  const named = pullRequestNumber(context);
  if (named !== undefined) return { number: named, how: `named by the ${context.eventName} event` };
  const headSha = context.payload.workflow_run?.head_sha;
  if (!headSha) return { number: undefined, how: 'the event names no PR, nor a commit to find one by' };
  if (!github) return { number: undefined, how: 'there is no github-token to find it with' };
  try {
    return await underClock(
      github.findPullRequestBySha(headSha),
      clock.stop,
      GITHUB_CALL_DEADLINE_MS,
      'finding the PR of the run',
    );
  } catch (error) {
    core.warning(
      explainFailure(
        `Finding the pull request of commit ${headSha}`,
        error,
        'pull-requests: read',
        'Its labels and changed files are not read, and no comment is posted.',
      ),
    );
    return { number: undefined, how: 'finding it failed' };
  }
}
