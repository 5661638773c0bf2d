import * as core from '@actions/core';
import * as actionsGitHub from '@actions/github';
import { isInputError } from '../errors.js';
import type { RunResult } from '../report/report.js';
import { createGitHub, type EventContext, type RetryOptions } from './github/index.js';
import { readInputs, type Step } from './inputs.js';
import { modes } from './modes.js';
import { publish } from './publish.js';

/**
 * The action: inputs -> one mode (run, report or merge) -> publish. Input errors and bugs fail the
 * step with one message and publish nothing. `retry` tunes the GitHub facade's retries (tests
 * shorten them); retries are logged.
 */
export async function run(retry: RetryOptions = {}): Promise<void> {
  const context = actionsGitHub.context as unknown as EventContext;
  let step: Step;
  let result: RunResult;
  try {
    const inputs = readInputs();
    if (inputs.token) core.setSecret(inputs.token);
    const github = inputs.token ? createGitHub(inputs.token, context, { onRetry: (message) => core.info(message), ...retry }) : undefined;
    step = { inputs, context, github };
    result = await modes[inputs.mode](step);
  } catch (error) {
    if (isInputError(error)) core.setFailed(`distill-gate: ${error.message}`);
    else core.setFailed(`distill-gate internal error (a bug, please report it): ${error instanceof Error ? error.stack : String(error)}`);
    return;
  }
  await publish(step, result);
}
