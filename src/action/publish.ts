import * as core from '@actions/core';
import { metricOutputs } from '../measure/metrics.js';
import { escapeMarkdown } from '../report/escape.js';
import type { RunResult } from '../report/report.js';
import type { Report } from '../report/report.js';
import { explainFailure, PULL_REQUEST_EVENTS, type GitHub } from './github/index.js';
import { unlimitedClock, type RunClock } from '../run-control.js';
import { stateOf, verdictLine, type CommitVerdict } from './commit-verdict.js';
import type { Step } from './inputs.js';
import type { Notice } from './modes/index.js';

/**
 * Everything the step shows: the job summary, the outputs, an annotation per failing or warning
 * gate, the step's own failure, and last GitHub: the commit status (the required check), then the
 * PR comment or tracking issue. Only the verdict (or a report the disk refused) fails the step:
 * summary and API failures warn. GitHub comes last because it is the one part that can hang:
 * whatever it does, the rest is already out.
 */
export async function publish(
  step: Step,
  result: RunResult,
  clock: Pick<RunClock, 'force'> = unlimitedClock(),
  verdict?: CommitVerdict,
): Promise<void> {
  const { report } = result;
  core.info(`distill-gate: verdict ${report.verdict} on backend ${report.backend}`);
  await writeSummary(result.markdown, result.reportPath);
  setOutputs(result);
  annotate(report);
  if (result.writeError) core.setFailed(`distill-gate: ${result.writeError.message}`);
  else if (report.verdict === 'fail') failStep(report, step.inputs.failOnGate);
  const status = async () => {
    if (!verdict) return;
    if (result.writeError)
      await verdict.final('error', `the report could not be written: ${result.writeError.message}`);
    else await verdict.final(stateOf(report), verdictLine(report));
  };
  if (step.github) {
    const github = step.github;
    await withinGrace(
      (async () => {
        await status();
        await publishToGitHub(step, github, result.markdown, report);
      })(),
      clock.force,
      'posting to GitHub',
    );
  } else core.warning('No github-token: skipping the PR comment. The report is in the job summary and on disk.');
}

/**
 * A verdict with no report behind it (a skipped gate, a missing upload, mode changes): the same
 * places as a report, shorter. A skip updates the sticky comment only where one exists, so that a
 * PR that touches no model gets no comment but one whose model change was reverted is told.
 */
export async function publishNotice(
  step: Step,
  notice: Notice,
  clock: Pick<RunClock, 'force'>,
  verdict?: CommitVerdict,
): Promise<void> {
  const icon = notice.state === 'pending' ? '⏳' : notice.verdict === 'pass' ? '⏭️' : '❌';
  const markdown = `## ${icon} distill-gate: ${escapeMarkdown(notice.line)}\n${notice.details ? `\n${notice.details}\n` : ''}`;
  core.info(`distill-gate: ${notice.line}`);
  await writeSummary(markdown, 'no report.json');
  core.setOutput('verdict', notice.state === 'pending' ? '' : notice.verdict);
  if (notice.verdict === 'fail') {
    if (step.inputs.failOnGate) core.setFailed(`distill-gate: ${notice.line}`);
    else core.warning(`distill-gate: ${notice.line} (fail-on-gate is false, so the step passes)`);
  }
  const github = step.github;
  if (!github) return;
  await withinGrace(
    (async () => {
      await verdict?.final(notice.state, notice.line);
      if (notice.state !== 'pending')
        await publishToGitHub(step, github, markdown, undefined, notice.comment === 'update');
    })(),
    clock.force,
    'posting to GitHub',
  );
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
      core.warning(
        `The run was forced to end while ${doing}, which did not finish in time; the report is in the job summary and on disk.`,
      );
  } finally {
    clearTimeout(timer);
    force.removeEventListener('abort', onForce);
  }
}

/** GitHub refuses a step summary over 1 MiB (and shows none of it): ours stays under, with room for the note. */
export const SUMMARY_LIMIT_BYTES = 1_000_000;

/** The markdown cut at a line break to fit the summary's limit, saying where the whole report is. */
export function fitSummary(markdown: string, where: string, limit = SUMMARY_LIMIT_BYTES): string {
  if (Buffer.byteLength(markdown) <= limit) return markdown;
  const note = `\n\n> **Report shortened** to fit GitHub's 1 MiB job summary: the whole report is ${escapeMarkdown(where)}.\n`;
  // Characters, not bytes, are what slicing counts: shrink until the bytes fit.
  let room = Math.floor(((limit - Buffer.byteLength(note) - 8) * markdown.length) / Buffer.byteLength(markdown));
  for (;;) {
    let head = markdown.slice(0, Math.max(0, markdown.lastIndexOf('\n', room)));
    // An unclosed code fence would swallow the note.
    if ((head.match(/^```/gm) ?? []).length % 2 === 1) head += '\n```';
    const body = `${head}${note}`;
    if (Buffer.byteLength(body) <= limit) return body;
    room = Math.floor(room * 0.9);
  }
}

async function writeSummary(markdown: string, reportPath: string): Promise<void> {
  try {
    await core.summary.addRaw(fitSummary(markdown, `in ${reportPath.replace(/\.json$/, '.md')}`)).write();
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

/** GitHub shows at most 10 error and 10 warning annotations of a step; more are dropped unseen. */
export const ANNOTATIONS_PER_KIND = 10;
/** An annotation is one finding, not a report: longer text is cut (the summary has it whole). */
export const ANNOTATION_CHARS = 1000;

function annotate(report: Report): void {
  const errors: Array<{ text: string; title: string }> = [];
  const warnings: Array<{ text: string; title: string }> = [];
  for (const gate of report.gates) {
    const text = `${gate.metric} = ${gate.value ?? 'not measured'}, expected ${gate.expected}${gate.baseline !== null ? ` (baseline ${gate.baseline})` : ''}`;
    if (gate.status === 'fail') errors.push({ text, title: `distill-gate: ${gate.metric} failed` });
    if (gate.status === 'warn') warnings.push({ text, title: `distill-gate: ${gate.metric} (warning)` });
  }
  for (const reason of report.reasons) warnings.push({ text: reason, title: 'distill-gate' });
  emit(errors, core.error);
  emit(warnings, core.warning);
}

/** Text cut to ANNOTATION_CHARS, saying so. */
const cut = (text: string) =>
  text.length <= ANNOTATION_CHARS
    ? text
    : `${text.slice(0, ANNOTATION_CHARS - 40)}… (cut; the job summary has it whole)`;

/** At most ANNOTATIONS_PER_KIND annotations, each cut to ANNOTATION_CHARS; the last one counts what was left out. */
function emit(annotations: Array<{ text: string; title: string }>, annotation: typeof core.warning): void {
  const shown =
    annotations.length <= ANNOTATIONS_PER_KIND ? annotations : annotations.slice(0, ANNOTATIONS_PER_KIND - 1);
  for (const { text, title } of shown) annotation(cut(text), { title: cut(title) });
  const left = annotations.length - shown.length;
  if (left > 0)
    annotation(
      `${left} more like these are in the job summary (GitHub shows ${ANNOTATIONS_PER_KIND} of a kind per step).`,
      { title: 'distill-gate' },
    );
}

function failStep(report: Report, failOnGate: boolean): void {
  const failing = report.gates.filter((g) => g.status === 'fail').map((g) => `${g.metric} (${g.expected})`);
  const message = cut(
    `distill-gate: ${failing.length ? `failing gates: ${failing.join(', ')}` : report.reasons.join(' ')}`,
  );
  if (failOnGate) core.setFailed(message);
  else core.warning(`${message} (fail-on-gate is false, so the step passes)`);
}

/**
 * PR runs (and mode report under workflow_run) comment; other runs may keep a tracking issue (of a
 * report: a notice has none). `updateOnly` leaves a PR with no sticky comment without one.
 */
async function publishToGitHub(
  { inputs, context, pr }: Step,
  github: GitHub,
  markdown: string,
  report: Report | undefined,
  updateOnly = false,
): Promise<void> {
  const isPullRequest =
    PULL_REQUEST_EVENTS.includes(context.eventName) ||
    (inputs.mode === 'report' && context.eventName === 'workflow_run');
  if (isPullRequest && inputs.comment) {
    try {
      const { number: issueNumber, how } = pr ?? { number: undefined, how: 'the event names no PR' };
      if (issueNumber === undefined) {
        core.warning(
          `No pull request found for this run (${how}), so no comment was posted. The report is in the job summary.`,
        );
        return;
      }
      core.info(`distill-gate: reporting on PR #${issueNumber}, ${how}`);
      const comment = updateOnly
        ? await github.updateStickyComment(issueNumber, inputs.commentKey, markdown)
        : await github.upsertStickyComment(issueNumber, inputs.commentKey, markdown);
      if (!comment) {
        core.info(
          `distill-gate: PR #${issueNumber} has no report comment to bring up to date, and this run posts none`,
        );
        return;
      }
      core.setOutput('comment-url', comment.url);
      core.info(
        `distill-gate: ${comment.created ? 'posted' : 'updated'} the report comment ${comment.url}${comment.truncated ? " (shortened to fit GitHub's limit)" : ''}`,
      );
    } catch (error) {
      core.warning(explainFailure('Posting the PR comment', error));
    }
    return;
  }
  if (inputs.issueOnFailure && !isPullRequest && report) {
    try {
      const issue = await github.syncTrackingIssue(
        { key: inputs.commentKey, label: inputs.issueLabel },
        report.verdict,
        markdown,
      );
      if (issue.action !== 'none') core.info(`distill-gate: tracking issue ${issue.action}: ${issue.url}`);
    } catch (error) {
      core.warning(explainFailure('Updating the tracking issue', error));
    }
  }
}
