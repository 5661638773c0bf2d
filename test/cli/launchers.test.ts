import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  findLaunchers,
  procTable,
  stillRuns,
  watchLaunchers,
  type ProcessInfo,
  type ProcessTable,
} from '../../src/cli/launchers.js';

/** A process table from a list: pid -> [ppid, argv]. */
function tableOf(rows: Record<number, [number, string[]]>): ProcessTable {
  return (pid) =>
    rows[pid]
      ? ({ ppid: rows[pid][0], argv: rows[pid][1], start: `t${pid}`, ended: false } satisfies ProcessInfo)
      : undefined;
}

// The step of `run: npx distill-gate run` on a runner: Runner.Worker > bash > npm > sh -c > node.
const npxStep = tableOf({
  100: [1, ['/home/runner/actions-runner/cached/bin/Runner.Worker', 'spawnclient', '123', '456']],
  200: [100, ['/usr/bin/bash', '--noprofile', '--norc', '-e', '-o', 'pipefail', '/home/runner/work/_temp/abc.sh']],
  // npm retitles itself: its argv reads as one string.
  300: [200, ['npm exec distill-gate run --config distill-gate.yml']],
  400: [300, ['sh', '-c', 'distill-gate run --config distill-gate.yml']],
});

describe('findLaunchers', () => {
  it("under the Actions runner: npm's sh, npm and the step's bash, up to the runner's worker", () => {
    expect(findLaunchers({ GITHUB_ACTIONS: 'true' }, 400, npxStep).map((l) => [l.pid, l.command, l.start])).toEqual([
      [400, 'sh -c distill-gate run --config distill-gate.yml', 't400'],
      [300, 'npm exec distill-gate run --config distill-gate.yml', 't300'],
      [200, '/usr/bin/bash --noprofile --norc -e -o pipefail /home/runner/work/_temp/abc.sh', 't200'],
    ]);
  });

  it('under the runner, started straight from the step (`node bin/distill-gate.js run`): the step itself', () => {
    expect(findLaunchers({ GITHUB_ACTIONS: 'true' }, 200, npxStep).map((l) => l.pid)).toEqual([200]);
  });

  it("outside Actions: npm's wrappers only, not the shell that ran them (nohup npx ... & must outlive its terminal)", () => {
    expect(findLaunchers({}, 400, npxStep).map((l) => l.pid)).toEqual([400, 300]);
    // Started by a terminal's shell or any other program: nothing to watch.
    const terminal = tableOf({
      50: [1, ['-zsh']],
      60: [50, ['make', 'gate']],
      70: [60, ['/bin/sh', '-c', 'distill-gate run &']],
    });
    expect(findLaunchers({}, 50, terminal)).toEqual([]);
    expect(findLaunchers({}, 60, terminal)).toEqual([]);
    // A lone sh -c (make's recipe) may have started the CLI in the background and exited: not watched.
    expect(findLaunchers({}, 70, terminal)).toEqual([]);
  });

  it('knows npm, npx, pnpm and yarn by name, by title, or as node running their script; a shell only with -c', () => {
    for (const argv of [
      ['npm run gate'],
      ['/usr/local/bin/npx', 'distill-gate', 'run'],
      ['node', '/usr/lib/node_modules/npm/bin/npm-cli.js', 'run', 'gate'],
      ['node', '/opt/yarn/bin/yarn.js', 'gate'],
      ['pnpm', 'exec', 'distill-gate'],
    ])
      expect(findLaunchers({}, 10, tableOf({ 10: [1, argv] })).length, argv.join(' ')).toBe(1);
    for (const argv of [
      ['/bin/bash', '-c', 'distill-gate run'],
      ['/bin/dash', '-ec', 'distill-gate run'],
    ])
      expect(findLaunchers({}, 10, tableOf({ 10: [11, argv], 11: [1, ['npm run gate']] })).length, argv.join(' ')).toBe(
        2,
      );
    for (const argv of [['/bin/bash', 'script.sh'], ['node', 'server.js'], ['npmish'], ['sh']])
      expect(findLaunchers({}, 10, tableOf({ 10: [1, argv] })), argv.join(' ')).toEqual([]);
  });

  it('stops at a process already gone or a zombie, and at pid 1', () => {
    const zombie: ProcessTable = (pid) => (pid === 10 ? { ppid: 1, argv: ['sh', '-c', 'x'], ended: true } : undefined);
    expect(findLaunchers({ GITHUB_ACTIONS: 'true' }, 10, zombie)).toEqual([]);
    expect(findLaunchers({ GITHUB_ACTIONS: 'true' }, 1, npxStep)).toEqual([]);
  });
});

describe.skipIf(process.platform !== 'linux')('watching launchers on /proc', () => {
  it('a live process still runs; once it has exited it does not, nor does another process given its pid', async () => {
    const child = spawn('sleep', ['60']);
    const info = procTable(child.pid!)!;
    expect(info.argv).toEqual(['sleep', '60']);
    const launcher = { pid: child.pid!, command: 'sleep 60', start: info.start };
    expect(stillRuns(launcher)).toBe(true);
    // The same pid started at another time is another process.
    expect(stillRuns({ ...launcher, start: '1' })).toBe(false);
    const ended = new Promise<void>((resolve) =>
      watchLaunchers([launcher], () => resolve(), { intervalMs: 10, ppid: () => launcher.pid }),
    );
    child.kill('SIGKILL');
    await ended;
    expect(stillRuns(launcher)).toBe(false);
  });

  it('reports the parent as gone as soon as this process is handed to another parent', async () => {
    const launchers = [{ pid: 10, command: 'sh -c x', start: 't10' }];
    const table = tableOf({ 10: [1, ['sh', '-c', 'x']] });
    let ppid = 10;
    const gone = new Promise<number>((resolve) =>
      watchLaunchers(launchers, (l) => resolve(l.pid), { intervalMs: 10, table, ppid: () => ppid }),
    );
    ppid = 1;
    expect(await gone).toBe(10);
  });
});
