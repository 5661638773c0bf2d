import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Tf } from '../backend/resolve.js';
import { InputError } from '../errors.js';
import { writeModelArtifacts } from '../models/artifacts.js';
import { exportArtifacts, saveToMemory, type ExportPlan } from '../models/export.js';
import type { LoadedModel } from '../models/model.js';
import type { Report } from '../report/report.js';

/**
 * report.json first (the record CI keys on), then report.md, then the student as it ships (none
 * for a run cut short): its weights quantized and its output kind as `plan` says, float32 logits
 * without one. A folder that cannot be written gives back an InputError instead of throwing: the
 * report itself is intact.
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
    await mkdir(outDir, { recursive: true });
    await writeFile(path.join(outDir, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
    await writeFile(path.join(outDir, 'report.md'), markdown);
    if (tf && student) {
      const artifacts = await saveToMemory(tf, student.layers!);
      await writeModelArtifacts(path.join(outDir, 'student'), plan ? exportArtifacts(artifacts, plan, student.output) : artifacts);
    }
    return undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    return new InputError(
      outDir,
      `cannot write the report and student there (${code}); choose a writable output folder with free space. The report itself was still produced.`,
    );
  }
}
