import path from 'node:path';
import * as core from '@actions/core';
import type { RunResult } from '../report/report.js';
import { underClock } from '../run-control.js';
import {
  branchOf,
  explainFailure,
  GITHUB_CALL_DEADLINE_MS,
  STORING_EVENTS,
  whyNotKept,
  type EventContext,
  type GitHub,
  type StoredBaseline,
  type StoreLocation,
} from './github/index.js';
import type { ActionInputs } from './inputs.js';

/**
 * The baseline store, planned: which branch's records this run reads, and whether it extends them.
 * PRs read their base branch's records; default-branch runs of push, schedule and
 * workflow_dispatch read and then extend their own; other runs leave the store alone.
 */
export interface StorePlan {
  location: StoreLocation;
  write: boolean;
}

/** Decides from the event alone, except when the default branch is not in the payload. */
export async function planStore(
  github: GitHub,
  inputs: Pick<ActionInputs, 'baselineBranch' | 'commentKey'>,
  context: EventContext,
  signal: AbortSignal,
): Promise<StorePlan | undefined> {
  if (!inputs.baselineBranch) return undefined;
  const base = { branch: inputs.baselineBranch, key: inputs.commentKey };
  const prBase = context.payload.pull_request?.base?.ref;
  if (prBase) return { location: { ...base, forBranch: prBase }, write: false };
  const branch = branchOf(context.ref ?? '');
  if (!branch || !STORING_EVENTS.includes(context.eventName)) return undefined;
  try {
    const mainBranch = await underClock(
      github.defaultBranch(),
      signal,
      GITHUB_CALL_DEADLINE_MS,
      'reading the default branch',
    );
    return { location: { ...base, forBranch: branch }, write: branch === mainBranch };
  } catch (error) {
    core.warning(explainFailure('Finding the default branch for the baseline store', error));
    return undefined;
  }
}

/**
 * The stored baseline, downloaded into `dir`, outside the workspace so that its files never mix
 * with the PR's. Under the run's clock: a store that hangs leaves relative gates skipped, saying
 * why, instead of holding the run past its cancel.
 */
export async function readBaseline(
  github: GitHub,
  plan: StorePlan,
  dir: string,
  signal: AbortSignal,
): Promise<StoredBaseline | undefined> {
  const { branch, forBranch } = plan.location;
  try {
    const stored = await underClock(
      github.readStoredBaseline(plan.location, dir),
      signal,
      STORE_DEADLINE_MS,
      `reading the baseline store ${branch}`,
    );
    if (stored?.notKept)
      core.warning(
        `distill-gate: the baseline store ${branch} holds a run for ${forBranch} that is not a baseline: ${stored.notKept} (recorded before distill-gate kept complete, passing runs only). Relative gates are skipped until such a run there records one.`,
      );
    else if (stored)
      core.info(
        `distill-gate: baseline from ${branch} for ${forBranch}${stored.studentPath ? ', with its student' : ''}`,
      );
    else core.info(`distill-gate: no baseline stored yet for ${forBranch} in ${branch}; relative gates are skipped`);
    return stored;
  } catch (error) {
    core.warning(explainFailure(`Reading the baseline from branch ${branch}`, error, 'contents: read'));
    return undefined;
  }
}

/** How long reading the store may take: a report, a history and a student of a few files, each retried. */
export const STORE_DEADLINE_MS = 3 * GITHUB_CALL_DEADLINE_MS;

/**
 * Records a run the plan says to record, unless its report never reached the disk or it is not
 * worth keeping: only a complete, passing run becomes the baseline, so that a failing or cut-short
 * run on the default branch cannot lower the bar that relative gates hold the next PR to.
 */
export async function recordRun(github: GitHub, plan: StorePlan, result: RunResult): Promise<void> {
  if (!plan.write || result.writeError) return;
  const { branch } = plan.location;
  const unworthy = whyNotKept(result.report);
  if (unworthy) {
    core.info(
      `distill-gate: not recording this run in ${branch}: it ${unworthy}; the baseline stays the last complete, passing run`,
    );
    return;
  }
  try {
    const history = await github.storeRun(plan.location, result.report, path.dirname(result.studentPath));
    core.info(`distill-gate: recorded this run in ${branch} (${history.length} runs in the history)`);
  } catch (error) {
    core.warning(explainFailure(`Recording the baseline in branch ${branch}`, error, 'contents: write'));
  }
}
