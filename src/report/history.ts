import { readFile } from 'node:fs/promises';
import { markdownTable } from 'markdown-table';
import { InputError } from '../errors.js';
import type { Report } from './report.js';
import { TREND_METRICS } from '../measure/metrics.js';
import { formatCompact } from '../measure/metric-format.js';
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
    throw new InputError(
      source,
      `is not valid JSON (${(error as Error).message}); expected a distill-gate history file (a list of runs).`,
    );
  }
  if (!Array.isArray(parsed))
    throw new InputError(source, 'is not a distill-gate history file: expected a list of runs, each with "metrics".');
  for (const [index, entry] of parsed.entries()) {
    const fault = entryFault(entry);
    if (fault)
      throw new InputError(
        source,
        `is not a distill-gate history file: run ${index + 1} of ${parsed.length} ${fault}.`,
      );
  }
  return parsed as HistoryEntry[];
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * What is wrong with one run of a history, or undefined: every field the trend and the table read
 * has its type, so that a damaged file is refused here, by name, instead of breaking the report
 * that draws it. A metric may be null (JSON's spelling of a value that was not finite).
 */
function entryFault(entry: unknown): string | undefined {
  if (!isRecord(entry)) return 'is not an object';
  if (!isRecord(entry.metrics)) return 'has no "metrics" object';
  const metric = Object.entries(entry.metrics).find(([, value]) => value !== null && typeof value !== 'number');
  if (metric) return `has a metric "${metric[0]}" that is not a number`;
  if (typeof entry.createdAt !== 'string') return 'has no "createdAt" date';
  if (entry.verdict !== 'pass' && entry.verdict !== 'fail') return 'has a "verdict" other than pass or fail';
  for (const key of ['commit', 'event', 'backend'] as const)
    if (entry[key] !== undefined && typeof entry[key] !== 'string') return `has a "${key}" that is not text`;
  const override = entry.override;
  if (override !== undefined && override !== null && (!isRecord(override) || typeof override.by !== 'string'))
    return 'has an "override" without "by"';
  return undefined;
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
    (r, i) =>
      `"${i === runs.length - 1 && current ? 'this' : r.commit ? r.commit.slice(0, 7).replace(/[^0-9a-f]/gi, '') : String(i + 1)}"`,
  );
  return TREND_METRICS.filter((s) => runs.some((r) => Number.isFinite(r.metrics[s.name])))
    .map((s) => {
      const values = runs.map((r) =>
        Number.isFinite(r.metrics[s.name]) ? Number((r.metrics[s.name] * s.trend.scale).toPrecision(4)) : 0,
      );
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
