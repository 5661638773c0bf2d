/**
 * The example workflows that gate PRs, evaluated for the events GitHub sends them: the accept label
 * re-runs the gate, other labels run no job and cancel nothing, the GPU jobs start only when the
 * `mode: changes` job says something relevant changed, and forks never reach them.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

type Value = string | number | boolean | null | Value[] | { [key: string]: Value };

/**
 * The part of GitHub's expression language these workflows use: literals, property paths, ! == !=
 * && || and parentheses, and contains, format, fromJSON, always, cancelled. As on GitHub, && and || yield an
 * operand, and strings compare case-insensitively.
 */
function evaluate(expression: string, context: Record<string, Value>): Value {
  const tokens = expression.match(/'(?:[^']|'')*'|[A-Za-z_][\w-]*(?:\.[\w-]+)*|==|!=|&&|\|\||[!(),]|\d+|\S/g) ?? [];
  let at = 0;
  const peek = () => tokens[at];
  const take = (expected?: string) => {
    const token = tokens[at++];
    if (expected !== undefined && token !== expected)
      throw new Error(`expected ${expected} at ${at} in ${expression}, got ${token}`);
    return token;
  };
  const truthy = (v: Value) => !(v === false || v === null || v === 0 || v === '' || Number.isNaN(v));
  const equal = (a: Value, b: Value) =>
    typeof a === 'string' && typeof b === 'string' ? a.toLowerCase() === b.toLowerCase() : a === b;
  const functions: Record<string, (...args: Value[]) => Value> = {
    always: () => true,
    cancelled: () => false,
    contains: (haystack, needle) =>
      Array.isArray(haystack)
        ? haystack.some((item) => equal(item, needle))
        : String(haystack).toLowerCase().includes(String(needle).toLowerCase()),
    format: (template, ...args) =>
      String(template).replace(/\{(\d+)\}/g, (_, i: string) => String(args[Number(i)] ?? '')),
    fromJSON: (text) => JSON.parse(String(text)) as Value,
  };
  const primary = (): Value => {
    const token = take();
    if (token === '(') {
      const value = or();
      take(')');
      return value;
    }
    if (token === '!') return !truthy(primary());
    if (token.startsWith("'")) return token.slice(1, -1).replace(/''/g, "'");
    if (/^\d+$/.test(token)) return Number(token);
    if (['true', 'false', 'null'].includes(token)) return JSON.parse(token) as Value;
    if (peek() === '(') {
      take('(');
      const args: Value[] = [];
      while (peek() !== ')') {
        args.push(or());
        if (peek() === ',') take(',');
      }
      take(')');
      if (!functions[token]) throw new Error(`unknown function ${token}`);
      return functions[token](...args);
    }
    return token
      .split('.')
      .reduce<Value>(
        (value, key) => (value && typeof value === 'object' && !Array.isArray(value) ? (value[key] ?? null) : null),
        context,
      );
  };
  const comparison = (): Value => {
    let left = primary();
    while (peek() === '==' || peek() === '!=') {
      const negate = take() === '!=';
      left = equal(left, primary()) !== negate;
    }
    return left;
  };
  const and = (): Value => {
    let left = comparison();
    while (peek() === '&&') {
      take();
      const right = comparison();
      left = truthy(left) ? right : left;
    }
    return left;
  };
  const or = (): Value => {
    let left = and();
    while (peek() === '||') {
      take();
      const right = and();
      left = truthy(left) ? left : right;
    }
    return left;
  };
  const value = or();
  if (at !== tokens.length) throw new Error(`unparsed ${tokens.slice(at).join(' ')} in ${expression}`);
  return value;
}

/** A workflow string with ${{ }} templates filled in. */
const interpolate = (text: string, context: Record<string, Value>) =>
  text.replace(/\$\{\{(.*?)\}\}/g, (_, inner: string) => String(evaluate(inner, context)));
/** An `if:` as GitHub reads it: with or without ${{ }}. */
const condition = (text: string | undefined, context: Record<string, Value>) =>
  text === undefined || !!evaluate(text.trim().replace(/^\$\{\{([\s\S]*)\}\}$/, '$1'), context);

interface Workflow {
  on: { pull_request: { types?: string[] } };
  concurrency?: { group: string; 'cancel-in-progress': boolean };
  jobs: Record<
    string,
    {
      if?: string;
      name?: string;
      needs?: string | string[];
      steps?: Array<{ uses?: string; with?: Record<string, string> }>;
    }
  >;
}

const action = parse(await readFile(path.join(ROOT, 'action.yml'), 'utf8')) as {
  inputs: Record<string, { default?: string }>;
};
const ACCEPT = action.inputs['accept-label'].default!;
const read = async (file: string) =>
  parse(await readFile(path.join(ROOT, 'examples/workflows', file), 'utf8')) as Workflow;

const REPOSITORY = 'acme/models';
/**
 * A pull_request event; `from` is the repository of the PR's head: this one, or a fork. `changed`
 * is what the changes job answered (absent when it was skipped).
 */
const event = (action: string, label?: string, from = REPOSITORY, changed?: 'true' | 'false') => ({
  github: {
    event_name: 'pull_request',
    repository: REPOSITORY,
    run_id: '4242',
    event: {
      action,
      number: 7,
      pull_request: { number: 7, head: { repo: { full_name: from } } },
      ...(label ? { label: { name: label } } : {}),
    },
  },
  needs: { changes: { outputs: (changed === undefined ? {} : { changed }) as Record<string, Value> } },
});
const FORK = 'someone/models';

// The job that decides on the event (a cheap `mode: changes` job) and the GPU jobs behind it.
describe.each([
  { file: 'pull-request.yml', gpuJobs: ['distill'] },
  { file: 'matrix.yml', gpuJobs: ['distill', 'merge'] },
])('$file and the accept label', ({ file, gpuJobs }) => {
  it('runs on every push to the PR and on labels put on or taken off', async () => {
    expect((await read(file)).on.pull_request.types).toEqual([
      'opened',
      'synchronize',
      'reopened',
      'labeled',
      'unlabeled',
    ]);
  });

  it.each([
    ['opened', undefined, true],
    ['synchronize', undefined, true],
    ['reopened', undefined, true],
    ['labeled', ACCEPT, true],
    ['unlabeled', ACCEPT, true],
    ['labeled', 'documentation', false],
    ['unlabeled', 'documentation', false],
    ['labeled', `${ACCEPT}-not`, false],
  ])('%s %s: the changes job runs: %s', async (action, label, runs) => {
    const workflow = await read(file);
    expect(condition(workflow.jobs.changes.if, event(action, label))).toBe(runs);
  });

  it('the GPU jobs need the changes job and run only when it says something relevant changed', async () => {
    const workflow = await read(file);
    for (const job of gpuJobs) {
      expect([workflow.jobs[job].needs].flat(), job).toContain(gpuJobs[0] === job ? 'changes' : 'distill');
      expect(condition(workflow.jobs[job].if, event('synchronize', undefined, REPOSITORY, 'true')), job).toBe(true);
      expect(condition(workflow.jobs[job].if, event('synchronize', undefined, REPOSITORY, 'false')), job).toBe(false);
      // The changes job skipped (a stray label): nothing behind it runs.
      expect(condition(workflow.jobs[job].if, event('labeled', 'documentation')), job).toBe(false);
    }
  });

  it('a stray label gets a concurrency group of its own, so it cancels no running gate', async () => {
    const { concurrency } = await read(file);
    expect(concurrency?.['cancel-in-progress']).toBe(true);
    const group = (action: string, label?: string) => interpolate(concurrency!.group, event(action, label));
    const gate = group('synchronize');
    expect(gate).toMatch(/-7$/);
    expect([group('opened'), group('labeled', ACCEPT), group('unlabeled', ACCEPT)]).toEqual([gate, gate, gate]);
    expect(group('labeled', 'documentation')).toBe(`${gate}-4242`);
  });

  it('the verdict is the commit status: set by the job that judges, never by a matrix leg', async () => {
    const workflow = await read(file);
    const steps = Object.entries(workflow.jobs).flatMap(([name, job]) =>
      (job.steps ?? [])
        .filter((step) => step.uses?.startsWith('distill-gate/distill-gate@'))
        .map((step) => ({ name, step })),
    );
    const setters = steps
      .filter(({ step }) => step.with?.['status-name'] !== 'false')
      .map(({ name, step }) => `${name}:${step.with?.mode ?? 'run'}`);
    expect(setters).toEqual(
      file === 'matrix.yml' ? ['changes:changes', 'merge:merge'] : ['changes:changes', 'distill:run'],
    );
  });
});

describe('forks never reach the self-hosted runner', () => {
  const selfHosted = (job: { 'runs-on'?: unknown }) => JSON.stringify(job['runs-on']).includes('self-hosted');

  it.each(['pull-request.yml', 'matrix.yml'])('%s: no job runs for a fork, whatever the event', async (file) => {
    const workflow = (await read(file)) as Workflow & { jobs: Record<string, { if?: string; 'runs-on'?: unknown }> };
    expect(Object.values(workflow.jobs).some(selfHosted)).toBe(true);
    for (const [action, label] of [['opened'], ['synchronize'], ['labeled', ACCEPT]] as const) {
      // The changes job's guard: forks never, the repository's own PRs always.
      expect(condition(workflow.jobs.changes.if, event(action, label, FORK)), `${file} changes on ${action}`).toBe(
        false,
      );
      expect(condition(workflow.jobs.changes.if, event(action, label)), `${file} changes on ${action}`).toBe(true);
      // With the changes job skipped, no job behind it runs.
      for (const [name, job] of Object.entries(workflow.jobs))
        if (name !== 'changes')
          expect(condition(job.if, event(action, label, FORK)), `${file} ${name} on ${action}`).toBe(false);
    }
  });

  it('fork-untrusted.yml runs forks only, on a GitHub-hosted runner, the accept label but no other', async () => {
    const workflow = (await read('fork-untrusted.yml')) as Workflow & {
      jobs: Record<string, { if?: string; 'runs-on'?: unknown }>;
    };
    const jobs = Object.values(workflow.jobs);
    expect(jobs.some(selfHosted)).toBe(false);
    for (const job of jobs) {
      expect(condition(job.if, event('synchronize', undefined, FORK))).toBe(true);
      expect(condition(job.if, event('labeled', ACCEPT, FORK))).toBe(true);
      expect(condition(job.if, event('labeled', 'documentation', FORK))).toBe(false);
      expect(condition(job.if, event('synchronize'))).toBe(false);
    }
  });

  it("fork-report.yml judges forks' runs only, on a GitHub-hosted runner, and not a run whose job was skipped", async () => {
    const workflow = (await read('fork-report.yml')) as unknown as {
      jobs: Record<string, { if?: string; 'runs-on'?: unknown }>;
    };
    const run = (headRepository: string, conclusion = 'success') => ({
      github: {
        repository: REPOSITORY,
        event: { workflow_run: { event: 'pull_request', conclusion, head_repository: { full_name: headRepository } } },
      },
    });
    for (const job of Object.values(workflow.jobs)) {
      expect(selfHosted(job)).toBe(false);
      expect(condition(job.if, run(FORK))).toBe(true);
      // A failed or cancelled run is judged (it fails); a skipped one judged nothing.
      expect(condition(job.if, run(FORK, 'failure'))).toBe(true);
      expect(condition(job.if, run(FORK, 'cancelled'))).toBe(true);
      expect(condition(job.if, run(FORK, 'skipped'))).toBe(false);
      expect(condition(job.if, run(REPOSITORY))).toBe(false);
    }
  });
});

it("fork-report.yml may read the commit's PRs and the PR's files, and set the commit status", async () => {
  const workflow = parse(await readFile(path.join(ROOT, 'examples/workflows/fork-report.yml'), 'utf8')) as {
    permissions: Record<string, string>;
  };
  expect(workflow.permissions).toMatchObject({
    contents: 'read',
    'pull-requests': 'write',
    actions: 'read',
    statuses: 'write',
  });
});

describe('the expression subset the tests above rely on', () => {
  it('behaves as GitHub documents', () => {
    const context = { github: { event: { action: 'Labeled', label: null } } } as Record<string, Value>;
    expect(evaluate("github.event.action == 'labeled'", context)).toBe(true);
    expect(evaluate('github.event.label.name', context)).toBeNull();
    expect(evaluate("github.event.label.name != 'x' && 'yes' || 'no'", context)).toBe('yes');
    expect(evaluate("!(1 == 1) || format('{0}-{1}', 'a', 2)", context)).toBe('a-2');
    expect(evaluate('contains(fromJSON(\'["a", "b"]\'), \'B\')', context)).toBe(true);
    expect(evaluate("'it''s'", context)).toBe("it's");
  });
});
