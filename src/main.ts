import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as core from '@actions/core';
import * as github from '@actions/github';
import { loadConfig } from './config/load.js';
import { BACKENDS, type BackendName } from './config/schema.js';
import { InputError, isInputError } from './errors.js';
import { runPipeline } from './pipeline.js';
import { renderMarkdown } from './report/markdown.js';
import { readReport, type Report } from './report/report.js';
import { mergedAsReport, mergeReports, readReports } from './report/merge.js';
import { createClient, explainFailure, type GitHubClient, type RetryOptions } from './github/api.js';
import { readStoredBaseline, storeRun, type StoreLocation } from './github/baseline-store.js';
import type { RegressionAcceptance } from './gates/compare.js';
import { upsertStickyComment } from './github/comment.js';
import { branchOf, defaultBranch, findPullRequestBySha, labelledBy, pullRequestNumber, PULL_REQUEST_EVENTS, runUrl, STORING_EVENTS, type EventContext } from './github/event.js';
import { syncTrackingIssue } from './github/tracking-issue.js';

export interface ActionInputs {
  mode: 'run' | 'report' | 'merge';
  /** For mode merge: report.json paths or patterns. */
  reports: string[];
  config: string;
  report: string;
  token: string;
  comment: boolean;
  failOnGate: boolean;
  backend: BackendName;
  outputDir: string;
  workingDirectory: string;
  commentKey: string;
  baseline?: string;
  issueOnFailure: boolean;
  issueLabel: string;
  budgetMinutes?: number;
  /** Branch of the baseline store; '' turns the store off. */
  baselineBranch: string;
  acceptLabel: string;
  cacheDir?: string;
}

export function readInputs(): ActionInputs {
  const workingDirectory = path.resolve(process.env.GITHUB_WORKSPACE ?? process.cwd(), core.getInput('working-directory') || '.');
  const config = core.getInput('config') || '.github/distill-gate.yml';
  const mode = core.getInput('mode') || 'run';
  if (mode !== 'run' && mode !== 'report' && mode !== 'merge') throw new InputError('input mode', `"${mode}" is not a mode; use run, report or merge.`);
  const backend = core.getInput('backend') || 'auto';
  if (!(BACKENDS as readonly string[]).includes(backend)) throw new InputError('input backend', `"${backend}" is not a backend; use one of ${BACKENDS.join(', ')}.`);
  const outputDir = path.resolve(workingDirectory, core.getInput('output-dir') || 'distill-report');
  return {
    mode,
    reports: core.getMultilineInput('reports').flatMap((line) => line.split(/\s+/)).filter(Boolean),
    config: path.resolve(workingDirectory, config),
    report: path.resolve(workingDirectory, core.getInput('report') || path.join(outputDir, 'report.json')),
    token: core.getInput('github-token'),
    comment: booleanInput('comment', true),
    failOnGate: booleanInput('fail-on-gate', true),
    backend: backend as BackendName,
    outputDir,
    workingDirectory,
    commentKey: core.getInput('comment-key') || config,
    baseline: core.getInput('baseline') ? path.resolve(workingDirectory, core.getInput('baseline')) : undefined,
    issueOnFailure: booleanInput('issue-on-failure', false),
    issueLabel: core.getInput('issue-label') || 'distill-gate',
    budgetMinutes: budgetInput(),
    baselineBranch: ['false', 'off', 'none'].includes(core.getInput('baseline-branch').toLowerCase()) ? '' : core.getInput('baseline-branch') || 'distill-gate-data',
    acceptLabel: core.getInput('accept-label') || 'distill-gate:accept-regression',
    cacheDir: core.getInput('cache-dir') ? path.resolve(workingDirectory, core.getInput('cache-dir')) : undefined,
  };
}

function budgetInput(): number | undefined {
  const value = core.getInput('budget');
  if (!value) return undefined;
  const minutes = Number(value);
  if (!Number.isFinite(minutes) || minutes <= 0) throw new InputError('input budget', `"${value}" is not a number of minutes above 0 (e.g. 45).`);
  return minutes;
}

function booleanInput(name: string, fallback: boolean): boolean {
  const value = core.getInput(name).trim().toLowerCase();
  if (value === '') return fallback;
  if (['true', 'yes', 'on', '1'].includes(value)) return true;
  if (['false', 'no', 'off', '0'].includes(value)) return false;
  throw new InputError(`input ${name}`, `"${value}" is not a boolean; use true or false.`);
}

interface Outcome {
  report: Report;
  markdown: string;
  reportPath: string;
  studentPath: string;
  writeError?: InputError;
}

/** The action: inputs -> the same pipeline as `distill-gate run` -> GitHub I/O. */
export async function run(retry: RetryOptions = {}): Promise<void> {
  const context = github.context as unknown as EventContext;
  const retryOptions: RetryOptions = { onRetry: (message) => core.info(message), ...retry };
  let inputs: ActionInputs;
  let outcome: Outcome;
  try {
    inputs = readInputs();
    if (inputs.token) core.setSecret(inputs.token);
    outcome = inputs.mode === 'report' ? await finishedReport(inputs) : inputs.mode === 'merge' ? await mergedReports(inputs) : await distillHere(inputs, context, retryOptions);
  } catch (error) {
    if (isInputError(error)) core.setFailed(`distill-gate: ${error.message}`);
    else core.setFailed(`distill-gate internal error (a bug, please report it): ${error instanceof Error ? error.stack : String(error)}`);
    return;
  }
  await publish(inputs, outcome, context, retryOptions);
}

async function distillHere(inputs: ActionInputs, context: EventContext, retry: RetryOptions): Promise<Outcome> {
  const config = await loadConfig(inputs.config);
  const client = inputs.token ? createClient(inputs.token) : undefined;
  const store = client && inputs.baselineBranch ? await planStore(client, inputs, context, retry) : undefined;
  const stored = store && !inputs.baseline ? await readStore(client!, store, inputs, retry) : undefined;
  const acceptRegression = client ? await regressionAcceptance(client, inputs, context, retry) : undefined;
  const controller = new AbortController();
  // The runner sends SIGTERM when a job is cancelled or times out: stop training, keep the report.
  const stop = () => controller.abort(new Error('the job was cancelled (SIGTERM)'));
  process.once('SIGTERM', stop);
  core.startGroup('distill-gate: distillation');
  let outcome: Outcome;
  try {
    outcome = await runPipeline(config, {
      outDir: inputs.outputDir,
      backend: inputs.backend === 'auto' ? undefined : inputs.backend,
      baseline: inputs.baseline ?? stored?.reportPath,
      baselineStudent: inputs.baseline ? undefined : stored?.studentPath,
      history: stored?.history,
      acceptRegression,
      budgetMinutes: inputs.budgetMinutes,
      cacheDir: inputs.cacheDir,
      searchFrom: [inputs.workingDirectory, process.env.GITHUB_WORKSPACE ?? inputs.workingDirectory],
      signal: controller.signal,
      log: (line) => core.info(line),
      commit: context.sha,
    });
  } finally {
    core.endGroup();
    process.off('SIGTERM', stop);
  }
  if (store?.write && !outcome.writeError) {
    try {
      const history = await storeRun(client!, store.location, outcome.report, path.dirname(outcome.studentPath), { fromSha: context.sha, event: context.eventName, retry });
      core.info(`distill-gate: recorded this run in ${store.location.branch} (${history.length} runs in the history)`);
    } catch (error) {
      core.warning(explainFailure(`Recording the baseline in branch ${store.location.branch}`, error).replace('pull-requests: write', 'contents: write'));
    }
  }
  return outcome;
}

interface StorePlan {
  location: StoreLocation;
  /** Default-branch runs of push, schedule and workflow_dispatch record themselves. */
  write: boolean;
}

/** PRs read their base branch's records; default-branch runs read and then extend their own. */
async function planStore(client: GitHubClient, inputs: ActionInputs, context: EventContext, retry: RetryOptions): Promise<StorePlan | undefined> {
  const base = { owner: context.repo.owner, repo: context.repo.repo, branch: inputs.baselineBranch, key: inputs.commentKey };
  const prBase = context.payload.pull_request?.base?.ref;
  if (prBase) return { location: { ...base, forBranch: prBase }, write: false };
  const branch = branchOf(context.ref ?? '');
  if (!branch || !STORING_EVENTS.includes(context.eventName)) return undefined;
  try {
    const mainBranch = await defaultBranch(client, context, retry);
    return { location: { ...base, forBranch: branch }, write: branch === mainBranch };
  } catch (error) {
    core.warning(explainFailure('Finding the default branch for the baseline store', error));
    return undefined;
  }
}

async function readStore(client: GitHubClient, plan: StorePlan, inputs: ActionInputs, retry: RetryOptions) {
  try {
    // Outside the workspace, so that the baseline's files never mix with the PR's.
    const dir = await mkdtemp(path.join(process.env.RUNNER_TEMP ?? os.tmpdir(), 'distill-gate-baseline-'));
    const stored = await readStoredBaseline(client, plan.location, dir, retry);
    if (stored) core.info(`distill-gate: baseline from ${plan.location.branch} for ${plan.location.forBranch}${stored.studentPath ? ', with its student' : ''}`);
    else core.info(`distill-gate: no baseline stored yet for ${plan.location.forBranch} in ${plan.location.branch}; relative gates are skipped`);
    return stored;
  } catch (error) {
    core.warning(explainFailure(`Reading the baseline from branch ${plan.location.branch}`, error).replace('pull-requests: write', 'contents: read'));
    return undefined;
  }
}

async function regressionAcceptance(client: GitHubClient, inputs: ActionInputs, context: EventContext, retry: RetryOptions): Promise<RegressionAcceptance | undefined> {
  const pr = context.payload.pull_request;
  if (!pr?.labels?.some((l) => l.name === inputs.acceptLabel)) return undefined;
  const by = await labelledBy(client, context, pr.number, inputs.acceptLabel, retry).catch(() => 'someone');
  core.info(`distill-gate: label "${inputs.acceptLabel}" (by ${by}) turns failing relative gates into warnings`);
  return { label: inputs.acceptLabel, by };
}

async function finishedReport(inputs: ActionInputs): Promise<Outcome> {
  const report = await readReport(inputs.report);
  return { report, markdown: renderMarkdown(report), reportPath: inputs.report, studentPath: report.student?.path ?? '' };
}

async function mergedReports(inputs: ActionInputs): Promise<Outcome> {
  if (inputs.reports.length === 0) throw new InputError('input reports', 'mode merge needs the report.json files to merge, e.g. reports: "reports/*/report.json".');
  const merged = mergeReports(await readReports(inputs.reports, inputs.workingDirectory));
  await mkdir(inputs.outputDir, { recursive: true });
  const reportPath = path.join(inputs.outputDir, 'report.md');
  await writeFile(reportPath, merged.markdown);
  return { report: mergedAsReport(merged), markdown: merged.markdown, reportPath, studentPath: '' };
}

async function publish(inputs: ActionInputs, outcome: Outcome, context: EventContext, retry: RetryOptions): Promise<void> {
  const { report, markdown } = outcome;
  core.info(`distill-gate: verdict ${report.verdict} on backend ${report.backend}`);
  try {
    await core.summary.addRaw(markdown).write();
  } catch (error) {
    core.warning(`Writing the job summary failed: ${(error as Error).message}. The report is at ${outcome.reportPath}.`);
  }
  core.setOutput('verdict', report.verdict);
  core.setOutput('report-path', outcome.writeError ? '' : outcome.reportPath);
  core.setOutput('student-path', outcome.studentPath);
  core.setOutput('agreement', String(report.metrics['agreement.top1'] ?? ''));
  core.setOutput('speedup', String(report.metrics['speed.speedup'] ?? ''));
  core.setOutput('size-ratio', String(report.metrics['size.ratio'] ?? ''));
  core.setOutput('comment-url', '');

  if (inputs.token) await publishToGitHub(inputs, outcome, context, retry);
  else core.warning('No github-token: skipping the PR comment. The report is in the job summary and on disk.');

  for (const gate of report.gates) {
    const text = `${gate.metric} = ${gate.value ?? 'not measured'}, expected ${gate.expected}${gate.baseline !== null ? ` (baseline ${gate.baseline})` : ''}`;
    if (gate.status === 'fail') core.error(text, { title: `distill-gate: ${gate.metric} failed` });
    if (gate.status === 'warn') core.warning(text, { title: `distill-gate: ${gate.metric} (warning)` });
  }
  for (const reason of report.reasons) core.warning(reason, { title: 'distill-gate' });
  // The comment and summary went out first: a disk that refused the report loses nothing else.
  if (outcome.writeError) {
    core.setFailed(`distill-gate: ${outcome.writeError.message}`);
    return;
  }
  if (report.verdict === 'fail') {
    const failing = report.gates.filter((g) => g.status === 'fail').map((g) => `${g.metric} (${g.expected})`);
    const message = `distill-gate: ${failing.length ? `failing gates: ${failing.join(', ')}` : report.reasons.join(' ')}`;
    if (inputs.failOnGate) core.setFailed(message);
    else core.warning(`${message} (fail-on-gate is false, so the step passes)`);
  }
}

async function publishToGitHub(inputs: ActionInputs, outcome: Outcome, context: EventContext, retry: RetryOptions): Promise<void> {
  const client = createClient(inputs.token);
  const { owner, repo } = context.repo;
  const isPullRequest = PULL_REQUEST_EVENTS.includes(context.eventName) || (inputs.mode === 'report' && context.eventName === 'workflow_run');
  if (isPullRequest && inputs.comment) {
    try {
      const headSha = context.payload.workflow_run?.head_sha ?? outcome.report.commit;
      const issueNumber = pullRequestNumber(context) ?? (headSha ? await findPullRequestBySha(client, context, headSha, retry) : undefined);
      if (issueNumber === undefined) {
        core.warning('No pull request found for this run, so no comment was posted. The report is in the job summary.');
        return;
      }
      const comment = await upsertStickyComment(client, { owner, repo, issueNumber, key: inputs.commentKey }, outcome.markdown, retry);
      core.setOutput('comment-url', comment.url);
      core.info(`distill-gate: ${comment.created ? 'posted' : 'updated'} the report comment ${comment.url}${comment.truncated ? ' (shortened to fit GitHub\'s limit)' : ''}`);
    } catch (error) {
      core.warning(explainFailure('Posting the PR comment', error));
    }
    return;
  }
  if (inputs.issueOnFailure && !isPullRequest) {
    try {
      const result = await syncTrackingIssue(client, { owner, repo, key: inputs.commentKey, label: inputs.issueLabel, runUrl: runUrl(context) }, outcome.report.verdict, outcome.markdown, retry);
      if (result.action !== 'none') core.info(`distill-gate: tracking issue ${result.action}: ${result.url}`);
    } catch (error) {
      core.warning(explainFailure('Updating the tracking issue', error));
    }
  }
}
