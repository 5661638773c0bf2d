import { existsSync } from 'node:fs';
import path from 'node:path';
import * as core from '@actions/core';
import { BACKENDS, GPU_BACKENDS, type BackendName } from '../config/schema.js';
import { InputError } from '../errors.js';
import { parseExpected, type ExpectedLegs } from '../report/merge.js';
import { MAX_BUDGET_MINUTES, parseBudgetMinutes } from '../run-control.js';
import type { GitHub, EventContext, PullRequestSearch } from './github/index.js';

export const MODES = ['run', 'report', 'merge', 'changes'] as const;
export type Mode = (typeof MODES)[number];

/** The action's inputs (action.yml), validated, with every path resolved against working-directory. */
export interface ActionInputs {
  mode: Mode;
  /** For mode merge, and mode report with several legs: report.json paths or patterns. */
  reports: string[];
  /** For mode merge and mode report: how many reports (or which legs, in mode report each with its trusted config) must arrive; undefined when the input is empty. */
  expect?: ExpectedLegs;
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
  /** The base branch's teacher, given explicitly; on a pull request it is otherwise read from git at the base commit. */
  baseTeacher?: string;
  /** Fail the run (before training) when it resolves no GPU backend: a GPU runner whose GPU installs failed. */
  requireGpu: boolean;
  /** The commit status that carries the verdict on the PR's head commit; '' turns it off. */
  statusName: string;
  /** Globs (repository-relative) of the files whose change the gate looks at; `auto` stands for those the config names. */
  paths: string[];
}

/** The words that turn an optional feature's input off. */
const OFF = ['false', 'off', 'none'];

/** The config's default place: the repository root, so that its paths (relative to it) are the repository's. */
export const DEFAULT_CONFIG = 'distill-gate.yml';
/** The default before it, still read (with a warning) where the repository has no root config. */
export const LEGACY_DEFAULT_CONFIG = '.github/distill-gate.yml';

/** What a mode and the publishing step are given: the inputs, the event, GitHub when there is a token, and the PR the step is about. */
export interface Step {
  inputs: ActionInputs;
  context: EventContext;
  github?: GitHub;
  /** The pull request, worked out once (resolvePullRequest); undefined for runs that are not about one. */
  pr?: PullRequestSearch;
}

export function readInputs(): ActionInputs {
  const mode = modeInput();
  const backend = backendInput();
  const workingDirectory = path.resolve(
    process.env.GITHUB_WORKSPACE ?? process.cwd(),
    core.getInput('working-directory') || '.',
  );
  const config = configInput(workingDirectory, mode);
  const outputDir = path.resolve(workingDirectory, core.getInput('output-dir') || 'distill-report');
  const optionalPath = (name: string) =>
    core.getInput(name) ? path.resolve(workingDirectory, core.getInput(name)) : undefined;
  return {
    mode,
    reports: core
      .getMultilineInput('reports')
      .flatMap((line) => line.split(/\s+/))
      .filter(Boolean),
    expect: parseExpected(core.getInput('expect'), 'input expect', { configs: mode === 'report' }),
    config: path.resolve(workingDirectory, config),
    report: path.resolve(workingDirectory, core.getInput('report') || path.join(outputDir, 'report.json')),
    token: core.getInput('github-token'),
    comment: booleanInput('comment', true),
    failOnGate: booleanInput('fail-on-gate', true),
    backend,
    outputDir,
    workingDirectory,
    commentKey: core.getInput('comment-key') || config,
    baseline: optionalPath('baseline'),
    issueOnFailure: booleanInput('issue-on-failure', false),
    issueLabel: core.getInput('issue-label') || 'distill-gate',
    budgetMinutes: budgetInput(),
    baselineBranch: OFF.includes(core.getInput('baseline-branch').toLowerCase())
      ? ''
      : core.getInput('baseline-branch') || 'distill-gate-data',
    acceptLabel: core.getInput('accept-label') || 'distill-gate:accept-regression',
    cacheDir: optionalPath('cache-dir'),
    baseTeacher: optionalPath('base-teacher'),
    requireGpu: requireGpuInput(backend),
    statusName: OFF.includes(core.getInput('status-name').toLowerCase())
      ? ''
      : core.getInput('status-name') || 'distill-gate',
    paths: pathsInput(),
  };
}

/**
 * The config input, relative to working-directory. Left at its default where only the old default
 * exists, the old one is used, paths still relative to it and the comment key (hence the sticky
 * comment and the baseline store's folder) unchanged, so upgrading breaks no repository.
 */
function configInput(workingDirectory: string, mode: Mode): string {
  const config = core.getInput('config') || DEFAULT_CONFIG;
  if (
    config !== DEFAULT_CONFIG ||
    existsSync(path.resolve(workingDirectory, config)) ||
    !existsSync(path.resolve(workingDirectory, LEGACY_DEFAULT_CONFIG))
  )
    return config;
  // mode merge reads no config: only its comment key depends on this, and stays as it was.
  if (mode !== 'merge')
    core.warning(
      `distill-gate: there is no ${DEFAULT_CONFIG} in ${workingDirectory}, so ${LEGACY_DEFAULT_CONFIG} is read (the old default; its paths stay relative to .github/). Move it to the repository root with its paths made relative to the root, or set the input config: ${LEGACY_DEFAULT_CONFIG}.`,
      { title: 'distill-gate: config location' },
    );
  return LEGACY_DEFAULT_CONFIG;
}

/** The paths input: globs one per line (or space-separated); empty means `auto`. A negated glob is refused: list what counts instead. */
function pathsInput(): string[] {
  const globs = core
    .getMultilineInput('paths')
    .flatMap((line) => line.split(/\s+/))
    .filter(Boolean);
  const negated = globs.find((glob) => glob.startsWith('!'));
  if (negated)
    throw new InputError(
      'input paths',
      `"${negated}" is a negated glob; list the files that count (e.g. auto, models/**, src/train/**) instead.`,
    );
  return globs.length > 0 ? globs : ['auto'];
}

function requireGpuInput(backend: BackendName): boolean {
  const requireGpu = booleanInput('require-gpu', false);
  if (requireGpu && backend !== 'auto' && !GPU_BACKENDS.includes(backend))
    throw new InputError(
      'input require-gpu',
      `true needs a GPU backend, but input backend is ${backend}; use auto, ${GPU_BACKENDS.join(' or ')}, or drop require-gpu.`,
    );
  return requireGpu;
}

function modeInput(): Mode {
  const mode = core.getInput('mode') || 'run';
  if (!(MODES as readonly string[]).includes(mode))
    throw new InputError('input mode', `"${mode}" is not a mode; use run, report, merge or changes.`);
  return mode as Mode;
}

function backendInput(): BackendName {
  const backend = core.getInput('backend') || 'auto';
  if (!(BACKENDS as readonly string[]).includes(backend))
    throw new InputError('input backend', `"${backend}" is not a backend; use one of ${BACKENDS.join(', ')}.`);
  return backend as BackendName;
}

function budgetInput(): number | undefined {
  const value = core.getInput('budget');
  if (!value) return undefined;
  const minutes = parseBudgetMinutes(value);
  if (minutes === undefined)
    throw new InputError(
      'input budget',
      `"${value}" is not a number of minutes above 0 and at most ${MAX_BUDGET_MINUTES} (e.g. 45).`,
    );
  return minutes;
}

function booleanInput(name: string, fallback: boolean): boolean {
  const value = core.getInput(name).trim().toLowerCase();
  if (value === '') return fallback;
  if (['true', 'yes', 'on', '1'].includes(value)) return true;
  if (['false', 'no', 'off', '0'].includes(value)) return false;
  throw new InputError(`input ${name}`, `"${value}" is not a boolean; use true or false.`);
}
