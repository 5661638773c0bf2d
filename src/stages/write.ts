import { constants } from 'node:fs';
import { lstat, mkdir, mkdtemp, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Tf } from '../backend/resolve.js';
import { InputError, isInputError } from '../errors.js';
import { writeModelArtifacts } from '../models/artifacts.js';
import { exportArtifacts, saveToMemory, type ExportPlan } from '../models/export.js';
import { studentLayers } from '../models/model.js';
import { type LoadedModel } from '../models/loaded-model.js';
import { ONNX_STUDENT_FILE, onnxStudentBytes } from '../models/onnx-student.js';
import type { Report } from '../report/report.js';

/**
 * report.json first (the record CI keys on), then report.md, then the student as it ships (none
 * for a run cut short): its weights quantized and its output kind as `plan` says, float32 logits
 * without one; with `format: onnx`, student.onnx beside model.json. A folder that cannot be written gives back an InputError instead of throwing: the
 * report itself is intact.
 *
 * Nothing is written through a symbolic link inside the folder (a PR's checkout can hold one, for
 * a trusted job to overwrite what it points at): report.json or report.md as a link is refused,
 * and student/ is written afresh beside the old one and then put in its place.
 */
export async function writeOutputs(
  tf: Tf | undefined,
  student: LoadedModel | undefined,
  outDir: string,
  report: Report,
  markdown: string,
  plan?: ExportPlan,
): Promise<InputError | undefined> {
  try {
    await outputFolder(outDir);
    await writeOutputFile(path.join(outDir, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
    await writeOutputFile(path.join(outDir, 'report.md'), markdown);
    if (tf && student) {
      const artifacts = await saveToMemory(tf, studentLayers(student));
      await replaceFolder(path.join(outDir, 'student'), async (dir) => {
        await writeModelArtifacts(dir, plan ? exportArtifacts(artifacts, plan, student.output) : artifacts);
        // export.format onnx: student.onnx beside model.json, the bytes the run checked.
        if (plan?.format === 'onnx')
          await writeFile(path.join(dir, ONNX_STUDENT_FILE), onnxStudentBytes(student, plan));
      });
    }
    return undefined;
  } catch (error) {
    if (isInputError(error)) return error;
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    return new InputError(
      outDir,
      `cannot write the report and student there (${code}); choose a writable output folder with free space. The report itself was still produced.`,
    );
  }
}

/**
 * Makes the output folder (and its parents) unless it is there; a file of that name is an
 * InputError naming it, not a crash on EEXIST.
 */
export async function outputFolder(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const found = await stat(dir).catch(() => undefined);
    if (found?.isDirectory()) return;
    throw new InputError(
      dir,
      'is a file, not a folder: name a folder for the output (it is made when missing), or remove the file.',
    );
  }
}

/** Writes a file of the output, refusing to follow a symbolic link in its place (O_NOFOLLOW). */
export async function writeOutputFile(file: string, data: string): Promise<void> {
  try {
    await writeFile(file, data, {
      flag: constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW,
    });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw symlinkRefused(file);
    if (code === 'EISDIR') throw new InputError(file, 'is a folder; remove it, or name another output folder.');
    throw error;
  }
}

function symlinkRefused(file: string): InputError {
  return new InputError(
    file,
    'is a symbolic link; distill-gate never writes through a link in its output folder. Remove the link, or name another output folder.',
  );
}

/**
 * Fills a new folder beside `dir` and then puts it in `dir`'s place: files are never written into
 * an existing folder, whose entries could be links, and no stale file of an earlier run is left.
 * `dir` itself as a symbolic link is refused (it may be someone's folder elsewhere).
 */
async function replaceFolder(dir: string, fill: (fresh: string) => Promise<unknown>): Promise<void> {
  const existing = await lstat(dir).catch(() => undefined);
  if (existing?.isSymbolicLink()) throw symlinkRefused(dir);
  const fresh = await mkdtemp(path.join(path.dirname(dir), `.${path.basename(dir)}-`));
  try {
    await fill(fresh);
    await rm(dir, { recursive: true, force: true });
    await rename(fresh, dir);
  } finally {
    await rm(fresh, { recursive: true, force: true });
  }
}
