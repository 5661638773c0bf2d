import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { RUNNER_GRACE_MS } from '../../src/run-control.js';
import type { Report } from '../../src/report/report.js';
import { exampleWorkspace, quickConfig } from '../helpers.js';

/**
 * The CLI started as users start it in a workflow step (`npx distill-gate run`, an `npm run`
 * script), cancelled exactly as the Actions runner cancels a step: the runner runs the step's
 * script with bash and signals that bash alone (kill(pid), not its group; actions/runner's
 * ProcessInvoker): SIGINT, SIGTERM 7.5 s later, SIGKILL 2.5 s after that, each only while it
 * lives. Once bash has exited, the runner waits at most 5 s for the step's output to close (the
 * processes still holding it) before it moves on to the next steps, such as uploading the report.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** How long the runner waits for the step's output to close once its process has exited. */
const RUNNER_STREAM_WAIT_MS = 5000;

/**
 * A project with distill-gate installed as npm installs a package's bin: node_modules/.bin/
 * distill-gate, which npm runs through `sh -c`. The bin stands in for bin/distill-gate.js (which
 * runs the compiled lib/): it runs src/cli/index.ts, as the other end-to-end tests do.
 */
async function npmProject(scripts: Record<string, string>): Promise<{ dir: string; config: string; out: string }> {
  const dir = await exampleWorkspace(quickConfig({ distill: '{ epochs: 100000, batchSize: 64, seed: 7 }' }));
  const pkg = path.join(dir, 'node_modules/distill-gate');
  await mkdir(pkg, { recursive: true });
  await mkdir(path.join(dir, 'node_modules/.bin'));
  await writeFile(
    path.join(pkg, 'package.json'),
    JSON.stringify({ name: 'distill-gate', version: '0.0.0', type: 'module', bin: { 'distill-gate': 'bin.js' } }),
  );
  const tsx = pathToFileURL(path.join(ROOT, 'node_modules/tsx/dist/esm/api/index.mjs')).href;
  const cli = pathToFileURL(path.join(ROOT, 'src/cli/index.ts')).href;
  await writeFile(
    path.join(pkg, 'bin.js'),
    `#!/usr/bin/env node\nconst { register } = await import('${tsx}');\nregister();\nawait import('${cli}');\n`,
  );
  await chmod(path.join(pkg, 'bin.js'), 0o755);
  await symlink('../distill-gate/bin.js', path.join(dir, 'node_modules/.bin/distill-gate'));
  await writeFile(
    path.join(dir, 'package.json'),
    JSON.stringify({ name: 'gate', version: '0.0.0', private: true, scripts }),
  );
  return { dir, config: path.join(dir, 'distill-gate.yml'), out: path.join(dir, 'out') };
}

/** The processes below `root` now (pid, command), from /proc. */
function descendants(root: number): Array<{ pid: number; command: string }> {
  const parents = new Map<number, number>();
  const commands = new Map<number, string>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      parents.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
      commands.set(Number(entry), readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ').trim());
    } catch {
      // gone meanwhile
    }
  }
  const below = (pid: number): boolean => {
    for (let p = parents.get(pid); p !== undefined && p > 1; p = parents.get(p)) if (p === root) return true;
    return false;
  };
  return [...parents.keys()].filter(below).map((pid) => ({ pid, command: commands.get(pid) ?? '' }));
}

/** Whether the process still runs (a zombie does not). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]$/.test(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]);
  } catch {
    return false;
  }
}

/**
 * Runs `script` as the runner runs a step (bash, stdin closed, GITHUB_ACTIONS=true, no npm_*
 * variables of ours) and cancels it as the runner does once `trigger` shows in its output.
 */
async function cancelStepLikeRunner(dir: string, script: string, trigger: RegExp) {
  await writeFile(path.join(dir, 'step.sh'), `${script}\n`);
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key)));
  const step = spawn('bash', ['--noprofile', '--norc', '-e', '-o', 'pipefail', path.join(dir, 'step.sh')], {
    cwd: dir,
    env: { ...env, GITHUB_ACTIONS: 'true', CI: 'true' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  step.stdin.end();
  const signalsSent: string[] = [];
  const timers: NodeJS.Timeout[] = [];
  let tree: Array<{ pid: number; command: string }> = [];
  let output = '';
  const send = (signal: NodeJS.Signals) => {
    if (step.exitCode !== null || step.signalCode !== null) return;
    signalsSent.push(signal);
    step.kill(signal);
  };
  const onData = (chunk: Buffer) => {
    output += chunk.toString();
    if (tree.length === 0 && trigger.test(output)) {
      tree = descendants(step.pid!);
      send('SIGINT');
      timers.push(setTimeout(() => send('SIGTERM'), RUNNER_GRACE_MS));
      timers.push(setTimeout(() => send('SIGKILL'), RUNNER_GRACE_MS + 2500));
    }
  };
  step.stdout.on('data', onData);
  step.stderr.on('data', onData);
  const closed = Promise.all([
    new Promise((resolve) => step.stdout.on('close', resolve)),
    new Promise((resolve) => step.stderr.on('close', resolve)),
  ]);
  const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    step.on('exit', (code, signal) => resolve({ code, signal })),
  );
  // The runner's own wait for the output of whatever the step left running.
  let waited: NodeJS.Timeout | undefined;
  const outputClosed = await Promise.race([
    closed.then(() => true),
    new Promise<boolean>((resolve) => (waited = setTimeout(() => resolve(false), RUNNER_STREAM_WAIT_MS))),
  ]);
  clearTimeout(waited);
  for (const timer of timers) clearTimeout(timer);
  const left = tree.filter(({ pid }) => running(pid));
  // Leave nothing behind, whatever the test finds.
  for (const { pid } of left) process.kill(pid, 'SIGKILL');
  return { exit, signalsSent, outputClosed, tree, left, output };
}

async function reportOf(out: string): Promise<Report> {
  return JSON.parse(await readFile(path.join(out, 'report.json'), 'utf8')) as Report;
}

describe.skipIf(process.platform !== 'linux')('the CLI under npm, cancelled as the runner cancels a step', () => {
  it.each([
    [
      'npx distill-gate run',
      (p: { config: string; out: string }) => `npx distill-gate run --config ${p.config} --out ${p.out}`,
      {},
    ],
    [
      'exec npx distill-gate run',
      (p: { config: string; out: string }) => `exec npx distill-gate run --config ${p.config} --out ${p.out}`,
      {},
    ],
    ['npm run gate', () => 'npm run gate', { gate: 'distill-gate run --config distill-gate.yml --out out' }],
  ])(
    "`%s`: the signals stop at bash or npm's sh, yet the report is written, cut short, and no node is left running",
    async (_, script, scripts) => {
      const project = await npmProject(scripts);
      const run = await cancelStepLikeRunner(project.dir, script(project), /epoch 2\//);
      // The CLI ran under npm's sh, and the runner's SIGINT reached none of them: it took the SIGTERM.
      expect(run.tree.map(({ command }) => command)).toEqual(
        expect.arrayContaining([
          expect.stringMatching(/^sh -c/),
          expect.stringMatching(/^node .*node_modules\/\.bin\/distill-gate run/),
        ]),
      );
      expect(run.signalsSent).toEqual(['SIGINT', 'SIGTERM']);
      // Everything below the step ended within the runner's wait for its output, leaving no orphan.
      expect(run.left).toEqual([]);
      expect(run.outputClosed).toBe(true);
      expect(run.output).toMatch(/cancel: the process that started distill-gate ended/);
      const report = await reportOf(project.out);
      expect([report.status, report.verdict]).toEqual(['incomplete', 'fail']);
      expect(report.reasons.join(' ')).toMatch(
        /The run was cut short while (running the teacher's pass|distilling): the process that started distill-gate ended \((bash|npm|sh) .*pid \d+\)/,
      );
    },
  );

  it.each([
    [
      'exec npx --script-shell=bash distill-gate run',
      (p: { config: string; out: string }) =>
        `exec npx --script-shell=bash distill-gate run --config ${p.config} --out ${p.out}`,
      {},
    ],
    [
      'exec npm run gate, the script exec-ing distill-gate',
      () => 'exec npm run gate',
      { gate: 'exec distill-gate run --config distill-gate.yml --out out' },
    ],
  ])(
    "`%s`: the runner's SIGINT reaches the CLI, which stops training, measures and writes the report before SIGTERM",
    async (_, script, scripts) => {
      const project = await npmProject(scripts);
      const run = await cancelStepLikeRunner(project.dir, script(project), /epoch 2\//);
      expect(run.signalsSent).toEqual(['SIGINT']);
      expect(run.exit).toEqual({ code: 1, signal: null });
      expect(run.left).toEqual([]);
      const report = await reportOf(project.out);
      expect([report.status, report.verdict]).toEqual(['incomplete', 'fail']);
      expect(report.reasons.join(' ')).toMatch(/Training stopped after \d+ of 100000 epochs: received SIGINT/);
      expect(existsSync(path.join(project.out, 'student/model.json'))).toBe(true);
    },
  );
});
