/**
 * The required check: the commit status `distill-gate` on a PR's head commit, set only by the
 * trusted job. Every kind of event ends with exactly one final status on the head commit, after
 * its pending one, with the state the gate deserves; nothing the untrusted half uploads turns it
 * green when the trusted config's gates fail. The action runs in-process against the loopback
 * GitHub (no training: skips, uploads, merges), so the whole file takes seconds; the runs that
 * distil or are cancelled are checked in action.test.ts on the bundle.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { EventEmitter } from 'node:events';
import { chmod, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { exampleWorkspace, quickConfig } from '../helpers.js';
import { failingSizeGate, sampleReport } from '../sample-report.js';
import { HEAD, inProcessAction } from './in-process-action.js';
import { RUNNER_GRACE_MS, type SignalSource } from '../../src/run-control.js';

const { api, act, reset, oneFinalStatus } = await inProcessAction(
  'pull_request',
  'distill-gate-required-',
  'ghs_required_check',
);

const git = (cwd: string, ...args: string[]) =>
  execFileSync(
    'git',
    ['-c', 'user.name=t', '-c', 'user.email=t@example.com', '-c', 'init.defaultBranch=main', ...args],
    { cwd, encoding: 'utf8' },
  ).trim();

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

const workflowRun = (conclusion = 'success') => ({
  workflow_run: {
    head_sha: HEAD,
    pull_requests: [],
    conclusion,
    event: 'pull_request',
    head_repository: { full_name: 'someone/models' },
  },
  repository: { full_name: 'acme/models', default_branch: 'main' },
});

/** Runs the action in-process as the runner would for `event`, with these inputs, in `workspace`. */

describe('a same-repository PR', () => {
  it('that changes no file the gate looks at passes as skipped, without distilling; an existing report comment is brought up to date, none is added', async () => {
    reset();
    const { dir, base, head } = await checkout('readme');
    const result = await act('pull_request', pullRequest(head, base), {}, dir);
    expect(result.exitCode).toBe(0);
    const final = oneFinalStatus(head);
    expect(final).toMatchObject({
      state: 'success',
      description: `teacher, student, data and config unchanged since ${base.slice(0, 12)}: gate skipped`,
    });
    expect(result.outputs).toMatchObject({ verdict: 'pass', changed: 'false' });
    expect(result.summary).toContain('gate skipped');
    expect(api.comments).toEqual([]);
    await expect(readFile(path.join(dir, 'distill-report/report.json'))).rejects.toThrow(/ENOENT/);

    // A later push reverted the model change that an earlier run commented on: that comment says so now.
    reset();
    const ours = api.plantComment(7, '<!-- distill-gate:distill-gate.yml -->\n## ❌ distill-gate: fail', {
      login: 'github-actions[bot]',
      type: 'Bot',
    });
    await act('pull_request', pullRequest(head, base), {}, dir);
    expect(api.comments).toHaveLength(1);
    expect(ours.body).toContain('gate skipped');
  });

  it('mode changes in front of a GPU job: skipped passes at once, a relevant change stays pending for the GPU job and lists the files', async () => {
    reset();
    const unrelated = await checkout('readme');
    const skippedRun = await act(
      'pull_request',
      pullRequest(unrelated.head, unrelated.base),
      { mode: 'changes' },
      unrelated.dir,
    );
    expect(oneFinalStatus(unrelated.head).state).toBe('success');
    expect(skippedRun.outputs.changed).toBe('false');

    const relevant = await checkout('teacher');
    const gated = await act(
      'pull_request',
      pullRequest(relevant.head, relevant.base),
      { mode: 'changes' },
      relevant.dir,
    );
    expect(gated.exitCode).toBe(0);
    expect(gated.outputs).toMatchObject({
      changed: 'true',
      'changed-files': 'models/teacher/group1-shard1of1.bin',
      verdict: '',
    });
    const set = api.statuses.filter((s) => s.sha === relevant.head);
    expect(set.map((s) => s.state)).toEqual(['pending', 'pending']);
    expect(set[1].description).toBe(`1 relevant file changed since ${relevant.base.slice(0, 12)}: the gate runs`);
  });

  it('paths names what counts beyond the config: a change to a listed folder is relevant, and ** always distils', async () => {
    reset();
    const { dir, base, head } = await checkout('readme');
    const listed = await act(
      'pull_request',
      pullRequest(head, base),
      { mode: 'changes', paths: 'auto\nREADME.md' },
      dir,
    );
    expect(listed.outputs).toMatchObject({ changed: 'true', 'changed-files': 'README.md' });
    const everything = await act('pull_request', pullRequest(head, base), { mode: 'changes', paths: '**' }, dir);
    expect(everything.outputs.changed).toBe('true');
  });

  it("a checkout that is not the PR's (pull_request_target checks out the base) never passes as skipped: the gate runs", async () => {
    reset();
    const { dir, base } = await checkout('readme');
    const elsewhere = 'e'.repeat(40);
    const result = await act('pull_request_target', pullRequest(elsewhere, base), { mode: 'changes' }, dir);
    expect(result.outputs.changed).toBe('true');
    expect(result.printed).toMatch(
      /the changed files could not be read \(the checkout \([0-9a-f]{12}\) is neither the pull request's head commit e{12} nor its merge commit\)/,
    );
    expect(api.statuses.filter((st) => st.sha === elsewhere).map((st) => st.state)).toEqual(['pending', 'pending']);
  });

  it('mode changes with no config for `paths: auto` knows no relevant file: the gate runs rather than passing as skipped', async () => {
    reset();
    const { dir, base, head } = await checkout('readme');
    const result = await act(
      'pull_request',
      pullRequest(head, base),
      { mode: 'changes', config: 'elsewhere.yml' },
      dir,
    );
    expect(result.outputs.changed).toBe('true');
    expect(result.printed).toMatch(
      /no relevant files are known: `paths: auto` needs the config, and there is none at .*elsewhere\.yml/,
    );
  });

  it('a config that cannot be read fails the step and ends the status in error, never leaving it pending', async () => {
    reset();
    const { dir, base, head } = await checkout('teacher', 'teacher: [');
    const result = await act('pull_request', pullRequest(head, base), {}, dir);
    expect(result.exitCode).toBe(1);
    expect(oneFinalStatus(head)).toMatchObject({
      state: 'error',
      description: expect.stringMatching(/^could not run: .*distill-gate\.yml/),
    });
  });

  it('status-name false sets none; a token that may not set statuses warns naming statuses: write, and the verdict still decides', async () => {
    reset();
    const { dir, base, head } = await checkout('readme');
    await act('pull_request', pullRequest(head, base), { 'status-name': 'false' }, dir);
    expect(api.statuses).toEqual([]);
    api.fail('POST', /\/statuses\//, 403, 99);
    const refused = await act('pull_request', pullRequest(head, base), {}, dir);
    expect(refused.exitCode).toBe(0);
    expect(refused.printed).toMatch(
      /::warning::Setting the commit status distill-gate \(success\) on [0-9a-f]{12} failed: HTTP 403.*statuses: write/,
    );
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
    const dir = await trustedJob({
      gates: '  size.ratio: "<= 0.01"',
      upload: sampleReport({ verdict: 'pass', gates: [] }),
    });
    const result = await act('workflow_run', workflowRun(), reportInputs, dir);
    expect(result.exitCode).toBe(1);
    expect(oneFinalStatus(HEAD)).toMatchObject({ state: 'failure', description: 'fail: size.ratio 0.05 (<= 0.01)' });
  });

  it('a PR that changes no relevant file passes as skipped whatever the upload says, from the files GitHub lists', async () => {
    reset();
    const dir = await trustedJob({
      upload: sampleReport({ verdict: 'fail', gates: [failingSizeGate] }),
      files: ['README.md', 'src/app.ts'],
    });
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
      description: expect.stringMatching(
        /^no report\.json was uploaded by the pull request's run \(it ended: failure\)/,
      ),
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
    expect(oneFinalStatus(HEAD)).toMatchObject({
      state: 'failure',
      description: 'fail: agreement.top1 0.9 (drop <= 0.01)',
    });
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
    await writeFile(
      path.join(dir, 'reports/distill-report-tiny/report.json'),
      JSON.stringify(sampleReport({ config: '/repo/distill-gate-tiny.yml' })),
    );
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

describe('everything before the pipeline runs under the run clock', () => {
  /** Runs the action and cancels it like the runner (SIGINT) as soon as `ready` holds; says how long it took after that. */
  async function cancelledWhen(
    ready: () => boolean,
    event: string,
    payload: Record<string, unknown>,
    inputs: Record<string, string>,
    dir: string,
  ) {
    const signals = new EventEmitter();
    let cancelledAt = 0;
    const poll = setInterval(() => {
      if (cancelledAt || !ready()) return;
      cancelledAt = performance.now();
      signals.emit('SIGINT', 'SIGINT');
    }, 20);
    try {
      const result = await act(event, payload, inputs, dir, signals as SignalSource);
      return { ...result, cancelled: cancelledAt > 0, afterCancelMs: performance.now() - cancelledAt };
    } finally {
      clearInterval(poll);
    }
  }

  const incompleteReport = async (dir: string) =>
    JSON.parse(await readFile(path.join(dir, 'distill-report/report.json'), 'utf8')) as {
      status: string;
      verdict: string;
    };

  it('a baseline store that never answers: a cancel ends the run inside the grace, with its report and the status in error', async () => {
    reset();
    const { dir, base, head } = await checkout('teacher');
    api.hang('GET', /\/(contents|git)\//, 99);
    const storeAsked = () => api.requests.some((r) => /\/(contents|git)\//.test(r.path));
    const result = await cancelledWhen(
      storeAsked,
      'pull_request',
      pullRequest(head, base),
      { 'baseline-branch': 'distill-gate-data' },
      dir,
    );
    expect(result.cancelled).toBe(true);
    expect(result.afterCancelMs).toBeLessThan(RUNNER_GRACE_MS);
    expect(result.printed).toMatch(
      /::warning::Reading the baseline from branch distill-gate-data failed: .*was stopped: the job was cancelled \(SIGINT\)/,
    );
    expect(await incompleteReport(dir)).toMatchObject({ status: 'incomplete', verdict: 'fail' });
    expect(result.summary).toContain('distill-gate: fail');
    expect(oneFinalStatus(head)).toMatchObject({ state: 'error' });
  });

  it('the budget bounds it too: a store that never answers leaves relative gates skipped, and the run ends in its budget', async () => {
    reset();
    const { dir, base, head } = await checkout('teacher');
    api.hang('GET', /\/(contents|git)\//, 99);
    const started = performance.now();
    const result = await act(
      'pull_request',
      pullRequest(head, base),
      { 'baseline-branch': 'distill-gate-data', budget: '0.05' },
      dir,
    );
    // 3 s of budget; the store's deadline alone would be minutes.
    expect(performance.now() - started).toBeLessThan(20_000);
    expect(result.printed).toMatch(
      /reading the baseline store distill-gate-data was stopped: the time budget of 0\.05 min/,
    );
    expect(await incompleteReport(dir)).toMatchObject({ status: 'incomplete' });
    expect(oneFinalStatus(head).state).toBe('error');
  });

  it('a git fetch of the base commit that hangs is killed on cancel: the run reports, and no git is left behind', async () => {
    reset();
    const { dir, head } = await checkout('teacher');
    // A git whose fetch never ends (a remote that stops answering); every other command is git's own.
    const bin = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-fake-git-'));
    const realGit = execFileSync('sh', ['-c', 'command -v git'], { encoding: 'utf8' }).trim();
    // The fetch writes its own pid (the shell's, which exec hands to sleep) so the test watches that process, no other.
    const pidFile = path.join(bin, 'fetch.pid');
    await writeFile(
      path.join(bin, 'git'),
      `#!/bin/sh\nfor a in "$@"; do [ "$a" = fetch ] && echo $$ > '${pidFile}' && exec sleep 300; done\nexec ${realGit} "$@"\n`,
    );
    await chmod(path.join(bin, 'git'), 0o755);
    const savedPath = process.env.PATH;
    process.env.PATH = `${bin}:${savedPath}`;
    try {
      const missingBase = 'd'.repeat(40);
      const fetchPid = () => (existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : undefined);
      const alive = (pid: number) => {
        try {
          process.kill(pid, 0);
          return true;
        } catch {
          return false;
        }
      };
      const fetching = () => fetchPid() !== undefined && alive(fetchPid()!);
      const result = await cancelledWhen(fetching, 'pull_request', pullRequest(head, missingBase), {}, dir);
      expect(result.cancelled).toBe(true);
      expect(result.afterCancelMs).toBeLessThan(RUNNER_GRACE_MS);
      expect(result.printed).toMatch(
        /the changed files could not be read \(git fetch was stopped: the job was cancelled \(SIGINT\)\), so the gate runs/,
      );
      expect(await incompleteReport(dir)).toMatchObject({ status: 'incomplete' });
      expect(oneFinalStatus(head).state).toBe('error');
      expect(fetching()).toBe(false);
    } finally {
      process.env.PATH = savedPath;
    }
  });
});
