import { mkdir, readFile, realpath } from 'node:fs/promises';
import path from 'node:path';
import { InputError } from '../errors.js';
import { fileExists } from '../models/artifacts.js';
import type { BaseTeacher } from '../stages/measure/teacher-diff.js';
import { ensureCommit, firstLine, isCommitId, runGit, writeBlobs, type Git } from './git.js';

/**
 * The base branch's teacher of a pull request, from the git history of the checked-out
 * repository. Why git and not the baseline store: teachers can be hundreds of MB, and the store's
 * branch would have to keep one per base commit; the repository already has every teacher in its
 * history. `actions/checkout` fetches only the PR's merge commit (fetch-depth 1), so the base
 * commit is fetched on its own (`git fetch --depth=1 origin <sha>`, with the credentials checkout
 * persisted), then the teacher's model.json and the weight shards it lists are read with `git
 * show <sha>:<path>` into a folder of their own. Any step that fails leaves the comparison out
 * with the reason, never the run: no git, a fetch refused, a teacher absent at base.
 */

/**
 * The base teacher of a run: the `base-teacher` input where given (a path that is not there exits
 * 2 naming it), else on a pull request the teacher at its base commit from git, else none (a push
 * or a schedule has no base to compare with).
 */
export async function baseTeacherForRun(
  input: string | undefined,
  request: Omit<BaseTeacherRequest, 'baseSha'> & { baseSha: string | undefined },
): Promise<BaseTeacher | undefined> {
  if (input) {
    if (!(await fileExists(input)))
      throw new InputError(
        'base-teacher',
        `${input} does not exist; give the base branch's teacher model.json (or ONNX file), or leave the input empty.`,
      );
    return { path: input, source: 'the base-teacher input' };
  }
  const { baseSha } = request;
  if (!baseSha) return undefined;
  const found = await baseTeacherFromGit({ ...request, baseSha });
  if ('unavailable' in found) request.log(`teacher diff: ${found.unavailable}`);
  return found;
}

export interface BaseTeacherRequest {
  /** The base commit: the pull_request event's `base.sha`. */
  baseSha: string;
  /** The head teacher's absolute path, inside the checked-out repository. */
  teacherPath: string;
  log: (line: string) => void;
  /** Where the base teacher's files are written: a folder of the run's own, which the action removes when the run ends. */
  workDir: string;
  /** The run's stop signal: a cancel or the budget's end kills git, and the comparison is left out saying so. */
  signal?: AbortSignal;
  /** Seam for tests. */
  git?: Git;
}

export async function baseTeacherFromGit({
  baseSha,
  teacherPath,
  log,
  workDir,
  signal,
  git = runGit,
}: BaseTeacherRequest): Promise<BaseTeacher> {
  const short = baseSha.slice(0, 12);
  if (!isCommitId(baseSha)) return { unavailable: `the base commit "${short}" is not a commit id` };
  const teacherDir = path.dirname(teacherPath);
  const options = { signal };
  let root: string;
  try {
    root = (await git(['rev-parse', '--show-toplevel'], teacherDir, options)).trim();
  } catch (error) {
    return { unavailable: `the teacher's folder is not in a git checkout (${firstLine(error)})` };
  }
  // Both sides real paths: a runner's temp folders are often symlinks (/tmp -> /private/tmp).
  const relative = path
    .relative(await realpath(root), await realpath(teacherPath).catch(() => teacherPath))
    .split(path.sep)
    .join('/');
  if (relative.startsWith('..')) return { unavailable: 'the teacher lies outside the checked-out repository' };
  const source = `git: ${relative} at ${short} (the base of the pull request)`;
  try {
    if (await ensureCommit(root, baseSha, git, options)) log(`teacher diff: fetched the base commit ${short}`);
  } catch (error) {
    return { unavailable: `the base commit ${short} could not be fetched (${firstLine(error)})`, source };
  }
  const out = path.join(workDir, 'base-teacher');
  await mkdir(out, { recursive: true });
  const target = path.join(out, path.basename(relative));
  try {
    await git(['show', `${baseSha}:${relative}`], root, { ...options, stdoutFile: target });
  } catch (error) {
    if (signal?.aborted) return { unavailable: `reading the base teacher was stopped (${firstLine(error)})`, source };
    return { unavailable: `the teacher ${relative} does not exist at the base commit ${short}`, source };
  }
  // A model.json lists its weight shards; an ONNX file (binary, not JSON) is the whole teacher.
  const shards = await shardPaths(target);
  const folder = path.posix.dirname(relative);
  const blobs: Array<{ path: string; to: string }> = [];
  for (const shard of shards) {
    const inFolder = path.posix.normalize(path.posix.join(folder, shard));
    // The same rule as reading any model: shards stay in the model's folder.
    if (path.posix.relative(folder, inFolder).startsWith('..'))
      return { unavailable: `the base teacher's shard "${shard}" leaves its folder`, source };
    const file = path.join(out, ...shard.split('/'));
    await mkdir(path.dirname(file), { recursive: true });
    blobs.push({ path: inFolder, to: file });
  }
  try {
    const missing = await writeBlobs(root, baseSha, blobs, options);
    if (missing.length > 0)
      return { unavailable: `the base teacher's weight shard ${missing[0]} is missing at ${short}`, source };
  } catch (error) {
    return { unavailable: `reading the base teacher's weight shards failed (${firstLine(error)})`, source };
  }
  log(`teacher diff: the base teacher ${relative} at ${short} (${shards.length} weight shard(s))`);
  return { path: target, source };
}

async function shardPaths(file: string): Promise<string[]> {
  let json: { weightsManifest?: Array<{ paths?: unknown }> };
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch {
    return [];
  }
  const paths = (json.weightsManifest ?? []).flatMap((group) => (Array.isArray(group.paths) ? group.paths : []));
  return paths.filter((p): p is string => typeof p === 'string');
}
