import { execFile, execFileSync, spawn } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rename, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RUNNER_GRACE_MS } from '../../src/run-control.js';
import { exampleWorkspace, quickConfig, slowTeacherWorkspace } from '../helpers.js';
import { FakeGitHub } from './github-server.js';
import { EVENTS, parseOutputs, runnerEnvironment } from './runner-env.js';
import { seededRandom } from '../../src/distill/random.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BUNDLE = path.join(ROOT, 'dist/index.js');
const TOKEN = 'ghs_test_token_0123456789abcdef';

let api: FakeGitHub;
beforeAll(async () => {
  api = await new FakeGitHub().start();
});
afterAll(async () => api.stop());

interface RunResult {
  code: number;
  stdout: string;
  outputs: Record<string, string>;
  summary: string;
  workspace: string;
}

const REFS: Record<string, string> = {
  pull_request: 'refs/pull/7/merge',
  push: 'refs/heads/main',
  schedule: 'refs/heads/main',
  release: 'refs/tags/v1.2.0',
  workflow_run: 'refs/heads/main',
};

/** Runs the built bundle the way the runner does: node, INPUT_* variables and the GITHUB_* files. */
async function runAction(
  event: string,
  inputs: Record<string, string>,
  workspace?: string,
  eventFile = `${event}.json`,
): Promise<RunResult> {
  const runner = await runnerFor(event, inputs, workspace, eventFile);
  const result = await promisify(execFile)(process.execPath, [BUNDLE], {
    cwd: runner.dir,
    env: runner.env,
    maxBuffer: 16 << 20,
  }).then(
    ({ stdout }) => ({ code: 0, stdout }),
    (error: { code: number; stdout: string }) => ({ code: error.code, stdout: error.stdout }),
  );
  return { ...result, ...(await runner.collect()) };
}

/** The environment and files a runner gives the step, and what it reads back afterwards. */
async function runnerFor(
  event: string,
  inputs: Record<string, string>,
  workspace?: string,
  eventFile = `${event}.json`,
) {
  const dir = workspace ?? (await exampleWorkspace(quickConfig()));
  const runnerFiles = path.join(dir, '.runner');
  await mkdir(runnerFiles, { recursive: true });
  const outputFile = path.join(runnerFiles, 'output');
  const summaryFile = path.join(runnerFiles, 'summary');
  await writeFile(outputFile, '');
  await writeFile(summaryFile, '');
  const env = runnerEnvironment(
    {
      workspace: dir,
      event,
      eventFile,
      ref: REFS[event] ?? 'refs/heads/main',
      apiUrl: api.url,
      outputFile,
      summaryFile,
    },
    {
      config: 'distill-gate.yml',
      'github-token': TOKEN,
      comment: 'true',
      'fail-on-gate': 'true',
      backend: 'auto',
      ...inputs,
    },
  );
  const collect = async () => ({
    outputs: parseOutputs(await readFile(outputFile, 'utf8')),
    summary: await readFile(summaryFile, 'utf8'),
    workspace: dir,
  });
  return { dir, env, collect };
}

const commentsOn = (pr: number) => api.comments.filter((c) => c.issue_number === pr);

let released: Promise<RunResult & { commented: number }> | undefined;
/**
 * One run on release with the quick config, shared: the release case asserts on it, and the mode
 * report and merge cases take its report as an earlier run's upload (each from a copy of its
 * workspace, releasedCopy). `commented` counts the comments the run posted.
 */
function releaseRun() {
  released ??= (async () => {
    const before = api.comments.length;
    const run = await runAction('release', {});
    return { ...run, commented: api.comments.length - before };
  })();
  return released;
}

/** A scratch copy of the shared release run's workspace, its report in distill-report/. */
async function releasedCopy(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-released-'));
  await cp((await releaseRun()).workspace, dir, { recursive: true });
  return dir;
}

/**
 * Runs the bundle and cancels it exactly as the runner cancels a job: SIGINT once `trigger`
 * appears in its output, SIGTERM `graceMs` later (7.5 s on the runner) and SIGKILL 2.5 s after
 * that, each only if the process is still alive. `graceMs: 'once-seen'` sends the SIGTERM as soon
 * as the action has logged that it handled the SIGINT: two signals sent back to back may reach
 * Node's handlers in either order, which would make the test about the OS, not about us.
 */
async function cancelLikeRunner(
  runner: Awaited<ReturnType<typeof runnerFor>>,
  trigger: RegExp,
  graceMs: number | 'once-seen' = RUNNER_GRACE_MS,
) {
  const child = spawn(process.execPath, [BUNDLE], {
    cwd: runner.dir,
    env: runner.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const signalsSent: string[] = [];
  const timers: NodeJS.Timeout[] = [];
  let cancelledAt = 0;
  let stdout = '';
  const send = (signal: NodeJS.Signals) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    signalsSent.push(signal);
    child.kill(signal);
  };
  const grace = graceMs === 'once-seen' ? RUNNER_GRACE_MS : graceMs;
  child.stdout.on('data', (chunk) => {
    stdout += chunk;
    if (cancelledAt === 0 && trigger.test(stdout)) {
      cancelledAt = performance.now();
      send('SIGINT');
      timers.push(setTimeout(() => send('SIGTERM'), grace));
      timers.push(setTimeout(() => send('SIGKILL'), grace + 2500));
    }
    if (graceMs === 'once-seen' && !signalsSent.includes('SIGTERM') && /cancel: received SIGINT:/.test(stdout))
      send('SIGTERM');
  });
  const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const afterCancelMs = performance.now() - cancelledAt;
  for (const timer of timers) clearTimeout(timer);
  return { exit, stdout, signalsSent, afterCancelMs, ...(await runner.collect()) };
}

describe('the bundled action, run as the runner runs it', () => {
  it('posts one sticky comment on a PR, then updates that same comment on the next run', async () => {
    api.comments = [];
    api.statuses = [];
    // 140 older comments make the listing span two pages of 100: the marker must be found on any page.
    for (let i = 0; i < 140; i++) api.comments.push({ id: i + 1, body: `chatter ${i}`, issue_number: 7, html_url: '' });
    const first = await runAction('pull_request', {});
    expect(first.code).toBe(0);
    const ours = commentsOn(7).filter((c) => c.body.startsWith('<!-- distill-gate:distill-gate.yml -->'));
    expect(ours).toHaveLength(1);
    expect(ours[0].body).toContain('## ✅ distill-gate: pass');
    expect(first.outputs.verdict).toBe('pass');
    expect(first.outputs['comment-url']).toBe(ours[0].html_url);
    expect(Number(first.outputs.agreement)).toBeGreaterThan(0.5);
    expect(Number(first.outputs['size-ratio'])).toBeLessThan(0.1);
    expect(first.outputs['report-path']).toBe(path.join(first.workspace, 'distill-report/report.json'));
    expect(first.summary).toContain('## ✅ distill-gate: pass');
    expect(first.stdout).toContain('backend: using wasm (bundled)');
    // The required check: the commit status on the PR's head commit, pending and then the verdict.
    expect(api.statuses.map((st) => [st.sha, st.context, st.state])).toEqual([
      ['abc123', 'distill-gate', 'pending'],
      ['abc123', 'distill-gate', 'success'],
    ]);

    const second = await runAction('pull_request', {}, first.workspace);
    expect(second.code).toBe(0);
    const after = commentsOn(7).filter((c) => c.body.startsWith('<!-- distill-gate:'));
    expect(after).toHaveLength(1);
    expect(after[0].id).toBe(ours[0].id);
    expect(second.stdout).toContain('updated the report comment');
  });

  it('shows where the student disagrees, what the PR changed in the teacher (from git at the base commit) and the student as shipped', async () => {
    api.comments = [];
    const gates = [
      'agreement.top1: ">= 0.5"',
      'agreement.minClass: ">= 0"',
      'quantized.agreement.top1: ">= 0.5"',
      'teacherDiff.agreement: ">= 0"',
    ];
    const dir = await exampleWorkspace(
      quickConfig({ top: 'export: { quantize: uint8 }', gates: gates.map((g) => `  ${g}`).join('\n') }),
    );
    // The workspace as a PR's checkout: the base commit has the example's teacher, the head moves
    // its last bias (the shard's last 10 floats) towards class 2.
    const git = (...args: string[]) =>
      execFileSync(
        'git',
        ['-c', 'user.name=t', '-c', 'user.email=t@example.com', '-c', 'init.defaultBranch=main', ...args],
        {
          cwd: dir,
          encoding: 'utf8',
        },
      ).trim();
    git('init', '-q');
    git('add', '.');
    git('commit', '-q', '-m', 'base');
    const base = git('rev-parse', 'HEAD');
    const shardFile = path.join(dir, 'models/teacher/group1-shard1of1.bin');
    const shard = await readFile(shardFile);
    const at = shard.length - 40 + 2 * 4;
    shard.writeFloatLE(shard.readFloatLE(at) + 3, at);
    await writeFile(shardFile, shard);
    git('commit', '-q', '-am', 'head: a new teacher');
    const event = JSON.parse(await readFile(path.join(EVENTS, 'pull_request.json'), 'utf8'));
    event.pull_request.base.sha = base;
    const eventFile = path.join(dir, '.event.json');
    await writeFile(eventFile, JSON.stringify(event));
    const run = await runAction('pull_request', {}, dir, path.relative(EVENTS, eventFile));
    expect(run.code).toBe(0);
    const body = commentsOn(7)[0].body;
    // Every gate passed: the new sections are there, folded.
    expect(body).toContain('<summary><b>Per-class agreement</b>: worst class');
    expect(body).toMatch(/```mermaid\nxychart-beta\n {2}title "Top-1 agreement by teacher's class/);
    expect(body).toMatch(/\| `quantized\.agreement\.top1` +\|/);
    expect(body).toContain(`<summary><b>Teacher change</b>: agreement with the base teacher`);
    expect(body).toContain(`git: models/teacher/model.json at ${base.slice(0, 12)} \\(the base of the pull request\\)`);
    expect(body).toContain('<summary><b>Shipped student</b>: uint8');
    const report = JSON.parse(await readFile(path.join(dir, 'distill-report/report.json'), 'utf8'));
    expect(report.teacherDiff.status).toBe('compared');
    expect(report.metrics['teacherDiff.agreement']).toBeLessThan(1);
    expect(report.export).toEqual({ quantize: 'uint8', output: 'probabilities' });
  });

  it('keeps reports of two comment keys apart on one PR', async () => {
    api.comments = [];
    const dir = await exampleWorkspace(quickConfig());
    await runAction('pull_request', { 'comment-key': 'student-a' }, dir);
    await runAction('pull_request', { 'comment-key': 'student-b' }, dir);
    expect(
      commentsOn(7)
        .map((c) => c.body.split('\n')[0])
        .sort(),
    ).toEqual(['<!-- distill-gate:student-a -->', '<!-- distill-gate:student-b -->']);
  });

  it('fails the step with the failing gates and an error annotation each, still commenting', async () => {
    api.comments = [];
    const dir = await exampleWorkspace(quickConfig({ gates: '  size.ratio: "<= 0.0001"\n  agreement.top1: ">= 0.5"' }));
    const run = await runAction('pull_request', {}, dir);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(
      /::error title=distill-gate%3A size\.ratio failed::size\.ratio = [\d.e-]+, expected <= 0\.0001/,
    );
    expect(run.stdout).toMatch(/::error::distill-gate: failing gates: size\.ratio \(<= 0\.0001\)/);
    expect(run.outputs.verdict).toBe('fail');
    expect(commentsOn(7)[0].body).toContain('❌ distill-gate: fail');
  });

  it('with fail-on-gate false, a failing gate warns and the step passes', async () => {
    const dir = await exampleWorkspace(quickConfig({ gates: '  size.ratio: "<= 0.0001"' }));
    const run = await runAction('pull_request', { 'fail-on-gate': 'false' }, dir);
    expect(run.code).toBe(0);
    expect(run.outputs.verdict).toBe('fail');
    expect(run.stdout).toMatch(/::warning::distill-gate: failing gates: size\.ratio.*fail-on-gate is false/);
  });

  it('a 403 leaves a warning with the fix, the summary and outputs, and the verdict decides the exit', async () => {
    api.comments = [];
    api.fail('GET', /\/issues\/7\/comments$/, 403);
    const run = await runAction('pull_request', {});
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(
      /::warning::Posting the PR comment failed: HTTP 403.*permissions: pull-requests: write.*workflow_run pattern/,
    );
    expect(run.summary).toContain('distill-gate: pass');
    expect(run.outputs.verdict).toBe('pass');
    expect(commentsOn(7)).toHaveLength(0);
  });

  it('retries a 500 and a 429 and then posts', async () => {
    api.comments = [];
    api.fail('GET', /\/issues\/7\/comments$/, 500);
    api.fail('POST', /\/issues\/7\/comments$/, 429, 1, { 'retry-after': '1' });
    const run = await runAction('pull_request', {});
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/listing PR comments: HTTP 500.*retrying/);
    expect(run.stdout).toMatch(/creating the report comment: HTTP 429.*retrying/);
    expect(commentsOn(7)).toHaveLength(1);
  });

  it('escapes hostile names from the PR in the rendered comment', async () => {
    api.comments = [];
    const dir = await exampleWorkspace();
    const hostile = 'x --> <script>alert(1)<img src=x onerror=alert(1)> @octocat `rm` |';
    await rename(path.join(dir, 'models/teacher'), path.join(dir, 'models', hostile));
    await writeFile(
      path.join(dir, 'distill-gate.yml'),
      quickConfig().replace('models/teacher/model.json', `"models/${hostile}/model.json"`),
    );
    const run = await runAction('pull_request', {}, dir);
    expect(run.code).toBe(0);
    const body = commentsOn(7)[0].body;
    // The only comment terminator is the marker's own, at the end of the first line.
    expect(body.match(/-->/g)).toHaveLength(1);
    expect(body.split('\n')[0]).toMatch(/-->$/);
    expect(body).not.toMatch(/<script|@octocat|`rm`/);
    expect(body).toContain('&lt;script&gt;');
    expect(run.summary).not.toMatch(/<script|@octocat/);
  });

  it('never prints the token', async () => {
    api.fail('GET', /\/issues\/7\/comments$/, 401);
    const run = await runAction('pull_request', {});
    expect(run.stdout).toMatch(/::warning::Posting the PR comment failed: HTTP 401/);
    // The runner consumes ::add-mask:: itself and masks the value everywhere after it.
    expect(run.stdout).toContain(`::add-mask::${TOKEN}`);
    const printed = run.stdout
      .split('\n')
      .filter((line) => !line.startsWith('::add-mask::'))
      .join('\n');
    expect(printed + run.summary + JSON.stringify(run.outputs)).not.toContain(TOKEN);
    expect(await readFile(path.join(run.workspace, 'distill-report/report.json'), 'utf8')).not.toContain(TOKEN);
    expect(api.requests.some((r) => r.authorization === `token ${TOKEN}`)).toBe(true);
  });

  it('on schedule: no comment, summary and outputs; opens a tracking issue on failure and closes it on pass', async () => {
    api.comments = [];
    api.issues = [];
    const failing = await exampleWorkspace(quickConfig({ gates: '  size.ratio: "<= 0.0001"' }));
    const nightly = await runAction('schedule', { 'issue-on-failure': 'true' }, failing);
    expect(nightly.code).toBe(1);
    expect(api.comments).toHaveLength(0);
    expect(api.issues).toHaveLength(1);
    expect(api.issues[0].labels).toEqual([{ name: 'distill-gate' }]);
    expect(api.issues[0].body).toContain('https://github.test/acme/models/actions/runs/42');
    await runAction('schedule', { 'issue-on-failure': 'true' }, failing);
    expect(api.issues).toHaveLength(1);
    const passing = await runAction('schedule', { 'issue-on-failure': 'true' });
    expect(passing.code).toBe(0);
    expect(api.issues[0].state).toBe('closed');
  });

  it('on release: a release gate with summary and outputs, no comment', async () => {
    const run = await releaseRun();
    expect(run.code).toBe(0);
    expect(run.outputs.verdict).toBe('pass');
    expect(run.summary).toContain('distill-gate: pass');
    expect(run.commented).toBe(0);
  });

  it("mode report: posts an earlier run's report.json on the PR found by head SHA (workflow_run)", async () => {
    api.comments = [];
    api.pulls = [{ number: 12, state: 'open', head: { sha: 'f0f0f0' } }];
    const run = await runAction(
      'workflow_run',
      { mode: 'report', report: 'distill-report/report.json' },
      await releasedCopy(),
    );
    expect(run.code).toBe(0);
    expect(run.stdout).not.toMatch(/epoch \d/);
    expect(commentsOn(12)).toHaveLength(1);
    expect(commentsOn(12)[0].body).toContain('distill-gate: pass');
  });

  it('an unwritable output-dir fails the step with a clear error, after posting the comment and summary', async () => {
    api.comments = [];
    const run = await runAction('pull_request', { 'output-dir': '/dev/null/distill-report' });
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(
      /::error::distill-gate: \/dev\/null\/distill-report: cannot write the report and student there \(ENOTDIR\)/,
    );
    expect(commentsOn(7)).toHaveLength(1);
    expect(run.summary).toContain('distill-gate: pass');
    expect(run.outputs.verdict).toBe('pass');
  });

  it('resolves optional backends installed in the workspace at run time: tfjs-node-gpu tried, WebGPU used', async () => {
    const dir = await exampleWorkspace(quickConfig());
    // A tfjs-node-gpu whose native library cannot load, as on a runner with CUDA 12 only.
    const fakeGpu = path.join(dir, 'node_modules/@tensorflow/tfjs-node-gpu');
    await mkdir(fakeGpu, { recursive: true });
    await writeFile(
      path.join(fakeGpu, 'package.json'),
      JSON.stringify({ name: '@tensorflow/tfjs-node-gpu', version: '4.22.0', main: 'index.js' }),
    );
    await writeFile(
      path.join(fakeGpu, 'index.js'),
      "throw new Error('libcudart.so.11.0: cannot open shared object file: No such file or directory');\n",
    );
    await symlink(path.join(ROOT, 'node_modules/webgpu'), path.join(dir, 'node_modules/webgpu'));
    const auto = await runAction('release', {}, dir);
    // One line: the package that is there but failed keeps its reason, the software adapter a word.
    expect(auto.stdout).toMatch(
      /backend: using wasm \(bundled\); passed over tensorflow-gpu \(did not load: libcudart\.so\.11\.0: cannot open shared object file.*\), webgpu \(only a software adapter\)/,
    );
    expect(auto.stdout).not.toMatch(/Couldn't load Vulkan|backend: skipped/);
    const named = await runAction('release', { backend: 'webgpu' }, dir);
    expect(named.stdout).toMatch(
      /backend: using webgpu \(.*node_modules\/webgpu\/index\.js \(.*via Dawn (opengles|vulkan)/,
    );
    expect(named.code).toBe(0);
  });

  it("cancelled by the runner during the teacher's pass: exits inside the 7.5 s grace with the report written, summarised and commented", async () => {
    api.comments = [];
    api.statuses = [];
    const dir = await slowTeacherWorkspace(
      quickConfig({ data: '  train: { x: data/train_x.npy }\n  eval:  { x: data/eval_x.npy }' }),
    );
    const run = await cancelLikeRunner(await runnerFor('pull_request', {}, dir), /teacher's pass: /);
    // It ended by itself after the SIGINT, before the runner had to send SIGTERM.
    expect(run.signalsSent).toEqual(['SIGINT']);
    expect(run.exit).toEqual({ code: 1, signal: null });
    expect(run.afterCancelMs).toBeLessThan(RUNNER_GRACE_MS);
    const report = JSON.parse(await readFile(path.join(dir, 'distill-report/report.json'), 'utf8'));
    expect([report.status, report.verdict]).toEqual(['incomplete', 'fail']);
    expect(report.reasons.join(' ')).toMatch(
      /the teacher's pass stopped after \d+ of \d+ (eval|training) rows, before training began: the job was cancelled \(SIGINT\)/,
    );
    expect(run.stdout).toMatch(/::error::distill-gate: /);
    expect(run.outputs.verdict).toBe('fail');
    expect(run.summary).toContain('distill-gate: fail');
    expect(commentsOn(7)).toHaveLength(1);
    // A cancelled gate is no verdict: the status ends in error, once, inside the grace.
    expect(api.statuses.map((st) => st.state)).toEqual(['pending', 'error']);
    expect(api.statuses[1].description).toMatch(
      /^incomplete: Training stopped after 0 of 3 epochs: the teacher's pass stopped/,
    );
  });

  it('cancelled by the runner mid-training: stops training, still measures, and publishes inside the grace', async () => {
    api.comments = [];
    const runner = await runnerFor(
      'pull_request',
      {},
      await exampleWorkspace(quickConfig({ distill: '{ epochs: 100000, batchSize: 64, seed: 7 }' })),
    );
    const run = await cancelLikeRunner(runner, /epoch 2\//);
    expect(run.signalsSent).toEqual(['SIGINT']);
    expect(run.exit).toEqual({ code: 1, signal: null });
    const report = JSON.parse(await readFile(path.join(runner.dir, 'distill-report/report.json'), 'utf8'));
    expect([report.status, report.verdict]).toEqual(['incomplete', 'fail']);
    expect(report.reasons.join(' ')).toMatch(
      /Training stopped after \d+ of 100000 epochs: the job was cancelled \(SIGINT\)/,
    );
    expect(report.metrics['agreement.top1']).toBeGreaterThan(0);
    expect(run.stdout).toMatch(
      /::warning title=distill-gate::Training stopped after \d+ of 100000 epochs: the job was cancelled \(SIGINT\)/,
    );
    expect(run.outputs.verdict).toBe('fail');
    expect(run.summary).toContain('distill-gate: fail');
    expect(commentsOn(7)).toHaveLength(1);
  });

  it('a second signal writes the report of what exists at once, and the step still fails with it', async () => {
    api.comments = [];
    const runner = await runnerFor(
      'pull_request',
      {},
      await exampleWorkspace(quickConfig({ distill: '{ epochs: 100000, batchSize: 64, seed: 7 }' })),
    );
    // SIGTERM right after the SIGINT was handled: the run has no time to finish measuring, so it is forced.
    const run = await cancelLikeRunner(runner, /epoch 2\//, 'once-seen');
    expect(run.stdout).toMatch(
      /cancel: received SIGINT: stopping .*\n(.*\n)*.*cancel: received SIGTERM again: writing the report/,
    );
    expect(run.signalsSent).toEqual(['SIGINT', 'SIGTERM']);
    expect(run.exit).toEqual({ code: 1, signal: null });
    const report = JSON.parse(await readFile(path.join(runner.dir, 'distill-report/report.json'), 'utf8'));
    expect([report.status, report.verdict]).toEqual(['incomplete', 'fail']);
    expect(report.reasons.join(' ')).toMatch(/The run was cut short while .*: the job was cancelled \(SIGTERM\) again/);
    expect(run.outputs.verdict).toBe('fail');
    expect(run.outputs['student-path']).toBe('');
    expect(run.summary).toContain('cut short');
  });

  it('bad input fails the step with one clear message and posts nothing', async () => {
    api.comments = [];
    const run = await runAction('pull_request', { config: 'missing.yml' });
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/::error::distill-gate: .*missing\.yml: cannot read the config file \(ENOENT\)/);
    expect(api.comments).toHaveLength(0);
  });
});

describe('baselines from the store branch, as the runner runs it', () => {
  const gates = '  agreement.top1: { min: 0.5, maxDrop: 0.02 }\n  size.studentBytes: { maxIncrease: "5%" }';

  async function degradeTeacher(dir: string): Promise<void> {
    const shard = path.join(dir, 'models/teacher/group1-shard1of1.bin');
    const bytes = await readFile(shard);
    const weights = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    const random = seededRandom(5);
    for (let i = 0; i < weights.length; i++)
      weights[i] += 0.1 * Math.sqrt(-2 * Math.log(random() + 1e-12)) * Math.cos(2 * Math.PI * random());
    await writeFile(shard, Buffer.from(weights.buffer, weights.byteOffset, weights.byteLength));
  }

  it('main records the baseline; an unchanged PR passes its relative gates; a degraded teacher fails them, unless labelled', async () => {
    api.files.clear();
    api.refs.clear();
    api.comments = [];
    const main = await runAction('push', {}, await exampleWorkspace(quickConfig({ gates })));
    expect(main.code).toBe(0);
    expect(main.stdout).toMatch(/recorded this run in distill-gate-data \(1 runs in the history\)/);
    const folder = 'distill-gate/distill-gate.yml/main';
    expect([...api.files.get('distill-gate-data')!.keys()].sort()).toEqual([
      `${folder}/history.json`,
      `${folder}/report.json`,
      `${folder}/student/group1-shard1of1.bin`,
      `${folder}/student/model.json`,
    ]);

    const unchanged = await runAction('pull_request', {}, await exampleWorkspace(quickConfig({ gates })));
    expect(unchanged.stdout).toContain('baseline from distill-gate-data for main, with its student');
    expect(unchanged.code).toBe(0);
    const unchangedReport = JSON.parse(
      await readFile(path.join(unchanged.workspace, 'distill-report/report.json'), 'utf8'),
    );
    // The config's three bounds, and the default gate against chance (the config gates no kappa).
    expect(
      unchangedReport.gates.map(
        (g: { metric: string; op: string; status: string }) => `${g.metric} ${g.op} ${g.status}`,
      ),
    ).toEqual([
      'agreement.top1 >= pass',
      'agreement.top1 maxDrop pass',
      'size.studentBytes maxIncrease pass',
      'agreement.kappa >= pass',
    ]);
    expect(unchanged.summary).toContain('### Trend');

    const degradedDir = await exampleWorkspace(quickConfig({ gates }));
    await degradeTeacher(degradedDir);
    const degraded = await runAction('pull_request', {}, degradedDir);
    expect(degraded.code).toBe(1);
    expect(degraded.stdout).toMatch(/::error::distill-gate: failing gates: agreement\.top1 \(drop <= 0\.02\)/);

    api.labelEvents = [
      { event: 'labeled', label: { name: 'distill-gate:accept-regression' }, actor: { login: 'alice' } },
    ];
    api.labelsOn.set(7, ['distill-gate:accept-regression']);
    const accepted = await runAction('pull_request', {}, degradedDir, 'pull_request_labelled.json');
    api.labelsOn.clear();
    expect(accepted.code).toBe(0);
    expect(accepted.summary).toMatch(
      /Accepted regression:\*\* label "distill-gate:accept-regression" by @\u200balice turned 1 failing relative gate/,
    );
    const acceptedReport = JSON.parse(
      await readFile(path.join(accepted.workspace, 'distill-report/report.json'), 'utf8'),
    );
    expect(acceptedReport.override).toEqual({
      label: 'distill-gate:accept-regression',
      by: '@alice',
      gates: ['agreement.top1 drop <= 0.02'],
    });

    // A second run on main extends the history that PRs draw their trend from.
    await runAction('push', {}, await exampleWorkspace(quickConfig({ gates })));
    const history = JSON.parse(
      Buffer.from(api.files.get('distill-gate-data')!.get(`${folder}/history.json`)!.content, 'base64').toString(
        'utf8',
      ),
    );
    expect(history).toHaveLength(2);
  });

  it('a baseline store the token cannot read or write only warns: the run goes on and its verdict decides', async () => {
    api.files.clear();
    api.refs.clear();
    api.comments = [];
    // A 403, not a 500: a 500 is retried with the bundle's real backoff (15 s), which test/e2e/faults.test.ts covers in-process.
    api.fail('GET', /\/contents\//, 403, 99);
    const unreadable = await runAction('pull_request', {}, await exampleWorkspace(quickConfig({ gates })));
    expect(unreadable.code).toBe(0);
    expect(unreadable.stdout).toMatch(
      /::warning::Reading the baseline from branch distill-gate-data failed: HTTP 403.*contents: read/,
    );
    expect(commentsOn(7)).toHaveLength(1);
    api.clearFaults();

    api.fail('POST', /\/git\/refs$/, 403, 99);
    const unwritable = await runAction('push', {}, await exampleWorkspace(quickConfig({ gates })));
    expect(unwritable.code).toBe(0);
    expect(unwritable.stdout).toMatch(
      /::warning::Recording the baseline in branch distill-gate-data failed: HTTP 403.*contents: write/,
    );
    expect(unwritable.summary).toContain('distill-gate: pass');
    api.clearFaults();

    api.fail('GET', /\/issues\/7\/events$/, 404, 99);
    api.labelEvents = [];
    api.labelsOn.set(7, ['distill-gate:accept-regression']);
    const labelled = await runAction(
      'pull_request',
      {},
      await exampleWorkspace(quickConfig({ gates })),
      'pull_request_labelled.json',
    );
    expect(labelled.code).toBe(0);
    expect(labelled.stdout).toContain('label "distill-gate:accept-regression" (by someone)');
    api.labelsOn.clear();
    api.clearFaults();
  });

  it('reads the accept label live: a re-run of an event from before the label sees it, one from before it was taken off does not', async () => {
    api.files.clear();
    api.refs.clear();
    api.comments = [];
    expect((await runAction('push', {}, await exampleWorkspace(quickConfig({ gates })))).code).toBe(0);
    const degradedDir = await exampleWorkspace(quickConfig({ gates }));
    await degradeTeacher(degradedDir);
    api.labelEvents = [
      { event: 'labeled', label: { name: 'distill-gate:accept-regression' }, actor: { login: 'alice' } },
    ];

    // The re-run replays the `opened` payload, which has no labels; the PR has the label now.
    api.labelsOn.set(7, ['bug', 'distill-gate:accept-regression']);
    const rerun = await runAction('pull_request', {}, degradedDir, 'pull_request.json');
    expect(rerun.code).toBe(0);
    expect(rerun.stdout).toContain(
      `label "distill-gate:accept-regression" was put on PR #7 after this run's event; the PR's labels now decide`,
    );
    expect(rerun.summary).toMatch(/Accepted regression:\*\* label "distill-gate:accept-regression" by @\u200balice/);

    // The `labeled` payload still lists the label; it was taken off since.
    api.labelsOn.set(7, ['bug']);
    const removed = await runAction('pull_request', {}, degradedDir, 'pull_request_labelled.json');
    expect(removed.code).toBe(1);
    expect(removed.stdout).toContain('was taken off PR #7');
    expect(removed.stdout).toMatch(/::error::distill-gate: failing gates: agreement\.top1 \(drop <= 0\.02\)/);

    // GitHub cannot be asked: the payload's labels decide, and the log says so.
    api.fail('GET', /\/issues\/7\/labels$/, 404, 99);
    const fallback = await runAction('pull_request', {}, degradedDir, 'pull_request_labelled.json');
    expect(fallback.code).toBe(0);
    expect(fallback.stdout).toMatch(
      /::warning::Reading the labels of PR #7 failed: HTTP 404 .*The labels of this run's event decide instead \(they include "distill-gate:accept-regression"\); a re-run does not refresh them\./,
    );
    api.clearFaults();
    api.labelsOn.clear();
  });
});

describe('verdicts from reports this run did not make, as the runner runs it', () => {
  it('mode report re-judges a forged report.json: a claimed pass beside a failing gate fails the step, and no uploaded path reaches the outputs', async () => {
    api.comments = [];
    api.pulls = [{ number: 12, state: 'open', head: { sha: 'f0f0f0' } }];
    const producer = await runAction(
      'release',
      { 'output-dir': 'upload' },
      await exampleWorkspace(quickConfig({ gates: '  size.ratio: "<= 0.0001"' })),
    );
    expect(producer.code).toBe(1);
    const file = path.join(producer.workspace, 'upload/report.json');
    const report = JSON.parse(await readFile(file, 'utf8'));
    const forged = {
      ...report,
      verdict: 'pass',
      gates: report.gates.map((g: Record<string, unknown>) => ({ ...g, pass: true, status: 'pass' })),
      student: { ...report.student, path: '/etc/passwd' },
    };
    await writeFile(file, JSON.stringify(forged));
    // The producer's own distill-gate.yml stands for the trusted checkout's config here.
    const run = await runAction('workflow_run', { mode: 'report', report: 'upload/report.json' }, producer.workspace);
    expect(run.code).toBe(1);
    expect(run.outputs.verdict).toBe('fail');
    expect(run.outputs['student-path']).toBe('');
    expect(run.outputs['report-path']).toBe(file);
    expect(JSON.stringify(run.outputs)).not.toContain('/etc/passwd');
    expect(run.stdout).toMatch(/::error::distill-gate: failing gates: size\.ratio \(<= 0\.0001\)/);
    const body = commentsOn(12)[0].body;
    expect(body).toContain('## ❌ distill-gate: fail');
    expect(body).toContain(
      'The uploaded report claimed pass; re-judged from its values with the thresholds of the trusted distill-gate.yml: fail',
    );
  });

  it('mode merge with expect fails naming the leg that uploaded nothing', async () => {
    api.comments = [];
    const workspace = await releasedCopy();
    await mkdir(path.join(workspace, 'reports/distill-report-tiny'), { recursive: true });
    await rename(
      path.join(workspace, 'distill-report/report.json'),
      path.join(workspace, 'reports/distill-report-tiny/report.json'),
    );
    const run = await runAction(
      'release',
      { mode: 'merge', reports: 'reports/*/report.json', expect: 'distill-report-tiny\ndistill-report-small' },
      workspace,
    );
    expect(run.code).toBe(1);
    expect(run.outputs.verdict).toBe('fail');
    expect(run.stdout).toContain(
      '::error::distill-gate: Missing: distill-report-small (1 of 2 expected reports arrived)',
    );
    expect(run.summary).toMatch(/\| distill-report-small\s+\| ❌ missing \|/);
  });

  it('the store keeps only complete, passing runs of main, and a PR names and links the run it compared with', async () => {
    api.files.clear();
    api.refs.clear();
    api.comments = [];
    const gates = '  agreement.top1: { min: 0.5, maxDrop: 0.02 }';
    const passing = await runAction('push', {}, await exampleWorkspace(quickConfig({ gates })));
    expect(passing.stdout).toMatch(/recorded this run in distill-gate-data \(1 runs in the history\)/);
    const failing = await runAction(
      'push',
      {},
      await exampleWorkspace(quickConfig({ gates: `${gates}\n  size.ratio: "<= 0.0001"` })),
    );
    expect(failing.code).toBe(1);
    expect(failing.stdout).toContain(
      'distill-gate: not recording this run in distill-gate-data: it failed; the baseline stays the last complete, passing run',
    );
    const folder = 'distill-gate/distill-gate.yml/main';
    const stored = JSON.parse(
      Buffer.from(api.files.get('distill-gate-data')!.get(`${folder}/report.json`)!.content, 'base64').toString('utf8'),
    );
    expect([stored.verdict, stored.runUrl]).toEqual(['pass', 'https://github.test/acme/models/actions/runs/42']);

    const pr = await runAction('pull_request', {}, await exampleWorkspace(quickConfig({ gates })));
    expect(pr.code).toBe(0);
    expect(pr.summary).toMatch(
      /Baseline: commit abc123 from \d{4}-\d\d-\d\d \(\[its run\]\(https:\/\/github\.test\/acme\/models\/actions\/runs\/42\)\)\./,
    );
  });
});
