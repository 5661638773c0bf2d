import { z } from 'zod';
import { InputError } from '../errors.js';
import { intervalProblem } from '../measure/intervals.js';
import { describeRange, inMetricRange, isMachineDependent, metricSpec } from '../measure/metrics.js';
import { comparisonInterval } from '../measure/paired-speed.js';
import { SCHEMA_VERSION, type Report } from './report.js';

/**
 * How far a report.json is believed. `trusted`: written by this machine's own runs (the CLI's
 * compare, merge, history, a baseline); fields this schema does not know are kept, so that readers
 * of newer optional fields still see them. `untrusted`: uploaded by a job that ran a pull request's
 * code (mode report); fields this schema does not know are dropped, so that nothing unvalidated
 * from the upload reaches the comment, however a later renderer treats it.
 */
export type ReportTrust = 'trusted' | 'untrusted';

/** `z.object` strips unknown keys, `z.looseObject` keeps them; both validate the keys they name. */
type ObjectOf = typeof z.object | typeof z.looseObject;

// JSON has no Infinity or NaN: JSON.stringify writes them as null, so a metric that could not be
// measured, a non-finite loss or an unbounded interval end comes back as null.
const measured = z
  .number()
  .nullable()
  .transform((v) => v ?? NaN);
const count = z.number().int().nonnegative();
/** A phase's wall time (report.json's `phases`). */
const seconds = z.number().nonnegative().optional();
/** An interval's ends: JSON writes an unbounded one (too few rounds) as null. */
const lowEnd = z
  .number()
  .nullable()
  .transform((v) => v ?? -Infinity);
const highEnd = z
  .number()
  .nullable()
  .transform((v) => v ?? Infinity);
/** A backend's name (wasm, tensorflow-gpu, none): the log prints it as it is, so no spaces or control characters. */
const backendName = z.string().regex(/^[\w.+-]{1,64}$/, { message: 'is not the name of a backend' });
/**
 * A workflow run's address, and nothing else (https://host/owner/repo/actions/runs/N): the
 * markdown links it, and these characters can be nothing in markdown but a link target.
 */
export const RUN_URL = /^https?:\/\/[\w.-]+(?::\d+)?\/[\w.-]+\/[\w.-]+\/actions\/runs\/\d+$/;
const runUrl = z.string().regex(RUN_URL, { message: 'is not the address of a workflow run' });

const GATE_OPS = ['>=', '<=', '>', '<', '==', 'maxDrop', 'maxIncrease'] as const;
const GATE_STATUSES = ['pass', 'fail', 'warn', 'skipped', 'inconclusive'] as const;

/**
 * The report.json schema: strict on everything that decides the verdict (verdict, status,
 * reasons, metrics, gates, the paired speed comparison) and on everything the markdown prints
 * (numbers as numbers, names as strings), so that a report, trusted or not, cannot smuggle text
 * where a number is rendered unescaped. Gates must name a metric of the catalogue, since the
 * markdown prints gate metrics in code spans without escaping.
 */
function reportSchema(object: ObjectOf) {
  const gate = object({
    metric: z
      .string()
      .refine((name) => metricSpec(name) !== undefined, { message: 'names no metric distill-gate measures' }),
    op: z.enum(GATE_OPS),
    threshold: z.number(),
    relative: z.boolean(),
    level: z.enum(['error', 'warn']),
    value: z.number().nullable(),
    baseline: z.number().nullable(),
    pass: z.boolean().nullable(),
    status: z.enum(GATE_STATUSES),
    expected: z.string(),
    note: z.string().optional(),
  });
  return object({
    schemaVersion: z.literal(SCHEMA_VERSION),
    verdict: z.enum(['pass', 'fail']),
    status: z.enum(['complete', 'incomplete']),
    reasons: z.array(z.string()),
    backend: backendName,
    metrics: z.record(z.string(), measured),
    gates: z.array(gate),
    training: object({
      epochs: count,
      epochsPlanned: count,
      loss: z.array(measured),
      seconds: z.number(),
      teacherSeconds: z.number(),
      softTargets: z.enum(['computed', 'cache']).optional(),
      teacherPass: z.string().max(200).optional(),
      trainSamples: count,
      evalSamples: count,
      temperature: z.number(),
      alpha: z.number(),
      seed: z.number(),
      labels: z.boolean(),
      classes: z.array(z.string().max(256)).max(100_000).optional(),
      augment: object({
        flip: z.boolean(),
        cropPadding: count.optional(),
        brightness: z.number().nonnegative(),
        contrast: z.number().min(0).max(1),
        seed: z.number(),
      }).optional(),
      step: object({
        kind: z.string(),
        backend: z.string(),
        whyNotKernel: z.string().optional(),
        kernelModule: z.string().optional(),
        threads: z.number().int().positive().optional(),
      }).optional(),
    }),
    environment: object({
      backend: backendName,
      backendSource: z.string(),
      tfjsVersion: z.string(),
      node: z.string(),
      platform: z.string(),
      cpu: z.string(),
      cpus: count,
      gpu: z.string().nullable(),
      backendNotes: z.array(z.string()),
    }),
    teacher: object({
      path: z.string(),
      format: z.string(),
      output: z.string(),
      params: count,
      bytes: count,
      runtime: z.string().optional(),
    }),
    student: object({
      path: z.string(),
      params: count,
      bytes: count,
      from: z.string(),
      runtime: z.string().optional(),
    }),
    baseline: object({
      path: z.string(),
      createdAt: z.string().optional(),
      commit: z.string().optional(),
      runUrl: runUrl.optional(),
      environmentDiffers: z.boolean(),
      student: z.string().optional(),
    }).nullable(),
    speedComparison: object({
      ratio: measured,
      low: lowEnd,
      high: highEnd,
      rounds: count,
      verdict: z.enum(['pass', 'fail', 'inconclusive']),
      allowedRatio: measured,
      baselineMs: measured,
      currentMs: measured,
      confidence: z.number(),
    })
      .nullable()
      .optional(),
    agreement: object({
      teacherCounts: z.array(count),
      studentCounts: z.array(count),
      majorityClass: count,
      agreedCounts: z.array(count).optional(),
      confusions: z.array(object({ teacher: count, student: count, count })).optional(),
      minClassSamples: count.optional(),
    }).optional(),
    export: object({
      quantize: z.enum(['none', 'float16', 'uint8']),
      output: z.enum(['logits', 'probabilities']),
      format: z.literal('onnx').optional(),
      // The markdown prints these: numbers as numbers, the file's name as the export names it.
      onnx: object({
        file: z.literal('student.onnx'),
        opset: count,
        inputLayout: z.enum(['nhwc', 'as the data']),
        output: z.enum(['logits', 'probabilities']),
        status: z.enum(['checked', 'skipped', 'failed']),
        rows: count.optional(),
        maxAbsDiff: measured.optional(),
        runtime: z.string().optional(),
        note: z.string().optional(),
      }).optional(),
    }).optional(),
    teacherDiff: object({
      status: z.enum(['compared', 'unchanged', 'unavailable']),
      source: z.string().optional(),
      note: z.string().optional(),
      moved: z.array(object({ class: count, base: z.number(), head: z.number() })).optional(),
    }).optional(),
    sweep: object({
      candidates: z
        .array(
          object({
            // User text, escaped wherever it is shown; bounded so an upload cannot fill the comment.
            name: z.string().min(1).max(200),
            from: z.string().max(1000),
            configured: z.boolean().optional(),
            status: z.enum(['measured', 'not run', 'failed']),
            reason: z.string().max(2000).optional(),
            metrics: z.record(z.string(), measured),
            onFront: z.boolean(),
            passesGates: z.boolean().nullable(),
            failingGates: z.array(z.string().max(500)).max(100).optional(),
            epochs: count.optional(),
            seconds: seconds,
          }),
        )
        .max(500),
      front: z.array(z.string()),
      timedOn: z.string().max(200).optional(),
    }).optional(),
    speedIntervals: z
      .record(
        z.string(),
        object({ value: measured, low: lowEnd, high: highEnd, rounds: count, confidence: z.number() }),
      )
      .optional(),
    metricsComputedOn: z.string(),
    speedBackend: z.string().optional(),
    phases: object({
      load: seconds,
      'teacher pass': seconds,
      distillation: seconds,
      measuring: seconds,
      report: seconds,
    }).optional(),
    override: object({ label: z.string(), by: z.string(), gates: z.array(z.string()) })
      .nullable()
      .optional(),
    config: z.string(),
    createdAt: z.string(),
    commit: z.string().optional(),
    runUrl: runUrl.optional(),
  });
}

const SCHEMAS: Record<ReportTrust, ReturnType<typeof reportSchema>> = {
  trusted: reportSchema(z.looseObject),
  untrusted: reportSchema(z.object).superRefine((report, ctx) => {
    for (const { path, message } of impossibleValues(report)) ctx.addIssue({ code: 'custom', path, message });
  }),
};

/**
 * What no run can have written, beyond the types: a number outside its range (a metric outside the
 * catalogue's range for it, `size.ratio` -3, `agreement.top1` 7.5, a kappa of 2, a latency of 0;
 * a gate's value or baseline likewise), a speed interval that is not one medianInterval writes
 * (open where its rounds bound it, not holding its median: see intervalProblem) or on a metric that
 * is not timed, training figures out of range. An upload is validated as a whole, so one of these
 * refuses it, named by its JSON path.
 */
function impossibleValues(report: Report): Array<{ path: PropertyKey[]; message: string }> {
  const found: Array<{ path: PropertyKey[]; message: string }> = [];
  const outOfRange = (metric: string, value: number | null, path: PropertyKey[]) => {
    if (value !== null && !inMetricRange(metric, value))
      found.push({ path, message: `${value} is no value of ${metric} (${describeRange(metric)})` });
  };
  for (const [metric, value] of Object.entries(report.metrics)) outOfRange(metric, value, ['metrics', metric]);
  report.gates.forEach((gate, i) => {
    outOfRange(gate.metric, gate.value, ['gates', i, 'value']);
    outOfRange(gate.metric, gate.baseline, ['gates', i, 'baseline']);
  });
  for (const [metric, interval] of Object.entries(report.speedIntervals ?? {})) {
    if (!isMachineDependent(metric)) {
      found.push({
        path: ['speedIntervals', metric],
        message: `${metric} is not a timed metric; a run keeps intervals of speed metrics only`,
      });
      continue;
    }
    const problem = intervalProblem(interval);
    if (problem) found.push({ path: ['speedIntervals', metric, problem.field], message: problem.message });
    else outOfRange(metric, interval.value, ['speedIntervals', metric, 'value']);
  }
  const comparison = report.speedComparison;
  if (comparison) {
    const problem = intervalProblem(comparisonInterval(comparison));
    if (problem)
      found.push({
        path: ['speedComparison', problem.field === 'value' ? 'ratio' : problem.field],
        message: problem.message,
      });
    outOfRange('speed.vsBaseline', comparison.ratio, ['speedComparison', 'ratio']);
    outOfRange('speed.vsBaseline', comparison.allowedRatio, ['speedComparison', 'allowedRatio']);
    outOfRange('speed.baselineStudentMs', comparison.baselineMs, ['speedComparison', 'baselineMs']);
    outOfRange('speed.studentMs', comparison.currentMs, ['speedComparison', 'currentMs']);
  }
  const t = report.training;
  const nonNegative = (value: number, field: string) => {
    if (!(value >= 0))
      found.push({ path: ['training', field], message: `${value} is below 0; a duration is never negative` });
  };
  nonNegative(t.seconds, 'seconds');
  nonNegative(t.teacherSeconds, 'teacherSeconds');
  if (!(t.temperature > 0))
    found.push({
      path: ['training', 'temperature'],
      message: `${t.temperature} is not a temperature a run accepts (above 0)`,
    });
  if (!(t.alpha >= 0 && t.alpha <= 1))
    found.push({ path: ['training', 'alpha'], message: `${t.alpha} is not an alpha a run accepts (from 0 to 1)` });
  if (t.epochs > t.epochsPlanned)
    found.push({
      path: ['training', 'epochs'],
      message: `${t.epochs} epochs are more than the ${t.epochsPlanned} planned`,
    });
  report.sweep?.candidates.forEach((candidate, i) => {
    for (const [metric, value] of Object.entries(candidate.metrics)) {
      if (!metricSpec(metric))
        found.push({
          path: ['sweep', 'candidates', i, 'metrics', metric],
          message: `names no metric distill-gate measures`,
        });
      else outOfRange(metric, value, ['sweep', 'candidates', i, 'metrics', metric]);
    }
  });
  const names = new Set(report.sweep?.candidates.map((c) => c.name));
  report.sweep?.front.forEach((name, i) => {
    if (!names.has(name)) found.push({ path: ['sweep', 'front', i], message: 'names no candidate of the sweep' });
  });
  report.teacherDiff?.moved?.forEach((moved, i) => {
    for (const side of ['base', 'head'] as const)
      if (!(moved[side] >= 0 && moved[side] <= 1))
        found.push({
          path: ['teacherDiff', 'moved', i, side],
          message: `${moved[side]} is no share of answers (a fraction from 0 to 1)`,
        });
  });
  return found;
}

/** `gates[0].status`, `metrics["agreement.top1"]`: where in the JSON a reader should look. */
export function jsonPath(segments: ReadonlyArray<PropertyKey>): string {
  return (
    segments
      .map((s) =>
        typeof s === 'number'
          ? `[${s}]`
          : /^[A-Za-z_$][\w$]*$/.test(String(s))
            ? `.${String(s)}`
            : `[${JSON.stringify(String(s))}]`,
      )
      .join('')
      .replace(/^\./, '') || '(top level)'
  );
}

/**
 * Validates parsed report.json content. Errors are InputErrors naming the file and the JSON path
 * at fault, e.g. `reports/a/report.json: gates[0].status: Invalid option: expected one of ...`.
 */
export function parseReport(value: unknown, file: string, trust: ReportTrust): Report {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || !('schemaVersion' in value)) {
    throw new InputError(file, 'has no schemaVersion; expected a report.json written by distill-gate.');
  }
  const version = value.schemaVersion;
  if (version !== SCHEMA_VERSION) {
    throw new InputError(
      file,
      `has schemaVersion ${JSON.stringify(version)}; this distill-gate reads version ${SCHEMA_VERSION}. Regenerate it with this version.`,
    );
  }
  const parsed = SCHEMAS[trust].safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const more = parsed.error.issues.length > 1 ? ` (and ${parsed.error.issues.length - 1} more problem(s))` : '';
    throw new InputError(
      `${file}: ${jsonPath(issue.path)}`,
      `${issue.message}${more}. This is not a report.json as distill-gate writes it${trust === 'untrusted' ? ', so the uploaded report is refused' : ''}.`,
    );
  }
  // The schema checks every field the Report type requires; Report's extra optional fields are kept (trusted) or dropped (untrusted).
  return parsed.data;
}
