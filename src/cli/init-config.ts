import type { LayerSpec, SplitSpec } from '../config/schema.js';
import { formatMetric } from '../measure/metric-format.js';

// The distill-gate.yml that `distill-gate init` writes: the teacher, the proposed student, the
// data, the training settings, and gates set from what the calibration run measured, each with
// a comment giving the measured value and the margin. The margins:
//
// - agreement.top1 min: the measured value less AGREEMENT_MARGIN (2 points), rounded down to a
//   whole point: a rerun (another machine, another backend's rounding) passes; a student that
//   lost a real share of the teacher's answers fails.
// - agreement.top1 maxDrop: AGREEMENT_MAX_DROP (1 point) below the baseline run, where there is
//   one (the action's baseline store, or --baseline): the regression a PR brings.
// - agreement.kappa min: the measured kappa less KAPPA_MARGIN (0.05), rounded down to two
//   decimals: a student that collapses to the majority class (kappa ~0) fails even where top-1
//   agreement stays high on imbalanced classes. Being a gate on kappa, it replaces the default
//   chance-level gate (agreement.kappa >= 0.2, gates/defaults.ts).
// - size.ratio max: the measured ratio times SIZE_HEADROOM (1.1), to three significant digits.
// - No absolute speed gate: CI machines' speed varies from run to run and machine to machine.

export const AGREEMENT_MARGIN = 0.02;
export const AGREEMENT_MAX_DROP = 0.01;
export const SIZE_HEADROOM = 1.1;
export const KAPPA_MARGIN = 0.05;

/** One gate init writes: the metric, its bounds (a gate object of the config) and the comment above it. */
export interface ProposedGate {
  metric: string;
  bounds: { min?: number; max?: number; maxDrop?: number };
  comment: string[];
}

/** The gates for a run that measured `metrics`; a metric the run lacks gets no gate. */
export function gatesFromMetrics(metrics: Record<string, number>): ProposedGate[] {
  const gates: ProposedGate[] = [];
  const agreement = metrics['agreement.top1'];
  if (Number.isFinite(agreement)) {
    // toFixed first: 0.95 - 0.02 is 0.9299999..., which must floor to 0.93, not 0.92.
    const min = Math.max(0, Math.floor(Number(((agreement - AGREEMENT_MARGIN) * 100).toFixed(6))) / 100);
    gates.push({
      metric: 'agreement.top1',
      bounds: { min, maxDrop: AGREEMENT_MAX_DROP },
      comment: [
        `Top-1 agreement with the teacher on the eval split: ${formatMetric('agreement.top1', agreement)} when init ran. min is that`,
        `less ${AGREEMENT_MARGIN * 100} points, rounded down to a whole point: reruns pass, a real regression fails.`,
        `maxDrop: at most ${AGREEMENT_MAX_DROP * 100} point below the baseline run (the action's baseline store or`,
        '--baseline); skipped while there is no baseline.',
      ],
    });
  }
  const kappa = metrics['agreement.kappa'];
  if (Number.isFinite(kappa)) {
    const min = Math.max(0, Math.floor(Number(((kappa - KAPPA_MARGIN) * 100).toFixed(6))) / 100);
    gates.push({
      metric: 'agreement.kappa',
      bounds: { min },
      comment: [
        `Cohen's kappa of the two top-1 answers (agreement corrected for chance): ${formatMetric('agreement.kappa', kappa)} when init ran.`,
        `min is that less ${KAPPA_MARGIN}, rounded down to two decimals: a student that always answers the majority`,
        'class scores about 0 and fails, however high its top-1 agreement on imbalanced classes.',
      ],
    });
  }
  const ratio = metrics['size.ratio'];
  if (Number.isFinite(ratio) && ratio > 0) {
    const max = Number((ratio * SIZE_HEADROOM).toPrecision(3));
    gates.push({
      metric: 'size.ratio',
      bounds: { max },
      comment: [
        `Student bytes over teacher bytes: ${formatMetric('size.ratio', ratio)} when init ran. max is ${Math.round((SIZE_HEADROOM - 1) * 100)}% above it`,
        '(3 significant digits): room to grow the student a little, not to ship a large one.',
      ],
    });
  }
  return gates;
}

export interface ConfigDraft {
  /** Paths relative to the config's folder, with forward slashes. */
  teacher: string;
  teacherHead?: string;
  student: { layers: LayerSpec[]; why: string };
  train: SplitSpec;
  eval: SplitSpec;
  /** How the data was split, when init split one file; a comment above data. */
  splitNote?: string;
  distill: { epochs: number; batchSize: number; seed: number; why: string };
  gates: ProposedGate[];
}

/** The config's YAML text, comments included (it parses with parseConfig: the caller checks it). */
export function renderConfig(draft: ConfigDraft): string {
  const lines = [
    '# Written by `distill-gate init`; edit freely (docs/configuration.md lists every key).',
    `teacher: ${scalar(draft.teacher)}`,
    ...(draft.teacherHead ? [`teacherHead: ${scalar(draft.teacherHead)}`] : []),
    'student:',
    ...comment(`  # ${draft.student.why}`),
    '  layers:',
    ...draft.student.layers.map((layer) => `    - ${flow(layer)}`),
    'data:',
    ...(draft.splitNote ? comment(`  # ${draft.splitNote}`) : []),
    `  train: ${flow(draft.train)}`,
    `  eval: ${flow(draft.eval)}`,
    ...comment(`# ${draft.distill.why}`),
    `distill: ${flow({ epochs: draft.distill.epochs, batchSize: draft.distill.batchSize, seed: draft.distill.seed })}`,
    'gates:',
    ...draft.gates.flatMap((gate) => [
      ...gate.comment.map((line) => `  # ${line}`),
      `  ${gate.metric}: ${flow(gate.bounds)}`,
    ]),
    '  # No absolute speed gate: CI machines vary in speed from run to run. To gate latency against',
    "  # the baseline's student, timed in the same run, add e.g.:",
    '  #   speed.studentMs: { maxIncrease: "20%" }',
  ];
  if (draft.gates.length === 0) lines.push('  {}');
  return `${lines.join('\n')}\n`;
}

/** A long comment wrapped at about 100 columns, each line with the first line's indent and `#`. */
function comment(text: string): string[] {
  const prefix = /^\s*# /.exec(text)?.[0] ?? '# ';
  const words = text.slice(prefix.length).split(' ');
  const lines: string[] = [];
  let line = '';
  for (const word of words) {
    if (line && prefix.length + line.length + word.length + 1 > 100) {
      lines.push(prefix + line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  return [...lines, prefix + line];
}

/** A flat mapping in YAML flow style: `{ type: dense, units: 64 }`. */
function flow(value: object): string {
  const entries = Object.entries(value).filter(([, v]) => v !== undefined);
  return `{ ${entries.map(([k, v]) => `${k}: ${typeof v === 'string' ? scalar(v) : String(v)}`).join(', ')} }`;
}

/** A string as a YAML scalar: plain when it is a simple path or name, double-quoted (JSON) otherwise. */
function scalar(value: string): string {
  // Not plain where YAML would read another type: true, null, ~, or a number (1e5, .5, .inf, -1).
  const plain =
    /^[\w./-]+$/.test(value) &&
    !/^(true|false|null|~)$/i.test(value) &&
    !/^[-+]?(\d|\.\d|\.inf|\.nan)/i.test(value) &&
    !value.startsWith('-');
  return plain ? value : JSON.stringify(value);
}
