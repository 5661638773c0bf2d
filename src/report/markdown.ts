import { markdownTable } from 'markdown-table';
import type { GateResult } from '../gates/gates.js';
import {
  formatBytes as bytes,
  formatInteger as int,
  formatMetric,
  formatNumber as fmt,
  formatPercent as pct,
  metricSpec,
  teacherCounterpart,
  type MetricName,
} from '../measure/metrics.js';
import { escapeMarkdown as esc } from './escape.js';
import type { Report } from './report.js';
import { trendCharts, type HistoryEntry } from './history.js';

const STATUS_ICON: Record<GateResult['status'], string> = {
  pass: '✅ pass',
  fail: '❌ fail',
  warn: '⚠️ warn',
  skipped: '⏭️ skipped',
  inconclusive: '❔ inconclusive',
};

export function renderMarkdown(report: Report, options: { history?: HistoryEntry[] } = {}): string {
  const m = report.metrics;
  /** A metric the layout names; the type checks the name against the catalogue. */
  const v = (name: MetricName): number => m[name];
  const lines: string[] = [];
  const failing = report.gates.filter((g) => g.status === 'fail');
  const icon = report.verdict === 'pass' ? '✅' : '❌';
  lines.push(`## ${icon} distill-gate: ${report.verdict === 'pass' ? 'pass' : 'fail'}${report.status === 'incomplete' ? ' (incomplete)' : ''}`);
  lines.push('');
  lines.push(
    `Student distilled from ${esc(relativeName(report.teacher.path))} in ${report.training.epochs}/${report.training.epochsPlanned} epochs on **${esc(report.backend)}**: ` +
      `top-1 agreement ${pct(v('agreement.top1'))}, ${fmt(v('speed.speedup'), 2)}× faster, ${pct(v('size.ratio'))} of the teacher's size.`,
  );
  if (failing.length > 0) lines.push('', `**Failing gates:** ${failing.map((g) => `${g.metric} (${g.expected})`).join(', ')}`);
  for (const reason of report.reasons) lines.push('', `> **Note:** ${esc(reason)}`);
  if (report.override) {
    lines.push(
      '',
      `> **Accepted regression:** label "${esc(report.override.label)}" by ${esc(report.override.by)} turned ${report.override.gates.length} failing relative gate(s) into warnings: ${report.override.gates.map(esc).join(', ')}.`,
    );
  }
  if (report.baseline) {
    const b = report.baseline;
    lines.push(
      '',
      `Baseline: ${b.commit ? `commit ${esc(b.commit.slice(0, 12))}` : esc(relativeName(b.path))}${b.createdAt ? ` from ${esc(b.createdAt.slice(0, 10))}` : ''}${b.environmentDiffers ? ' (**another environment**: speed deltas shown, not gated)' : ''}.`,
    );
  }
  const paired = report.speedComparison;
  if (paired) {
    lines.push(
      '',
      `Latency against the baseline's student, timed together in this run: ${fmt(paired.currentMs, 3)} ms vs ${fmt(paired.baselineMs, 3)} ms, ratio ${paired.ratio.toFixed(3)} (${Math.round(paired.confidence * 100)}% CI ${paired.low.toFixed(3)}–${paired.high.toFixed(3)}, ${paired.rounds} rounds).`,
    );
  }
  lines.push('');

  if (report.gates.length > 0) {
    lines.push('### Gates', '');
    const withBaseline = report.gates.some((g) => g.baseline !== null);
    const header = ['Metric', 'Teacher', 'Student', ...(withBaseline ? ['Baseline', 'Δ'] : []), 'Threshold', 'Status'];
    const rows = report.gates.map((g) => [
      // Metric names were checked against the known metrics, so they are safe in a code span.
      `\`${g.metric}\``,
      teacherCell(g.metric, m),
      formatMetric(g.metric, g.value ?? undefined),
      ...(withBaseline ? [formatMetric(g.metric, g.baseline ?? undefined), delta(g)] : []),
      g.expected,
      STATUS_ICON[g.status] + (g.note ? ` (${esc(g.note)})` : ''),
    ]);
    lines.push(markdownTable([header, ...rows], { align: ['l', 'r', 'r', ...(withBaseline ? ['r', 'r'] : []), 'l', 'l'] }), '');
  }

  lines.push('### Size', '');
  lines.push(
    markdownTable(
      [
        ['', 'Teacher', 'Student', 'Student / teacher'],
        ['Parameters', int(v('size.teacherParams')), int(v('size.studentParams')), pct(v('size.studentParams') / v('size.teacherParams'))],
        ['Weight bytes', bytes(v('size.teacherBytes')), bytes(v('size.studentBytes')), pct(v('size.ratio'))],
      ],
      { align: ['l', 'r', 'r', 'r'] },
    ),
    '',
  );

  lines.push('### Speed', '');
  lines.push('Timed interleaved in one process after warm-up; medians.', '');
  lines.push(
    markdownTable(
      [
        ['', 'Teacher', 'Student', 'Speed-up'],
        ['Latency, batch 1 (ms)', fmt(v('speed.teacherMs'), 3), fmt(v('speed.studentMs'), 3), `${fmt(v('speed.speedup'), 2)}×`],
        ['Throughput (samples/s)', int(v('speed.teacherThroughput')), int(v('speed.studentThroughput')), `${fmt(v('speed.throughputSpeedup'), 2)}×`],
      ],
      { align: ['l', 'r', 'r', 'r'] },
    ),
    '',
  );

  lines.push('### Agreement', '');
  const agreementRows = Object.keys(m)
    .filter((k) => metricSpec(k)?.stage === 'agreement')
    .map((k) => [`\`${k}\``, formatMetric(k, m[k])]);
  lines.push(markdownTable([['Metric', 'Value'], ...agreementRows], { align: ['l', 'r'] }), '');
  lines.push(`On ${report.training.evalSamples} eval samples; ${esc(report.metricsComputedOn)}.`, '');

  if (report.training.loss.length > 1) {
    lines.push('### Training', '', lossChart(report.training.loss), '');
  }
  const trend = options.history ? trendCharts(options.history, report) : '';
  if (trend) lines.push('### Trend', '', trend, '');
  lines.push(
    `<sub>Backend ${esc(report.environment.backend)} (${esc(report.environment.backendSource)}), TF.js ${esc(report.environment.tfjsVersion)}, Node ${esc(report.environment.node)}, ${esc(report.environment.cpu)} ×${report.environment.cpus}${report.environment.gpu ? `, GPU ${esc(report.environment.gpu)}` : ''}; distillation ${fmt(report.training.seconds, 1)} s (teacher soft targets ${fmt(report.training.teacherSeconds, 1)} s${report.training.step ? `; ${esc(report.training.step.kind)} training step on ${esc(report.training.step.backend)}` : ''}), T=${report.training.temperature}, alpha=${report.training.alpha}, seed ${report.training.seed}.</sub>`,
  );
  return `${lines.join('\n')}\n`;
}

/** A mermaid xychart (GitHub renders it) of the per-epoch loss, thinned to at most 60 points. */
export function lossChart(loss: number[]): string {
  const step = Math.ceil(loss.length / 60);
  const epochs: number[] = [];
  const values: number[] = [];
  for (let i = 0; i < loss.length; i += step) {
    epochs.push(i + 1);
    values.push(loss[i]);
  }
  if (epochs[epochs.length - 1] !== loss.length) {
    epochs.push(loss.length);
    values.push(loss[loss.length - 1]);
  }
  const finite = values.map((v) => (Number.isFinite(v) ? Number(v.toPrecision(4)) : 0));
  return [
    '```mermaid',
    'xychart-beta',
    '  title "Distillation loss per epoch"',
    `  x-axis "epoch" [${epochs.join(', ')}]`,
    '  y-axis "loss"',
    `  line [${finite.join(', ')}]`,
    '```',
  ].join('\n');
}

function delta(g: GateResult): string {
  if (g.value === null || g.baseline === null) return '—';
  const change = g.value - g.baseline;
  const arrow = change > 0 ? '▲' : change < 0 ? '▼' : '=';
  const relative = g.baseline !== 0 ? ` (${change >= 0 ? '+' : ''}${((100 * change) / Math.abs(g.baseline)).toFixed(1)}%)` : '';
  return `${arrow} ${change >= 0 ? '+' : ''}${formatMetric(g.metric, change)}${relative}`;
}

/** The teacher's value of a gated student metric (its counterpart in the catalogue); — for metrics without one. */
function teacherCell(metric: string, metrics: Record<string, number>): string {
  const teacher = teacherCounterpart(metric);
  return teacher ? formatMetric(metric, metrics[teacher]) : '—';
}

function relativeName(file: string): string {
  const parts = file.split(/[\\/]/);
  return parts.slice(-3).join('/');
}
