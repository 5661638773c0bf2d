import * as core from '@actions/core';
import { InputError } from '../../errors.js';
import { mergedAsReport, mergeReports, readReports, writeMergedMarkdown } from '../../report/merge.js';
import type { RunResult } from '../../report/report.js';
import type { RunClock } from '../../run-control.js';
import { regressionAcceptance } from '../acceptance.js';
import type { Step } from '../inputs.js';

/**
 * mode merge: the reports of a matrix of jobs as one report and verdict, also written to report.md.
 * Each leg is re-judged, never believed; the PR's accept label is read live here, as in mode run.
 */
export async function mergeMode(step: Step, clock: RunClock): Promise<RunResult> {
  const { inputs, context } = step;
  if (inputs.reports.length === 0)
    throw new InputError(
      'input reports',
      'mode merge needs the report.json files to merge, e.g. reports: "reports/*/report.json".',
    );
  if (!inputs.expect)
    core.warning(
      'distill-gate: input expect is not set, so a matrix leg that uploaded no report.json would go unnoticed; set expect to the number (or names) of the legs.',
    );
  const reports = await readReports(inputs.reports, inputs.workingDirectory, inputs.expect);
  const acceptance = await regressionAcceptance(step, clock);
  // Legs of a run with no pull request had no base teacher to compare with: their teacherDiff gates skip, as in a run.
  const noBaseTeacher = context.payload.pull_request
    ? undefined
    : `a ${context.eventName} run has no base branch's teacher to compare with`;
  const merged = mergeReports(reports, inputs.expect, { acceptance, noBaseTeacher });
  const reportPath = await writeMergedMarkdown(inputs.outputDir, merged.markdown);
  return { report: mergedAsReport(merged), markdown: merged.markdown, reportPath, studentPath: '' };
}
