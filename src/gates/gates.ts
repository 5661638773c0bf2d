import type { GateSpec } from '../config/schema.js';
import { InputError, didYouMean } from '../errors.js';
import { metricSpec } from '../measure/metrics.js';

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

const COMPARISON = /^\s*(>=|<=|==|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)\s*$/i;
const AMOUNT = /^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)\s*(%?)\s*$/i;

/** Parses the config's `gates` mapping, refusing unknown metrics and thresholds that do not parse. */
export function parseGates(gates: Record<string, GateSpec>, knownMetrics: readonly string[]): GateCheck[] {
  const checks: GateCheck[] = [];
  for (const [metric, spec] of Object.entries(gates)) {
    const where = `gates.${metric}`;
    if (!knownMetrics.includes(metric)) {
      throw new InputError(where, `no metric is named "${metric}".${didYouMean(metric, knownMetrics)} Metrics this run measures: ${knownMetrics.join(', ')}.`);
    }
    if (typeof spec === 'number') {
      throw new InputError(where, `a bare number (${spec}) is ambiguous; write a comparison such as ">= ${spec}", or { min: ${spec} }.`);
    }
    if (typeof spec === 'string') {
      const match = COMPARISON.exec(spec);
      if (!match)
        throw new InputError(
          where,
          `threshold ${JSON.stringify(spec)} does not parse; write an operator and a number, e.g. ">= 0.93" or "<= 0.1" (operators: >=, <=, >, <, ==).`,
        );
      checks.push({ metric, op: match[1] as GateOp, threshold: Number(match[2]), relative: false, level: 'error' });
      continue;
    }
    const before = checks.length;
    const level = spec.level ?? 'error';
    if (spec.min !== undefined) checks.push({ metric, op: '>=', threshold: spec.min, relative: false, level });
    if (spec.max !== undefined) checks.push({ metric, op: '<=', threshold: spec.max, relative: false, level });
    for (const op of ['maxDrop', 'maxIncrease'] as const) {
      const amount = spec[op];
      if (amount === undefined) continue;
      const match = AMOUNT.exec(String(amount));
      if (!match || Number(match[1]) < 0) {
        throw new InputError(
          `${where}.${op}`,
          `${JSON.stringify(amount)} does not parse; give a non-negative number (absolute change) or a percentage such as "5%".`,
        );
      }
      const relative = match[2] === '%';
      checks.push({ metric, op, threshold: relative ? Number(match[1]) / 100 : Number(match[1]), relative, level });
    }
    if (checks.length === before) throw new InputError(where, 'names no bound; give at least one of min, max, maxDrop, maxIncrease.');
  }
  return checks;
}

/**
 * Evaluates each check against this run's metrics and, for relative checks, a baseline's.
 * A relative check without a baseline is skipped, never passed: the first PR that adds a gate
 * must not fail for lack of a baseline, and must not claim it held either.
 */
export function evaluateGates(checks: GateCheck[], metrics: Record<string, number>, baseline?: Record<string, number>): GateResult[] {
  return checks.map((check) => {
    const value = metrics[check.metric] ?? null;
    const base = baseline?.[check.metric] ?? null;
    const expected = describeExpected(check);
    if (value === null || !Number.isFinite(value)) {
      // Comparing teachers needs the base branch's, which only a pull request has (and only when it
      // can be fetched): without it the gate is skipped, as a relative gate without a baseline is.
      if (metricSpec(check.metric)?.stage === 'teacher diff')
        return { ...check, value, baseline: base, pass: null, status: 'skipped', expected, note: 'no base teacher to compare with' };
      return { ...check, value, baseline: base, pass: false, status: check.level === 'warn' ? 'warn' : 'fail', expected, note: 'metric not measured' };
    }
    let pass: boolean | null;
    if (check.op === 'maxDrop' || check.op === 'maxIncrease') {
      if (base === null) return { ...check, value, baseline: null, pass: null, status: 'skipped', expected, note: 'no baseline' };
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
