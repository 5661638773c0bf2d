import { access, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as core from '@actions/core';
import { loadConfig, withOverrides, type Config } from '../config/load.js';
import { InputError } from '../errors.js';
import type { RegressionAcceptance } from '../gates/judge.js';
import { runPipeline } from '../pipeline.js';
import { renderMarkdown } from '../report/markdown.js';
import { mergedAsReport, mergeReports, readReports } from '../report/merge.js';
import { readReport, readUntrustedReport, type RunResult } from '../report/report.js';
import { rejudgeReport, type StoredBaseline } from '../report/rejudge.js';
import type { RunClock } from '../run-control.js';
import { baseTeacherForRun } from './base-teacher.js';
import { explainFailure, pullRequestNumber, type GitHub } from './github/index.js';
import type { Mode, Step } from './inputs.js';
import { planStore, readBaseline, recordRun } from './store.js';

/**
 * What a mode ends in: the report to publish (its markdown and where they lie), and what to do
 * once it is published. Recording a baseline comes after publishing because it is slow network
 * work that a cancel must never stand in front of.
 */
export interface ModeOutcome {
  result: RunResult;
  afterPublish?: () => Promise<void>;
}

const published = (result: RunResult): ModeOutcome => ({ result });

export const modes: Record<Mode, (step: Step, clock: RunClock) => Promise<ModeOutcome>> = {
  run: distill,
  report: async (step) => published(await postReport(step)),
  merge: async (step) => published(await merge(step)),
};

/** mode run: the same pipeline as `distill-gate run`, with the baseline store around it. */
async function distill({ inputs, context, github }: Step, clock: RunClock): Promise<ModeOutcome> {
  // The config first: one that cannot be read fails the step before any GitHub call.
  const loaded = await loadConfig(inputs.config);
  const store = github ? await planStore(github, inputs, context) : undefined;
  const stored = github && store && !inputs.baseline ? await readBaseline(github, store) : undefined;
  const config = withOverrides(loaded, {
    backend: inputs.backend === 'auto' ? undefined : inputs.backend,
    baseline: inputs.baseline ?? stored?.reportPath,
    cacheDir: inputs.cacheDir,
  });
  const acceptRegression = await regressionAcceptance({ inputs, context, github });
  const baseTeacher = await baseTeacherForRun(inputs.baseTeacher, context.payload.pull_request?.base?.sha, config.teacher, (line) => core.info(line));
  core.startGroup('distill-gate: distillation');
  let result: RunResult;
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
  return { result, ...(github && store ? { afterPublish: () => recordRun(github, store, result) } : {}) };
}

/**
 * The accept-regression label on the PR turns failing relative gates into warnings, naming who set
 * it. The labels are read live: the event's payload holds those of when the event happened, and a
 * re-run replays that payload, so a label put on or taken off since would be missed. Only when the
 * API cannot say do the payload's labels decide, with a warning. Names are compared exactly.
 */
async function regressionAcceptance({ inputs, context, github }: Step): Promise<RegressionAcceptance | undefined> {
  const pr = context.payload.pull_request;
  if (!github || !pr) return undefined;
  const label = inputs.acceptLabel;
  const inPayload = Array.isArray(pr.labels) && pr.labels.some((l) => l?.name === label);
  let labelled: boolean;
  try {
    labelled = (await github.pullRequestLabels(pr.number)).includes(label);
    if (labelled !== inPayload)
      core.info(`distill-gate: label "${label}" was ${labelled ? 'put on' : 'taken off'} PR #${pr.number} after this run's event; the PR's labels now decide`);
  } catch (error) {
    labelled = inPayload;
    const fallback = `The labels of this run's event decide instead (they ${inPayload ? 'include' : 'lack'} "${label}"); a re-run does not refresh them.`;
    core.warning(explainFailure(`Reading the labels of PR #${pr.number}`, error, 'pull-requests: read', fallback));
  }
  return labelled ? acceptedOn(github, pr.number, label, 'failing relative gates') : undefined;
}

/** The acceptance a label on PR `number` stands for, naming who put it on (as the report will). */
async function acceptedOn(github: GitHub, number: number, label: string, what: string): Promise<RegressionAcceptance> {
  const by = await github.labelledBy(number, label).catch(() => 'someone');
  core.info(`distill-gate: label "${label}" (by ${by}) turns ${what} into warnings`);
  return { label, by };
}

/**
 * mode report: a report.json uploaded by a job that ran a pull request's code (the fork-safe
 * workflow_run split). Nothing in it is believed: it is validated, every gate is re-judged from its
 * values (with the trusted config's gates when there is one, see trustedConfig), the verdict is
 * derived, and no path from it is passed on (student-path is empty, report-path is the file read).
 */
async function postReport({ inputs, context, github }: Step): Promise<RunResult> {
  const uploaded = await readUntrustedReport(inputs.report);
  const trusted = await trustedConfig(inputs);
  const stored = await storedBaselineOfBase({ inputs, context, github });
  const acceptance = await uploadAcceptance({ inputs, context, github });
  // The PR to comment on is found from this event's head commit, never from a commit the upload names.
  const report = { ...rejudgeReport(uploaded, inputs.report, { trusted, stored, acceptance }), commit: context.payload.workflow_run?.head_sha };
  if (!trusted && context.eventName === 'workflow_run') {
    // Under workflow_run the upload is a pull request's: its own thresholds then decide, and a
    // reviewer must see that, not find it in the log.
    const why = `No trusted config at ${inputs.config}: the uploaded report was re-judged with its own thresholds, which the pull request chose. Check out the default branch's config and give it as the config input.`;
    core.warning(why);
    report.reasons = [...report.reasons, why];
  }
  return { report, markdown: renderMarkdown(report), reportPath: inputs.report, studentPath: '' };
}

/**
 * The accept label of the PR whose run uploaded the report (a fork's, in the workflow_run split),
 * read live by this trusted job: never taken from the upload, whose job ran the PR's code.
 */
async function uploadAcceptance({ inputs, context, github }: Step): Promise<RegressionAcceptance | undefined> {
  const headSha = context.payload.workflow_run?.head_sha;
  if (!github || context.eventName !== 'workflow_run' || !headSha) return undefined;
  try {
    // The same PR the comment goes to: one the event names (this repository's, for this commit), else found by the commit.
    const number = pullRequestNumber(context) ?? (await github.findPullRequestBySha(headSha)).number;
    if (number === undefined || !(await github.pullRequestLabels(number)).includes(inputs.acceptLabel)) return undefined;
    return await acceptedOn(github, number, inputs.acceptLabel, `the failing relative gates of PR #${number}'s upload`);
  } catch (error) {
    core.warning(explainFailure("Reading the labels of the upload's pull request", error, 'pull-requests: read', 'No accept label is applied.'));
    return undefined;
  }
}

/**
 * The baseline the upload's relative gates are judged against, read by this trusted job from the
 * baseline store (the records of the PR's base branch, or the default branch's when a fork's run
 * names no PR): never the baseline the upload carries, which the pull request's job wrote.
 */
async function storedBaselineOfBase({ inputs, context, github }: Step): Promise<StoredBaseline | undefined> {
  if (!github || !inputs.baselineBranch) return undefined;
  let forBranch: string;
  try {
    forBranch = context.payload.workflow_run?.pull_requests?.[0]?.base?.ref ?? (await github.defaultBranch());
  } catch (error) {
    core.warning(explainFailure('Finding the default branch for the baseline store', error));
    return undefined;
  }
  const found = await readBaseline(github, { location: { branch: inputs.baselineBranch, key: inputs.commentKey, forBranch }, write: false });
  return found?.reportPath ? { report: await readReport(found.reportPath), path: found.reportPath } : undefined;
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
  const uploadFolder = path.dirname(inputs.report);
  if (path.relative(uploadFolder, inputs.config).split(path.sep)[0] !== '..') {
    throw new InputError(
      'input config',
      `${inputs.config} lies in ${uploadFolder}, the folder of the uploaded report, so the upload could have put it there. Download the artifact into a folder of its own and give the config of the trusted checkout (e.g. distill-gate.yml).`,
    );
  }
  core.info(`distill-gate: re-judging the uploaded report with the gates of ${inputs.config}`);
  return loadConfig(inputs.config);
}

/** mode merge: the reports of a matrix of jobs as one report and verdict, also written to report.md. */
async function merge({ inputs }: Step): Promise<RunResult> {
  if (inputs.reports.length === 0)
    throw new InputError('input reports', 'mode merge needs the report.json files to merge, e.g. reports: "reports/*/report.json".');
  if (!inputs.expect)
    core.warning(
      'distill-gate: input expect is not set, so a matrix leg that uploaded no report.json would go unnoticed; set expect to the number (or names) of the legs.',
    );
  const merged = mergeReports(await readReports(inputs.reports, inputs.workingDirectory, inputs.expect), inputs.expect);
  await mkdir(inputs.outputDir, { recursive: true });
  const reportPath = path.join(inputs.outputDir, 'report.md');
  await writeFile(reportPath, merged.markdown);
  return { report: mergedAsReport(merged), markdown: merged.markdown, reportPath, studentPath: '' };
}
