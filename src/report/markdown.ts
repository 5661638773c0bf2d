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
import { argmax, chanceWarning, type ClassAgreement } from '../measure/agreement.js';
import { formatConfidence } from '../measure/intervals.js';
import { describeOnnxCheck } from '../models/onnx-student.js';
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

export function renderMarkdown(report: Report, options: { history?: HistoryEntry[]; phases?: PhaseSeconds } = {}): string {
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

/** A metric the layout names; the type checks the name against the catalogue. */
const value = (metrics: Record<string, number>, name: MetricName): number => metrics[name];

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
  const header = ['Metric', ...(withTeacher ? ['Teacher'] : []), 'Student', ...(withBaseline ? ['Baseline', 'Δ'] : []), 'Threshold', 'Status'];
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
      ['Parameters', int(v('size.teacherParams')), int(v('size.studentParams')), pct(v('size.studentParams') / v('size.teacherParams'))],
      [shipped ? `Weight bytes, shipped (${quantize})` : 'Weight bytes', bytes(v('size.teacherBytes')), bytes(v('size.studentBytes')), pct(v('size.ratio'))],
      ...(shipped ? [['Weight bytes, float32', bytes(v('size.teacherBytes')), bytes(floatBytes), pct(floatBytes / v('size.teacherBytes'))]] : []),
    ],
    { align: ['l', 'r', 'r', 'r'] },
  );
  const note = shipped ? [`\`size.studentBytes\` and \`size.ratio\` count the bytes that ship: student/ holds ${quantize} weights.`, ''] : [];
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
      ['Latency, batch 1 (ms)', cell('speed.teacherMs', ms), cell('speed.studentMs', ms), cell('speed.speedup', ratio, '×')],
      ['Throughput (samples/s)', cell('speed.teacherThroughput', int), cell('speed.studentThroughput', int), cell('speed.throughputSpeedup', ratio, '×')],
    ],
    { align: ['l', 'r', 'r', 'r'] },
  );
  const where = report.speedBackend ? ` on the ${esc(report.speedBackend)} backend (measure.backend)` : '';
  const confidence = Object.values(intervals)[0]?.confidence;
  const medians = confidence ? `medians over rounds, each with its ${formatConfidence(confidence)} confidence interval in brackets` : 'medians';
  // A teacher outside TF.js (ONNX), or a student timed as student.onnx (measure.runtime), runs in
  // its own runtime: each side's is named.
  const tfjs = `TF.js on ${esc(report.speedBackend ?? report.environment.backend)}`;
  const studentIn = report.student.runtime ? `${esc(report.student.runtime)} (student.onnx, measure.runtime)` : tfjs;
  const runtimes =
    report.teacher.runtime || report.student.runtime
      ? ` The teacher ran in ${report.teacher.runtime ? esc(report.teacher.runtime) : tfjs}, the student in ${studentIn}.`
      : '';
  return ['### Speed', '', `Timed interleaved in one process after warm-up${where}; ${medians}.${runtimes}`, '', table, ''];
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
  if (others > 0 && rest(teacherCounts) + rest(studentCounts) > 0) rows.push([`${others} other classes`, cell(rest(teacherCounts)), cell(rest(studentCounts))]);
  return ['Top-1 answers by class:', '', markdownTable([['', 'Teacher', 'Student'], ...rows], { align: ['l', 'r', 'r'] }), ''];
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

/** Whether every gate passed (or had nothing to judge): the detail sections then fold away. */
function allPassed(report: Report): boolean {
  return report.verdict === 'pass' && report.gates.every((g) => g.status === 'pass' || g.status === 'skipped');
}

/**
 * A section under its heading, or folded into `<details>` when every gate passed, so that a
 * passing report stays short and a failing one shows its evidence. `summary` is plain text the
 * caller built from numbers and escaped names.
 */
function section(report: Report, title: string, summary: string, body: string[]): string[] {
  if (!allPassed(report)) return [`### ${title}`, '', ...body];
  // The blank line after <summary> lets GitHub render the markdown (tables, mermaid) inside.
  return ['<details>', `<summary><b>${title}</b>: ${summary}</summary>`, '', ...body, '</details>', ''];
}

/** Classes in the per-class table: the worst ones. The chart shows a few more. */
const WORST_CLASSES = 10;
const CHART_CLASSES = 20;

/**
 * Per-class agreement with the teacher's top-1 class as the reference: the worst classes (those
 * with enough samples to be gated first, then the rest), a mermaid bar chart of the worst, and
 * the largest teacher-to-student confusions. Bounded whatever the number of classes.
 */
function perClassSection(report: Report): string[] {
  const a = report.agreement;
  if (!a?.agreedCounts) return [];
  const { teacherCounts, agreedCounts } = a;
  const minSamples = a.minClassSamples ?? 1;
  const share = (c: number) => agreedCounts[c] / teacherCounts[c];
  const answered = teacherCounts.map((_, c) => c).filter((c) => teacherCounts[c] > 0);
  const gated = answered.filter((c) => teacherCounts[c] >= minSamples).sort((x, y) => share(x) - share(y) || teacherCounts[y] - teacherCounts[x] || x - y);
  const few = answered.filter((c) => teacherCounts[c] < minSamples && agreedCounts[c] < teacherCounts[c]).sort((x, y) => share(x) - share(y) || x - y);
  const rows = [...gated, ...few]
    .slice(0, WORST_CLASSES)
    .map((c) => [
      `class ${c}`,
      int(teacherCounts[c]),
      `${pct(share(c))} (${int(agreedCounts[c])})`,
      teacherCounts[c] < minSamples ? 'no: too few samples' : 'yes',
    ]);
  const worst = value(report.metrics, 'agreement.minClass');
  const lines = [
    `The teacher's top-1 class is the reference: of the eval samples the teacher answers with a class, the share the student answers the same way. \`agreement.minClass\` is the worst class among the ${int(gated.length)} with at least ${minSamples} samples; classes with fewer are listed but not gated, so that one stray sample cannot fail a gate.`,
    '',
    markdownTable([['Class', "Teacher's samples", 'Student agrees', 'Gated'], ...rows], { align: ['l', 'r', 'r', 'l'] }),
    '',
  ];
  const charted = gated.slice(0, CHART_CLASSES);
  if (charted.length > 1) {
    lines.push(
      '```mermaid',
      'xychart-beta',
      `  title "Top-1 agreement by teacher's class, worst ${charted.length} of ${gated.length}"`,
      `  x-axis "class" [${charted.map((c) => `"${c}"`).join(', ')}]`,
      // No fixed 0 --> 100 range: "-->" anywhere in the comment is text a reader could take for the end of the sticky marker.
      '  y-axis "%"',
      `  bar [${charted.map((c) => Number((100 * share(c)).toFixed(2))).join(', ')}]`,
      '```',
      '',
    );
  }
  const confusions = a.confusions ?? [];
  if (confusions.length > 0) {
    const confusionRows = confusions.map((k) => [`class ${k.teacher} → class ${k.student}`, int(k.count), pct(k.count / teacherCounts[k.teacher])]);
    lines.push(
      'Largest confusions, teacher → student:',
      '',
      markdownTable([['Teacher → student', 'Samples', "Share of the teacher's class"], ...confusionRows], { align: ['l', 'r', 'r'] }),
      '',
    );
  }
  const summary = Number.isFinite(worst) ? `worst class ${pct(worst)} (class ${gated[0]})` : `no class has ${minSamples} samples`;
  return section(report, 'Per-class agreement', summary, lines);
}

/**
 * What the PR changed in the teacher (report.json's `teacherDiff`): the base branch's teacher
 * against the head's on the eval split, the classes whose share of its answers moved most, and
 * whether the student followed the head teacher; or why no comparison was made.
 */
function teacherChangeSection(report: Report): string[] {
  const diff = report.teacherDiff;
  if (!diff) return [];
  const m = report.metrics;
  const from = diff.source ? ` (${esc(diff.source)})` : '';
  if (diff.status === 'unavailable') {
    return section(report, 'Teacher change', 'not compared', [
      `Not compared with the base branch's teacher${from}: ${esc(diff.note ?? 'no base teacher')}.`,
      '',
    ]);
  }
  if (diff.status === 'unchanged') {
    return section(report, 'Teacher change', 'teacher unchanged', [
      `The teacher is unchanged from the base branch's${from}: the same topology and weights.`,
      '',
    ]);
  }
  const withHead = value(m, 'agreement.top1');
  const withBase = value(m, 'teacherDiff.studentVsBase');
  const follows =
    Number.isFinite(withHead) && Number.isFinite(withBase)
      ? ` The student agrees with the new teacher on ${pct(withHead)} and with the old one on ${pct(withBase)}: ${withHead >= withBase ? 'it follows the change' : 'it still answers more like the old teacher'}.`
      : '';
  const lines = [
    `The base branch's teacher${from} against this one on the ${int(report.training.evalSamples)} eval samples: top-1 agreement ${formatMetric('teacherDiff.agreement', value(m, 'teacherDiff.agreement'))}, KL(base ‖ head) ${formatMetric('teacherDiff.kl', value(m, 'teacherDiff.kl'))} nats.${follows}`,
    '',
  ];
  const moved = diff.moved ?? [];
  if (moved.length > 0) {
    const signed = (x: number) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(2)} pt`;
    const rows = moved.map((c) => [`class ${c.class}`, pct(c.base), pct(c.head), signed(c.head - c.base)]);
    lines.push(
      "Classes whose share of the teacher's answers moved most:",
      '',
      markdownTable([['Class', 'Base teacher', 'Head teacher', 'Change'], ...rows], { align: ['l', 'r', 'r', 'r'] }),
      '',
    );
  }
  return section(report, 'Teacher change', `agreement with the base teacher ${pct(value(m, 'teacherDiff.agreement'))}`, lines);
}

/**
 * The student as it ships (report.json's `export`): its weights' quantization and output kind,
 * and, for quantized weights, how the shipped student compares with the float32 one it was
 * trained as. Nothing for a float32 logits export, which is the trained student itself.
 */
function shippedSection(report: Report): string[] {
  const plan = report.export;
  if (!plan || (plan.quantize === 'none' && plan.output === 'logits' && !plan.onnx)) return [];
  const m = report.metrics;
  const weights =
    plan.quantize === 'uint8'
      ? 'uint8 weights (affine per tensor, `scale` and `min` in the weights manifest)'
      : plan.quantize === 'float16'
        ? 'float16 weights'
        : 'float32 weights';
  const output =
    plan.output === 'probabilities'
      ? `outputs probabilities (a final softmax)${report.teacher.output === 'probabilities' ? ', as the teacher does' : ' (export.output), where the teacher outputs logits'}`
      : `outputs logits${report.teacher.output === 'probabilities' ? ' (export.output), where the teacher outputs probabilities' : ''}`;
  const lines = [`student/ holds ${weights} and ${output}; stock \`tf.loadLayersModel\` loads it as it is.`, ''];
  if (plan.quantize !== 'none' && Number.isFinite(value(m, 'quantized.agreement.top1'))) {
    const pairs: Array<[string, MetricName, MetricName]> = [
      ['Top-1 agreement', 'agreement.top1', 'quantized.agreement.top1'],
      ['KL(teacher ‖ student)', 'kl', 'quantized.kl'],
      ...(Number.isFinite(value(m, 'quantized.accuracy')) ? [['Accuracy', 'accuracy.student', 'quantized.accuracy'] as [string, MetricName, MetricName]] : []),
      ['Weight bytes', 'size.studentFloatBytes', 'size.studentBytes'],
    ];
    const rows = pairs.map(([label, float, shipped]) => [label, formatMetric(float, value(m, float)), formatMetric(shipped, value(m, shipped))]);
    lines.push(
      markdownTable([['', 'float32 student', `Shipped (${plan.quantize})`], ...rows], { align: ['l', 'r', 'r'] }),
      '',
      'The shipped column is measured on the weights as TF.js dequantizes them on load.',
      '',
    );
  }
  // export.format onnx: student.onnx and its check in onnxruntime (onnx-student.ts).
  if (plan.onnx) lines.push(describeOnnxCheck(plan.onnx, esc), '');
  const onnx = plan.onnx
    ? `; student.onnx ${plan.onnx.status === 'checked' ? `within ${formatMetric('export.onnxMaxAbsDiff', plan.onnx.maxAbsDiff)} of TF.js` : plan.onnx.status}`
    : '';
  const summary = (plan.quantize !== 'none' ? `${plan.quantize}, top-1 agreement ${pct(value(m, 'quantized.agreement.top1'))}` : `${plan.output}`) + onnx;
  return section(report, 'Shipped student', summary, lines);
}

function footer(report: Report, phases?: PhaseSeconds): string {
  const { environment: e, training: t } = report;
  const step = t.step ? `; ${esc(t.step.kind)} training step on ${esc(t.step.backend)}` : '';
  const teacher =
    (report.teacher.runtime ? `; teacher in ${esc(report.teacher.runtime)}` : '') +
    (report.student.runtime ? `; student timed in ${esc(report.student.runtime)}` : '');
  const timed = phases ? PHASES.filter((phase) => phases[phase] !== undefined) : [];
  // Every phase's time where the run gave them; a re-rendered report (merge, compare) has only
  // distillation's, from report.json.
  const times =
    timed.length > 0
      ? `phase times: ${timed.map((phase) => `${phase} ${phaseSeconds(phases![phase]!)}`).join(', ')}${step}`
      : `distillation ${fmt(t.seconds, 1)} s (teacher soft targets ${fmt(t.teacherSeconds, 1)} s${step})`;
  return `<sub>Backend ${esc(e.backend)} (${esc(e.backendSource)}), TF.js ${esc(e.tfjsVersion)}, Node ${esc(e.node)}, ${esc(e.cpu)} ×${e.cpus}${e.gpu ? `, GPU ${esc(e.gpu)}` : ''}${teacher}; ${times}${speedPrecision(report)}, T=${t.temperature}, alpha=${t.alpha}, seed ${t.seed}.</sub>`;
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
      ...found.map(({ value, low, high }) => (value !== 0 && Number.isFinite(high - low) ? Math.abs((high - low) / 2 / value) : Infinity)),
    );
    return { rounds: Math.min(...found.map((i) => i.rounds)), width };
  };
  const latency = widest('speed.teacherMs', 'speed.studentMs');
  const throughput = widest('speed.teacherThroughput', 'speed.studentThroughput');
  const say = (name: string, p: { rounds: number; width: number } | undefined) =>
    p ? `${name} ${p.rounds} rounds, ${Number.isFinite(p.width) ? `±${(100 * p.width).toFixed(1)}%` : 'unbounded'}` : undefined;
  const parts = [say('latency', latency), say('throughput', throughput)].filter(Boolean);
  return parts.length > 0 ? `; speed timed to ${parts.join(', ')} (95% intervals of the medians)` : '';
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

/** A link to the workflow run that recorded the baseline, when the store knew it; only a run's address (RUN_URL) is linked. */
function baselineRunLink(runUrl: string | undefined): string {
  return runUrl && RUN_URL.test(runUrl) ? ` ([its run](${runUrl}))` : '';
}

function relativeName(file: string): string {
  const parts = file.split(/[\\/]/);
  return parts.slice(-3).join('/');
}
