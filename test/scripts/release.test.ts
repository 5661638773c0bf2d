import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// scripts/release.mjs on a throwaway repository shaped like this one (package.json, a committed
// dist/index.js, a check-dist script), so that nothing here touches this repository or a remote.

const SCRIPT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../scripts/release.mjs');
const env = {
  ...process.env,
  GIT_AUTHOR_NAME: 'release test',
  GIT_AUTHOR_EMAIL: 'release@example.invalid',
  GIT_COMMITTER_NAME: 'release test',
  GIT_COMMITTER_EMAIL: 'release@example.invalid',
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
};

const git = (cwd: string, ...args: string[]) => execFileSync('git', args, { cwd, env, encoding: 'utf8' }).trim();

async function repository({ checkDist = 'node -e 0' }: { checkDist?: string } = {}): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-release-'));
  const manifest = {
    name: 'distill-gate',
    version: '1.2.2',
    type: 'module',
    files: ['dist'],
    scripts: { 'check-dist': checkDist },
  };
  await writeFile(path.join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  await mkdir(path.join(dir, 'dist'));
  await writeFile(path.join(dir, 'dist/index.js'), 'console.log("the action");\n');
  git(dir, 'init', '-q', '-b', 'main');
  git(dir, 'add', '.');
  git(dir, 'commit', '-q', '-m', 'first');
  // The major tag as an earlier release left it.
  git(dir, 'tag', '-a', 'v1', '-m', 'v1: v1.2.2');
  return dir;
}

function release(dir: string, ...args: string[]) {
  const result = spawnSync(process.execPath, [SCRIPT, ...args], { cwd: dir, env, encoding: 'utf8' });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

const version = async (dir: string) =>
  (JSON.parse(await readFile(path.join(dir, 'package.json'), 'utf8')) as { version: string }).version;

describe('scripts/release.mjs', () => {
  it('--dry-run checks and says what it would do, and changes nothing', async () => {
    const dir = await repository();
    const head = git(dir, 'rev-parse', 'HEAD');
    const { code, stdout } = release(dir, '1.3.0', '--dry-run', '--pack-destination', path.join(dir, 'out'));
    expect(code).toBe(0);
    expect(stdout).toContain('ok: the working tree is clean');
    expect(stdout).toContain('ok: dist/ matches a fresh build');
    expect(stdout).toContain("would: set package.json's version to 1.3.0 (was 1.2.2)");
    expect(stdout).toContain('would: tag v1.3.0, and move v1 to it');
    expect(stdout).toContain('not pushed (no --push)');
    expect([git(dir, 'rev-parse', 'HEAD'), await version(dir), git(dir, 'tag', '--list')]).toEqual([
      head,
      '1.2.2',
      'v1',
    ]);
    expect(existsSync(path.join(dir, 'out'))).toBe(false);
  });

  it('without --push: bumps, commits, tags vX.Y.Z, moves v1 there and packs the tarball; pushes nothing', async () => {
    const dir = await repository();
    const out = path.join(dir, '..', `${path.basename(dir)}-out`);
    const { code, stdout, stderr } = release(dir, 'v1.3.0', '--pack-destination', out);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(await version(dir)).toBe('1.3.0');
    expect(git(dir, 'log', '-1', '--format=%s')).toBe('Release v1.3.0');
    const head = git(dir, 'rev-parse', 'HEAD');
    expect(git(dir, 'rev-parse', 'v1.3.0^{commit}')).toBe(head);
    expect(git(dir, 'rev-parse', 'v1^{commit}')).toBe(head);
    expect(git(dir, 'cat-file', '-e', 'v1:dist/index.js')).toBe('');
    expect(existsSync(path.join(out, 'distill-gate-1.3.0.tgz'))).toBe(true);
    expect(stdout).toMatch(
      /not pushed \(no --push\)[\s\S]*git push origin HEAD v1\.3\.0[\s\S]*git push --force origin v1[\s\S]*gh release create v1\.3\.0/,
    );
    expect(git(dir, 'status', '--porcelain')).toBe('');
  });

  it('refuses a dirty tree, a dist/ out of sync, an existing tag and an earlier version, changing nothing', async () => {
    const dirty = await repository();
    await writeFile(path.join(dirty, 'dist/index.js'), 'edited\n');
    const onDirty = release(dirty, '1.3.0');
    expect(onDirty.code).toBe(1);
    expect(onDirty.stderr).toContain('the working tree is not clean');

    const stale = await repository({ checkDist: 'node -e "process.exit(1)"' });
    const onStale = release(stale, '1.3.0');
    expect(onStale.code).toBe(1);
    expect(onStale.stderr).toContain('dist/ is not in sync with src/ (npm run check-dist)');
    expect(await version(stale)).toBe('1.2.2');

    const tagged = await repository();
    git(tagged, 'tag', 'v1.3.0');
    expect(release(tagged, '1.3.0').stderr).toContain('the tag v1.3.0 exists already');
    const earlier = release(tagged, '1.1.0');
    expect([earlier.code, earlier.stderr.trim()]).toEqual([2, "release: 1.1.0 is before package.json's 1.2.2"]);
    expect(git(tagged, 'log', '--format=%s')).toBe('first');
  });
});
