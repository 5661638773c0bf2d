import path from 'node:path';
import { markdownTable } from 'markdown-table';
import { glob } from 'tinyglobby';
import { InputError } from '../errors.js';
import { escapeMarkdown as esc } from './escape.js';
import { formatCompact, HEADLINE_METRICS, worstOf } from '../measure/metrics.js';
import { renderMarkdown } from './markdown.js';
import { readReport, type Report } from './report.js';

export interface MergedReport {
  verdict: 'pass' | 'fail';
  markdown: string;
  reports: Array<{ file: string; report: Report }>;
}

/** Expands the patterns (e.g. `reports/*\/report.json`) and reads every report, refusing none found. */
export async function readReports(patterns: string[], cwd = process.cwd()): Promise<Array<{ file: string; report: Report }>> {
  const files = (await glob(patterns, { cwd, absolute: true, onlyFiles: true })).sort();
  if (files.length === 0)
    throw new InputError(patterns.join(' '), 'matches no report.json files; give the paths or patterns of the reports to merge (e.g. reports/*/report.json).');
  return Promise.all(files.map(async (file) => ({ file, report: await readReport(file) })));
}

/**
 * One comment and one verdict for a matrix of jobs (one student or config each): a summary row
 * per report, then each full report folded. The merged run fails when any report failed.
 */
export function mergeReports(reports: Array<{ file: string; report: Report }>): MergedReport {
  const verdict = reports.some(({ report }) => report.verdict === 'fail') ? 'fail' : 'pass';
  const rows = reports.map(({ file, report }) => {
    const m = report.metrics;
    const failing = report.gates.filter((g) => g.status === 'fail').map((g) => `${g.metric} (${g.expected})`);
    return [
      esc(nameOf(file, report)),
      report.verdict === 'pass' ? '✅ pass' : '❌ fail',
      ...HEADLINE_METRICS.map((spec) => formatCompact(spec.name, m[spec.name])),
      failing.length ? failing.join(', ') : '—',
    ];
  });
  const lines = [
    `## ${verdict === 'pass' ? '✅' : '❌'} distill-gate: ${verdict} (${reports.length} runs)`,
    '',
    markdownTable([['Run', 'Verdict', ...HEADLINE_METRICS.map((spec) => spec.label), 'Failing gates'], ...rows], {
      align: ['l', 'l', ...HEADLINE_METRICS.map(() => 'r' as const), 'l'],
    }),
    '',
  ];
  for (const { file, report } of reports) {
    const body = renderMarkdown(report)
      .replace(/^## /, '### ')
      .replace(/^### (?=[A-Z])/gm, '#### ');
    lines.push('<details>', `<summary>${esc(nameOf(file, report))}: ${report.verdict}</summary>`, '', body, '</details>', '');
  }
  return { verdict, markdown: `${lines.join('\n')}\n`, reports };
}

/** A run's name: its config file, or the folder its report sits in when configs share a name. */
function nameOf(file: string, report: Report): string {
  const config = report.config ? path.basename(report.config) : '';
  const folder = path.basename(path.dirname(file));
  return config && config !== 'distill-gate.yml' ? config : folder;
}

/**
 * The merged runs as one Report for the action's outputs and annotations: the merged verdict,
 * every run's gates and reasons (named by run), and the headline metrics' worst values (the lowest
 * where higher is better, e.g. agreement and speed-up; the highest otherwise, e.g. size ratio).
 */
export function mergedAsReport(merged: MergedReport): Report {
  const first = merged.reports[0].report;
  return {
    ...first,
    verdict: merged.verdict,
    reasons: merged.reports.flatMap(({ file, report }) => report.reasons.map((r) => `${nameOf(file, report)}: ${r}`)),
    gates: merged.reports.flatMap(({ file, report }) => report.gates.map((g) => ({ ...g, metric: `${nameOf(file, report)}: ${g.metric}` }))),
    metrics: Object.fromEntries(
      HEADLINE_METRICS.map(({ name }) => [
        name,
        worstOf(
          name,
          merged.reports.map(({ report }) => report.metrics[name]),
        ),
      ]),
    ),
  };
}
