import * as core from '@actions/core';
import * as actionsGitHub from '@actions/github';
import { isInputError } from '../errors.js';
import { createGitHub, type EventContext, type RetryOptions } from './github/index.js';
import { withRunClock, type SignalSource } from '../run-control.js';
import { readInputs, type ActionInputs, type Step } from './inputs.js';
import { modes, type ModeOutcome } from './modes.js';
import { publish, withinGrace } from './publish.js';

/**
 * The action: inputs -> one mode (run, report or merge) -> publish, all under one RunClock, so
 * that the runner's cancel (SIGINT, then SIGTERM 7.5 s later) ends the run with its report
 * published instead of killing it. Input errors and bugs fail the step with one message and
 * publish nothing. `retry` tunes the GitHub facade's retries (tests shorten them); retries are
 * logged. `signals` is where cancel signals arrive (the process; tests drive an emitter).
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
  const github = inputs.token ? createGitHub(inputs.token, context, { onRetry: (message) => core.info(message), ...retry }) : undefined;
  const step: Step = { inputs, context, github };
  const reason = (signal: string) => `the job was cancelled (${signal})`;
  await withRunClock(
    async (clock) => {
      let outcome: ModeOutcome;
      try {
        outcome = await modes[inputs.mode](step, clock);
      } catch (error) {
        return fail(error);
      }
      await publish(step, outcome.result, clock);
      // A cancelled run records nothing; otherwise the record gets no more time than the grace.
      if (outcome.afterPublish && !clock.hurry.aborted) await withinGrace(outcome.afterPublish(), clock.force, 'recording the baseline');
    },
    { budgetMinutes: inputs.budgetMinutes, reason, signals },
  );
}

function fail(error: unknown): void {
  if (isInputError(error)) core.setFailed(`distill-gate: ${error.message}`);
  else core.setFailed(`distill-gate internal error (a bug, please report it): ${error instanceof Error ? error.stack : String(error)}`);
}
