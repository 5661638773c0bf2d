/**
 * The README's quick start, copied into an empty repository exactly as it says: the README's
 * config as distill-gate.yml at the root, the teacher and data where that config points, and the
 * README's pull-request workflow. The built action then runs there as the runner runs it, with that
 * workflow's inputs, against the loopback GitHub API: it must pass without edits.
 */
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { glob } from 'tinyglobby';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { FakeGitHub } from './github-server.js';
import { runnerEnvironment } from './runner-env.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const EXAMPLE = path.join(ROOT, 'fixtures/example');
const TOKEN = 'ghs_quick_start_token_0123456789';

let api: FakeGitHub;
beforeAll(async () => {
  api = await new FakeGitHub().start();
});
afterAll(async () => api.stop());

interface Workflow {
  on: { pull_request: { paths: string[] } };
  jobs: Record<string, { steps: { uses?: string; with?: Record<string, string> }[] }>;
}

/** The README's blocks this test copies: the config under "Config reference", the pull-request workflow under "Workflows to copy". */
async function readmeQuickStart(): Promise<{ config: string; workflow: string }> {
  const readme = await readFile(path.join(ROOT, 'README.md'), 'utf8');
  const firstYamlAfter = (heading: string) => {
    const at = readme.indexOf(`\n${heading}\n`);
    expect(at, heading).toBeGreaterThan(0);
    return /```yaml\n([\s\S]*?)^```$/m.exec(readme.slice(at))![1];
  };
  return { config: firstYamlAfter('## Config reference'), workflow: firstYamlAfter('### Workflows to copy') };
}

/** An empty repository laid out as the quick start says. */
async function quickStartRepository(): Promise<{ dir: string; workflow: Workflow }> {
  const { config, workflow } = await readmeQuickStart();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-quick-start-'));
  await writeFile(path.join(dir, 'distill-gate.yml'), config);
  await mkdir(path.join(dir, '.github/workflows'), { recursive: true });
  await writeFile(path.join(dir, '.github/workflows/distill-gate.yml'), workflow);
  await cp(path.join(EXAMPLE, 'models/teacher'), path.join(dir, 'models/teacher'), { recursive: true });
  for (const file of ['train_x.npy', 'train_y.npy', 'eval_x.npy', 'eval_y.npy']) await cp(path.join(EXAMPLE, 'data', file), path.join(dir, 'data', file));
  return { dir, workflow: parse(workflow) as Workflow };
}

/** The bundle run as the runner runs a step: every input of action.yml at its default unless the step's `with` sets it. */
async function runStep(dir: string, withInputs: Record<string, string>) {
  const action = parse(await readFile(path.join(ROOT, 'action.yml'), 'utf8')) as { inputs: Record<string, { default?: string }> };
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
    { workspace: dir, event: 'pull_request', eventFile: 'pull_request.json', ref: 'refs/pull/7/merge', apiUrl: api.url, outputFile, summaryFile },
    inputs,
  );
  const { code, stdout } = await promisify(execFile)(process.execPath, [path.join(ROOT, 'dist/index.js')], { cwd: dir, env, maxBuffer: 16 << 20 }).then(
    ({ stdout }) => ({ code: 0, stdout }),
    (error: { code: number; stdout: string }) => ({ code: error.code, stdout: error.stdout }),
  );
  return { code, stdout, output: await readFile(outputFile, 'utf8') };
}

describe("the README's quick start in a fresh repository", () => {
  it("the workflow's paths filter sees the config, the teacher and the data where the quick start puts them", async () => {
    const { dir, workflow } = await quickStartRepository();
    const watched = await glob(workflow.on.pull_request.paths, { cwd: dir, dot: true });
    expect(watched).toEqual(expect.arrayContaining(['distill-gate.yml', 'models/teacher/model.json', 'data/train_x.npy', 'data/eval_x.npy']));
  });

  it("runs the built action with the workflow's inputs and passes, posting the sticky comment", { timeout: 300_000 }, async () => {
    const { dir, workflow } = await quickStartRepository();
    const step = Object.values(workflow.jobs)
      .flatMap((job) => job.steps)
      .find((s) => s.uses?.startsWith('distill-gate/distill-gate@'))!;
    expect(step.with).toMatchObject({ config: 'distill-gate.yml', 'require-gpu': 'true' });

    // As copied, on this machine, which has no GPU: require-gpu stops the run at once and says why.
    api.comments = [];
    const onCpu = await runStep(dir, step.with!);
    expect(onCpu.code).toBe(1);
    expect(onCpu.stdout).toContain('require-gpu is set, but the run resolved wasm (bundled), not a GPU backend');
    expect(onCpu.stdout).not.toContain('cannot read');

    // The same workflow on a GitHub-hosted runner, as the quick start says: require-gpu dropped.
    api.comments = [];
    const { 'require-gpu': _dropped, ...hosted } = step.with!;
    const run = await runStep(dir, hosted);
    expect(run.stdout).not.toContain('::warning title=distill-gate%3A config location');
    expect(run.code, run.stdout.slice(-3000)).toBe(0);
    expect(run.output).toMatch(/^verdict<<\S+\npass\n/m);
    const report = JSON.parse(await readFile(path.join(dir, 'distill-report/report.json'), 'utf8')) as { verdict: string; training: { epochs: number } };
    expect(report).toMatchObject({ verdict: 'pass', training: { epochs: 30 } });
    expect(api.comments.filter((c) => c.issue_number === 7).map((c) => c.body.split('\n')[0])).toEqual(['<!-- distill-gate:distill-gate.yml -->']);
  });
});
