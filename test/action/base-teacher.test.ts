import { execFileSync } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { baseTeacherFromGit } from '../../src/action/base-teacher.js';
import { runGit, type Git } from '../../src/action/git.js';
import { EXAMPLE } from '../helpers.js';

// A repository whose first commit has the example's teacher and whose second changes its weights,
// checked out as actions/checkout does for a pull request: one commit deep, the base not fetched.

const git = (cwd: string, ...args: string[]) =>
  execFileSync(
    'git',
    ['-c', 'user.name=t', '-c', 'user.email=t@example.com', '-c', 'init.defaultBranch=main', ...args],
    { cwd, encoding: 'utf8' },
  ).trim();

async function repository() {
  const origin = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-origin-'));
  git(origin, 'init', '-q');
  await cp(path.join(EXAMPLE, 'models/teacher'), path.join(origin, 'models/teacher'), { recursive: true });
  git(origin, 'add', '.');
  git(origin, 'commit', '-q', '-m', 'base teacher');
  const base = git(origin, 'rev-parse', 'HEAD');
  const shard = path.join(origin, 'models/teacher/group1-shard1of1.bin');
  const baseShard = await readFile(shard);
  const changed = Buffer.from(baseShard);
  changed[0] ^= 0xff;
  await writeFile(shard, changed);
  git(origin, 'commit', '-q', '-am', 'head teacher');
  const checkout = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-checkout-'));
  git(checkout, 'clone', '-q', '--depth=1', `file://${origin}`, '.');
  return { origin, checkout, base, baseShard, teacher: path.join(checkout, 'models/teacher/model.json') };
}

const workDir = () => mkdtemp(path.join(os.tmpdir(), 'distill-gate-run-'));

describe("the base branch's teacher from git", () => {
  it('fetches the base commit a shallow checkout lacks, and reads the teacher and its shards as they were there', async () => {
    const { checkout, base, baseShard, teacher } = await repository();
    expect(() => git(checkout, 'cat-file', '-e', `${base}^{commit}`)).toThrow();
    const lines: string[] = [];
    const found = await baseTeacherFromGit({
      baseSha: base,
      teacherPath: teacher,
      log: (line) => lines.push(line),
      workDir: await workDir(),
    });
    expect(found).toMatchObject({
      source: `git: models/teacher/model.json at ${base.slice(0, 12)} (the base of the pull request)`,
    });
    const dir = path.dirname((found as { path: string }).path);
    expect(await readFile(path.join(dir, 'model.json'), 'utf8')).toBe(await readFile(teacher, 'utf8'));
    expect((await readFile(path.join(dir, 'group1-shard1of1.bin'))).equals(baseShard)).toBe(true);
    expect((await readFile(path.join(checkout, 'models/teacher/group1-shard1of1.bin'))).equals(baseShard)).toBe(false);
    expect(lines.join('\n')).toMatch(/fetched the base commit/);
  });

  it('says why when the base cannot be had: a commit the remote lacks, a teacher absent at base, no git checkout', async () => {
    const { origin, base, teacher } = await repository();
    const log = () => {};
    const unknown = await baseTeacherFromGit({
      baseSha: 'f'.repeat(40),
      teacherPath: teacher,
      log,
      workDir: await workDir(),
    });
    expect(unknown).toMatchObject({
      unavailable: expect.stringMatching(/^the base commit ffffffffffff could not be fetched/),
    });
    // A teacher added by the PR: absent at base.
    await rm(path.join(origin, 'models'), { recursive: true });
    await writeFile(path.join(origin, 'README'), 'x');
    git(origin, 'add', '-A');
    git(origin, 'commit', '-q', '-m', 'no teacher');
    const without = git(origin, 'rev-parse', 'HEAD');
    expect(
      await baseTeacherFromGit({ baseSha: without, teacherPath: teacher, log, workDir: await workDir() }),
    ).toMatchObject({
      unavailable: `the teacher models/teacher/model.json does not exist at the base commit ${without.slice(0, 12)}`,
    });
    const elsewhere = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-nogit-'));
    expect(
      await baseTeacherFromGit({
        baseSha: base,
        teacherPath: path.join(elsewhere, 'model.json'),
        log,
        workDir: await workDir(),
      }),
    ).toMatchObject({
      unavailable: expect.stringMatching(/^the teacher's folder is not in a git checkout/),
    });
    expect(
      await baseTeacherFromGit({ baseSha: 'main; rm -rf /', teacherPath: teacher, log, workDir: await workDir() }),
    ).toEqual({
      unavailable: 'the base commit "main; rm -rf" is not a commit id',
    });
  });

  it("is written into the run's own folder, and a cancel kills a git that hangs and says so", async () => {
    const { base, teacher } = await repository();
    const dir = await workDir();
    const found = await baseTeacherFromGit({ baseSha: base, teacherPath: teacher, log: () => {}, workDir: dir });
    expect(path.relative(dir, (found as { path: string }).path)).toBe(path.join('base-teacher', 'model.json'));
    // A git whose every call hangs (a fetch from a remote that never answers).
    const stop = new AbortController();
    const hanging: Git = (args, _cwd, options) =>
      new Promise((_, reject) => {
        const stopped = () => reject(new Error(`git ${args[0]} was stopped: cancelled`));
        if (options?.signal?.aborted) stopped();
        else options?.signal?.addEventListener('abort', stopped);
      });
    const pending = baseTeacherFromGit({
      baseSha: base,
      teacherPath: teacher,
      log: () => {},
      workDir: dir,
      signal: stop.signal,
      git: async (args, cwd, options) =>
        args[0] === 'rev-parse' ? runGit(args, cwd, options) : hanging(args, cwd, options),
    });
    setTimeout(() => stop.abort(new Error('cancelled')), 50);
    expect(await pending).toMatchObject({
      unavailable: expect.stringMatching(/could not be fetched \(git fetch was stopped: cancelled\)/),
    });
  });
});
