/**
 * The one catalogue of metrics: every name a run can put in report.json's `metrics`, with its
 * unit (which decides how it is formatted), which way is better, the stage that measures it, its
 * teacher counterpart, and when it is measured at all. Gates (which names exist, "did you mean"),
 * the markdown report, the action's outputs, merged reports and the trend all read it: adding a
 * metric is one entry here (and its producer computing it, which the types then demand).
 */

/**
 * The stage that produces a metric; `paired speed` only runs for relative latency gates with a
 * baseline student, `quantized` when `export.quantize` ships quantized weights, `teacher diff`
 * when the base branch's teacher is at hand, `export` when `export.format: onnx` writes student.onnx.
 */
export type MetricStage = 'size' | 'speed' | 'agreement' | 'quantized' | 'teacher diff' | 'paired speed' | 'export';

/**
 * How a value is read and written: `fraction` is shown as a percentage, `ratio` as a plain number
 * (a × in compact tables), `coefficient` (a score such as Cohen's kappa: 1 perfect, 0 chance) with
 * three decimals, `bytes` in B/KiB/MiB, counts with thousands separators, `difference` (an absolute
 * difference between two models' outputs, in the outputs' units) in significant digits.
 */
export type MetricUnit =
  'bytes' | 'parameters' | 'ms' | 'samples/s' | 'fraction' | 'ratio' | 'coefficient' | 'nats' | 'difference';

/**
 * A metric measured only sometimes: with more classes than `measure.topK`, with labels, against a
 * baseline student, with a quantized export (and labels), or with the base branch's teacher.
 */
export type MetricCondition =
  | 'more classes than topK'
  | 'labels'
  | 'baseline student'
  | 'quantized'
  | 'quantized with labels'
  | 'base teacher'
  | 'onnx export';

/**
 * The values a metric can take: from `min` to `max` (`min` itself excluded when `above`), whole
 * numbers only when `integer`. A value outside it cannot come from a run: an uploaded report that
 * holds one was edited, and a gate threshold outside it is a typo (93 for 0.93) that would never,
 * or always, pass.
 */
export interface MetricRange {
  readonly min: number;
  readonly max: number;
  readonly above?: boolean;
  readonly integer?: boolean;
}

/** Each unit's range; a metric whose values a unit does not bound alike names its own (`range`). */
const UNIT_RANGES: Readonly<Record<MetricUnit, MetricRange>> = {
  bytes: { min: 0, max: Infinity, integer: true },
  parameters: { min: 0, max: Infinity, integer: true },
  ms: { min: 0, max: Infinity, above: true },
  'samples/s': { min: 0, max: Infinity, above: true },
  fraction: { min: 0, max: 1 },
  ratio: { min: 0, max: Infinity, above: true },
  coefficient: { min: -1, max: 1 },
  nats: { min: 0, max: Infinity },
  difference: { min: 0, max: Infinity },
};

export interface MetricSpec {
  /** Flat and dotted, as in report.json and the gates; `<k>` stands for `measure.topK`. */
  readonly name: string;
  /** What a reader sees: merged-summary column headers and trend titles. */
  readonly label: string;
  readonly unit: MetricUnit;
  readonly better: 'higher' | 'lower';
  readonly stage: MetricStage;
  /** The teacher's value of the same quantity, shown beside the student's (the Gates table's Teacher column). */
  readonly teacher?: string;
  readonly when?: MetricCondition;
  /** The values it can take, when its unit's range (UNIT_RANGES) does not describe them. */
  readonly range?: MetricRange;
  /**
   * A headline metric: the action output of this name carries it, and a merged report has a column
   * of it per run and keeps the worst run's value. `order` places it among the headline metrics.
   */
  readonly headline?: { readonly output: string; readonly order: number };
  /**
   * Drawn in the report's trend (`axis` after multiplying by `scale`) and listed by
   * `distill-gate history` under `column`; `order` places it among them.
   */
  readonly trend?: { readonly order: number; readonly column: string; readonly axis: string; readonly scale: number };
}

/** In the order the stages measure them, which is the order gates errors list them in. */
const CATALOGUE = [
  { name: 'size.teacherBytes', label: 'Teacher size', unit: 'bytes', better: 'lower', stage: 'size' },
  {
    name: 'size.studentBytes',
    label: 'Student size',
    unit: 'bytes',
    better: 'lower',
    stage: 'size',
    teacher: 'size.teacherBytes',
    trend: { order: 3, column: 'Student bytes', axis: 'KiB', scale: 1 / 1024 },
  },
  { name: 'size.teacherParams', label: 'Teacher parameters', unit: 'parameters', better: 'lower', stage: 'size' },
  {
    name: 'size.studentParams',
    label: 'Student parameters',
    unit: 'parameters',
    better: 'lower',
    stage: 'size',
    teacher: 'size.teacherParams',
  },
  // The float32 student's bytes, beside size.studentBytes's shipped (quantized) ones.
  {
    name: 'size.studentFloatBytes',
    label: 'Student size, float32',
    unit: 'bytes',
    better: 'lower',
    stage: 'size',
    when: 'quantized',
    teacher: 'size.teacherBytes',
  },
  // A fraction in how it is shown, but a student larger than its teacher has a ratio above 1.
  {
    name: 'size.ratio',
    label: 'Size ratio',
    unit: 'fraction',
    better: 'lower',
    stage: 'size',
    range: { min: 0, max: Infinity },
    headline: { output: 'size-ratio', order: 3 },
  },
  { name: 'speed.teacherMs', label: 'Teacher latency, batch 1', unit: 'ms', better: 'lower', stage: 'speed' },
  {
    name: 'speed.studentMs',
    label: 'Student latency, batch 1',
    unit: 'ms',
    better: 'lower',
    stage: 'speed',
    teacher: 'speed.teacherMs',
    trend: { order: 2, column: 'Student ms', axis: 'ms', scale: 1 },
  },
  {
    name: 'speed.speedup',
    label: 'Speed-up',
    unit: 'ratio',
    better: 'higher',
    stage: 'speed',
    headline: { output: 'speedup', order: 2 },
  },
  { name: 'speed.teacherThroughput', label: 'Teacher throughput', unit: 'samples/s', better: 'higher', stage: 'speed' },
  {
    name: 'speed.studentThroughput',
    label: 'Student throughput',
    unit: 'samples/s',
    better: 'higher',
    stage: 'speed',
    teacher: 'speed.teacherThroughput',
  },
  { name: 'speed.throughputSpeedup', label: 'Throughput speed-up', unit: 'ratio', better: 'higher', stage: 'speed' },
  {
    name: 'agreement.top1',
    label: 'Top-1 agreement',
    unit: 'fraction',
    better: 'higher',
    stage: 'agreement',
    headline: { output: 'agreement', order: 1 },
    trend: { order: 1, column: 'Top-1 agreement', axis: '%', scale: 100 },
  },
  {
    name: 'agreement.top<k>',
    label: 'Top-k agreement',
    unit: 'fraction',
    better: 'higher',
    stage: 'agreement',
    when: 'more classes than topK',
  },
  // Top-1 agreement corrected for chance: a student answering only the teacher's frequent class scores 0.
  { name: 'agreement.kappa', label: "Cohen's kappa", unit: 'coefficient', better: 'higher', stage: 'agreement' },
  // The worst class's agreement (teacher's class as reference, classes with MIN_CLASS_SAMPLES or more).
  {
    name: 'agreement.minClass',
    label: 'Worst class agreement',
    unit: 'fraction',
    better: 'higher',
    stage: 'agreement',
  },
  // The chance level: what the best constant student scores in top-1 agreement. A property of the
  // teacher on the eval set, not of the student; lower means top-1 agreement says more.
  {
    name: 'agreement.majority',
    label: 'Chance level (majority class)',
    unit: 'fraction',
    better: 'lower',
    stage: 'agreement',
  },
  { name: 'kl', label: 'KL(teacher || student)', unit: 'nats', better: 'lower', stage: 'agreement' },
  {
    name: 'accuracy.teacher',
    label: 'Teacher accuracy',
    unit: 'fraction',
    better: 'higher',
    stage: 'agreement',
    when: 'labels',
  },
  {
    name: 'accuracy.student',
    label: 'Student accuracy',
    unit: 'fraction',
    better: 'higher',
    stage: 'agreement',
    when: 'labels',
    teacher: 'accuracy.teacher',
  },
  // Expected calibration error (15 equal-width confidence bins, T = 1): 0 is perfectly calibrated.
  {
    name: 'calibration.teacherEce',
    label: 'Teacher calibration error',
    unit: 'fraction',
    better: 'lower',
    stage: 'agreement',
    when: 'labels',
  },
  {
    name: 'calibration.studentEce',
    label: 'Student calibration error',
    unit: 'fraction',
    better: 'lower',
    stage: 'agreement',
    when: 'labels',
    teacher: 'calibration.teacherEce',
  },
  // The student as shipped: its weights quantized (export.quantize) and dequantized as TF.js loads them.
  {
    name: 'quantized.agreement.top1',
    label: 'Top-1 agreement, quantized',
    unit: 'fraction',
    better: 'higher',
    stage: 'quantized',
    when: 'quantized',
  },
  {
    name: 'quantized.kl',
    label: 'KL(teacher || quantized student)',
    unit: 'nats',
    better: 'lower',
    stage: 'quantized',
    when: 'quantized',
  },
  {
    name: 'quantized.accuracy',
    label: 'Quantized student accuracy',
    unit: 'fraction',
    better: 'higher',
    stage: 'quantized',
    when: 'quantized with labels',
    teacher: 'accuracy.teacher',
  },
  // The head teacher against the base branch's on the eval set: how much the PR changed the teacher.
  {
    name: 'teacherDiff.agreement',
    label: 'Top-1 agreement, base vs head teacher',
    unit: 'fraction',
    better: 'higher',
    stage: 'teacher diff',
    when: 'base teacher',
  },
  {
    name: 'teacherDiff.kl',
    label: 'KL(base teacher || head teacher)',
    unit: 'nats',
    better: 'lower',
    stage: 'teacher diff',
    when: 'base teacher',
  },
  {
    name: 'teacherDiff.studentVsBase',
    label: "Student's top-1 agreement with the base teacher",
    unit: 'fraction',
    better: 'higher',
    stage: 'teacher diff',
    when: 'base teacher',
  },
  {
    name: 'speed.baselineStudentMs',
    label: "Baseline student's latency, batch 1",
    unit: 'ms',
    better: 'lower',
    stage: 'paired speed',
    when: 'baseline student',
  },
  {
    name: 'speed.vsBaseline',
    label: 'Latency against the baseline student',
    unit: 'ratio',
    better: 'lower',
    stage: 'paired speed',
    when: 'baseline student',
  },
  // student.onnx (export.format: onnx) in onnxruntime against the TF.js student, on a sample of eval rows.
  {
    name: 'export.onnxMaxAbsDiff',
    label: 'ONNX student vs TF.js, max abs difference',
    unit: 'difference',
    better: 'lower',
    stage: 'export',
    when: 'onnx export',
  },
] as const satisfies readonly MetricSpec[];

export const METRICS: readonly MetricSpec[] = CATALOGUE;

type Entry = (typeof CATALOGUE)[number];
type Expand<N extends string> = N extends `${infer Prefix}<k>` ? `${Prefix}${number}` : N;
/** Every name a report can hold; `agreement.top<k>` is `agreement.top${number}`. */
export type MetricName = Expand<Entry['name']>;

/** The metrics a stage always measures (required) and sometimes measures (optional), typed from the catalogue. */
export type StageMetrics<S extends MetricStage> = {
  [E in Entry as E['stage'] extends S ? (E extends { when: string } ? never : Expand<E['name']>) : never]: number;
} & {
  [E in Entry as E['stage'] extends S ? (E extends { when: string } ? Expand<E['name']> : never) : never]?: number;
};

const specByName = new Map<string, MetricSpec>(METRICS.map((spec) => [spec.name, spec]));
const families = METRICS.filter((spec) => spec.name.includes('<k>')).map((spec) => ({
  spec,
  pattern: new RegExp(`^${spec.name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace('<k>', '\\d+')}$`),
}));

/** What decides which conditional metrics a run measures. */
export interface MetricContext {
  classes: number;
  topK: number;
  labels: boolean;
  /** Whether the new student is timed against the baseline's in this run. */
  baselineStudent?: boolean;
  /** Whether the student ships quantized (`export.quantize`), and is measured so. */
  quantized?: boolean;
  /** Whether the base branch's teacher is compared with the head's. */
  baseTeacher?: boolean;
  /** Whether student.onnx is written and checked (`export.format: onnx`). */
  onnx?: boolean;
}

function holds(spec: MetricSpec, context: MetricContext): boolean {
  switch (spec.when) {
    case undefined:
      return true;
    case 'more classes than topK':
      return context.classes > context.topK;
    case 'labels':
      return context.labels;
    case 'baseline student':
      return context.baselineStudent === true;
    case 'quantized':
      return context.quantized === true;
    case 'quantized with labels':
      return context.quantized === true && context.labels;
    case 'base teacher':
      return context.baseTeacher === true;
    case 'onnx export':
      return context.onnx === true;
  }
}

/** `agreement.top<k>` with k filled in. */
export function instanceName(spec: MetricSpec, topK: number): string {
  return spec.name.replace('<k>', String(topK));
}

/** The metrics a run with these classes, topK and labels measures, in the catalogue's order: what gates may name. */
export function measuredMetrics(context: MetricContext): string[] {
  return METRICS.filter((spec) => holds(spec, context)).map((spec) => instanceName(spec, context.topK));
}

/** `agreement.top${k}` for measure.topK = k. */
export function topKAgreement(topK: number): `agreement.top${number}` {
  const spec = specByName.get('agreement.top<k>');
  if (!spec) throw new Error('metrics.ts: the catalogue has no agreement.top<k> metric');
  return instanceName(spec, topK) as `agreement.top${number}`;
}

/** The catalogue entry of a name (`agreement.top5` finds `agreement.top<k>`), or undefined for a name no run produces. */
export function metricSpec(name: string): MetricSpec | undefined {
  return specByName.get(name) ?? families.find((f) => f.pattern.test(name))?.spec;
}

/** The teacher's counterpart of a student metric (`speed.studentMs` -> `speed.teacherMs`), if it has one. */
export function teacherCounterpart(name: string): string | undefined {
  return metricSpec(name)?.teacher;
}

/** Metrics timed on this machine: a baseline from another environment is no evidence about them. */
export function isMachineDependent(name: string): boolean {
  const stage = metricSpec(name)?.stage;
  return stage === 'speed' || stage === 'paired speed';
}

/** The values a metric can take (its own range, else its unit's); undefined for a name no run produces. */
export function metricRange(name: string): MetricRange | undefined {
  const spec = metricSpec(name);
  return spec && (spec.range ?? UNIT_RANGES[spec.unit]);
}

/** A metric's range in words: "a fraction from 0 to 1", "a whole number from 0", "a number above 0". */
export function describeRange(name: string): string {
  const range = metricRange(name);
  if (!range) return 'any number';
  const kind =
    metricSpec(name)?.unit === 'fraction' && range.max === 1
      ? 'a fraction'
      : range.integer
        ? 'a whole number'
        : 'a number';
  if (range.max === Infinity) return `${kind} ${range.above ? 'above' : 'from'} ${range.min}`;
  return `${kind} from ${range.min} to ${range.max}`;
}

/**
 * Float arithmetic may land a hair outside a bound that holds exactly (a KL of -1e-17 for two equal
 * distributions): that much is still in range.
 */
const RANGE_SLACK = 1e-9;

/** Whether `value` is one a run can measure for `name`; NaN (not measured) and names outside the catalogue are not judged here. */
export function inMetricRange(name: string, value: number): boolean {
  const range = metricRange(name);
  if (!range || Number.isNaN(value)) return true;
  if (range.integer && !Number.isInteger(value)) return false;
  if (range.above ? !(value > range.min) : !(value >= range.min - RANGE_SLACK)) return false;
  return value <= range.max + RANGE_SLACK;
}

/** Headline metrics in order: the action's outputs and the merged summary's columns. */
export const HEADLINE_METRICS: ReadonlyArray<MetricSpec & { headline: NonNullable<MetricSpec['headline']> }> =
  METRICS.filter(
    (spec): spec is MetricSpec & { headline: NonNullable<MetricSpec['headline']> } => spec.headline !== undefined,
  ).sort((a, b) => a.headline.order - b.headline.order);

/** Trend metrics in order: the report's trend charts and `distill-gate history`'s columns. */
export const TREND_METRICS: ReadonlyArray<MetricSpec & { trend: NonNullable<MetricSpec['trend']> }> = METRICS.filter(
  (spec): spec is MetricSpec & { trend: NonNullable<MetricSpec['trend']> } => spec.trend !== undefined,
).sort((a, b) => a.trend.order - b.trend.order);

/** The action's outputs of the headline metrics: output name -> the value as text, '' when not measured. */
export function metricOutputs(metrics: Record<string, number>): Record<string, string> {
  return Object.fromEntries(HEADLINE_METRICS.map((spec) => [spec.headline.output, String(metrics[spec.name] ?? '')]));
}

/** The worst value among runs: the lowest where higher is better, the highest otherwise; NaN when none is finite. */
export function worstOf(name: string, values: number[]): number {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return NaN;
  return metricSpec(name)?.better === 'lower' ? Math.max(...finite) : Math.min(...finite);
}
