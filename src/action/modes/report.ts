import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as core from '@actions/core';
import picomatch from 'picomatch';
import { loadConfig, type Config } from '../../config/load.js';
import { InputError } from '../../errors.js';
import { fileExists } from '../../models/artifacts.js';
import { escapeMarkdown } from '../../report/escape.js';
import { renderMarkdown } from '../../report/markdown.js';
import { readReport, readUntrustedReport } from '../../report/read.js';
import { rejudgeReport, type StoredBaseline } from '../../report/rejudge.js';
import { underClock, type RunClock } from '../../run-control.js';
import { regressionAcceptance } from '../acceptance.js';
import { AUTO, judgeChanges, relevantGlobs, unknownLine, type ChangeVerdict } from '../changes.js';
import { explainFailure, GITHUB_CALL_DEADLINE_MS } from '../github/index.js';
import type { Step } from '../inputs.js';
import { readBaseline } from '../store.js';
import { announce, fileList, skipped } from './changes.js';
import type { ModeOutcome, Notice } from './outcome.js';

/**
 * mode report: a report.json uploaded by a job that ran a pull request's code (the fork-safe
 * workflow_run split). Nothing in it is believed: it is validated, every gate is re-judged from its
 * values (with the trusted config's gates when there is one, see trustedConfig), the verdict is
 * derived, and no path from it is passed on (student-path is empty, report-path is the file read).
 * Whether the gate applies at all is decided here too, from the files GitHub lists for the PR
 * (not from anything the PR's job said): nothing relevant changed passes, skipped, whatever was
 * uploaded; something did and nothing was uploaded fails.
 */
export async function reportMode(step: Step, clock: RunClock): Promise<ModeOutcome> {
  const { inputs, context } = step;
  if (inputs.expect)
    throw new InputError(
      'input expect',
      "names the legs of a matrix, which mode report checks only with input reports (the legs' report.json files or patterns, e.g. reports/*/report.json); give reports, or drop expect.",
    );
  const trusted = await trustedConfig(inputs);
  const underWorkflowRun = context.eventName === 'workflow_run';
  const pr = underWorkflowRun ? step.pr?.number : undefined;
  const changes = pr !== undefined ? await changesOfPullRequest(step, pr, [trusted], clock) : undefined;
  if (changes?.relevant === false) return { notice: skipped(changes) };
  if (underWorkflowRun && !(await fileExists(inputs.report)))
    return {
      notice: missingUpload(step, changes, path.relative(inputs.workingDirectory, inputs.report) || inputs.report),
    };
  const uploaded = await readUntrustedReport(inputs.report);
  const stored = await trustedBaseline(step, clock);
  const acceptance = underWorkflowRun ? await regressionAcceptance(step, clock) : undefined;
  // The PR to comment on is found from this event's head commit, never from a commit the upload names.
  const report = {
    ...rejudgeReport(uploaded, inputs.report, { trusted, stored, acceptance }),
    commit: context.payload.workflow_run?.head_sha,
  };
  if (!trusted && underWorkflowRun) {
    // Under workflow_run the upload is a pull request's: its own thresholds then decide, and a
    // reviewer must see that, not find it in the log.
    const why = `No trusted config at ${inputs.config}: the uploaded report was re-judged with its own thresholds, which the pull request chose. Check out the default branch's config and give it as the config input.`;
    core.warning(why);
    report.reasons = [...report.reasons, why];
  }
  return { result: { report, markdown: renderMarkdown(report), reportPath: inputs.report, studentPath: '' } };
}

/**
 * The notice of a relevant change whose untrusted run uploaded no report (it crashed, was
 * cancelled, or its workflow was edited); `lookedFor` says where (plain text, escaped here).
 */
export function missingUpload({ context }: Step, changes: ChangeVerdict | undefined, lookedFor: string): Notice {
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
      `Looked for ${escapeMarkdown(lookedFor)}. Re-run the pull request's workflow; a run that fails before writing its report leaves nothing to judge, and the gate does not pass unseen.`,
      changes?.relevant === true ? fileList(changes.files) : '',
    ]
      .filter(Boolean)
      .join('\n\n'),
    comment: 'create',
  };
}

/**
 * The PR's changed files as GitHub lists them, judged against the trusted `paths`, `auto` standing
 * for the files of every one of `trusted` (the configs of the legs; one without a config leaves
 * `auto` unknown); unknown when they cannot be read or the globs are unknown.
 */
export async function changesOfPullRequest(
  { inputs, github }: Step,
  number: number,
  trusted: Array<Config | undefined>,
  clock: RunClock,
): Promise<ChangeVerdict> {
  let verdict: ChangeVerdict;
  const root = process.env.GITHUB_WORKSPACE ?? inputs.workingDirectory;
  const autoUnknown = inputs.paths.includes(AUTO) && trusted.some((config) => !config);
  const globs = autoUnknown ? [] : [...new Set(trusted.flatMap((config) => relevantGlobs(inputs.paths, config, root)))];
  if (!github) verdict = { relevant: 'unknown', why: 'no github-token to list the changed files, so the gate runs' };
  else if (globs.length === 0)
    verdict = {
      relevant: 'unknown',
      why: 'no trusted config for `paths: auto` to name the relevant files, so the gate runs',
    };
  else {
    try {
      const listed = await underClock(
        github.pullRequestFiles(number),
        clock.stop,
        GITHUB_CALL_DEADLINE_MS,
        `listing the files of PR #${number}`,
      );
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
 * The baseline the upload's relative gates are judged against, never the one the upload carries
 * (the pull request's job wrote it): the `baseline` input when the workflow gives one (outside the
 * upload's folder), else the baseline store's records of the PR's base branch, or the default
 * branch's when a fork's run names no PR.
 */
export async function trustedBaseline(step: Step, clock: RunClock): Promise<StoredBaseline | undefined> {
  const { inputs } = step;
  if (inputs.baseline) {
    refuseInsideUpload(inputs, inputs.baseline, 'input baseline');
    return { report: await readReport(inputs.baseline), path: inputs.baseline };
  }
  return storedBaselineOfBase(step, inputs.commentKey, clock);
}

/** The baseline store's record under `key` (a config's path, as main.yml's run names it) for the PR's base branch, or the default branch. */
export async function storedBaselineOfBase(
  { inputs, context, github }: Step,
  key: string,
  clock: RunClock,
): Promise<StoredBaseline | undefined> {
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
  const found = await readBaseline(
    github,
    { location: { branch: inputs.baselineBranch, key, forBranch }, write: false },
    dir,
    clock.stop,
  );
  return found?.reportPath ? { report: await readReport(found.reportPath), path: found.reportPath } : undefined;
}

/**
 * A file the trusted job reads must not lie in the upload's folder: the upload could have put it
 * there. With several legs (input reports), that is the folder each pattern's artifacts go to:
 * the part of the pattern before its first wildcard (`reports` for reports/*\/report.json).
 */
export function refuseInsideUpload(inputs: Step['inputs'], file: string, culprit: string): void {
  const legs = inputs.reports.length > 0;
  const folders = legs
    ? inputs.reports.map((pattern) => uploadFolderOf(inputs.workingDirectory, pattern))
    : [path.dirname(inputs.report)];
  const uploadFolder = folders.find((folder) => path.relative(folder, file).split(path.sep)[0] !== '..');
  if (uploadFolder !== undefined)
    throw new InputError(
      culprit,
      legs
        ? `${file} lies in ${uploadFolder}, where the uploaded reports are downloaded, so an upload could have put it there. Download the artifacts into a folder of their own (reports/ for reports/*/report.json) and give a file of the trusted checkout.`
        : `${file} lies in ${uploadFolder}, the folder of the uploaded report, so the upload could have put it there. Download the artifact into a folder of its own and give a file of the trusted checkout.`,
    );
}

/** The folder a report pattern's files lie in: its part before the first wildcard, or the file's folder. */
function uploadFolderOf(workingDirectory: string, pattern: string): string {
  const scanned = picomatch.scan(pattern);
  return path.resolve(workingDirectory, scanned.isGlob ? scanned.base : path.dirname(pattern));
}

/**
 * The config whose gates judge an uploaded report: the `config` input, when that file exists in
 * this (trusted) checkout; the input always has a value (its default), so existence is what says
 * the workflow gave one. A config inside the uploaded report's folder could have come with the
 * upload, so it is refused rather than obeyed.
 */
export async function trustedConfig(inputs: Step['inputs']): Promise<Config | undefined> {
  if (!(await fileExists(inputs.config))) {
    core.info(
      `distill-gate: no config at ${inputs.config} in this checkout; re-judging the uploaded gates with their own thresholds`,
    );
    return undefined;
  }
  // Only a config that exists can have come with the upload; none at all is no risk.
  refuseInsideUpload(inputs, inputs.config, 'input config');
  core.info(`distill-gate: re-judging the uploaded report with the gates of ${inputs.config}`);
  return loadConfig(inputs.config);
}
