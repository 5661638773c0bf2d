// The files `distill-gate init` writes beside the user's: what it refuses to overwrite, where the
// repository's root is, the workflow it copies from examples/workflows and the .gitignore line.
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { InputError } from '../errors.js';
import { fileExists } from '../models/artifacts.js';

export const REPORT_DIR_LINE = 'distill-report/';

/** Refuses to overwrite any of `files` unless --force; names the first that exists. */
export async function refuseExisting(files: string[], force: boolean | undefined): Promise<void> {
  if (force) return;
  for (const file of files)
    if (await fileExists(file))
      throw new InputError(
        relative(process.cwd(), file),
        'exists; init overwrites nothing without --force (nothing was written or run).',
      );
}

/** The nearest folder at or above `dir` holding .git (a folder or a worktree's file); `dir` when none does. */
export async function repositoryRoot(dir: string): Promise<string> {
  for (let folder = dir; ; folder = path.dirname(folder)) {
    if (
      await stat(path.join(folder, '.git')).then(
        () => true,
        () => false,
      )
    )
      return folder;
    if (path.dirname(folder) === folder) return dir;
  }
}

/** The example workflow with its config path pointing at the written config (relative to the repository's root). */
export function workflowFor(template: string, configPath: string): string {
  const header = `# Written by \`distill-gate init\` from examples/workflows; the config is ${configPath}.\n`;
  return header + template.replace(/^(\s*config:\s*)distill-gate\.yml\b/gm, (_, key: string) => `${key}${configPath}`);
}

/** Appends the report folder to .gitignore (creating it) unless a line already ignores it; whether it wrote. */
export async function addIgnoreLine(file: string): Promise<boolean> {
  const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return '';
    throw error;
  });
  const ignored = text
    .split(/\r?\n/)
    .some((line) => ['distill-report', 'distill-report/', '/distill-report', '/distill-report/'].includes(line.trim()));
  if (ignored) return false;
  await writeFile(file, `${text}${text && !text.endsWith('\n') ? '\n' : ''}${REPORT_DIR_LINE}\n`);
  return true;
}

/** `file` relative to `from`, with forward slashes ('.' for the folder itself). */
export function relative(from: string, file: string): string {
  return path.relative(from, file).split(path.sep).join('/') || '.';
}
