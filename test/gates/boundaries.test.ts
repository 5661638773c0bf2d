/**
 * Every comparison at its boundary: a value exactly at the threshold, one step below and one above
 * (the next float), for each operator and for the relative bounds. A gate that swapped >= for > (or
 * <= for <) passes most tests; these fail it.
 */
import { describe, expect, it } from 'vitest';
import { evaluateGates, type GateCheck } from '../../src/gates/gates.js';

const below = (x: number) => x - Math.max(Math.abs(x) * Number.EPSILON, Number.MIN_VALUE) * 2;
const above = (x: number) => x + Math.max(Math.abs(x) * Number.EPSILON, Number.MIN_VALUE) * 2;
const check = (op: GateCheck['op'], threshold: number, relative = false): GateCheck => ({
  metric: 'agreement.top1',
  op,
  threshold,
  relative,
  level: 'error',
});
const passes = (gate: GateCheck, value: number, baseline?: number) =>
  evaluateGates(
    [gate],
    { 'agreement.top1': value },
    baseline === undefined ? undefined : { 'agreement.top1': baseline },
  )[0].pass;

describe('absolute bounds at their threshold', () => {
  it.each([
    ['>=', [false, true, true]],
    ['>', [false, false, true]],
    ['<=', [true, true, false]],
    ['<', [true, false, false]],
    ['==', [false, true, false]],
  ] as const)('%s: below, at, above the threshold pass %j', (op, expected) => {
    const t = 0.93;
    expect([passes(check(op, t), below(t)), passes(check(op, t), t), passes(check(op, t), above(t))]).toEqual(expected);
  });
});

describe('relative bounds at their allowance', () => {
  it('maxDrop: a drop of exactly the allowance passes, a visible step more fails, and a rise always passes', () => {
    const gate = check('maxDrop', 0.01);
    expect(passes(gate, 0.94, 0.95)).toBe(true);
    expect(passes(gate, 0.9399, 0.95)).toBe(false);
    expect(passes(gate, 0.99, 0.95)).toBe(true);
  });

  it('maxIncrease as a share of the baseline: exactly 10% passes, 10.01% fails, a fall passes', () => {
    const gate: GateCheck = {
      metric: 'speed.studentMs',
      op: 'maxIncrease',
      threshold: 0.1,
      relative: true,
      level: 'error',
    };
    const at = (value: number) => evaluateGates([gate], { 'speed.studentMs': value }, { 'speed.studentMs': 2 })[0].pass;
    expect([at(2.2), at(2.2002), at(1.5)]).toEqual([true, false, true]);
  });
});
