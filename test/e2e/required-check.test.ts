/**
 * The required check: the commit status `distill-gate` on a PR's head commit, set only by the
 * trusted job. Every kind of event ends with exactly one final status on the head commit, after
 * its pending one, with the state the gate deserves; nothing the untrusted half uploads turns it
 * green when the trusted config's gates fail. The action runs in-process against the loopback
 * GitHub (no training: skips, uploads, merges), so the whole file takes seconds; the runs that
 * distil or are cancelled are checked in action.test.ts on the bundle.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { exampleWorkspace, quickConfig } from '../helpers.js';
import { failingSizeGate, sampleReport } from '../sample-report.js';
import { FakeGitHub } from './github-server.js';
import { EVENTS, parseOutputs } from './runner-env.js';

const api = await new FakeGitHub().start();
const runnerDir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-required-'));
const files = { summary: path.join(runnerDir, 'summary.md'), output: path.join(runnerDir, 'output') };
Object.assign(process.env, {
  GITHUB_API_URL: api.url,
  GITHUB_REPOSITORY: 'acme/models',
  GITHUB_EVENT_NAME: 'pull_request',
  GITHUB_EVENT_PATH: path.join(EVENTS, 'pull_request.json'),
  GITHUB_STEP_SUMMARY: files.summary,
  GITHUB_OUTPUT: files.output,
  GITHUB_SERVER_URL: 'https://github.test',
  GITHUB_RUN_ID: '42',
});
const github = await import('@actions/github');
const { run } = await import('../../src/action/run.js');
const context = github.context as unknown as { eventName: string; payload: Record<string, unknown>; sha: string };

let printed = '';
beforeAll(() => {
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    printed += chunk.toString();
    return true;
  });
});
afterEach(() => {
  process.exitCode = 0;
});
afterAll(async () => {
  vi.restoreAllMocks();
  await api.stop();
});

const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', '-c', 'init.defaultBranch=main', ...args], { cwd, encoding: 'utf8' }).trim();

/** A PR's checkout of the example: the base commit, and a head commit that changes the README or the teacher's weights. */
async function checkout(change: 'readme' | 'teacher', config = quickConfig()) {
  const dir = await exampleWorkspace(config);
  git(dir, 'init', '-q');
  git(dir, 'add', '.');
  git(dir, 'commit', '-q', '-m', 'base');
  const base = git(dir, 'rev-parse', 'HEAD');
  if (change === 'readme') await writeFile(path.join(dir, 'README.md'), 'docs only\n');
  else {
    const shard = path.join(dir, 'models/teacher/group1-shard1of1.bin');
    const bytes = await readFile(shard);
    bytes[0] ^= 0xff;
    await writeFile(shard, bytes);
  }
  git(dir, 'add', '-A');
  git(dir, 'commit', '-q', '-m', 'head');
  return { dir, base, head: git(dir, 'rev-parse', 'HEAD') };
}

const pullRequest = (head: string, base: string, repository = 'acme/models') => ({
  pull_request: { number: 7, head: { sha: head, repo: { full_name: repository } }, base: { ref: 'main', sha: base } },
  repository: { full_name: 'acme/models', default_branch: 'main' },
});

const HEAD = 'c0ffee'.padEnd(40, '0');
const workflowRun = (conclusion = 'success') => ({
  workflow_run: { head_sha: HEAD, pull_requests: [], conclusion, event: 'pull_request', head_repository: { full_name: 'someone/models' } },
  repository: { full_name: 'acme/models', default_branch: 'main' },
});

/** Runs the action in-process as the runner would for `event`, with these inputs, in `workspace`. */
async function act(event: string, payload: Record<string, unknown>, inputs: Record<string, string>, workspace: string) {
  for (const key of Object.keys(process.env)) if (key.startsWith('INPUT_')) delete process.env[key];
  Object.assign(process.env, {
    GITHUB_WORKSPACE: workspace,
    'INPUT_GITHUB-TOKEN': 'ghs_required_check',
    'INPUT_BASELINE-BRANCH': 'false',
    ...Object.fromEntries(Object.entries(inputs).map(([name, value]) => [`INPUT_${name.toUpperCase()}`, value])),
  });
  Object.assign(context, { eventName: event, payload, sha: 'f'.repeat(40) });
  await writeFile(files.summary, '');
  await writeFile(files.output, '');
  printed = '';
  process.exitCode = 0;
  await run({ minTimeoutMs: 1, maxRetryTimeMs: 1000, retries: 1 });
  return {
    printed,
    exitCode: process.exitCode ?? 0,
    summary: await readFile(files.summary, 'utf8'),
    outputs: parseOutputs(await readFile(files.output, 'utf8')),
  };
}

/** The statuses set on `sha`; the first is pending and exactly one after it is final, which is returned. */
function oneFinalStatus(sha: string) {
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

function reset() {
  api.clearFaults();
  api.statuses = [];
  api.comments = [];
  api.pulls = [{ number: 7, state: 'open', head: { sha: HEAD } }];
  api.pullFiles = new Map();
  api.labelsOn = new Map();
  api.labelEvents = [];
}

describe('a same-repository PR', () => {
  it('that changes no file the gate looks at passes as skipped, without distilling; an existing report comment is brought up to date, none is added', async () => {
    reset();
    const { dir, base, head } = await checkout('readme');
    const result = await act('pull_request', pullRequest(head, base), {}, dir);
    expect(result.exitCode).toBe(0);
    const final = oneFinalStatus(head);
    expect(final).toMatchObject({ state: 'success', description: `teacher, student, data and config unchanged since ${base.slice(0, 12)}: gate skipped` });
    expect(result.outputs).toMatchObject({ verdict: 'pass', changed: 'false' });
    expect(result.summary).toContain('gate skipped');
    expect(api.comments).toEqual([]);
    await expect(readFile(path.join(dir, 'distill-report/report.json'))).rejects.toThrow(/ENOENT/);

    // A later push reverted the model change that an earlier run commented on: that comment says so now.
    reset();
    const ours = api.plantComment(7, '<!-- distill-gate:distill-gate.yml -->\n## ❌ distill-gate: fail', { login: 'github-actions[bot]', type: 'Bot' });
    await act('pull_request', pullRequest(head, base), {}, dir);
    expect(api.comments).toHaveLength(1);
    expect(ours.body).toContain('gate skipped');
  });

  it('mode changes in front of a GPU job: skipped passes at once, a relevant change stays pending for the GPU job and lists the files', async () => {
    reset();
    const unrelated = await checkout('readme');
    const skippedRun = await act('pull_request', pullRequest(unrelated.head, unrelated.base), { mode: 'changes' }, unrelated.dir);
    expect(oneFinalStatus(unrelated.head).state).toBe('success');
    expect(skippedRun.outputs.changed).toBe('false');

    const relevant = await checkout('teacher');
    const gated = await act('pull_request', pullRequest(relevant.head, relevant.base), { mode: 'changes' }, relevant.dir);
    expect(gated.exitCode).toBe(0);
    expect(gated.outputs).toMatchObject({ changed: 'true', 'changed-files': 'models/teacher/group1-shard1of1.bin', verdict: '' });
    const set = api.statuses.filter((s) => s.sha === relevant.head);
    expect(set.map((s) => s.state)).toEqual(['pending', 'pending']);
    expect(set[1].description).toBe(`1 relevant file changed since ${relevant.base.slice(0, 12)}: the gate runs`);
  });

  it('paths names what counts beyond the config: a change to a listed folder is relevant, and ** always distils', async () => {
    reset();
    const { dir, base, head } = await checkout('readme');
    const listed = await act('pull_request', pullRequest(head, base), { mode: 'changes', paths: 'auto\nREADME.md' }, dir);
    expect(listed.outputs).toMatchObject({ changed: 'true', 'changed-files': 'README.md' });
    const everything = await act('pull_request', pullRequest(head, base), { mode: 'changes', paths: '**' }, dir);
    expect(everything.outputs.changed).toBe('true');
  });

  it('a config that cannot be read fails the step and ends the status in error, never leaving it pending', async () => {
    reset();
    const { dir, base, head } = await checkout('teacher', 'teacher: [');
    const result = await act('pull_request', pullRequest(head, base), {}, dir);
    expect(result.exitCode).toBe(1);
    expect(oneFinalStatus(head)).toMatchObject({ state: 'error', description: expect.stringMatching(/^could not run: .*distill-gate\.yml/) });
  });

  it('status-name false sets none; a token that may not set statuses warns naming statuses: write, and the verdict still decides', async () => {
    reset();
    const { dir, base, head } = await checkout('readme');
    await act('pull_request', pullRequest(head, base), { 'status-name': 'false' }, dir);
    expect(api.statuses).toEqual([]);
    api.fail('POST', /\/statuses\//, 403, 99);
    const refused = await act('pull_request', pullRequest(head, base), {}, dir);
    expect(refused.exitCode).toBe(0);
    expect(refused.printed).toMatch(/::warning::Setting the commit status distill-gate \(success\) on [0-9a-f]{12} failed: HTTP 403.*statuses: write/);
  });
});

describe("a fork's PR", () => {
  it('its own pull_request run sets no status (its token is read-only) and says which job does', async () => {
    reset();
    const { dir, base, head } = await checkout('readme');
    const result = await act('pull_request', pullRequest(head, base, 'someone/models'), {}, dir);
    expect(api.statuses).toEqual([]);
    expect(result.printed).toMatch(/no commit status distill-gate: this is a fork's pull request.*mode report/);
  });

  /** The trusted workflow_run job: the default branch's config, the fork's upload in a folder of its own. */
  async function trustedJob(options: { gates?: string; upload?: object; files?: string[] }) {
    const dir = await exampleWorkspace(quickConfig({ gates: options.gates }));
    await mkdir(path.join(dir, 'upload'));
    if (options.upload) await writeFile(path.join(dir, 'upload/report.json'), JSON.stringify(options.upload));
    api.pullFiles.set(7, { files: options.files ?? ['models/teacher/group1-shard1of1.bin'], baseSha: 'b'.repeat(40) });
    return dir;
  }
  const reportInputs = { mode: 'report', report: 'upload/report.json', config: 'distill-gate.yml' };

  it('a forged upload claiming pass fails when the trusted config fails it: one failure on the head commit', async () => {
    reset();
    const dir = await trustedJob({ gates: '  size.ratio: "<= 0.01"', upload: sampleReport({ verdict: 'pass', gates: [] }) });
    const result = await act('workflow_run', workflowRun(), reportInputs, dir);
    expect(result.exitCode).toBe(1);
    expect(oneFinalStatus(HEAD)).toMatchObject({ state: 'failure', description: 'fail: size.ratio 0.05 (<= 0.01)' });
  });

  it('a PR that changes no relevant file passes as skipped whatever the upload says, from the files GitHub lists', async () => {
    reset();
    const dir = await trustedJob({ upload: sampleReport({ verdict: 'fail', gates: [failingSizeGate] }), files: ['README.md', 'src/app.ts'] });
    const result = await act('workflow_run', workflowRun(), reportInputs, dir);
    expect(result.exitCode).toBe(0);
    expect(oneFinalStatus(HEAD)).toMatchObject({
      state: 'success',
      description: expect.stringMatching(/^teacher, student, data and config unchanged since b{12}: gate skipped$/),
    });
  });

  it('a relevant change whose run uploaded nothing (it crashed, or its workflow was edited) fails, naming how the run ended', async () => {
    reset();
    const dir = await trustedJob({});
    const result = await act('workflow_run', workflowRun('failure'), reportInputs, dir);
    expect(result.exitCode).toBe(1);
    expect(oneFinalStatus(HEAD)).toMatchObject({
      state: 'failure',
      description: expect.stringMatching(/^no report\.json was uploaded by the pull request's run \(it ended: failure\)/),
    });
    expect(api.comments).toHaveLength(1);
    expect(api.comments[0].body).toContain('models/teacher/group1-shard1of1.bin');
  });

  it('the accept label, read live, turns a regression against the baseline input into success; without it, failure', async () => {
    const gates = '  agreement.top1: { maxDrop: 0.01 }';
    const upload = sampleReport({ metrics: { ...sampleReport().metrics, 'agreement.top1': 0.9 }, gates: [] });
    reset();
    const dir = await trustedJob({ gates, upload });
    await writeFile(path.join(dir, 'baseline.json'), JSON.stringify(sampleReport()));
    const inputs = { ...reportInputs, baseline: 'baseline.json' };
    await act('workflow_run', workflowRun(), inputs, dir);
    expect(oneFinalStatus(HEAD)).toMatchObject({ state: 'failure', description: 'fail: agreement.top1 0.9 (drop <= 0.01)' });
    reset();
    api.labelsOn.set(7, ['distill-gate:accept-regression']);
    api.pullFiles.set(7, { files: ['models/teacher/model.json'], baseSha: 'b'.repeat(40) });
    const accepted = await act('workflow_run', workflowRun(), inputs, dir);
    expect(accepted.exitCode).toBe(0);
    expect(oneFinalStatus(HEAD).state).toBe('success');
  });
});

describe('a matrix merged on a same-repository PR', () => {
  it('a leg that uploaded nothing fails the status', async () => {
    reset();
    const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-merge-'));
    await mkdir(path.join(dir, 'reports/distill-report-tiny'), { recursive: true });
    await writeFile(path.join(dir, 'reports/distill-report-tiny/report.json'), JSON.stringify(sampleReport({ config: '/repo/distill-gate-tiny.yml' })));
    const result = await act(
      'pull_request',
      pullRequest(HEAD, 'b'.repeat(40)),
      { mode: 'merge', reports: 'reports/*/report.json', expect: 'distill-report-tiny distill-report-small' },
      dir,
    );
    expect(result.exitCode).toBe(1);
    expect(oneFinalStatus(HEAD).state).toBe('failure');
  });
});
