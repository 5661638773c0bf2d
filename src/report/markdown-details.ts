// The report's detail sections (per class, the teacher's change, the shipped student, the
// training curve): under their headings when a gate failed, folded into <details> when every
// gate passed. The verdict, gates, size and speed are markdown.ts.
import { markdownTable } from 'markdown-table';
import type { MetricName } from '../measure/metrics.js';
import { formatInteger as int, formatPercent as pct } from '../format.js';
import { formatMetric } from '../measure/metric-format.js';
import { escapeMarkdown as esc } from './escape.js';
import type { Report } from './report.js';
import { ONNX_STUDENT_FILE, type OnnxStudentCheck } from '../models/onnx-student.js';

/** A metric the layout names; the type checks the name against the catalogue. */
export const value = (metrics: Record<string, number>, name: MetricName): number => metrics[name];

/** Whether every gate passed (or had nothing to judge): the detail sections then fold away. */
export function allPassed(report: Report): boolean {
  return report.verdict === 'pass' && report.gates.every((g) => g.status === 'pass' || g.status === 'skipped');
}

/**
 * A section under its heading, or folded into `<details>` when every gate passed, so that a
 * passing report stays short and a failing one shows its evidence. `summary` is plain text the
 * caller built from numbers and escaped names.
 */
export function section(report: Report, title: string, summary: string, body: string[]): string[] {
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
export function perClassSection(report: Report): string[] {
  const a = report.agreement;
  if (!a?.agreedCounts) return [];
  const { teacherCounts, agreedCounts } = a;
  const minSamples = a.minClassSamples ?? 1;
  const share = (c: number) => agreedCounts[c] / teacherCounts[c];
  const answered = teacherCounts.map((_, c) => c).filter((c) => teacherCounts[c] > 0);
  const gated = answered
    .filter((c) => teacherCounts[c] >= minSamples)
    .sort((x, y) => share(x) - share(y) || teacherCounts[y] - teacherCounts[x] || x - y);
  const few = answered
    .filter((c) => teacherCounts[c] < minSamples && agreedCounts[c] < teacherCounts[c])
    .sort((x, y) => share(x) - share(y) || x - y);
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
    markdownTable([['Class', "Teacher's samples", 'Student agrees', 'Gated'], ...rows], {
      align: ['l', 'r', 'r', 'l'],
    }),
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
    const confusionRows = confusions.map((k) => [
      `class ${k.teacher} → class ${k.student}`,
      int(k.count),
      pct(k.count / teacherCounts[k.teacher]),
    ]);
    lines.push(
      'Largest confusions, teacher → student:',
      '',
      markdownTable([['Teacher → student', 'Samples', "Share of the teacher's class"], ...confusionRows], {
        align: ['l', 'r', 'r'],
      }),
      '',
    );
  }
  const summary = Number.isFinite(worst)
    ? `worst class ${pct(worst)} (class ${gated[0]})`
    : `no class has ${minSamples} samples`;
  return section(report, 'Per-class agreement', summary, lines);
}

/**
 * What the PR changed in the teacher (report.json's `teacherDiff`): the base branch's teacher
 * against the head's on the eval split, the classes whose share of its answers moved most, and
 * whether the student followed the head teacher; or why no comparison was made.
 */
export function teacherChangeSection(report: Report): string[] {
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
  return section(
    report,
    'Teacher change',
    `agreement with the base teacher ${pct(value(m, 'teacherDiff.agreement'))}`,
    lines,
  );
}

/**
 * The student as it ships (report.json's `export`): its weights' quantization and output kind,
 * and, for quantized weights, how the shipped student compares with the float32 one it was
 * trained as. Nothing for a float32 logits export, which is the trained student itself.
 */
export function shippedSection(report: Report): string[] {
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
      ...(Number.isFinite(value(m, 'quantized.accuracy'))
        ? [['Accuracy', 'accuracy.student', 'quantized.accuracy'] as [string, MetricName, MetricName]]
        : []),
      ['Weight bytes', 'size.studentFloatBytes', 'size.studentBytes'],
    ];
    const rows = pairs.map(([label, float, shipped]) => [
      label,
      formatMetric(float, value(m, float)),
      formatMetric(shipped, value(m, shipped)),
    ]);
    lines.push(
      markdownTable([['', 'float32 student', `Shipped (${plan.quantize})`], ...rows], { align: ['l', 'r', 'r'] }),
      '',
      'The shipped column is measured on the weights as TF.js dequantizes them on load.',
      '',
    );
  }
  // export.format onnx: student.onnx and its check in onnxruntime (onnx-student.ts).
  if (plan.onnx) lines.push(describeOnnxCheck(plan.onnx), '');
  const onnx = plan.onnx
    ? `; student.onnx ${plan.onnx.status === 'checked' ? `within ${formatMetric('export.onnxMaxAbsDiff', plan.onnx.maxAbsDiff)} of TF.js` : plan.onnx.status}`
    : '';
  const summary =
    (plan.quantize !== 'none'
      ? `${plan.quantize}, top-1 agreement ${pct(value(m, 'quantized.agreement.top1'))}`
      : `${plan.output}`) + onnx;
  return section(report, 'Shipped student', summary, lines);
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

/**
 * The report's sentence on student.onnx. `esc` makes the runtime's label and the note inert in
 * markdown (a report may come from an untrusted job); everything else is numbers and fixed words.
 */
function describeOnnxCheck(check: OnnxStudentCheck): string {
  const what = `\`student/${ONNX_STUDENT_FILE}\` (ONNX opset ${check.opset}, ${check.inputLayout === 'nhwc' ? 'NHWC input as the data comes' : 'input as the data comes'}, outputs ${check.output === 'probabilities' ? 'probabilities' : 'logits'})`;
  if (check.status === 'checked') {
    const diff = check.maxAbsDiff;
    const shown =
      diff === undefined || !Number.isFinite(diff) ? 'not finite' : diff === 0 ? '0' : diff.toExponential(1);
    return `${what} ran in ${esc(check.runtime ?? 'onnxruntime-node')} on ${check.rows} eval rows beside the TF.js student: the largest difference of their outputs is ${shown} (\`export.onnxMaxAbsDiff\`).`;
  }
  if (check.status === 'skipped')
    return `${what} was written but not checked: ${esc(check.note ?? 'onnxruntime-node is not installed')}.`;
  return `${what} was written, but its check failed: ${esc(check.note ?? 'onnxruntime could not run it')}.`;
}
