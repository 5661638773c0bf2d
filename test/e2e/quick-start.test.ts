/**
 * The README's quick start, copied into an empty repository exactly as it says: the README's
 * config as distill-gate.yml at the root, the teacher and data where that config points, and the
 * quick start's workflow, committed; then a PR that changes the teacher. The built action runs
 * there as the runner runs it, with that workflow's inputs, against the loopback GitHub API: it
 * must pass without edits and set the required commit status.
 */
import { execFile, execFileSync } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { FakeGitHub } from './github-server.js';
import { EVENTS, runnerEnvironment } from './runner-env.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const EXAMPLE = path.join(ROOT, 'fixtures/example');
const TOKEN = 'ghs_quick_start_token_0123456789';

let api: FakeGitHub;
beforeAll(async () => {
  api = await new FakeGitHub().start();
});
afterAll(async () => api.stop());

interface Workflow {
  on: { pull_request: { paths?: string[] } };
  jobs: Record<string, { steps: { uses?: string; with?: Record<string, string> }[] }>;
}

/**
 * The first ```yaml block after a heading (at any level), in README.md or else in docs/*.md: the
 * README keeps the quick start, docs/ the rest, and a block may move between them.
 */
async function firstYamlAfter(heading: string): Promise<string> {
  const docs = (await readdir(path.join(ROOT, 'docs'))).filter((file) => file.endsWith('.md')).sort();
  for (const file of ['README.md', ...docs.map((doc) => path.join('docs', doc))]) {
    const text = await readFile(path.join(ROOT, file), 'utf8');
    const at = new RegExp(`^#{1,6} ${heading.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm').exec(text);
    if (at) return /^```yaml\n([\s\S]*?)^```$/m.exec(text.slice(at.index))![1];
  }
  throw new Error(`no heading "${heading}" in README.md or docs/*.md`);
}

/** The blocks this test copies: the config under "Config reference", the quick start's workflow, and the GPU one under "Workflows to copy". */
async function readmeQuickStart(): Promise<{ config: string; workflow: string; gpuWorkflow: string }> {
  return {
    config: await firstYamlAfter('Config reference'),
    workflow: await firstYamlAfter('Quick start'),
    gpuWorkflow: await firstYamlAfter('Workflows to copy'),
  };
}

const git = (cwd: string, ...args: string[]) =>
  execFileSync(
    'git',
    ['-c', 'user.name=t', '-c', 'user.email=t@example.com', '-c', 'init.defaultBranch=main', ...args],
    { cwd, encoding: 'utf8' },
  ).trim();

/**
 * An empty repository laid out as the quick start says, as a PR's checkout: the base commit has
 * the workflow and a README, the head commit adds the config, the teacher and the data. The event
 * names both commits, as GitHub's does.
 */
async function quickStartRepository(): Promise<{
  dir: string;
  workflow: Workflow;
  gpuWorkflow: Workflow;
  eventFile: string;
  head: string;
  base: string;
}> {
  const { config, workflow, gpuWorkflow } = await readmeQuickStart();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-quick-start-'));
  await mkdir(path.join(dir, '.github/workflows'), { recursive: true });
  await writeFile(path.join(dir, '.github/workflows/distill-gate.yml'), workflow);
  await writeFile(path.join(dir, 'README.md'), 'a model\n');
  git(dir, 'init', '-q');
  git(dir, 'add', '.');
  git(dir, 'commit', '-q', '-m', 'base');
  const base = git(dir, 'rev-parse', 'HEAD');
  await writeFile(path.join(dir, 'distill-gate.yml'), config);
  await cp(path.join(EXAMPLE, 'models/teacher'), path.join(dir, 'models/teacher'), { recursive: true });
  for (const file of ['train_x.npy', 'train_y.npy', 'eval_x.npy', 'eval_y.npy'])
    await cp(path.join(EXAMPLE, 'data', file), path.join(dir, 'data', file));
  git(dir, 'add', '.');
  git(dir, 'commit', '-q', '-m', 'the teacher, its data and the config');
  const head = git(dir, 'rev-parse', 'HEAD');
  const event = JSON.parse(await readFile(path.join(EVENTS, 'pull_request.json'), 'utf8'));
  Object.assign(event.pull_request, {
    head: { sha: head, repo: { full_name: 'acme/models' } },
    base: { ref: 'main', sha: base },
  });
  const eventFile = path.join(dir, '.git', 'event.json');
  await writeFile(eventFile, JSON.stringify(event));
  return {
    dir,
    workflow: parse(workflow) as Workflow,
    gpuWorkflow: parse(gpuWorkflow) as Workflow,
    eventFile,
    head,
    base,
  };
}

/** The distill-gate steps of a workflow, in order. */
const ourSteps = (workflow: Workflow) =>
  Object.values(workflow.jobs)
    .flatMap((job) => job.steps)
    .filter((s) => s.uses?.startsWith('distill-gate/distill-gate@'));

/** The bundle run as the runner runs a step: every input of action.yml at its default unless the step's `with` sets it. */
async function runStep(dir: string, withInputs: Record<string, string>, eventFile: string) {
  const action = parse(await readFile(path.join(ROOT, 'action.yml'), 'utf8')) as {
    inputs: Record<string, { default?: string }>;
  };
  const inputs = {
    ...Object.fromEntries(Object.entries(action.inputs).map(([name, input]) => [name, input.default ?? ''])),
    'github-token': TOKEN,
    ...withInputs,
  };
  const runnerFiles = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-runner-'));
  const [outputFile, summaryFile] = [path.join(runnerFiles, 'output'), path.join(runnerFiles, 'summary')];
  await writeFile(outputFile, '');
  await writeFile(summaryFile, '');
  const env = runnerEnvironment(
    {
      workspace: dir,
      event: 'pull_request',
      eventFile: path.relative(EVENTS, eventFile),
      ref: 'refs/pull/7/merge',
      apiUrl: api.url,
      outputFile,
      summaryFile,
    },
    inputs,
  );
  const { code, stdout } = await promisify(execFile)(process.execPath, [path.join(ROOT, 'dist/index.js')], {
    cwd: dir,
    env,
    maxBuffer: 16 << 20,
  }).then(
    ({ stdout }) => ({ code: 0, stdout }),
    (error: { code: number; stdout: string }) => ({ code: error.code, stdout: error.stdout }),
  );
  return { code, stdout, output: await readFile(outputFile, 'utf8') };
}

describe("the README's quick start in a fresh repository", () => {
  it('its workflow has no paths filter (the required check must report on every PR) and may set the commit status', async () => {
    const { workflow } = await quickStartRepository();
    expect(workflow.on.pull_request.paths).toBeUndefined();
    expect((workflow as unknown as { permissions: Record<string, string> }).permissions.statuses).toBe('write');
  });

  it(
    "runs the built action with the workflow's inputs and passes, posting the sticky comment and the commit status",
    { timeout: 300_000 },
    async () => {
      const { dir, workflow, gpuWorkflow, eventFile, head } = await quickStartRepository();
      const [step] = ourSteps(workflow);
      expect(step.with).toMatchObject({ config: 'distill-gate.yml' });

      // The GPU workflow's distilling step as copied, on this machine, which has no GPU: require-gpu
      // stops the run at once, says why, and the status says so too.
      api.comments = [];
      api.statuses = [];
      const gpuStep = ourSteps(gpuWorkflow).find((s) => (s.with?.mode ?? 'run') === 'run')!;
      expect(gpuStep.with).toMatchObject({ config: 'distill-gate.yml', 'require-gpu': 'true' });
      const onCpu = await runStep(dir, gpuStep.with!, eventFile);
      expect(onCpu.code).toBe(1);
      expect(onCpu.stdout).toContain('require-gpu is set, but the run resolved wasm (bundled), not a GPU backend');
      expect(onCpu.stdout).not.toContain('cannot read');
      expect(api.statuses.at(-1)).toMatchObject({
        sha: head,
        context: 'distill-gate',
        state: 'error',
        description: expect.stringMatching(/^incomplete: .*require-gpu is set/),
      });

      // The quick start's workflow, on a GitHub-hosted runner.
      api.comments = [];
      api.statuses = [];
      const run = await runStep(dir, step.with!, eventFile);
      expect(run.stdout).not.toContain('::warning title=distill-gate%3A config location');
      expect(run.code, run.stdout.slice(-3000)).toBe(0);
      expect(run.output).toMatch(/^verdict<<\S+\npass\n/m);
      expect(run.output).toMatch(/^changed<<\S+\ntrue\n/m);
      const report = JSON.parse(await readFile(path.join(dir, 'distill-report/report.json'), 'utf8')) as {
        verdict: string;
        training: { epochs: number };
      };
      expect(report).toMatchObject({ verdict: 'pass', training: { epochs: 30 } });
      expect(api.comments.filter((c) => c.issue_number === 7).map((c) => c.body.split('\n')[0])).toEqual([
        '<!-- distill-gate:distill-gate.yml -->',
      ]);
      expect(api.statuses.map((s) => [s.sha, s.state])).toEqual([
        [head, 'pending'],
        [head, 'success'],
      ]);
      expect(api.statuses[1].description).toMatch(/^pass: \d+ gates pass/);
    },
  );
});
