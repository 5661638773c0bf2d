// The action's run() in this test process (the source, not dist/) against the loopback GitHub,
// with the environment a runner sets for one event: for test files that check what the action
// says to GitHub (statuses, comments) without training, so that they take seconds.
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';
import type { SignalSource } from '../../src/run-control.js';
import { FakeGitHub } from './github-server.js';
import { captureActionLog, EVENTS, parseOutputs } from './runner-env.js';

/** PR 7's head commit in these tests: where the required check's status lands. */
export const HEAD = 'c0ffee'.padEnd(40, '0');

/**
 * Starts the loopback GitHub, sets the runner's variables for `event`, and imports run(); call at
 * a file's top level. `token` is the action's github-token input.
 */
export async function inProcessAction(event: 'pull_request' | 'workflow_run', tempPrefix: string, token: string) {
  const api = await new FakeGitHub().start();
  const runnerDir = await mkdtemp(path.join(os.tmpdir(), tempPrefix));
  const files = { summary: path.join(runnerDir, 'summary.md'), output: path.join(runnerDir, 'output') };
  Object.assign(process.env, {
    GITHUB_API_URL: api.url,
    GITHUB_REPOSITORY: 'acme/models',
    GITHUB_EVENT_NAME: event,
    GITHUB_EVENT_PATH: path.join(EVENTS, `${event}.json`),
    GITHUB_STEP_SUMMARY: files.summary,
    GITHUB_OUTPUT: files.output,
    GITHUB_SERVER_URL: 'https://github.test',
    GITHUB_RUN_ID: '42',
  });
  // Imported after the variables are set: @actions/github reads its context once, on import.
  const github = await import('@actions/github');
  const { run } = await import('../../src/action/run.js');
  const context = github.context as unknown as { eventName: string; payload: Record<string, unknown>; sha: string };
  const log = captureActionLog(() => api.stop());

  /** A clean GitHub before each case: PR 7 open at HEAD, no statuses, comments, files or labels. */
  function reset(): void {
    api.clearFaults();
    api.statuses = [];
    api.comments = [];
    api.pulls = [{ number: 7, state: 'open', head: { sha: HEAD } }];
    api.pullFiles = new Map();
    api.labelsOn = new Map();
    api.labelEvents = [];
  }

  /** The statuses set on `sha`; the first is pending and exactly one after it is final, which is returned. */
  function oneFinalStatus(sha: string = HEAD) {
    const set = api.statuses.filter((s) => s.sha === sha);
    expect(set.length).toBeGreaterThan(0);
    expect(set.every((s) => s.context === 'distill-gate')).toBe(true);
    expect(set[0].state).toBe('pending');
    const finals = set.filter((s) => s.state !== 'pending');
    expect(finals).toHaveLength(1);
    expect(set.at(-1)).toBe(finals[0]);
    expect(finals[0].target_url).toBe('https://github.test/acme/models/actions/runs/42');
    return finals[0];
  }

  /**
   * One run of the action for `eventName` with `payload` and the inputs `inputs` (no others,
   * no baseline branch) in `workspace`: what it printed, its exit code, summary and outputs.
   */
  async function act(
    eventName: string,
    payload: Record<string, unknown>,
    inputs: Record<string, string>,
    workspace: string,
    signals?: SignalSource,
  ) {
    for (const key of Object.keys(process.env)) if (key.startsWith('INPUT_')) delete process.env[key];
    Object.assign(process.env, {
      GITHUB_WORKSPACE: workspace,
      'INPUT_GITHUB-TOKEN': token,
      'INPUT_BASELINE-BRANCH': 'false',
      ...Object.fromEntries(Object.entries(inputs).map(([name, value]) => [`INPUT_${name.toUpperCase()}`, value])),
    });
    Object.assign(context, { eventName, payload, sha: 'f'.repeat(40) });
    await writeFile(files.summary, '');
    await writeFile(files.output, '');
    log.text = '';
    process.exitCode = 0;
    await run({ minTimeoutMs: 1, maxRetryTimeMs: 1000, retries: 1 }, signals);
    return {
      printed: log.text,
      exitCode: process.exitCode ?? 0,
      summary: await readFile(files.summary, 'utf8'),
      outputs: parseOutputs(await readFile(files.output, 'utf8')),
    };
  }

  return { api, files, context, log, act, reset, oneFinalStatus };
}
