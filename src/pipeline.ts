import path from 'node:path';
import type { Config } from './config/load.js';
import type { RegressionAcceptance } from './gates/judge.js';
import { buildReport } from './report/build.js';
import type { HistoryEntry } from './report/history.js';
import { renderMarkdown } from './report/markdown.js';
import type { RunResult } from './report/report.js';
import { distillStudent, trainingBudget } from './stages/distill.js';
import { judgeRun } from './stages/judge.js';
import { measureStudent } from './stages/measure.js';
import { prepare } from './stages/prepare.js';
import { writeOutputs } from './stages/write.js';

export type { RunResult } from './report/report.js';

/**
 * What a run needs beyond its config: where to write, and the runtime around it. Settings that
 * a shell overrides (backend, baseline, cache folder) are merged into the config first, once
 * (`withOverrides` in config/load.ts).
 */
export interface RunOptions {
  /** Where report.json, report.md and student/ go. */
  outDir: string;
  /**
   * The baseline's student (model.json), timed against the new one in this run for relative
   * latency gates. Defaults to student/model.json beside the baseline report, or its student.path.
   */
  baselineStudent?: string;
  /** Folders searched for the optional native TF.js packages. */
  searchFrom?: string[];
  /** Cancellation (SIGINT, SIGTERM): training stops between batches; the run measures what it has and fails, incomplete. */
  signal?: AbortSignal;
  /**
   * Wall-clock budget of the whole run in minutes. Training stops at 85% of it, so that measuring
   * and writing fit in the rest; the report is then `incomplete`, and the gates judge what was reached.
   */
  budgetMinutes?: number;
  log?: (line: string) => void;
  commit?: string;
  /** Set when the PR carries the accept-regression label. */
  acceptRegression?: RegressionAcceptance;
  /** Earlier runs from the baseline store, drawn as a trend in report.md. */
  history?: HistoryEntry[];
}

/** prepare -> distill -> measure -> judge -> buildReport, then the files. */
export async function runPipeline(config: Config, options: RunOptions): Promise<RunResult> {
  const log = options.log ?? (() => {});
  // The budget counts from the run's start: loading a large teacher spends it too.
  const budget = trainingBudget(options.budgetMinutes);
  try {
    const session = await prepare(config, { searchFrom: options.searchFrom ?? [process.cwd(), config.dir], log });
    try {
      const distillation = await distillStudent(session, config, { signal: options.signal, budget: budget?.signal, log });
      budget?.clear();
      const measurement = await measureStudent(session, config, distillation, { baselineStudent: options.baselineStudent, log });
      const judgement = judgeRun(session, config, distillation, measurement, options.acceptRegression);
      const studentDir = path.join(options.outDir, 'student');
      const report = buildReport({
        config,
        session,
        distillation,
        measurement,
        judgement,
        studentDir,
        commit: options.commit,
        createdAt: new Date().toISOString(),
      });
      const markdown = renderMarkdown(report, { history: options.history });
      const writeError = await writeOutputs(session.backend.tf, session.student, options.outDir, report, markdown);
      return {
        report,
        markdown,
        reportPath: path.join(options.outDir, 'report.json'),
        studentPath: path.join(studentDir, 'model.json'),
        ...(writeError ? { writeError } : {}),
      };
    } finally {
      session.dispose();
    }
  } finally {
    budget?.clear();
  }
}
