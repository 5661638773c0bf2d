import path from 'node:path';
import picomatch from 'picomatch';
import { convertPathToPattern } from 'tinyglobby';
import type { Config } from '../config/load.js';
import { ensureCommit, firstLine, isCommitId, type Git, type GitOptions } from './git.js';

/**
 * Whether a pull request changed anything the gate looks at. A required check must report on
 * every PR, so the workflows have no `paths` filter (a workflow skipped by one reports nothing and
 * the required check waits forever); the action decides instead, and a PR that touches none of the
 * relevant files gets a passing status saying the gate was skipped, without distilling.
 *
 * The relevant files are globs relative to the repository root (the `paths` input, as in a
 * workflow's `paths` filter). The word `auto` among them stands for what the config names: the
 * config itself, the teacher's folder (model.json and its shards, or the ONNX file and its external
 * data), the student's model folder when it is a file, the data files and the baseline.
 */

/** The word of the `paths` input that stands for the files the config names. */
export const AUTO = 'auto';

/** The globs `auto` stands for, relative to `root` (the repository), from a loaded config. */
export function configGlobs(config: Config, root: string): string[] {
  const relative = (file: string) => path.relative(root, file).split(path.sep).join('/');
  const folder = (file: string) => `${relative(path.dirname(file))}/**`;
  const splits = [config.data.train, config.data.eval];
  const files = [
    relative(config.file),
    folder(config.teacher),
    ...('model' in config.student ? [folder(config.student.model)] : []),
    ...splits
      .flatMap((split) =>
        'csv' in split ? [split.csv] : 'images' in split ? [] : [split.x, ...(split.y ? [split.y] : [])],
      )
      .map(relative),
    // An image split's glob (absolute, its folder escaped) is itself the pattern, made relative.
    ...splits.flatMap((split) => ('images' in split ? [relativePattern(split.images, root)] : [])),
    ...(config.baseline ? [relative(config.baseline)] : []),
  ];
  // A file outside the repository (an absolute path elsewhere) cannot change in a PR.
  return [
    ...new Set(
      files
        .filter((glob) => !glob.startsWith('../') && glob !== '..' && !path.isAbsolute(glob))
        .map((g) => g.replace(/^\.\//, '')),
    ),
  ];
}

function relativePattern(pattern: string, root: string): string {
  const prefix = `${convertPathToPattern(root)}/`;
  return pattern.startsWith(prefix) ? pattern.slice(prefix.length) : pattern;
}

/** The `paths` input with `auto` expanded against the config. */
export function relevantGlobs(patterns: string[], config: Config | undefined, root: string): string[] {
  return [
    ...new Set(
      patterns.flatMap((pattern) => (pattern === AUTO ? (config ? configGlobs(config, root) : []) : [pattern])),
    ),
  ];
}

/** The changed files (repository-relative, `/`-separated) that match one of `globs`. */
export function matchingFiles(changed: string[], globs: string[]): string[] {
  if (globs.length === 0) return [];
  const isMatch = picomatch(globs, { dot: true });
  return changed.filter((file) => isMatch(file));
}

/** What a PR changed, as far as the gate is concerned. */
export type ChangeVerdict =
  | { relevant: true; files: string[]; changedCount: number; base: string }
  | { relevant: false; changedCount: number; base: string }
  /** The changes could not be read: the gate runs, since skipping it unseen could pass a regression. */
  | { relevant: 'unknown'; why: string };

/** Judges a list of changed files against the globs. */
export function judgeChanges(changed: string[], globs: string[], base: string): ChangeVerdict {
  const files = matchingFiles(changed, globs);
  return files.length > 0
    ? { relevant: true, files, changedCount: changed.length, base }
    : { relevant: false, changedCount: changed.length, base };
}

/**
 * The files a PR's checkout changed against its base commit, from git: the base is fetched one deep
 * when the checkout lacks it (`actions/checkout` fetches only the merge commit), and the two trees
 * are compared, which needs no history between them. The checkout must be the PR's: its head
 * commit, or the merge commit GitHub made of it (whose parents a shallow clone still names). A
 * checkout of anything else (the base branch, as pull_request_target checks out by default) would
 * show no change and skip the gate unseen, so it is refused.
 */
export async function changedFilesFromGit(
  root: string,
  baseSha: string,
  headSha: string | undefined,
  git: Git,
  options: GitOptions = {},
): Promise<string[]> {
  if (!isCommitId(baseSha)) throw new Error(`the base commit "${baseSha.slice(0, 40)}" is not a commit id`);
  const head = (await git(['rev-parse', 'HEAD'], root, options)).trim();
  const parents = [...(await git(['cat-file', '-p', 'HEAD'], root, options)).matchAll(/^parent ([0-9a-f]{40})$/gm)].map(
    (m) => m[1],
  );
  if (!headSha || (head !== headSha && !parents.includes(headSha)))
    throw new Error(
      `the checkout (${head.slice(0, 12)}) is neither the pull request's head commit ${headSha?.slice(0, 12) ?? '(unnamed)'} nor its merge commit`,
    );
  await ensureCommit(root, baseSha, git, options);
  const out = await git(['diff', '--name-only', '-z', '--no-renames', baseSha, 'HEAD'], root, options);
  return out.split('\0').filter(Boolean);
}

/** The one line that says why the gate was skipped (the commit status's description and the summary's headline). */
export function skippedLine(verdict: Extract<ChangeVerdict, { relevant: false }>): string {
  return `teacher, student, data and config unchanged since ${verdict.base.slice(0, 12)}: gate skipped`;
}

/** The one line that says why the changes were not read (the gate then runs). */
export const unknownLine = (error: unknown) =>
  `the changed files could not be read (${firstLine(error)}), so the gate runs`;
