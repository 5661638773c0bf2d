import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runGit, writeBlobs } from '../../src/action/git.js';
import { seededRandom } from '../../src/distill/random.js';

const git = (cwd: string, ...args: string[]) =>
  execFileSync(
    'git',
    ['-c', 'user.name=t', '-c', 'user.email=t@example.com', '-c', 'init.defaultBranch=main', ...args],
    { cwd, encoding: 'utf8' },
  ).trim();

describe('git under the run clock', () => {
  it('writes many blobs of a commit in one cat-file, byte for byte, and names the paths the commit lacks', async () => {
    const repo = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-blobs-'));
    git(repo, 'init', '-q');
    const random = seededRandom(3);
    const contents = new Map<string, Buffer>();
    await mkdir(path.join(repo, 'shards'));
    for (let i = 0; i < 300; i++) {
      // Sizes from 0 up to 70 KB, with newlines and NUL bytes in them: nothing a header parser may trip on.
      const bytes = Buffer.from(
        Array.from({ length: i === 0 ? 0 : Math.floor(random() * 70_000) }, () =>
          random() < 0.05 ? 10 : Math.floor(random() * 256),
        ),
      );
      contents.set(`shards/s${i}.bin`, bytes);
      await writeFile(path.join(repo, `shards/s${i}.bin`), bytes);
    }
    git(repo, 'add', '.');
    git(repo, 'commit', '-q', '-m', 'shards');
    const head = git(repo, 'rev-parse', 'HEAD');
    const out = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-blobs-out-'));
    const asked = [...contents.keys(), 'shards/absent.bin'].map((file, i) => ({
      path: file,
      to: path.join(out, `${i}.bin`),
    }));
    expect(await writeBlobs(repo, head, asked)).toEqual(['shards/absent.bin']);
    for (const [i, file] of [...contents.keys()].entries())
      expect((await readFile(path.join(out, `${i}.bin`))).equals(contents.get(file)!), file).toBe(true);
  });

  it('an abort or the deadline kills git and says which', async () => {
    const stop = new AbortController();
    stop.abort(new Error('the job was cancelled (SIGINT)'));
    await expect(runGit(['--version'], os.tmpdir(), { signal: stop.signal })).rejects.toThrow(
      'git --version was stopped: the job was cancelled (SIGINT)',
    );
    // A deadline shorter than git takes to start: it is killed, and the error says it took too long.
    await expect(runGit(['--version'], os.tmpdir(), { timeoutMs: 1 })).rejects.toThrow(
      'git --version took longer than 1 ms and was stopped',
    );
  });
});
