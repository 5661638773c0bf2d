import * as core from '@actions/core';
import { metricOutputs } from '../measure/metrics.js';
import type { RunResult } from '../report/report.js';
import type { Report } from '../report/report.js';
import { explainFailure, pullRequestNumber, PULL_REQUEST_EVENTS, type GitHub } from './github/index.js';
import { unlimitedClock, type RunClock } from '../run-control.js';
import type { Step } from './inputs.js';

/**
 * Everything the step shows: the job summary, the outputs, an annotation per failing or warning
 * gate, the step's own failure, and last the PR comment or tracking issue. Only the verdict (or a
 * report the disk refused) fails the step: summary and API failures warn. GitHub comes last
 * because it is the one part that can hang: whatever it does, the rest is already out.
 */
export async function publish(step: Step, result: RunResult, clock: Pick<RunClock, 'force'> = unlimitedClock()): Promise<void> {
  const { report } = result;
  core.info(`distill-gate: verdict ${report.verdict} on backend ${report.backend}`);
  await writeSummary(result);
  setOutputs(result);
  annotate(report);
  if (result.writeError) core.setFailed(`distill-gate: ${result.writeError.message}`);
  else if (report.verdict === 'fail') failStep(report, step.inputs.failOnGate);
  if (step.github) await withinGrace(publishToGitHub(step, step.github, result), clock.force, 'posting to GitHub');
  else core.warning('No github-token: skipping the PR comment. The report is in the job summary and on disk.');
}

/** How long GitHub may take once the run was forced: the runner's SIGKILL follows its SIGTERM by 2.5 s. */
export const FORCED_GITHUB_MS = 1500;

/**
 * Waits for `work` until the run is forced to end; from then on, at most FORCED_GITHUB_MS more.
 * The process exits after publishing, so work still pending then is simply dropped.
 */
export async function withinGrace(work: Promise<void>, force: AbortSignal, doing: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  let onForce = () => {};
  const late = new Promise<'late'>((resolve) => {
    const startClock = () => (timer = setTimeout(() => resolve('late'), FORCED_GITHUB_MS));
    if (force.aborted) startClock();
    else force.addEventListener('abort', (onForce = startClock), { once: true });
  });
  try {
    if ((await Promise.race([work, late])) === 'late')
      core.warning(`The run was forced to end while ${doing}, which did not finish in time; the report is in the job summary and on disk.`);
  } finally {
    clearTimeout(timer);
    force.removeEventListener('abort', onForce);
  }
}

async function writeSummary({ markdown, reportPath }: RunResult): Promise<void> {
  try {
    await core.summary.addRaw(markdown).write();
  } catch (error) {
    core.warning(`Writing the job summary failed: ${(error as Error).message}. The report is at ${reportPath}.`);
  }
}

function setOutputs({ report, reportPath, studentPath, writeError }: RunResult): void {
  core.setOutput('verdict', report.verdict);
  core.setOutput('report-path', writeError ? '' : reportPath);
  core.setOutput('student-path', studentPath);
  for (const [name, value] of Object.entries(metricOutputs(report.metrics))) core.setOutput(name, value);
  core.setOutput('comment-url', '');
}

function annotate(report: Report): void {
  for (const gate of report.gates) {
    const text = `${gate.metric} = ${gate.value ?? 'not measured'}, expected ${gate.expected}${gate.baseline !== null ? ` (baseline ${gate.baseline})` : ''}`;
    if (gate.status === 'fail') core.error(text, { title: `distill-gate: ${gate.metric} failed` });
    if (gate.status === 'warn') core.warning(text, { title: `distill-gate: ${gate.metric} (warning)` });
  }
  for (const reason of report.reasons) core.warning(reason, { title: 'distill-gate' });
}

function failStep(report: Report, failOnGate: boolean): void {
  const failing = report.gates.filter((g) => g.status === 'fail').map((g) => `${g.metric} (${g.expected})`);
  const message = `distill-gate: ${failing.length ? `failing gates: ${failing.join(', ')}` : report.reasons.join(' ')}`;
  if (failOnGate) core.setFailed(message);
  else core.warning(`${message} (fail-on-gate is false, so the step passes)`);
}

/** PR runs (and mode report under workflow_run) comment; other runs may keep a tracking issue. */
async function publishToGitHub({ inputs, context }: Step, github: GitHub, result: RunResult): Promise<void> {
  const isPullRequest = PULL_REQUEST_EVENTS.includes(context.eventName) || (inputs.mode === 'report' && context.eventName === 'workflow_run');
  if (isPullRequest && inputs.comment) {
    try {
      const headSha = context.payload.workflow_run?.head_sha ?? result.report.commit;
      const named = pullRequestNumber(context);
      const { number: issueNumber, how } =
        named !== undefined
          ? { number: named, how: `named by the ${context.eventName} event` }
          : headSha
            ? await github.findPullRequestBySha(headSha)
            : { number: undefined, how: 'the event names no PR, nor a commit to find one by' };
      if (issueNumber === undefined) {
        core.warning(`No pull request found for this run (${how}), so no comment was posted. The report is in the job summary.`);
        return;
      }
      core.info(`distill-gate: reporting on PR #${issueNumber}, ${how}`);
      const comment = await github.upsertStickyComment(issueNumber, inputs.commentKey, result.markdown);
      core.setOutput('comment-url', comment.url);
      core.info(
        `distill-gate: ${comment.created ? 'posted' : 'updated'} the report comment ${comment.url}${comment.truncated ? " (shortened to fit GitHub's limit)" : ''}`,
      );
    } catch (error) {
      core.warning(explainFailure('Posting the PR comment', error));
    }
    return;
  }
  if (inputs.issueOnFailure && !isPullRequest) {
    try {
      const issue = await github.syncTrackingIssue({ key: inputs.commentKey, label: inputs.issueLabel }, result.report.verdict, result.markdown);
      if (issue.action !== 'none') core.info(`distill-gate: tracking issue ${issue.action}: ${issue.url}`);
    } catch (error) {
      core.warning(explainFailure('Updating the tracking issue', error));
    }
  }
}
