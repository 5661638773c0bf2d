import path from 'node:path';
import { afterAll, afterEach, beforeAll, vi } from 'vitest';

/** The event payloads the e2e tests replay (test/e2e/events/<event>.json). */
export const EVENTS = path.resolve(path.dirname(new URL(import.meta.url).pathname), 'events');

export interface RunnerFiles {
  /** The repository checkout (GITHUB_WORKSPACE) the step runs in. */
  workspace: string;
  event: string;
  eventFile: string;
  ref: string;
  /** The loopback GitHub API's address. */
  apiUrl: string;
  /** GITHUB_OUTPUT and GITHUB_STEP_SUMMARY. */
  outputFile: string;
  summaryFile: string;
}

/**
 * The environment the Actions runner gives a node action's step: the GITHUB_* variables of the
 * repository acme/models, run 42, and each input as INPUT_<NAME>, exactly as the runner spells them.
 */
export function runnerEnvironment(files: RunnerFiles, inputs: Record<string, string>): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '/tmp',
    GITHUB_ACTIONS: 'true',
    GITHUB_EVENT_NAME: files.event,
    GITHUB_EVENT_PATH: path.join(EVENTS, files.eventFile),
    GITHUB_REF: files.ref,
    GITHUB_REPOSITORY: 'acme/models',
    GITHUB_SHA: 'abc123',
    GITHUB_RUN_ID: '42',
    GITHUB_SERVER_URL: 'https://github.test',
    GITHUB_API_URL: files.apiUrl,
    GITHUB_WORKSPACE: files.workspace,
    GITHUB_OUTPUT: files.outputFile,
    GITHUB_STEP_SUMMARY: files.summaryFile,
    ...Object.fromEntries(Object.entries(inputs).map(([name, value]) => [`INPUT_${name.toUpperCase()}`, value])),
  };
}

/** GITHUB_OUTPUT holds `name<<delimiter\nvalue\ndelimiter` blocks. */
export function parseOutputs(text: string): Record<string, string> {
  const outputs: Record<string, string> = {};
  const pattern = /^([^<\n]+)<<(\S+)\n([\s\S]*?)\n\2$/gm;
  for (let m = pattern.exec(text); m; m = pattern.exec(text)) outputs[m[1]] = m[3];
  return outputs;
}

/**
 * For a test file that runs the action in-process: what it writes to stdout (the runner's log) is
 * kept instead of printed, process.exitCode is reset after each test, and `done` runs last.
 * Call at the top level of the file; read the log through the returned object.
 */
export function captureActionLog(done: () => Promise<void> | void): { text: string } {
  const log = { text: '' };
  beforeAll(() => {
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      log.text += chunk.toString();
      return true;
    });
  });
  afterEach(() => {
    process.exitCode = 0;
  });
  afterAll(async () => {
    vi.restoreAllMocks();
    await done();
  });
  return log;
}
