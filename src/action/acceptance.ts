import * as core from '@actions/core';
import type { RegressionAcceptance } from '../gates/baseline.js';
import { underClock, type RunClock } from '../run-control.js';
import { explainFailure, GITHUB_CALL_DEADLINE_MS } from './github/index.js';
import type { Step } from './inputs.js';

/**
 * The accept-regression label on the step's PR turns failing relative gates into warnings, naming
 * who put it on. The labels are read live: an event's payload holds those of when the event
 * happened, and a re-run replays that payload, so a label put on or taken off since would be
 * missed. When the API cannot say, a pull_request event's payload decides, with a warning; under
 * workflow_run (a fork's upload) nothing is accepted then, since the upload's own claim is never
 * taken. Names are compared exactly.
 */
export async function regressionAcceptance(
  { inputs, context, github, pr }: Step,
  clock: RunClock,
): Promise<RegressionAcceptance | undefined> {
  const number = pr?.number;
  if (!github || number === undefined) return undefined;
  const label = inputs.acceptLabel;
  const payload = context.payload.pull_request;
  const inPayload = !!payload && Array.isArray(payload.labels) && payload.labels.some((l) => l?.name === label);
  let labelled: boolean;
  try {
    labelled = (
      await underClock(github.pullRequestLabels(number), clock.stop, GITHUB_CALL_DEADLINE_MS, "reading the PR's labels")
    ).includes(label);
    if (payload && labelled !== inPayload)
      core.info(
        `distill-gate: label "${label}" was ${labelled ? 'put on' : 'taken off'} PR #${number} after this run's event; the PR's labels now decide`,
      );
  } catch (error) {
    if (!payload) {
      core.warning(
        explainFailure(
          `Reading the labels of PR #${number}`,
          error,
          'pull-requests: read',
          'No accept label is applied.',
        ),
      );
      return undefined;
    }
    labelled = inPayload;
    const fallback = `The labels of this run's event decide instead (they ${inPayload ? 'include' : 'lack'} "${label}"); a re-run does not refresh them.`;
    core.warning(explainFailure(`Reading the labels of PR #${number}`, error, 'pull-requests: read', fallback));
  }
  if (!labelled) return undefined;
  const by = await underClock(
    github.labelledBy(number, label),
    clock.stop,
    GITHUB_CALL_DEADLINE_MS,
    'reading who labelled the PR',
  ).catch(() => 'someone');
  const what = payload ? 'failing relative gates' : `the failing relative gates of PR #${number}'s upload`;
  core.info(`distill-gate: label "${label}" (by ${by}) turns ${what} into warnings`);
  return { label, by };
}
