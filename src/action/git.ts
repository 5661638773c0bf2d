import { spawn } from 'node:child_process';
import { createWriteStream, writeFileSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { abortReason } from '../run-control.js';

/**
 * git as the action runs it: every call under the run's clock. A fetch from a slow remote or a
 * `git show` of a huge blob must never outlive a cancel (the runner's SIGKILL follows its SIGINT
 * by 10 s), so each call takes the run's abort signal and a deadline of its own, and kills git
 * when either comes first.
 */
export interface GitOptions {
  /** Aborts the call (the run's stop signal): git is killed and the call rejects with the reason. */
  signal?: AbortSignal;
  /** Longest time the call may take. */
  timeoutMs?: number;
  /** Where stdout goes, when not collected (a blob can be hundreds of MB). */
  stdoutFile?: string;
}

/** How long one git call may take unless told otherwise: a fetch of one commit, depth 1. */
export const GIT_TIMEOUT_MS = 120_000;

/** A git invocation: arguments, working folder, options. Tests replace it. */
export type Git = (args: string[], cwd: string, options?: GitOptions) => Promise<string>;

/** Runs git; resolves with stdout (or '' when it went to a file), rejects with stderr, the abort reason or the deadline. */
export const runGit: Git = (args, cwd, { signal, timeoutMs = GIT_TIMEOUT_MS, stdoutFile } = {}) => {
  const deadline = AbortSignal.timeout(timeoutMs);
  const stop = signal ? AbortSignal.any([signal, deadline]) : deadline;
  return new Promise((resolve, reject) => {
    if (stop.aborted) return reject(new Error(why(stop, deadline, args, timeoutMs)));
    const child = spawn('git', args, {
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, GIT_TERMINAL_PROMPT: '0' },
    });
    const onStop = () => child.kill('SIGKILL');
    stop.addEventListener('abort', onStop, { once: true });
    let stdout = '';
    let stderr = '';
    const written = stdoutFile ? pipeline(child.stdout, createWriteStream(stdoutFile)) : Promise.resolve();
    if (!stdoutFile) child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', (error) => {
      stop.removeEventListener('abort', onStop);
      reject(error);
    });
    child.on('close', (code) => {
      stop.removeEventListener('abort', onStop);
      if (stop.aborted) return reject(new Error(why(stop, deadline, args, timeoutMs)));
      written.then(
        () => (code === 0 ? resolve(stdout) : reject(new Error(stderr.trim() || `git ${args[0]} exited with ${code}`))),
        reject,
      );
    });
  });
};

function why(stop: AbortSignal, deadline: AbortSignal, args: string[], timeoutMs: number): string {
  return deadline.aborted && stop.reason === deadline.reason
    ? `git ${args[0]} took longer than ${timeoutMs < 1000 ? `${timeoutMs} ms` : `${Math.round(timeoutMs / 1000)} s`} and was stopped`
    : `git ${args[0]} was stopped: ${abortReason(stop)}`;
}

/** The commit id rule: a full 40-hex sha, never a ref or an option that git would interpret. */
export const isCommitId = (sha: string): boolean => /^[0-9a-f]{40}$/i.test(sha);

/**
 * Makes `sha` present in the checkout at `root`: `actions/checkout` fetches only the PR's merge
 * commit (depth 1), so the base commit is fetched on its own, one deep, with the credentials
 * checkout persisted. Resolves with whether it had to fetch.
 */
export async function ensureCommit(root: string, sha: string, git: Git, options: GitOptions = {}): Promise<boolean> {
  try {
    await git(['cat-file', '-e', `${sha}^{commit}`], root, options);
    return false;
  } catch {
    await git(['fetch', '--depth=1', '--no-tags', 'origin', sha], root, options);
    return true;
  }
}

/** The first line of an error's message, for a one-line reason. */
export function firstLine(error: unknown): string {
  return (
    String((error as Error)?.message ?? error)
      .split('\n')
      .find((line) => line.trim())
      ?.trim() ?? String(error)
  );
}

/**
 * Writes blobs of commit `rev` to files in one `git cat-file --batch` (a teacher of 3,000 weight
 * shards is one git process, not 3,000). Resolves with the paths git does not have at `rev`;
 * rejects on the abort signal or the deadline like runGit. Blobs are written one at a time as they
 * stream in, so memory holds at most one.
 */
export function writeBlobs(
  root: string,
  rev: string,
  blobs: Array<{ path: string; to: string }>,
  options: GitOptions = {},
): Promise<string[]> {
  const { signal, timeoutMs = GIT_TIMEOUT_MS } = options;
  const deadline = AbortSignal.timeout(timeoutMs);
  const stop = signal ? AbortSignal.any([signal, deadline]) : deadline;
  return new Promise((resolve, reject) => {
    if (stop.aborted) return reject(new Error(why(stop, deadline, ['cat-file'], timeoutMs)));
    const child = spawn('git', ['cat-file', '--batch'], {
      cwd: root,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, GIT_TERMINAL_PROMPT: '0' },
    });
    const onStop = () => child.kill('SIGKILL');
    stop.addEventListener('abort', onStop, { once: true });
    const missing: string[] = [];
    let next = 0;
    let pending: Buffer = Buffer.alloc(0);
    /** Bytes of the current blob still to come, and its parts so far; undefined between blobs. */
    let blob: { left: number; parts: Buffer[]; to: string } | undefined;
    let failure: Error | undefined;
    let stderr = '';
    const consume = () => {
      for (;;) {
        if (blob) {
          const take = Math.min(blob.left, pending.length);
          blob.parts.push(pending.subarray(0, take));
          pending = pending.subarray(take);
          blob.left -= take;
          // The blob, then the newline git puts after it.
          if (blob.left > 0 || pending.length === 0) return;
          writeFileSync(blob.to, Buffer.concat(blob.parts));
          pending = pending.subarray(1);
          blob = undefined;
          continue;
        }
        const end = pending.indexOf(10);
        if (end < 0) return;
        const header = pending.subarray(0, end).toString();
        pending = pending.subarray(end + 1);
        const asked = blobs[next++];
        if (!asked) throw new Error(`git cat-file answered more than it was asked: "${header}"`);
        const size = /^[0-9a-f]+ blob (\d+)$/.exec(header)?.[1];
        if (size === undefined) missing.push(asked.path);
        else blob = { left: Number(size), parts: [], to: asked.to };
      }
    };
    child.stdout.on('data', (chunk: Buffer) => {
      if (failure) return;
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      try {
        consume();
      } catch (error) {
        failure = error as Error;
        child.kill('SIGKILL');
      }
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdin.on('error', () => {}); // git gone (killed): the close handler says why
    child.on('error', (error) => {
      stop.removeEventListener('abort', onStop);
      reject(error);
    });
    child.on('close', (code) => {
      stop.removeEventListener('abort', onStop);
      if (stop.aborted) return reject(new Error(why(stop, deadline, ['cat-file'], timeoutMs)));
      if (failure) return reject(failure);
      if (code !== 0) return reject(new Error(stderr.trim() || `git cat-file exited with ${code}`));
      if (next !== blobs.length || blob)
        return reject(new Error(`git cat-file answered ${next} of ${blobs.length} paths`));
      resolve(missing);
    });
    child.stdin.end(blobs.map((b) => `${rev}:${b.path}\n`).join(''));
  });
}
