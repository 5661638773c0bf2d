import * as core from '@actions/core';
import type { Report } from '../report/report.js';
import {
  explainFailure,
  PULL_REQUEST_EVENTS,
  statusDescription,
  type CommitState,
  type EventContext,
  type GitHub,
} from './github/index.js';
import type { ActionInputs } from './inputs.js';

/**
 * The gate's verdict as a commit status on the PR's head commit: the check that branch protection
 * requires. Only a trusted job sets it: a same-repository PR's own run (mode run, merge or changes),
 * or, for a fork's PR, the workflow_run job that re-judged the fork's upload (mode report). A
 * fork's pull_request run has a read-only token, so nothing the fork's job does can set it, and a
 * required status that was never set keeps the PR waiting: it fails closed.
 *
 * Each step sets `pending` when it starts and one final state when it publishes (success, failure,
 * or error when the run was cut short or could not run), always in that order.
 */
export interface CommitVerdict {
  /** The commit and status name, for the log. */
  readonly sha: string;
  readonly name: string;
  /** Sets pending without waiting: the run goes on while GitHub answers. */
  pending(description: string): void;
  /** Sets the final state once pending has landed (or failed). Never throws: a failure is a warning. */
  final(state: CommitState, description: string): Promise<void>;
}

/** Where this step's verdict goes, or why it sets none (for the log). */
export function statusTarget(
  inputs: Pick<ActionInputs, 'statusName' | 'mode'>,
  context: EventContext,
): { sha: string } | { none: string } {
  if (!inputs.statusName) return { none: 'input status-name is off' };
  const { pull_request: pr, workflow_run: run } = context.payload;
  if (inputs.mode === 'report' && context.eventName === 'workflow_run') {
    return run?.head_sha ? { sha: run.head_sha } : { none: 'the workflow_run event names no head commit' };
  }
  if (!PULL_REQUEST_EVENTS.includes(context.eventName) || !pr)
    return { none: `a ${context.eventName} run has no pull request to gate` };
  const sha = pr.head?.sha;
  if (!sha) return { none: 'the event names no head commit for the PR' };
  const thisRepository = `${context.repo.owner}/${context.repo.repo}`.toLowerCase();
  if (context.eventName === 'pull_request' && pr.head?.repo?.full_name?.toLowerCase() !== thisRepository)
    return {
      none: "this is a fork's pull request, whose run has a read-only token: the trusted workflow_run job (mode report) sets the status from the re-judged upload",
    };
  return { sha };
}

/** The commit verdict of this step, or undefined when it sets none (logged once). */
export function commitVerdict(
  inputs: Pick<ActionInputs, 'statusName' | 'mode'>,
  context: EventContext,
  github: GitHub | undefined,
): CommitVerdict | undefined {
  const target = statusTarget(inputs, context);
  if ('none' in target) {
    if (inputs.statusName) core.info(`distill-gate: no commit status ${inputs.statusName}: ${target.none}`);
    return undefined;
  }
  if (!github) {
    core.warning(
      `No github-token: the commit status ${inputs.statusName} is not set on ${target.sha}, so a check requiring it waits.`,
    );
    return undefined;
  }
  const { sha } = target;
  const name = inputs.statusName;
  const set = async (state: CommitState, description: string) => {
    try {
      await github.setCommitStatus(sha, name, state, description);
      core.info(
        `distill-gate: commit status ${name} on ${sha.slice(0, 12)}: ${state} (${statusDescription(description)})`,
      );
    } catch (error) {
      core.warning(
        explainFailure(`Setting the commit status ${name} (${state}) on ${sha.slice(0, 12)}`, error, 'statuses: write'),
      );
    }
  };
  let landed: Promise<void> = Promise.resolve();
  return {
    sha,
    name,
    pending: (description) => {
      landed = set('pending', description);
    },
    final: async (state, description) => {
      await landed;
      await set(state, description);
    },
  };
}

/** The state a report's verdict sets: a run cut short or cancelled is an error, not a failing gate. */
export function stateOf(report: Pick<Report, 'verdict' | 'status'>): CommitState {
  return report.verdict === 'pass' ? 'success' : report.status === 'incomplete' ? 'error' : 'failure';
}

/**
 * One line for the status: the verdict and what decided it, e.g. "fail: agreement.top1 0.91
 * (>= 0.93)", "pass: 4 gates pass", or for a run cut short "incomplete: " and why. A status is plain text, not markdown; names from the config or
 * an upload lose control and bidirectional-override characters, which could disguise the line.
 */
export function verdictLine(report: Pick<Report, 'verdict' | 'status' | 'gates' | 'reasons'>): string {
  const failing = report.gates
    .filter((g) => g.status === 'fail')
    .map((g) => `${g.metric} ${g.value ?? 'not measured'} (${g.expected})`);
  const passing = report.gates.filter((g) => g.status === 'pass').length;
  const warned = report.gates.filter((g) => g.status === 'warn').length;
  const text =
    report.verdict === 'pass'
      ? `pass: ${passing} gate${passing === 1 ? '' : 's'} pass${warned ? `, ${warned} warning${warned === 1 ? '' : 's'}` : ''}`
      : report.status === 'incomplete'
        ? `incomplete: ${report.reasons[0] ?? 'the run was cut short'}`
        : failing.length > 0
          ? `fail: ${failing.join(', ')}`
          : `fail: ${report.reasons[0] ?? 'no gate passed'}`;
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, ' ');
}
