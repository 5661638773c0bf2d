import * as core from '@actions/core';
import * as actionsGitHub from '@actions/github';
import { isInputError } from '../errors.js';
import { createGitHub, type EventContext, type RetryOptions } from './github/index.js';
import { withRunClock, type SignalSource } from '../run-control.js';
import { commitVerdict } from './commit-verdict.js';
import { firstLine } from './git.js';
import { readInputs, type ActionInputs, type Step } from './inputs.js';
import { modes, PENDING_LINE, type ModeOutcome } from './modes/index.js';
import { resolvePullRequest } from './pull-request.js';
import { publish, publishNotice, withinGrace } from './publish.js';

/**
 * The action: inputs -> one mode (run, report, merge or changes) -> publish, all under one
 * RunClock, so that the runner's cancel (SIGINT, then SIGTERM 7.5 s later) ends the run with its
 * report published instead of killing it. The commit status that carries the verdict (see
 * commit-verdict.ts) is set pending first and always ends in a final state: an input error or a
 * bug fails the step with one message, publishes no report, and sets the status to error.
 * `retry` tunes the GitHub facade's retries (tests shorten them); retries are logged. `signals` is
 * where cancel signals arrive (the process; tests drive an emitter).
 */
export async function run(retry: RetryOptions = {}, signals?: SignalSource): Promise<void> {
  const context = actionsGitHub.context as unknown as EventContext;
  let inputs: ActionInputs;
  try {
    inputs = readInputs();
  } catch (error) {
    return fail(error);
  }
  if (inputs.token) core.setSecret(inputs.token);
  const github = inputs.token
    ? createGitHub(inputs.token, context, {
        onRetry: (message) => core.info(message),
        onWarning: (message) => core.warning(message),
        ...retry,
      })
    : undefined;
  const step: Step = { inputs, context, github };
  const verdict = commitVerdict(inputs, context, github);
  const reason = (signal: string) => `the job was cancelled (${signal})`;
  await withRunClock(
    async (clock) => {
      verdict?.pending(PENDING_LINE[inputs.mode]);
      step.pr = await resolvePullRequest(step, clock);
      let outcome: ModeOutcome;
      try {
        outcome = await modes[inputs.mode](step, clock);
      } catch (error) {
        fail(error);
        if (verdict)
          await withinGrace(
            verdict.final('error', `could not run: ${firstLine(error)}`),
            clock.force,
            'setting the commit status',
          );
        return;
      }
      if ('notice' in outcome) return publishNotice(step, outcome.notice, clock, verdict);
      await publish(step, outcome.result, clock, verdict);
      // A cancelled run records nothing; otherwise the record gets no more time than the grace.
      if (outcome.afterPublish && !clock.hurry.aborted)
        await withinGrace(outcome.afterPublish(), clock.force, 'recording the baseline');
    },
    { budgetMinutes: inputs.budgetMinutes, reason, signals, announce: (line) => core.info(line) },
  );
}

function fail(error: unknown): void {
  if (isInputError(error)) core.setFailed(`distill-gate: ${error.message}`);
  else
    core.setFailed(
      `distill-gate internal error (a bug, please report it): ${error instanceof Error ? error.stack : String(error)}`,
    );
}
