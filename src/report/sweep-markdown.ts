import { markdownTable } from 'markdown-table';
import { formatMetric } from '../measure/metric-format.js';
import { escapeMarkdown as esc } from './escape.js';
import { buildSweep, FRONT_AGREEMENT, FRONT_SIZE, smallestPassing, type Sweep, type SweepCandidate } from './sweep.js';

/**
 * report.md's Pareto section for a sweep: one sentence (the smallest candidate that passes every
 * gate, against the configured student), a table of every candidate and a mermaid chart of
 * agreement against size with the front drawn as a line. Candidate names are user text: escaped
 * for markdown in the table and the sentence, reduced to plain characters in the chart.
 */
export function sweepSection(
  reported: Sweep,
  { heading = '### Sweep: size against agreement' }: { heading?: string } = {},
): string[] {
  // The front is recomputed from the metrics, never read: an uploaded report's claim is not shown.
  const sweep = buildSweep(reported.candidates, reported.timedOn);
  const configured = sweep.candidates.find((c) => c.configured);
  const best = smallestPassing(sweep);
  const lines = [heading, '', summarySentence(best, configured), ''];
  const cell = (c: SweepCandidate, metric: string) =>
    c.status === 'measured' ? formatMetric(metric, c.metrics[metric]) : '—';
  const rows = sweep.candidates.map((c) => [
    `${esc(c.name)}${c.configured ? ' (configured)' : ''}`,
    cell(c, 'size.studentParams'),
    cell(c, FRONT_SIZE),
    cell(c, 'speed.studentMs'),
    cell(c, FRONT_AGREEMENT),
    c.status !== 'measured' ? c.status : c.onFront ? '● yes' : 'no',
    c.passesGates === null
      ? '—'
      : c.passesGates
        ? '✅ yes'
        : `❌ no${c.failingGates?.length ? ` (${esc(c.failingGates.join(', '))})` : ''}`,
  ]);
  lines.push(
    markdownTable(
      [['Candidate', 'Params', 'Size', 'Latency', 'Agreement top-1', 'On the front', 'Passes every gate'], ...rows],
      {
        align: ['l', 'r', 'r', 'r', 'r', 'l', 'l'],
      },
    ),
    '',
  );
  for (const c of sweep.candidates.filter((c) => c.status !== 'measured'))
    lines.push(`- ${esc(c.name)}: ${c.status}${c.reason ? `: ${esc(c.reason)}` : ''}`);
  if (sweep.candidates.some((c) => c.status !== 'measured')) lines.push('');
  const chart = frontChart(sweep, configured, best);
  if (chart) lines.push(chart, '', chartLegend(sweep), '');
  return lines;
}

/** "w16: 4.1x smaller than the configured student, agreement 94.2%, passes every gate." */
export function summarySentence(best: SweepCandidate | undefined, configured: SweepCandidate | undefined): string {
  if (!best) return 'No candidate passes every gate.';
  const agreement = `agreement ${formatMetric(FRONT_AGREEMENT, best.metrics[FRONT_AGREEMENT])}`;
  if (best.configured) return `The configured student is the smallest candidate that passes every gate (${agreement}).`;
  const ratio = configured ? configured.metrics[FRONT_SIZE] / best.metrics[FRONT_SIZE] : NaN;
  const compared = !Number.isFinite(ratio)
    ? 'the smallest candidate that passes every gate'
    : ratio >= 1
      ? `${ratio.toFixed(1)}x smaller than the configured student`
      : `${(1 / ratio).toFixed(1)}x larger than the configured student`;
  return `**${esc(best.name)}**: ${compared}, ${agreement}, passes every gate.`;
}

/**
 * A mermaid xychart (GitHub renders it in comments): the measured candidates smallest first along
 * x, a bar of each one's top-1 agreement (%), and a line through the front: at each size, the best
 * agreement at that size or smaller, so the bars that touch it are the front. xychart has no
 * scatter plot; the labels mark the front (●), the configured student (◆) and the smallest
 * candidate that passes every gate (★). Undefined with fewer than two measured candidates.
 */
export function frontChart(sweep: Sweep, configured?: SweepCandidate, best?: SweepCandidate): string | undefined {
  const measured = sweep.candidates
    .filter(
      (c) =>
        c.status === 'measured' &&
        Number.isFinite(c.metrics[FRONT_SIZE]) &&
        Number.isFinite(c.metrics[FRONT_AGREEMENT]),
    )
    .sort(
      (a, b) =>
        a.metrics[FRONT_SIZE] - b.metrics[FRONT_SIZE] || b.metrics[FRONT_AGREEMENT] - a.metrics[FRONT_AGREEMENT],
    );
  if (measured.length < 2) return undefined;
  const percent = (v: number) => Number((100 * v).toFixed(2));
  let envelope = -Infinity;
  const line = measured.map((c) => (envelope = Math.max(envelope, percent(c.metrics[FRONT_AGREEMENT]))));
  const label = (c: SweepCandidate) =>
    `"${mermaidText(c.name)}${c.onFront ? ' ●' : ''}${c === configured ? ' ◆' : ''}${best && c.name === best.name ? ' ★' : ''}"`;
  const bars = measured.map((c) => percent(c.metrics[FRONT_AGREEMENT]));
  const low = Math.max(0, Math.floor(Math.min(...bars) / 5) * 5 - 5);
  return [
    '```mermaid',
    'xychart-beta',
    '  title "Agreement top-1 by candidate, smallest first"',
    `  x-axis [${measured.map(label).join(', ')}]`,
    `  y-axis "agreement top-1 (%)" ${low} --> 100`,
    `  bar [${bars.join(', ')}]`,
    `  line [${line.join(', ')}]`,
    '```',
  ].join('\n');
}

function chartLegend(sweep: Sweep): string {
  return (
    `Bars: each candidate's top-1 agreement, smallest (${FRONT_SIZE}) first; the line: the Pareto front (the best agreement at that size or smaller). ` +
    `● on the front, ◆ the configured student, ★ the smallest candidate that passes every gate.` +
    (sweep.timedOn ? ` Latency timed on ${esc(sweep.timedOn)}.` : '')
  );
}

/**
 * A candidate's name as text inside a mermaid string: letters, digits, spaces and `._-+` kept,
 * anything else (quotes, brackets, `;`, `#`, `<`, backticks, newlines, invisible characters) shown
 * as `_`, at most 32 characters. Mermaid has no escape for a quote inside a label, and a name that
 * closed it could add chart statements or, where a renderer allows, markup.
 */
export function mermaidText(name: string): string {
  const plain = name.replace(/[^\p{L}\p{N} ._+-]/gu, '_');
  return plain.length > 32 ? `${plain.slice(0, 31)}…` : plain;
}
