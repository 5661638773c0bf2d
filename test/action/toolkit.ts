/**
 * Typed stand-ins for @actions/core and @actions/github, as in actions/typescript-action: a test
 * file mocks the toolkit with `vi.mock('@actions/core', () => import('./toolkit.js'))` (and
 * `vi.mock('@actions/github', ...)` with `github` below), sets `inputs` and `context`, and reads
 * what the action did through the helpers at the end.
 */
import type * as Core from '@actions/core';
import { vi, type Mock } from 'vitest';
import type { EventContext, GitHub as GitHubFacade } from '../../src/action/github/index.js';

export const inputs: Record<string, string> = {};
export const summaryState = { lines: [] as string[], failsWith: undefined as string | undefined };

export const getInput = vi.fn<typeof Core.getInput>((name) => inputs[name] ?? '');
export const getMultilineInput = vi.fn<typeof Core.getMultilineInput>((name) =>
  (inputs[name] ?? '').split('\n').filter(Boolean),
);
export const setOutput = vi.fn<typeof Core.setOutput>();
export const setFailed = vi.fn<typeof Core.setFailed>();
export const setSecret = vi.fn<typeof Core.setSecret>();
export const warning = vi.fn<typeof Core.warning>();
export const error = vi.fn<typeof Core.error>();
export const info = vi.fn<typeof Core.info>();
export const startGroup = vi.fn<typeof Core.startGroup>();
export const endGroup = vi.fn<typeof Core.endGroup>();

interface SummaryStandIn {
  addRaw(text: string): SummaryStandIn;
  write(): Promise<SummaryStandIn>;
}
export const summary: SummaryStandIn = {
  addRaw: vi.fn((text: string) => {
    summaryState.lines.push(text);
    return summary;
  }),
  write: vi.fn(async () => {
    if (summaryState.failsWith) throw new Error(summaryState.failsWith);
    return summary;
  }),
};

/** The event the action sees; tests replace its fields. */
export const context: EventContext = {
  eventName: 'push',
  payload: {},
  sha: 'abc',
  ref: 'refs/heads/main',
  repo: { owner: 'acme', repo: 'models' },
  serverUrl: 'https://github.test',
  runId: 1,
};
export const github = {
  context,
  getOctokit: vi.fn(() => {
    throw new Error('no API in unit tests');
  }),
};

/** Clears what the last test recorded and sets the inputs and event of the next. */
export function reset(nextInputs: Record<string, string> = {}, event: Partial<EventContext> = {}): void {
  vi.clearAllMocks();
  for (const key of Object.keys(inputs)) delete inputs[key];
  Object.assign(inputs, nextInputs);
  Object.assign(summaryState, { lines: [], failsWith: undefined });
  Object.assign(context, { eventName: 'push', payload: {}, sha: 'abc', ref: 'refs/heads/main' }, event);
}

const texts = (mock: { mock: { calls: Array<[string | Error, ...unknown[]]> } }) =>
  mock.mock.calls.map(([message]) => String(message instanceof Error ? message.message : message));
export const failures = () => texts(setFailed);
export const warnings = () => texts(warning);
export const errors = () => texts(error);
export const infos = () => info.mock.calls.map(([message]) => message);
/** The outputs as the runner would hold them: the last value set wins. */
export const outputs = () => Object.fromEntries(setOutput.mock.calls.map(([name, value]) => [name, String(value)]));

/** A GitHub facade whose every method is a typed mock that answers as a healthy repository would. */
export function fakeGitHub(): { [K in keyof GitHubFacade]: Mock<GitHubFacade[K]> } {
  return {
    defaultBranch: vi.fn<GitHubFacade['defaultBranch']>(async () => 'main'),
    readStoredBaseline: vi.fn<GitHubFacade['readStoredBaseline']>(async () => undefined),
    storeRun: vi.fn<GitHubFacade['storeRun']>(async () => []),
    upsertStickyComment: vi.fn<GitHubFacade['upsertStickyComment']>(async () => ({
      url: 'https://github.test/acme/models/pull/7#issuecomment-1',
      id: 1,
      created: true,
      truncated: false,
      notes: [],
    })),
    updateStickyComment: vi.fn<GitHubFacade['updateStickyComment']>(async () => ({
      url: 'https://github.test/acme/models/pull/7#issuecomment-1',
      id: 1,
      created: false,
      truncated: false,
      notes: [],
    })),
    syncTrackingIssue: vi.fn<GitHubFacade['syncTrackingIssue']>(async () => ({
      action: 'opened',
      url: 'https://github.test/acme/models/issues/3',
    })),
    findPullRequestBySha: vi.fn<GitHubFacade['findPullRequestBySha']>(async () => ({
      number: 12,
      how: 'found by its head commit f0f0f0',
    })),
    pullRequestLabels: vi.fn<GitHubFacade['pullRequestLabels']>(async () => []),
    labelledBy: vi.fn<GitHubFacade['labelledBy']>(async () => '@alice'),
    setCommitStatus: vi.fn<GitHubFacade['setCommitStatus']>(async () => {}),
    pullRequestFiles: vi.fn<GitHubFacade['pullRequestFiles']>(async () => ({
      files: ['models/teacher/model.json'],
      baseSha: 'b'.repeat(40),
      complete: true,
    })),
  };
}
