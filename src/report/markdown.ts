import { markdownTable } from 'markdown-table';
import type { GateResult } from '../gates/gates.js';
import { metricSpec, teacherCounterpart, type MetricName } from '../measure/metrics.js';
import { formatBytes as bytes, formatInteger as int, formatNumber as fmt, formatPercent as pct } from '../format.js';
import { formatMetric } from '../measure/metric-format.js';
import { argmax, chanceWarning, type ClassAgreement } from '../measure/agreement.js';
import { formatConfidence } from '../measure/intervals.js';
import { lossChart, perClassSection, shippedSection, teacherChangeSection, value } from './markdown-details.js';
import { sweepSection } from './sweep-markdown.js';
import { escapeMarkdown as esc } from './escape.js';
import { RUN_URL } from './report-schema.js';
import type { Report } from './report.js';
import { trendCharts, type HistoryEntry } from './history.js';

const STATUS_ICON: Record<GateResult['status'], string> = {
  pass: '✅ pass',
  fail: '❌ fail',
  warn: '⚠️ warn',
  skipped: '⏭️ skipped',
  inconclusive: '❔ inconclusive',
};

/**
 * Wall time of each phase of the run that produced the report, in seconds, in run order (load,
 * teacher pass, distillation, measuring, report). Phases not reached are left out.
 */
export type PhaseSeconds = Partial<Record<(typeof PHASES)[number], number>>;

/** The phases of a run, as the footer names them. */
export const PHASES = ['load', 'teacher pass', 'distillation', 'measuring', 'report'] as const;

export function renderMarkdown(
  report: Report,
  options: { history?: HistoryEntry[]; phases?: PhaseSeconds } = {},
): string {
  const trend = options.history ? trendCharts(options.history, report) : '';
  const sections = [
    headline(report),
    gatesSection(report),
    sizeSection(report),
    speedSection(report),
    agreementSection(report),
    perClassSection(report),
    teacherChangeSection(report),
    shippedSection(report),
    report.sweep ? sweepSection(report.sweep) : [],
    report.training.loss.length > 1 ? ['### Training', '', lossChart(report.training.loss), ''] : [],
    trend ? ['### Trend', '', trend, ''] : [],
    [footer(report, options.phases)],
  ];
  return `${sections.flat().join('\n')}\n`;
}

/** The verdict, one sentence of figures, and what a reader must know before the tables. */
function headline(report: Report): string[] {
  const m = report.metrics;
  const failing = report.gates.filter((g) => g.status === 'fail');
  const icon = report.verdict === 'pass' ? '✅' : '❌';
  const lines = [
    `## ${icon} distill-gate: ${report.verdict === 'pass' ? 'pass' : 'fail'}${report.status === 'incomplete' ? ' (incomplete)' : ''}`,
    '',
    `Student distilled from ${esc(relativeName(report.teacher.path))} in ${report.training.epochs}/${report.training.epochsPlanned} epochs on **${esc(report.backend)}**: ` +
      `top-1 agreement ${pct(value(m, 'agreement.top1'))}, ${fmt(value(m, 'speed.speedup'), 2)}× faster, ${pct(value(m, 'size.ratio'))} of the teacher's size.`,
  ];
  if (failing.length > 0)
    lines.push('', `**Failing gates:** ${failing.map((g) => `${g.metric} (${g.expected})`).join(', ')}`);
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
      `Baseline: ${b.commit ? `commit ${esc(b.commit.slice(0, 12))}` : esc(relativeName(b.path))}${b.createdAt ? ` from ${esc(b.createdAt.slice(0, 10))}` : ''}${baselineRunLink(b.runUrl)}${b.environmentDiffers ? ' (**another environment**: speed deltas shown, not gated)' : ''}.`,
    );
  }
  const paired = report.speedComparison;
  if (paired) {
    lines.push(
      '',
      `Latency against the baseline's student, timed together in this run: ${fmt(paired.currentMs, 3)} ms vs ${fmt(paired.baselineMs, 3)} ms, ratio ${paired.ratio.toFixed(3)} (${formatConfidence(paired.confidence)} CI ${paired.low.toFixed(3)}–${paired.high.toFixed(3)}, ${paired.rounds} rounds).`,
    );
  }
  lines.push('');
  return lines;
}

function gatesSection(report: Report): string[] {
  if (report.gates.length === 0) return [];
  const withBaseline = report.gates.some((g) => g.baseline !== null);
  // The Teacher column only where a gated metric has a teacher's value to show (speed, size,
  // accuracy, calibration); agreement metrics compare the two, and have none.
  const withTeacher = report.gates.some((g) => teacherCell(g.metric, report.metrics) !== '—');
  const header = [
    'Metric',
    ...(withTeacher ? ['Teacher'] : []),
    'Student',
    ...(withBaseline ? ['Baseline', 'Δ'] : []),
    'Threshold',
    'Status',
  ];
  const rows = report.gates.map((g) => [
    // Metric names were checked against the known metrics, so they are safe in a code span.
    `\`${g.metric}\``,
    ...(withTeacher ? [teacherCell(g.metric, report.metrics)] : []),
    formatMetric(g.metric, g.value ?? undefined),
    ...(withBaseline ? [formatMetric(g.metric, g.baseline ?? undefined), delta(g)] : []),
    g.expected,
    STATUS_ICON[g.status] + (g.note ? ` (${esc(g.note)})` : ''),
  ]);
  const align = ['l', ...(withTeacher ? ['r'] : []), 'r', ...(withBaseline ? ['r', 'r'] : []), 'l', 'l'] as const;
  return ['### Gates', '', markdownTable([header, ...rows], { align: [...align] }), ''];
}

function sizeSection(report: Report): string[] {
  const m = report.metrics;
  const v = (name: MetricName) => value(m, name);
  const quantize = report.export?.quantize;
  const floatBytes = v('size.studentFloatBytes');
  const shipped = quantize && quantize !== 'none' && Number.isFinite(floatBytes);
  const table = markdownTable(
    [
      ['', 'Teacher', 'Student', 'Student / teacher'],
      [
        'Parameters',
        int(v('size.teacherParams')),
        int(v('size.studentParams')),
        pct(v('size.studentParams') / v('size.teacherParams')),
      ],
      [
        shipped ? `Weight bytes, shipped (${quantize})` : 'Weight bytes',
        bytes(v('size.teacherBytes')),
        bytes(v('size.studentBytes')),
        pct(v('size.ratio')),
      ],
      ...(shipped
        ? [
            [
              'Weight bytes, float32',
              bytes(v('size.teacherBytes')),
              bytes(floatBytes),
              pct(floatBytes / v('size.teacherBytes')),
            ],
          ]
        : []),
    ],
    { align: ['l', 'r', 'r', 'r'] },
  );
  const note = shipped
    ? [`\`size.studentBytes\` and \`size.ratio\` count the bytes that ship: student/ holds ${quantize} weights.`, '']
    : [];
  return ['### Size', '', table, '', ...note];
}

function speedSection(report: Report): string[] {
  const intervals = report.speedIntervals ?? {};
  // A median and, where the run timed one, the interval of that median: `0.512 (0.498–0.530)`,
  // or `(too few rounds)` when there were too few to bound it.
  const cell = (name: MetricName, show: (value: number) => string, unit = '') => {
    const interval = intervals[name];
    const median = `${show(value(report.metrics, name))}${unit}`;
    if (!interval) return median;
    const bounded = Number.isFinite(interval.low) && Number.isFinite(interval.high);
    return `${median} (${bounded ? `${show(interval.low)}–${show(interval.high)}` : 'too few rounds'})`;
  };
  const ms = (x: number) => fmt(x, 3);
  const ratio = (x: number) => fmt(x, 2);
  const table = markdownTable(
    [
      ['', 'Teacher', 'Student', 'Speed-up'],
      [
        'Latency, batch 1 (ms)',
        cell('speed.teacherMs', ms),
        cell('speed.studentMs', ms),
        cell('speed.speedup', ratio, '×'),
      ],
      [
        'Throughput (samples/s)',
        cell('speed.teacherThroughput', int),
        cell('speed.studentThroughput', int),
        cell('speed.throughputSpeedup', ratio, '×'),
      ],
    ],
    { align: ['l', 'r', 'r', 'r'] },
  );
  const where = report.speedBackend ? ` on the ${esc(report.speedBackend)} backend (measure.backend)` : '';
  const confidence = Object.values(intervals)[0]?.confidence;
  const medians = confidence
    ? `medians over rounds, each with its ${formatConfidence(confidence)} confidence interval in brackets`
    : 'medians';
  // A teacher outside TF.js (ONNX), or a student timed as student.onnx (measure.runtime), runs in
  // its own runtime: each side's is named.
  const tfjs = `TF.js on ${esc(report.speedBackend ?? report.environment.backend)}`;
  const studentIn = report.student.runtime ? `${esc(report.student.runtime)} (student.onnx, measure.runtime)` : tfjs;
  const runtimes =
    report.teacher.runtime || report.student.runtime
      ? ` The teacher ran in ${report.teacher.runtime ? esc(report.teacher.runtime) : tfjs}, the student in ${studentIn}.`
      : '';
  return [
    '### Speed',
    '',
    `Timed interleaved in one process after warm-up${where}; ${medians}.${runtimes}`,
    '',
    table,
    '',
  ];
}

function agreementSection(report: Report): string[] {
  const m = report.metrics;
  const rows = Object.keys(m)
    .filter((k) => metricSpec(k)?.stage === 'agreement')
    .map((k) => [`\`${k}\``, formatMetric(k, m[k])]);
  return [
    '### Agreement',
    '',
    markdownTable([['Metric', 'Value'], ...rows], { align: ['l', 'r'] }),
    '',
    `On ${report.training.evalSamples} eval samples; ${esc(report.metricsComputedOn)}.`,
    '',
    ...(Number.isFinite(value(m, 'calibration.studentEce'))
      ? [
          "Calibration (`calibration.*`): expected calibration error against the labels, over 15 equal-width bins of the top class's probability at T = 1; 0 is perfectly calibrated.",
          '',
        ]
      : []),
    ...(report.agreement ? classSpread(report.agreement) : []),
    ...chanceLevel(report),
  ];
}

/** Classes named in the spread table by the teacher's counts; the rest share one row, so a 1000-class head stays a few rows. */
const SPREAD_CLASSES = 5;

/**
 * The teacher's and the student's top-1 answers by class: the teacher's most frequent classes,
 * the student's own most frequent one wherever it falls (a constant student shows as one class
 * holding every sample), and the rest summed.
 */
function classSpread({ teacherCounts, studentCounts }: ClassAgreement): string[] {
  const samples = teacherCounts.reduce((sum, count) => sum + count, 0);
  const shown = teacherCounts
    .map((_, c) => c)
    .filter((c) => teacherCounts[c] > 0)
    .sort((a, b) => teacherCounts[b] - teacherCounts[a] || a - b)
    .slice(0, SPREAD_CLASSES);
  const studentsClass = argmax(studentCounts);
  if (!shown.includes(studentsClass)) shown.push(studentsClass);
  const cell = (count: number) => `${pct(count / samples)} (${int(count)})`;
  const rest = (counts: number[]) => counts.reduce((sum, count, c) => (shown.includes(c) ? sum : sum + count), 0);
  const rows = shown.map((c) => [`class ${c}`, cell(teacherCounts[c]), cell(studentCounts[c])]);
  const others = teacherCounts.length - shown.length;
  if (others > 0 && rest(teacherCounts) + rest(studentCounts) > 0)
    rows.push([`${others} other classes`, cell(rest(teacherCounts)), cell(rest(studentCounts))]);
  return [
    'Top-1 answers by class:',
    '',
    markdownTable([['', 'Teacher', 'Student'], ...rows], { align: ['l', 'r', 'r'] }),
    '',
  ];
}

/** What a constant student scores, and a warning when top-1 agreement is not clear of it (chanceWarning's rule). */
function chanceLevel(report: Report): string[] {
  const m = report.metrics;
  const majority = value(m, 'agreement.majority');
  if (!Number.isFinite(majority)) return [];
  const which = report.agreement ? ` (class ${report.agreement.majorityClass})` : '';
  const lines = [
    `Chance level: a student that always answers the teacher's most frequent class${which} scores ${pct(majority)} top-1 agreement; \`agreement.kappa\` is corrected for it.`,
    '',
  ];
  if (chanceWarning(m) !== undefined) {
    lines.push(
      `> ⚠️ **Top-1 agreement (${pct(value(m, 'agreement.top1'))}) is within a point of the chance level or below it:** a constant student scores as well. Judge the student by \`agreement.kappa\` (${formatMetric('agreement.kappa', value(m, 'agreement.kappa'))}).`,
      '',
    );
  }
  return lines;
}

function threadCount(threads: number): string {
  return `${threads} thread${threads === 1 ? '' : 's'}`;
}

function footer(report: Report, phases?: PhaseSeconds): string {
  const { environment: e, training: t } = report;
  const module = t.step?.kernelModule
    ? ` (${esc(t.step.kernelModule)} module${t.step.threads ? `, ${threadCount(t.step.threads)}` : ''})`
    : '';
  const step = t.step ? `; ${esc(t.step.kind)} training step${module} on ${esc(t.step.backend)}` : '';
  const teacher =
    (report.teacher.runtime ? `; teacher in ${esc(report.teacher.runtime)}` : '') +
    (t.teacherPass?.startsWith('kernel ')
      ? `; teacher's pass in the training kernel (${esc(t.teacherPass.slice(7))})`
      : '') +
    (report.student.runtime ? `; student timed in ${esc(report.student.runtime)}` : '');
  const timed = PHASES.flatMap((phase) => {
    const seconds = phases?.[phase];
    return seconds === undefined ? [] : [`${phase} ${phaseSeconds(seconds)}`];
  });
  // Every phase's time where the run gave them; a re-rendered report (merge, compare) has only
  // distillation's, from report.json.
  const times =
    timed.length > 0
      ? `phase times: ${timed.join(', ')}${step}`
      : `distillation ${fmt(t.seconds, 1)} s (teacher soft targets ${fmt(t.teacherSeconds, 1)} s${step})`;
  return `<sub>Backend ${esc(e.backend)} (${esc(e.backendSource)}), TF.js ${esc(e.tfjsVersion)}, Node ${esc(e.node)}, ${esc(e.cpu)} ×${e.cpus}${e.gpu ? `, GPU ${esc(e.gpu)}` : ''}${teacher}; ${times}${speedPrecision(report)}, T=${t.temperature}, alpha=${t.alpha}, seed ${t.seed}${describeAugment(t.augment)}${describeClasses(t.classes)}.</sub>`;
}

/** A phase's time for the footer: "9.6 s", "<0.1 s", "125 s". */
function phaseSeconds(seconds: number): string {
  if (seconds < 0.05) return '<0.1 s';
  return `${seconds >= 100 ? seconds.toFixed(0) : seconds.toFixed(1)} s`;
}

/** What the speed rounds bought: "; speed timed over 12 rounds, latency ±1.2%, throughput ±0.8%" (the widest of teacher's and student's, 95% interval of the median). */
function speedPrecision(report: Report): string {
  const intervals = report.speedIntervals ?? {};
  const widest = (...metrics: string[]) => {
    const found = metrics.map((m) => intervals[m]).filter((i) => i !== undefined);
    if (found.length === 0) return undefined;
    const width = Math.max(
      ...found.map(({ value, low, high }) =>
        value !== 0 && Number.isFinite(high - low) ? Math.abs((high - low) / 2 / value) : Infinity,
      ),
    );
    return { rounds: Math.min(...found.map((i) => i.rounds)), width };
  };
  const latency = widest('speed.teacherMs', 'speed.studentMs');
  const throughput = widest('speed.teacherThroughput', 'speed.studentThroughput');
  const say = (name: string, p: { rounds: number; width: number } | undefined) =>
    p
      ? `${name} ${p.rounds} rounds, ${Number.isFinite(p.width) ? `±${(100 * p.width).toFixed(1)}%` : 'unbounded'}`
      : undefined;
  const parts = [say('latency', latency), say('throughput', throughput)].filter(Boolean);
  return parts.length > 0 ? `; speed timed to ${parts.join(', ')} (95% intervals of the medians)` : '';
}

function delta(g: GateResult): string {
  if (g.value === null || g.baseline === null) return '—';
  const change = g.value - g.baseline;
  const arrow = change > 0 ? '▲' : change < 0 ? '▼' : '=';
  const relative =
    g.baseline !== 0 ? ` (${change >= 0 ? '+' : ''}${((100 * change) / Math.abs(g.baseline)).toFixed(1)}%)` : '';
  return `${arrow} ${change >= 0 ? '+' : ''}${formatMetric(g.metric, change)}${relative}`;
}

/** The teacher's value of a gated student metric (its counterpart in the catalogue); — for metrics without one. */
function teacherCell(metric: string, metrics: Record<string, number>): string {
  const teacher = teacherCounterpart(metric);
  return teacher ? formatMetric(metric, metrics[teacher]) : '—';
}

/** A link to the workflow run that recorded the baseline, when the store knew it; only a run's address (RUN_URL) is linked. */
function baselineRunLink(runUrl: string | undefined): string {
  return runUrl && RUN_URL.test(runUrl) ? ` ([its run](${runUrl}))` : '';
}

function relativeName(file: string): string {
  const parts = file.split(/[\\/]/);
  return parts.slice(-3).join('/');
}

/** "; augmented each epoch: flip, crop ±2 px, brightness ±0.1, contrast ±0.1 (seed 7)"; nothing without distill.augment. */
function describeAugment(augment: Report['training']['augment']): string {
  if (!augment) return '';
  const parts = [
    augment.flip ? 'flip' : '',
    augment.cropPadding ? `crop ±${augment.cropPadding} px` : '',
    augment.brightness > 0 ? `brightness ±${augment.brightness}` : '',
    augment.contrast > 0 ? `contrast ±${augment.contrast}` : '',
  ].filter(Boolean);
  return `; augmented each epoch: ${parts.length > 0 ? parts.join(', ') : 'nothing (every transform off)'} (seed ${augment.seed})`;
}

/** Classes named in the footer before "and N more". */
const FOOTER_CLASSES = 10;

/** "; classes cat, dog" for image folders, in the teacher's output order; names escaped (they are folder names). */
function describeClasses(classes: string[] | undefined): string {
  if (!classes || classes.length === 0) return '';
  const shown = classes.slice(0, FOOTER_CLASSES).map((name) => esc(name));
  const more = classes.length > FOOTER_CLASSES ? ` and ${classes.length - FOOTER_CLASSES} more` : '';
  return `; classes ${shown.join(', ')}${more}`;
}
