import type { GateSpec } from '../config/schema.js';
import { InputError, didYouMean } from '../errors.js';
import { locatedKey, placeOf } from '../config/locate.js';
import { describeRange, metricRange, metricSpec, type MetricRange, type MetricUnit } from '../measure/metrics.js';

export type GateLevel = 'error' | 'warn';
export type GateOp = '>=' | '<=' | '>' | '<' | '==' | 'maxDrop' | 'maxIncrease';
export type GateStatus = 'pass' | 'fail' | 'warn' | 'skipped' | 'inconclusive';

/** One check on one metric; a gate spec with several bounds becomes several checks. */
export interface GateCheck {
  metric: string;
  op: GateOp;
  threshold: number;
  /** For maxDrop / maxIncrease: the threshold is a fraction of the baseline value. */
  relative: boolean;
  level: GateLevel;
}

export interface GateResult extends GateCheck {
  value: number | null;
  baseline: number | null;
  /** null when the check could not be made (a relative gate with no baseline). */
  pass: boolean | null;
  status: GateStatus;
  /** Human-readable threshold, e.g. ">= 0.93" or "drop <= 1%". */
  expected: string;
  note?: string;
}

const COMPARISON = /^\s*(>=|<=|==|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)\s*(%?)\s*$/i;
const AMOUNT = /^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)\s*(%?)\s*$/i;

/**
 * A gate spec that is wrong, and where: `key` is the bound at fault (min, max, maxDrop,
 * maxIncrease), or undefined when the spec as a whole is (a comparison string, a bare number).
 * The config loader turns it into file:line:column.
 */
export class GateSpecError extends InputError {
  readonly metric: string;
  readonly key: string | undefined;
  readonly reason: string;
  constructor(metric: string, key: string | undefined, reason: string, where?: string) {
    super(`${where ? `${where} ` : ''}gates.${metric}${key ? `.${key}` : ''}`, reason);
    this.metric = metric;
    this.key = key;
    this.reason = reason;
  }
}

/**
 * Parses the config's `gates` mapping, refusing unknown metrics, thresholds that do not parse and
 * thresholds outside the metric's range. Errors name `file:line:column` when the mapping came from
 * a config file (loadConfig attaches where each gate stands).
 */
export function parseGates(gates: Record<string, GateSpec>, knownMetrics: readonly string[]): GateCheck[] {
  const checks: GateCheck[] = [];
  for (const [metric, spec] of Object.entries(gates)) {
    if (!knownMetrics.includes(metric)) {
      throw new InputError(
        locatedKey(gates, `gates.${metric}`, [metric]),
        `no metric is named "${metric}".${didYouMean(metric, knownMetrics)} Metrics this run measures: ${knownMetrics.join(', ')}.`,
      );
    }
    try {
      checks.push(...parseGate(metric, spec));
    } catch (error) {
      const place =
        error instanceof GateSpecError
          ? placeOf(gates, [metric, ...(error.key ? [error.key] : [])], [metric])
          : undefined;
      if (!place) throw error;
      throw new GateSpecError(metric, (error as GateSpecError).key, (error as GateSpecError).reason, place);
    }
  }
  return checks;
}

/**
 * One metric's gate spec as checks: a string such as ">= 0.93" is one, an object one per bound.
 * An absolute bound on a metric that is a fraction may be written as a percentage (">= 93%",
 * `min: "93%"`: 0.93); on any other metric a percentage is refused, pointing at maxIncrease or
 * maxDrop for a bound relative to the baseline. Throws a GateSpecError naming the bound when a
 * threshold does not parse, or lies outside the values the metric can take (see thresholdProblem).
 */
export function parseGate(metric: string, spec: GateSpec): GateCheck[] {
  const checked = (check: GateCheck, key: string | undefined): GateCheck => {
    const problem = thresholdProblem(
      check,
      key === undefined ? JSON.stringify(spec) : `${key}: ${JSON.stringify(spec[key as keyof typeof spec])}`,
    );
    if (problem) throw new GateSpecError(metric, key, problem);
    return check;
  };
  if (typeof spec === 'number') {
    throw new GateSpecError(
      metric,
      undefined,
      `a bare number (${spec}) is ambiguous; write a comparison such as ">= ${spec}", or { min: ${spec} }.`,
    );
  }
  if (typeof spec === 'string') {
    const match = COMPARISON.exec(spec);
    if (!match)
      throw new GateSpecError(
        metric,
        undefined,
        `threshold ${JSON.stringify(spec)} does not parse; write an operator and a number, e.g. ">= 0.93", ">= 93%" or "<= 0.1" (operators: >=, <=, >, <, ==).`,
      );
    const threshold = absoluteBound(metric, undefined, Number(match[2]), match[3] === '%', JSON.stringify(spec));
    return [checked({ metric, op: match[1] as GateOp, threshold, relative: false, level: 'error' }, undefined)];
  }
  const checks: GateCheck[] = [];
  const level = spec.level ?? 'error';
  for (const [key, op] of [
    ['min', '>='],
    ['max', '<='],
  ] as const) {
    const value = spec[key];
    if (value === undefined) continue;
    checks.push(checked({ metric, op, threshold: boundValue(metric, key, value), relative: false, level }, key));
  }
  for (const op of ['maxDrop', 'maxIncrease'] as const) {
    const amount = spec[op];
    if (amount === undefined) continue;
    const match = AMOUNT.exec(String(amount));
    if (!match || Number(match[1]) < 0) {
      throw new GateSpecError(
        metric,
        op,
        `${JSON.stringify(amount)} does not parse; give a non-negative number (absolute change) or a percentage such as "5%".`,
      );
    }
    const relative = match[2] === '%';
    checks.push(
      checked({ metric, op, threshold: relative ? Number(match[1]) / 100 : Number(match[1]), relative, level }, op),
    );
  }
  if (checks.length === 0)
    throw new GateSpecError(metric, undefined, 'names no bound; give at least one of min, max, maxDrop, maxIncrease.');
  return checks;
}

/** `min` or `max` as written: a number, or a string holding one or a percentage ("93%"). */
function boundValue(metric: string, key: 'min' | 'max', value: number | string): number {
  if (typeof value === 'number') return value;
  const written = `${key}: ${JSON.stringify(value)}`;
  const match = AMOUNT.exec(value);
  if (!match)
    throw new GateSpecError(
      metric,
      key,
      `${written} does not parse; give a number, or a percentage such as "93%" on a metric that is a fraction.`,
    );
  return absoluteBound(metric, key, Number(match[1]), match[2] === '%', written);
}

/** How each unit that is not a fraction reads in the message refusing a percentage. */
const NOT_A_FRACTION: Partial<Record<MetricUnit, string>> = {
  ms: 'a time in ms',
  bytes: 'a size in bytes',
  parameters: 'a count of parameters',
  'samples/s': 'a rate in samples/s',
  ratio: 'a ratio (teacher over student)',
  coefficient: 'a coefficient from -1 to 1',
  nats: 'a divergence in nats',
};

/**
 * An absolute bound's number: a percentage is the fraction it stands for (93% is 0.93) on a metric
 * whose unit is a fraction (its catalogue entry says so), and refused on any other, where "10%"
 * usually means "at most 10% worse than the baseline": that is maxIncrease or maxDrop.
 */
function absoluteBound(
  metric: string,
  key: string | undefined,
  amount: number,
  percent: boolean,
  written: string,
): number {
  if (!percent) return amount;
  const spec = metricSpec(metric);
  if (spec?.unit === 'fraction') return amount / 100;
  const what = spec
    ? `${metric} is ${NOT_A_FRACTION[spec.unit] ?? spec.unit}`
    : `${metric} is not a metric known to be a fraction`;
  const hint =
    spec?.unit === 'coefficient'
      ? ` Write the number itself, e.g. ${JSON.stringify(`>= ${+(amount / 100).toPrecision(6)}`)}.`
      : ` For a bound relative to the baseline's value write { ${spec?.better === 'higher' ? 'maxDrop' : 'maxIncrease'}: "${amount}%" }.`;
  throw new GateSpecError(
    metric,
    key,
    `${written}: a percentage stands for a fraction (93% is 0.93), and ${what}, not a fraction.${hint}`,
  );
}

/**
 * Why a check's threshold cannot be meant, or undefined: an absolute bound outside the values the
 * metric can take (catalogue ranges: `agreement.top1: ">= 7.5"` would never pass, `<= 5` on a
 * fraction always would; both are usually a percentage written for a fraction), one no value in
 * range satisfies (`speed.studentMs: "< 0"`), or an absolute change larger than the whole range.
 * `written` is the spec as the config has it, for the message.
 */
export function thresholdProblem(check: GateCheck, written: string): string | undefined {
  const range = metricRange(check.metric);
  if (!range) return undefined;
  const { metric, op, threshold } = check;
  const fraction = metricSpec(metric)?.unit === 'fraction' && range.max === 1;
  const values = `${metric} is ${describeRange(metric)}`;
  if (op === 'maxDrop' || op === 'maxIncrease') {
    if (check.relative || !(threshold > range.max - range.min)) return undefined;
    const hint = fraction
      ? ` For ${threshold} percentage points write ${+(threshold / 100).toPrecision(6)}, or "${threshold}%" for a share of the baseline's value.`
      : '';
    return `an absolute ${op} of ${threshold} allows more than ${metric} can ever move (${values}), so this bound never fails.${hint}`;
  }
  const hint =
    fraction && threshold > 1 && threshold <= 100 && !written.includes('%')
      ? ` Write ${JSON.stringify(`${op} ${+(threshold / 100).toPrecision(6)}`)} or ${JSON.stringify(`${op} ${threshold}%`)} for ${threshold}%, not ${threshold}.`
      : '';
  if (threshold < range.min || threshold > range.max) {
    return `${written} lies outside the values ${metric} can take (${describeRange(metric)}), so this bound would ${satisfiable(op, threshold, range) ? 'always pass' : 'never pass'}.${hint}`;
  }
  if (!satisfiable(op, threshold, range))
    return `${written}: no value of ${metric} satisfies it (${values}), so this bound would never pass.`;
  return undefined;
}

/** Whether some value in `range` satisfies `op threshold`. */
function satisfiable(op: GateOp, threshold: number, range: MetricRange): boolean {
  const lowest = (inclusive: boolean) =>
    range.above ? threshold > range.min : inclusive ? threshold >= range.min : threshold > range.min;
  switch (op) {
    case '>=':
      return threshold <= range.max;
    case '>':
      return threshold < range.max;
    case '<=':
      return lowest(true);
    case '<':
      return lowest(false);
    case '==':
      return lowest(true) && threshold <= range.max && (!range.integer || Number.isInteger(threshold));
    default:
      return true;
  }
}

/**
 * Evaluates each check against this run's metrics and, for relative checks, a baseline's.
 * A relative check without a baseline is skipped, never passed: the first PR that adds a gate
 * must not fail for lack of a baseline, and must not claim it held either.
 */
export function evaluateGates(
  checks: GateCheck[],
  metrics: Record<string, number>,
  baseline?: Record<string, number>,
): GateResult[] {
  return checks.map((check) => {
    const value = metrics[check.metric] ?? null;
    const base = baseline?.[check.metric] ?? null;
    const expected = describeExpected(check);
    if (value === null || !Number.isFinite(value)) {
      // Comparing teachers needs the base branch's, which only a pull request has (and only when it
      // can be fetched): without it the gate is skipped, as a relative gate without a baseline is.
      if (metricSpec(check.metric)?.stage === 'teacher diff')
        return {
          ...check,
          value,
          baseline: base,
          pass: null,
          status: 'skipped',
          expected,
          note: 'no base teacher to compare with',
        };
      return {
        ...check,
        value,
        baseline: base,
        pass: false,
        status: check.level === 'warn' ? 'warn' : 'fail',
        expected,
        note: 'metric not measured',
      };
    }
    let pass: boolean | null;
    if (check.op === 'maxDrop' || check.op === 'maxIncrease') {
      if (base === null)
        return { ...check, value, baseline: null, pass: null, status: 'skipped', expected, note: 'no baseline' };
      const allowed = check.relative ? Math.abs(base) * check.threshold : check.threshold;
      const change = check.op === 'maxDrop' ? base - value : value - base;
      pass = change <= allowed + 1e-12;
    } else {
      pass = compare(value, check.op, check.threshold);
    }
    const status: GateStatus = pass ? 'pass' : check.level === 'warn' ? 'warn' : 'fail';
    return { ...check, value, baseline: base, pass, status, expected };
  });
}

function compare(value: number, op: GateOp, threshold: number): boolean {
  switch (op) {
    case '>=':
      return value >= threshold;
    case '<=':
      return value <= threshold;
    case '>':
      return value > threshold;
    case '<':
      return value < threshold;
    case '==':
      return value === threshold;
    default:
      throw new Error(`not a comparison: ${op}`);
  }
}

export function describeExpected(check: GateCheck): string {
  if (check.op === 'maxDrop' || check.op === 'maxIncrease') {
    const amount = check.relative ? `${+(check.threshold * 100).toPrecision(6)}%` : String(check.threshold);
    return `${check.op === 'maxDrop' ? 'drop' : 'increase'} <= ${amount}`;
  }
  return `${check.op} ${check.threshold}`;
}

/** The run fails when any error-level check failed; warnings and skipped checks never fail it. */
export function verdictOf(results: GateResult[]): 'pass' | 'fail' {
  return results.some((r) => r.status === 'fail') ? 'fail' : 'pass';
}
