import { readFile } from 'node:fs/promises';
import { InputError } from '../errors.js';
import type { Report } from './report.js';
import { parseReport, type ReportTrust } from './report-schema.js';

/**
 * Reads and validates a report.json written by this machine's runs (a baseline, the CLI's compare,
 * merge and history); see report-schema.ts for what is checked and how errors name the JSON path.
 */
export function readReport(file: string): Promise<Report> {
  return readReportAs(file, 'trusted');
}

/**
 * Reads a report.json uploaded by a job that ran a pull request's code: validated like any other,
 * and fields the schema does not know are dropped. Its verdict is still a claim: re-judge it
 * (report/rejudge.ts) before publishing it.
 */
export function readUntrustedReport(file: string): Promise<Report> {
  return readReportAs(file, 'untrusted');
}

async function readReportAs(file: string, trust: ReportTrust): Promise<Report> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    const reason =
      error instanceof SyntaxError
        ? `is not valid JSON (${error.message})`
        : `cannot be read (${(error as NodeJS.ErrnoException).code ?? error})`;
    throw new InputError(file, `${reason}; expected a report.json written by distill-gate.`);
  }
  return parseReport(parsed, file, trust);
}
