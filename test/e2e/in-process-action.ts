// The action's run() in this test process (the source, not dist/) against the loopback GitHub,
// with the environment a runner sets for one event: for test files that check what the action
// says to GitHub (statuses, comments) without training, so that they take seconds.
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FakeGitHub } from './github-server.js';
import { captureActionLog, EVENTS } from './runner-env.js';

/** Starts the loopback GitHub, sets the runner's variables for `event`, and imports run(); call at a file's top level. */
export async function inProcessAction(event: 'pull_request' | 'workflow_run', tempPrefix: string) {
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
  return { api, files, run, context, log };
}
