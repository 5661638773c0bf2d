import { access, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as core from '@actions/core';
import { loadConfig, withOverrides, type Config } from '../config/load.js';
import { InputError } from '../errors.js';
import type { RegressionAcceptance } from '../gates/judge.js';
import { runPipeline } from '../pipeline.js';
import { escapeMarkdown } from '../report/escape.js';
import { renderMarkdown } from '../report/markdown.js';
import { mergedAsReport, mergeReports, readReports, writeMergedMarkdown } from '../report/merge.js';
import { readReport, readUntrustedReport, type RunResult } from '../report/report.js';
import { rejudgeReport, type StoredBaseline } from '../report/rejudge.js';
import { underClock, type RunClock } from '../run-control.js';
import { baseTeacherForRun } from './base-teacher.js';
import { changedFilesFromGit, judgeChanges, relevantGlobs, skippedLine, unknownLine, type ChangeVerdict } from './changes.js';
import { runGit } from './git.js';
import { explainFailure, GITHUB_CALL_DEADLINE_MS, pullRequestNumber, PULL_REQUEST_EVENTS, type CommitState, type GitHub } from './github/index.js';
import type { Mode, Step } from './inputs.js';
import { planStore, readBaseline, recordRun } from './store.js';

/**
 * What a mode ends in: a report to publish (its markdown and where they lie) and what to do once
 * it is published, or a notice where there is no report to judge (the gate skipped, an upload
 * missing). Recording a baseline comes after publishing because it is slow network work that a
 * cancel must never stand in front of.
 */
export type ModeOutcome = { result: RunResult; afterPublish?: () => Promise<void> } | { notice: Notice };

/** A verdict with no report behind it: the gate was skipped, or there was nothing to judge. */
export interface Notice {
  verdict: 'pass' | 'fail';
  /** The commit status it sets: pending when a later job gives the verdict (mode changes). */
  state: CommitState;
  /** One line: the status's description and the summary's headline. */
  line: string;
  /** More for the summary and the comment (markdown, already escaped). */
  details: string;
  /** create: the comment is posted (a missing upload must be seen); update: only an existing one is brought up to date (a skip is not worth a new comment). */
  comment: 'create' | 'update';
}

export const modes: Record<Mode, (step: Step, clock: RunClock) => Promise<ModeOutcome>> = {
  run: distill,
  report: postReport,
  merge: async (step, clock) => ({ result: await merge(step, clock) }),
  changes: checkChanges,
};

/** What the commit status says while a mode works, before its verdict. */
export const PENDING_LINE: Record<Mode, string> = {
  run: 'distilling and measuring the student',
  report: "re-judging the pull request's uploaded report",
  merge: 'merging the reports of the matrix',
  changes: 'reading what the pull request changed',
};

/** mode run: the same pipeline as `distill-gate run`, with the baseline store around it. */
async function distill(step: Step, clock: RunClock): Promise<ModeOutcome> {
  const { inputs, context, github } = step;
  // The config first: one that cannot be read fails the step before any GitHub call.
  const loaded = await loadConfig(inputs.config);
  const changes = await changesInCheckout(step, loaded, clock);
  if (changes?.relevant === false) return { notice: skipped(changes) };
  // Files the run writes for itself (the stored baseline, the base teacher) go to the runner's
  // temp folder, which the runner cleans, and are removed when the run ends.
  const workDir = await mkdtemp(path.join(process.env.RUNNER_TEMP ?? os.tmpdir(), 'distill-gate-'));
  let result: RunResult | undefined;
  try {
    const store = github ? await planStore(github, inputs, context, clock.stop) : undefined;
    const stored = github && store && !inputs.baseline ? await readBaseline(github, store, workDir, clock.stop) : undefined;
    const config = withOverrides(loaded, {
      backend: inputs.backend === 'auto' ? undefined : inputs.backend,
      baseline: inputs.baseline ?? stored?.reportPath,
      cacheDir: inputs.cacheDir,
    });
    const acceptRegression = await regressionAcceptance(step, clock);
    const baseTeacher = await baseTeacherForRun(inputs.baseTeacher, {
      baseSha: context.payload.pull_request?.base?.sha,
      teacherPath: config.teacher,
      log: (line) => core.info(line),
      workDir,
      signal: clock.stop,
    });
    core.startGroup('distill-gate: distillation');
    try {
      result = await runPipeline(config, {
        outDir: inputs.outputDir,
        baselineStudent: inputs.baseline ? undefined : stored?.studentPath,
        history: stored?.history,
        acceptRegression,
        clock,
        searchFrom: [inputs.workingDirectory, process.env.GITHUB_WORKSPACE ?? inputs.workingDirectory],
        log: (line) => core.info(line),
        commit: context.sha,
        requireGpu: inputs.requireGpu,
        baseTeacher,
      });
    } finally {
      core.endGroup();
    }
    const done = result;
    return { result: done, ...(github && store ? { afterPublish: () => recordRun(github, store, done) } : {}) };
  } finally {
    // A run cut short may leave stages reading these files: the process exits after publishing anyway.
    if (!result?.cutShort) await rm(workDir, { recursive: true, force: true });
  }
}

/**
 * mode changes: whether a pull request touched anything the gate looks at, for a workflow whose
 * distilling job (on a GPU runner) should only start when it did. Sets the output `changed`; when
 * nothing relevant changed, the commit status passes saying the gate was skipped; otherwise it
 * stays pending for the distilling job's verdict. The config is read when there is one (`auto`).
 */
async function checkChanges(step: Step, clock: RunClock): Promise<ModeOutcome> {
  const config = await access(step.inputs.config).then(
    () => loadConfig(step.inputs.config),
    () => undefined,
  );
  const changes = (await changesInCheckout(step, config, clock)) ?? { relevant: 'unknown', why: 'this run is not for a pull request, so the gate runs' };
  if (changes.relevant === false) return { notice: skipped(changes) };
  const line =
    changes.relevant === true
      ? `${changes.files.length} relevant file${changes.files.length === 1 ? '' : 's'} changed since ${changes.base.slice(0, 12)}: the gate runs`
      : changes.why;
  const files = changes.relevant === true ? changes.files : [];
  return {
    notice: {
      verdict: 'pass',
      state: 'pending',
      line,
      details: fileList(files),
      comment: 'update',
    },
  };
}

/** The notice of a gate skipped because nothing it looks at changed. */
function skipped(changes: Extract<ChangeVerdict, { relevant: false }>): Notice {
  return {
    verdict: 'pass',
    state: 'success',
    line: skippedLine(changes),
    details: `None of the ${changes.changedCount} file${changes.changedCount === 1 ? '' : 's'} the pull request changes is one the gate looks at (input \`paths\`), so nothing was distilled.`,
    comment: 'update',
  };
}

/** A short markdown list of file names from a PR (escaped), at most 20. */
function fileList(files: string[]): string {
  if (files.length === 0) return '';
  const shown = files.slice(0, 20).map((file) => `- ${escapeMarkdown(file)}`);
  return [...shown, ...(files.length > 20 ? [`- and ${files.length - 20} more`] : [])].join('\n');
}

/**
 * What a pull request's checkout changed against its base commit, judged against the `paths`
 * input: undefined when the run is not a pull request's (it always distils). The running
 * workflow's own file counts too: a PR that changes how the gate runs is gated.
 */
async function changesInCheckout({ inputs, context }: Step, config: Parameters<typeof relevantGlobs>[1], clock: RunClock): Promise<ChangeVerdict | undefined> {
  const pr = context.payload.pull_request;
  if (!pr || !PULL_REQUEST_EVENTS.includes(context.eventName)) return undefined;
  const baseSha = pr.base?.sha;
  let verdict: ChangeVerdict;
  if (!baseSha) verdict = { relevant: 'unknown', why: 'the event names no base commit, so the gate runs' };
  else {
    try {
      const options = { signal: clock.stop };
      const root = (await runGit(['rev-parse', '--show-toplevel'], inputs.workingDirectory, options)).trim();
      const globs = [...relevantGlobs(inputs.paths, config, root), ...runningWorkflow()];
      const changed = await changedFilesFromGit(root, baseSha, runGit, options);
      verdict = judgeChanges(changed, globs, baseSha);
    } catch (error) {
      verdict = { relevant: 'unknown', why: unknownLine(error) };
    }
  }
  announce(verdict);
  return verdict;
}

/** The running workflow's file, from GITHUB_WORKFLOW_REF (owner/repo/.github/workflows/x.yml@ref). */
function runningWorkflow(): string[] {
  const file = /^[^/]+\/[^/]+\/(.+?)@/.exec(process.env.GITHUB_WORKFLOW_REF ?? '')?.[1];
  return file ? [file] : [];
}

/** Logs the verdict on the changes and sets the outputs `changed` and `changed-files`. */
function announce(verdict: ChangeVerdict, prefix = ''): void {
  core.info(`distill-gate: ${prefix}${describeChanges(verdict)}`);
  core.setOutput('changed', String(verdict.relevant !== false));
  core.setOutput('changed-files', verdict.relevant === true ? verdict.files.join('\n') : '');
}

function describeChanges(verdict: ChangeVerdict): string {
  if (verdict.relevant === 'unknown') return verdict.why;
  if (verdict.relevant === false) return skippedLine(verdict);
  const shown = verdict.files.slice(0, 5).join(', ');
  return `${verdict.files.length} of the ${verdict.changedCount} changed files are ones the gate looks at (${shown}${verdict.files.length > 5 ? ', ...' : ''})`;
}

/**
 * The accept-regression label on the PR turns failing relative gates into warnings, naming who set
 * it. The labels are read live: the event's payload holds those of when the event happened, and a
 * re-run replays that payload, so a label put on or taken off since would be missed. Only when the
 * API cannot say do the payload's labels decide, with a warning. Names are compared exactly.
 */
async function regressionAcceptance({ inputs, context, github }: Step, clock: RunClock): Promise<RegressionAcceptance | undefined> {
  const pr = context.payload.pull_request;
  if (!github || !pr) return undefined;
  const label = inputs.acceptLabel;
  const inPayload = Array.isArray(pr.labels) && pr.labels.some((l) => l?.name === label);
  let labelled: boolean;
  try {
    labelled = (await underClock(github.pullRequestLabels(pr.number), clock.stop, GITHUB_CALL_DEADLINE_MS, "reading the PR's labels")).includes(label);
    if (labelled !== inPayload)
      core.info(`distill-gate: label "${label}" was ${labelled ? 'put on' : 'taken off'} PR #${pr.number} after this run's event; the PR's labels now decide`);
  } catch (error) {
    labelled = inPayload;
    const fallback = `The labels of this run's event decide instead (they ${inPayload ? 'include' : 'lack'} "${label}"); a re-run does not refresh them.`;
    core.warning(explainFailure(`Reading the labels of PR #${pr.number}`, error, 'pull-requests: read', fallback));
  }
  return labelled ? acceptedOn(github, pr.number, label, 'failing relative gates', clock) : undefined;
}

/** The acceptance a label on PR `number` stands for, naming who put it on (as the report will). */
async function acceptedOn(github: GitHub, number: number, label: string, what: string, clock: RunClock): Promise<RegressionAcceptance> {
  const by = await underClock(github.labelledBy(number, label), clock.stop, GITHUB_CALL_DEADLINE_MS, 'reading who labelled the PR').catch(() => 'someone');
  core.info(`distill-gate: label "${label}" (by ${by}) turns ${what} into warnings`);
  return { label, by };
}

/**
 * mode report: a report.json uploaded by a job that ran a pull request's code (the fork-safe
 * workflow_run split). Nothing in it is believed: it is validated, every gate is re-judged from its
 * values (with the trusted config's gates when there is one, see trustedConfig), the verdict is
 * derived, and no path from it is passed on (student-path is empty, report-path is the file read).
 * Whether the gate applies at all is decided here too, from the files GitHub lists for the PR
 * (not from anything the PR's job said): nothing relevant changed passes, skipped, whatever was
 * uploaded; something did and nothing was uploaded fails.
 */
async function postReport(step: Step, clock: RunClock): Promise<ModeOutcome> {
  const { inputs, context } = step;
  const trusted = await trustedConfig(inputs);
  const underWorkflowRun = context.eventName === 'workflow_run';
  const pr = underWorkflowRun ? await uploadPullRequest(step, clock) : undefined;
  const changes = pr !== undefined ? await changesOfPullRequest(step, pr, trusted, clock) : undefined;
  if (changes?.relevant === false) return { notice: skipped(changes) };
  if (underWorkflowRun && !(await exists(inputs.report))) return { notice: missingUpload(step, changes) };
  const uploaded = await readUntrustedReport(inputs.report);
  const stored = await trustedBaseline(step, clock);
  const acceptance = pr !== undefined ? await uploadAcceptance(step, pr, clock) : undefined;
  // The PR to comment on is found from this event's head commit, never from a commit the upload names.
  const report = { ...rejudgeReport(uploaded, inputs.report, { trusted, stored, acceptance }), commit: context.payload.workflow_run?.head_sha };
  if (!trusted && underWorkflowRun) {
    // Under workflow_run the upload is a pull request's: its own thresholds then decide, and a
    // reviewer must see that, not find it in the log.
    const why = `No trusted config at ${inputs.config}: the uploaded report was re-judged with its own thresholds, which the pull request chose. Check out the default branch's config and give it as the config input.`;
    core.warning(why);
    report.reasons = [...report.reasons, why];
  }
  return { result: { report, markdown: renderMarkdown(report), reportPath: inputs.report, studentPath: '' } };
}

const exists = (file: string) =>
  access(file).then(
    () => true,
    () => false,
  );

/** The notice of a relevant change whose untrusted run uploaded no report (it crashed, was cancelled, or its workflow was edited). */
function missingUpload({ inputs, context }: Step, changes: ChangeVerdict | undefined): Notice {
  const conclusion = context.payload.workflow_run?.conclusion;
  const why =
    changes?.relevant === true
      ? `the pull request changes ${changes.files.length} file(s) the gate looks at`
      : changes?.relevant === 'unknown'
        ? changes.why
        : 'the gate applies';
  return {
    verdict: 'fail',
    state: 'failure',
    line: `no report.json was uploaded by the pull request's run (${conclusion ? `it ended: ${conclusion}` : 'its conclusion is unknown'}), and ${why}`,
    details: [
      `Looked for ${escapeMarkdown(path.relative(inputs.workingDirectory, inputs.report) || inputs.report)}. Re-run the pull request's workflow; a run that fails before writing its report leaves nothing to judge, and the gate does not pass unseen.`,
      changes?.relevant === true ? fileList(changes.files) : '',
    ]
      .filter(Boolean)
      .join('\n\n'),
    comment: 'create',
  };
}

/**
 * The PR the upload belongs to: the one the event names (this repository's, for this commit),
 * else the open PR whose head is the run's head commit. Asked once: labels, changed files and the
 * comment all go to this one.
 */
async function uploadPullRequest({ context, github }: Step, clock: RunClock): Promise<number | undefined> {
  const headSha = context.payload.workflow_run?.head_sha;
  if (!github || !headSha) return undefined;
  const named = pullRequestNumber(context);
  if (named !== undefined) return named;
  try {
    return (await underClock(github.findPullRequestBySha(headSha), clock.stop, GITHUB_CALL_DEADLINE_MS, 'finding the PR of the upload')).number;
  } catch (error) {
    core.warning(
      explainFailure("Finding the upload's pull request", error, 'pull-requests: read', 'Its labels and changed files are not read, so the gate runs.'),
    );
    return undefined;
  }
}

/** The PR's changed files as GitHub lists them, judged against the trusted `paths`; unknown when they cannot be read or the globs are unknown. */
async function changesOfPullRequest({ inputs, github }: Step, number: number, trusted: Config | undefined, clock: RunClock): Promise<ChangeVerdict> {
  let verdict: ChangeVerdict;
  const globs = relevantGlobs(inputs.paths, trusted, process.env.GITHUB_WORKSPACE ?? inputs.workingDirectory);
  if (!github) verdict = { relevant: 'unknown', why: 'no github-token to list the changed files, so the gate runs' };
  else if (globs.length === 0) verdict = { relevant: 'unknown', why: 'no trusted config for `paths: auto` to name the relevant files, so the gate runs' };
  else {
    try {
      const listed = await underClock(github.pullRequestFiles(number), clock.stop, GITHUB_CALL_DEADLINE_MS, `listing the files of PR #${number}`);
      verdict = listed.complete
        ? judgeChanges(listed.files, globs, listed.baseSha)
        : { relevant: 'unknown', why: `PR #${number} changes more files than GitHub lists, so the gate runs` };
    } catch (error) {
      verdict = { relevant: 'unknown', why: unknownLine(error) };
    }
  }
  announce(verdict, `PR #${number}: `);
  return verdict;
}

/**
 * The accept label of the PR whose run uploaded the report (a fork's, in the workflow_run split),
 * read live by this trusted job: never taken from the upload, whose job ran the PR's code.
 */
async function uploadAcceptance({ inputs, github }: Step, number: number, clock: RunClock): Promise<RegressionAcceptance | undefined> {
  if (!github) return undefined;
  try {
    const labels = await underClock(github.pullRequestLabels(number), clock.stop, GITHUB_CALL_DEADLINE_MS, "reading the PR's labels");
    if (!labels.includes(inputs.acceptLabel)) return undefined;
    return await acceptedOn(github, number, inputs.acceptLabel, `the failing relative gates of PR #${number}'s upload`, clock);
  } catch (error) {
    core.warning(explainFailure("Reading the labels of the upload's pull request", error, 'pull-requests: read', 'No accept label is applied.'));
    return undefined;
  }
}

/**
 * The baseline the upload's relative gates are judged against, never the one the upload carries
 * (the pull request's job wrote it): the `baseline` input when the workflow gives one (outside the
 * upload's folder), else the baseline store's records of the PR's base branch, or the default
 * branch's when a fork's run names no PR.
 */
async function trustedBaseline(step: Step, clock: RunClock): Promise<StoredBaseline | undefined> {
  const { inputs } = step;
  if (inputs.baseline) {
    refuseInsideUpload(inputs, inputs.baseline, 'input baseline');
    return { report: await readReport(inputs.baseline), path: inputs.baseline };
  }
  return storedBaselineOfBase(step, clock);
}

async function storedBaselineOfBase({ inputs, context, github }: Step, clock: RunClock): Promise<StoredBaseline | undefined> {
  if (!github || !inputs.baselineBranch) return undefined;
  let forBranch: string;
  try {
    forBranch =
      context.payload.workflow_run?.pull_requests?.[0]?.base?.ref ??
      (await underClock(github.defaultBranch(), clock.stop, GITHUB_CALL_DEADLINE_MS, 'reading the default branch'));
  } catch (error) {
    core.warning(explainFailure('Finding the default branch for the baseline store', error));
    return undefined;
  }
  const dir = await mkdtemp(path.join(process.env.RUNNER_TEMP ?? os.tmpdir(), 'distill-gate-baseline-'));
  const found = await readBaseline(github, { location: { branch: inputs.baselineBranch, key: inputs.commentKey, forBranch }, write: false }, dir, clock.stop);
  return found?.reportPath ? { report: await readReport(found.reportPath), path: found.reportPath } : undefined;
}

/** A file the trusted job reads must not lie in the upload's folder: the upload could have put it there. */
function refuseInsideUpload(inputs: Step['inputs'], file: string, culprit: string): void {
  const uploadFolder = path.dirname(inputs.report);
  if (path.relative(uploadFolder, file).split(path.sep)[0] !== '..')
    throw new InputError(
      culprit,
      `${file} lies in ${uploadFolder}, the folder of the uploaded report, so the upload could have put it there. Download the artifact into a folder of its own and give a file of the trusted checkout.`,
    );
}

/**
 * The config whose gates judge an uploaded report: the `config` input, when that file exists in
 * this (trusted) checkout; the input always has a value (its default), so existence is what says
 * the workflow gave one. A config inside the uploaded report's folder could have come with the
 * upload, so it is refused rather than obeyed.
 */
async function trustedConfig(inputs: Step['inputs']): Promise<Config | undefined> {
  try {
    await access(inputs.config);
  } catch {
    core.info(`distill-gate: no config at ${inputs.config} in this checkout; re-judging the uploaded gates with their own thresholds`);
    return undefined;
  }
  // Only a config that exists can have come with the upload; none at all is no risk.
  refuseInsideUpload(inputs, inputs.config, 'input config');
  core.info(`distill-gate: re-judging the uploaded report with the gates of ${inputs.config}`);
  return loadConfig(inputs.config);
}

/**
 * mode merge: the reports of a matrix of jobs as one report and verdict, also written to report.md.
 * Each leg is re-judged, never believed; the PR's accept label is read live here, as in mode run.
 */
async function merge(step: Step, clock: RunClock): Promise<RunResult> {
  const { inputs, context } = step;
  if (inputs.reports.length === 0)
    throw new InputError('input reports', 'mode merge needs the report.json files to merge, e.g. reports: "reports/*/report.json".');
  if (!inputs.expect)
    core.warning(
      'distill-gate: input expect is not set, so a matrix leg that uploaded no report.json would go unnoticed; set expect to the number (or names) of the legs.',
    );
  const reports = await readReports(inputs.reports, inputs.workingDirectory, inputs.expect);
  const acceptance = await regressionAcceptance(step, clock);
  // Legs of a run with no pull request had no base teacher to compare with: their teacherDiff gates skip, as in a run.
  const noBaseTeacher = context.payload.pull_request ? undefined : `a ${context.eventName} run has no base branch's teacher to compare with`;
  const merged = mergeReports(reports, inputs.expect, { acceptance, noBaseTeacher });
  const reportPath = await writeMergedMarkdown(inputs.outputDir, merged.markdown);
  return { report: mergedAsReport(merged), markdown: merged.markdown, reportPath, studentPath: '' };
}
