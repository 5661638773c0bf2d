import { readFile } from 'node:fs/promises';
import { markdownTable } from 'markdown-table';
import { InputError } from '../errors.js';
import type { Report } from './report.js';
import { formatCompact, TREND_METRICS } from '../measure/metrics.js';
import { escapeMarkdown as esc } from './escape.js';

/** One run in a baseline store's history: enough to draw the trend and to audit overrides. */
export interface HistoryEntry {
  createdAt: string;
  commit?: string;
  event?: string;
  verdict: 'pass' | 'fail';
  backend: string;
  metrics: Record<string, number>;
  override?: Report['override'];
}

/** Runs kept in a history file; older ones fall off. */
export const HISTORY_LIMIT = 200;
/** Runs drawn in the report's trend. */
export const TREND_RUNS = 30;

export function historyEntry(report: Report, event?: string): HistoryEntry {
  return {
    createdAt: report.createdAt,
    ...(report.commit ? { commit: report.commit } : {}),
    ...(event ? { event } : {}),
    verdict: report.verdict,
    backend: report.backend,
    metrics: report.metrics,
    ...(report.override ? { override: report.override } : {}),
  };
}

export function appendHistory(history: HistoryEntry[], entry: HistoryEntry): HistoryEntry[] {
  return [...history, entry].slice(-HISTORY_LIMIT);
}

export function parseHistory(text: string, source: string): HistoryEntry[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new InputError(source, `is not valid JSON (${(error as Error).message}); expected a distill-gate history file (a list of runs).`);
  }
  if (!Array.isArray(parsed) || parsed.some((e) => typeof e !== 'object' || e === null || typeof (e as HistoryEntry).metrics !== 'object')) {
    throw new InputError(source, 'is not a distill-gate history file: expected a list of runs, each with "metrics".');
  }
  return parsed as HistoryEntry[];
}

export async function readHistory(file: string): Promise<HistoryEntry[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new InputError(file, `cannot read the history file (${(error as NodeJS.ErrnoException).code ?? error}).`);
  }
  return parseHistory(text, file);
}

/** Mermaid xychart-beta charts of the last runs (one per trend metric of the catalogue, since their scales differ). */
export function trendCharts(history: HistoryEntry[], current?: Report): string {
  const runs = [...history, ...(current ? [historyEntry(current)] : [])].slice(-TREND_RUNS);
  if (runs.length < 2) return '';
  const labels = runs.map(
    (r, i) => `"${i === runs.length - 1 && current ? 'this' : r.commit ? r.commit.slice(0, 7).replace(/[^0-9a-f]/gi, '') : String(i + 1)}"`,
  );
  return TREND_METRICS.filter((s) => runs.some((r) => Number.isFinite(r.metrics[s.name])))
    .map((s) => {
      const values = runs.map((r) => (Number.isFinite(r.metrics[s.name]) ? Number((r.metrics[s.name] * s.trend.scale).toPrecision(4)) : 0));
      return [
        '```mermaid',
        'xychart-beta',
        `  title "${s.label} (last ${runs.length} runs)"`,
        `  x-axis [${labels.join(', ')}]`,
        `  y-axis "${s.trend.axis}"`,
        `  line [${values.join(', ')}]`,
        '```',
      ].join('\n');
    })
    .join('\n\n');
}

/** `distill-gate history`: the same runs as a table. */
export function historyTable(history: HistoryEntry[], limit = TREND_RUNS): string {
  const runs = history.slice(-limit);
  const rows = runs.map((r) => [
    esc(r.createdAt.slice(0, 16).replace('T', ' ')),
    esc((r.commit ?? '').slice(0, 7)),
    esc(r.event ?? ''),
    r.verdict,
    ...TREND_METRICS.map((s) => formatCompact(s.name, r.metrics[s.name])),
    r.override ? `accepted by ${esc(r.override.by)}` : '',
  ]);
  return `${markdownTable([['Date (UTC)', 'Commit', 'Event', 'Verdict', ...TREND_METRICS.map((s) => s.trend.column), 'Override'], ...rows])}\n`;
}
