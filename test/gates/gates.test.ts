import { describe, expect, it } from 'vitest';
import { evaluateGates, parseGates, verdictOf } from '../../src/gates/gates.js';

const known = ['agreement.top1', 'size.ratio', 'speed.studentMs', 'size.studentBytes'];

describe('gates', () => {
  it('parses comparison strings and objects into checks', () => {
    const checks = parseGates(
      {
        'agreement.top1': '>= 0.93',
        'size.ratio': '<0.1',
        'speed.studentMs': { maxIncrease: '10%' },
        'size.studentBytes': { max: 5000, maxIncrease: 100, level: 'warn' },
      },
      known,
    );
    expect(checks).toEqual([
      { metric: 'agreement.top1', op: '>=', threshold: 0.93, relative: false, level: 'error' },
      { metric: 'size.ratio', op: '<', threshold: 0.1, relative: false, level: 'error' },
      { metric: 'speed.studentMs', op: 'maxIncrease', threshold: 0.1, relative: true, level: 'error' },
      { metric: 'size.studentBytes', op: '<=', threshold: 5000, relative: false, level: 'warn' },
      { metric: 'size.studentBytes', op: 'maxIncrease', threshold: 100, relative: false, level: 'warn' },
    ]);
  });

  it('refuses an unknown metric, listing the known ones and the nearest', () => {
    expect(() => parseGates({ 'agreement.top': '>= 1' }, known)).toThrow(
      /gates\.agreement\.top: no metric is named "agreement\.top"\. Did you mean "agreement\.top1"\? Metrics this run measures: agreement\.top1, size\.ratio/,
    );
  });

  it.each([['>= ninety'], ['=> 0.9'], ['0.9'], ['']])('refuses the threshold %j', (spec) => {
    expect(() => parseGates({ 'size.ratio': spec }, known)).toThrow(/gates\.size\.ratio: threshold .* does not parse/);
  });

  it('refuses a bare number and an object without bounds', () => {
    expect(() => parseGates({ 'size.ratio': 0.1 }, known)).toThrow(/ambiguous/);
    expect(() => parseGates({ 'size.ratio': { level: 'warn' } }, known)).toThrow(/names no bound/);
    expect(() => parseGates({ 'size.ratio': { maxDrop: 'lots' } }, known)).toThrow(
      /gates\.size\.ratio\.maxDrop: "lots" does not parse/,
    );
  });

  it('refuses a threshold outside the values its metric can take, naming the bound and hinting at the fraction meant', () => {
    expect(() => parseGates({ 'agreement.top1': '>= 93' }, known)).toThrow(
      'gates.agreement.top1: ">= 93" lies outside the values agreement.top1 can take (a fraction from 0 to 1), so this bound would never pass. Write ">= 0.93" or ">= 93%" for 93%, not 93.',
    );
    expect(() => parseGates({ 'size.studentBytes': { max: -1 } }, known)).toThrow(
      /^gates\.size\.studentBytes\.max: max: -1 lies outside .*a whole number from 0/,
    );
    expect(() => parseGates({ 'size.ratio': { maxIncrease: 3 } }, known)).not.toThrow();
  });

  it('evaluates absolute checks and fails the verdict only on error level', () => {
    const checks = parseGates({ 'agreement.top1': '>= 0.93', 'size.ratio': { max: 0.05, level: 'warn' } }, known);
    const passing = evaluateGates(checks, { 'agreement.top1': 0.95, 'size.ratio': 0.2 });
    expect(passing.map((r) => r.status)).toEqual(['pass', 'warn']);
    expect(verdictOf(passing)).toBe('pass');
    const failing = evaluateGates(checks, { 'agreement.top1': 0.9, 'size.ratio': 0.01 });
    expect(failing.map((r) => r.status)).toEqual(['fail', 'pass']);
    expect(verdictOf(failing)).toBe('fail');
  });

  it('skips relative checks without a baseline and judges them against one', () => {
    const checks = parseGates(
      { 'agreement.top1': { maxDrop: 0.01 }, 'speed.studentMs': { maxIncrease: '10%' } },
      known,
    );
    const skipped = evaluateGates(checks, { 'agreement.top1': 0.5, 'speed.studentMs': 9 });
    expect(skipped.map((r) => [r.status, r.pass])).toEqual([
      ['skipped', null],
      ['skipped', null],
    ]);
    expect(verdictOf(skipped)).toBe('pass');
    const judged = evaluateGates(
      checks,
      { 'agreement.top1': 0.93, 'speed.studentMs': 1.05 },
      { 'agreement.top1': 0.95, 'speed.studentMs': 1 },
    );
    expect(judged.map((r) => r.status)).toEqual(['fail', 'pass']);
    const slower = evaluateGates(
      checks,
      { 'agreement.top1': 0.945, 'speed.studentMs': 1.2 },
      { 'agreement.top1': 0.95, 'speed.studentMs': 1 },
    );
    expect(slower.map((r) => r.status)).toEqual(['pass', 'fail']);
  });

  it('fails a check whose metric was not measured', () => {
    const [result] = evaluateGates(parseGates({ 'size.ratio': '<= 1' }, known), {});
    expect(result.status).toBe('fail');
    expect(result.note).toBe('metric not measured');
  });
});
