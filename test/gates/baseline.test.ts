import { describe, expect, it } from 'vitest';
import type { GateCheck, GateResult } from '../../src/gates/gates.js';
import {
  acceptRegressions,
  intervalBound,
  isPairedSpeedCheck,
  judgeGates,
  sameEnvironment,
  type BaselineRun,
  type TimedSpeed,
  type SpeedEnvironment,
} from '../../src/gates/baseline.js';
import { failedOutright, failsOutright, runVerdict } from '../../src/gates/verdict.js';
import type { SpeedComparison } from '../../src/measure/paired-speed.js';

const here: SpeedEnvironment = { backend: 'wasm', tfjsVersion: '4.22.0', cpu: 'cpu A', gpu: null };
const check = (metric: string, op: GateCheck['op'], threshold: number, extra: Partial<GateCheck> = {}): GateCheck => ({
  metric,
  op,
  threshold,
  relative: false,
  level: 'error',
  ...extra,
});
const metrics = { 'agreement.top1': 0.9, 'speed.studentMs': 1.5, 'size.studentBytes': 1200 };
const baseline = (environment = here): BaselineRun => ({
  metrics: { 'agreement.top1': 0.95, 'speed.studentMs': 1.0, 'size.studentBytes': 1000 },
  environment,
});

describe('judgeGates', () => {
  it('judges absolute bounds without a baseline, and skips relative ones', () => {
    const { gates, environmentDiffers } = judgeGates(
      [check('agreement.top1', '>=', 0.93), check('size.studentBytes', 'maxIncrease', 0.1, { relative: true })],
      metrics,
      here,
    );
    expect(environmentDiffers).toBe(false);
    expect(gates.map((g) => [g.metric, g.status, g.note])).toEqual([
      ['agreement.top1', 'fail', undefined],
      ['size.studentBytes', 'skipped', 'no baseline'],
    ]);
  });

  it('judges relative bounds against the baseline on the same environment, speed included', () => {
    const { gates, environmentDiffers } = judgeGates(
      [
        check('agreement.top1', 'maxDrop', 0.01),
        check('speed.studentMs', 'maxIncrease', 0.1, { relative: true }),
        check('size.studentBytes', 'maxIncrease', 0.25, { relative: true }),
      ],
      metrics,
      here,
      baseline(),
    );
    expect(environmentDiffers).toBe(false);
    expect(gates.map((g) => [g.metric, g.status, g.value, g.baseline])).toEqual([
      ['agreement.top1', 'fail', 0.9, 0.95],
      ['speed.studentMs', 'fail', 1.5, 1.0],
      ['size.studentBytes', 'pass', 1200, 1000],
    ]);
  });

  it('does not gate speed deltas against a baseline from another environment, but still gates the rest', () => {
    for (const other of [
      { ...here, backend: 'cpu' },
      { ...here, tfjsVersion: '4.21.0' },
      { ...here, cpu: 'cpu B' },
      { ...here, gpu: 'some GPU' },
    ]) {
      const { gates, environmentDiffers } = judgeGates(
        [
          check('speed.studentMs', 'maxIncrease', 0.1, { relative: true }),
          check('speed.studentMs', '<=', 1),
          check('agreement.top1', 'maxDrop', 0.01),
        ],
        metrics,
        here,
        baseline(other),
      );
      expect(environmentDiffers).toBe(true);
      expect(gates.map((g) => [g.op, g.status, g.pass, g.note])).toEqual([
        ['maxIncrease', 'skipped', null, 'baseline from another environment'],
        // An absolute bound on this run's own speed is still judged.
        ['<=', 'fail', false, undefined],
        ['maxDrop', 'fail', false, undefined],
      ]);
    }
  });

  it('fails a speed gate whose metric was not measured, even against a baseline from another environment', () => {
    const { gates } = judgeGates(
      [
        check('speed.studentMs', 'maxIncrease', 0.1, { relative: true }),
        check('speed.teacherMs', 'maxIncrease', 0.1, { relative: true }),
      ],
      { 'agreement.top1': 0.9, 'speed.teacherMs': NaN },
      here,
      baseline({ ...here, cpu: 'cpu B' }),
    );
    expect(gates.map((g) => [g.metric, g.status, g.note])).toEqual([
      ['speed.studentMs', 'fail', 'metric not measured'],
      ['speed.teacherMs', 'fail', 'metric not measured'],
    ]);
  });

  it('lets a paired timing decide the relative latency gate, and only that one', () => {
    const comparison = (low: number, high: number): SpeedComparison => ({
      ratio: (low + high) / 2,
      low,
      high,
      rounds: 40,
      verdict: 'inconclusive',
      allowedRatio: 1.1,
      baselineMs: 1.0,
      currentMs: 1.05,
      confidence: 0.95,
    });
    const checks = [
      check('speed.studentMs', 'maxIncrease', 0.1, { relative: true }),
      check('size.studentBytes', 'maxIncrease', 0.1, { relative: true }),
    ];
    const run = (paired: TimedSpeed, level: GateCheck['level'] = 'error') =>
      judgeGates(
        checks.map((c) => ({ ...c, level })),
        metrics,
        here,
        baseline(),
        paired,
      ).gates;

    const pass = run({ comparison: comparison(1.0, 1.08), inconclusive: 'fail' });
    // The paired timing replaces the stored latencies (1.5 vs 1.0 would fail).
    expect(pass[0]).toMatchObject({ status: 'pass', pass: true, value: 1.05, baseline: 1.0 });
    expect(pass[0].note).toMatch(
      /^timed against the baseline's student in this run: ratio 1\.040, 95% CI \[1\.000, 1\.080\] over 40 paired rounds; allowed 1\.100$/,
    );
    expect(pass[1]).toMatchObject({ status: 'fail', value: 1200, baseline: 1000 });

    expect(run({ comparison: comparison(1.15, 1.3), inconclusive: 'pass' })[0]).toMatchObject({
      status: 'fail',
      pass: false,
    });
    expect(run({ comparison: comparison(1.15, 1.3), inconclusive: 'pass' }, 'warn')[0]).toMatchObject({
      status: 'warn',
      pass: false,
    });
    expect(run({ comparison: comparison(1.05, 1.2), inconclusive: 'pass' })[0]).toMatchObject({
      status: 'inconclusive',
      pass: true,
    });
    expect(run({ comparison: comparison(1.05, 1.2), inconclusive: 'fail' })[0]).toMatchObject({
      status: 'fail',
      pass: false,
    });
    expect(run({ comparison: comparison(1.05, 1.2), inconclusive: 'fail' })[0].note).toMatch(
      /^inconclusive \(counted as fail\): ratio 1\.125/,
    );
  });

  it('judges absolute bounds on timed metrics on their interval, and every other gate as before', () => {
    const interval = (value: number, low: number, high: number, rounds = 50) => ({
      value,
      low,
      high,
      rounds,
      confidence: 0.999,
    });
    const intervals = {
      'speed.speedup': interval(3.41, 3.3, 3.52, 60),
      'speed.studentMs': interval(0.5, -Infinity, Infinity, 5),
    };
    const checks = [
      check('speed.speedup', '>=', 3.4),
      check('speed.speedup', '>=', 3),
      check('speed.studentMs', '<=', 1),
      check('speed.speedup', 'maxDrop', 0.5),
      check('agreement.top1', '>=', 0.85),
    ];
    // The stored median (3.45) would pass ">= 3.4" on its own; the interval says it cannot tell.
    const timedMetrics = { ...metrics, 'speed.speedup': 3.45 };
    const { gates } = judgeGates(checks, timedMetrics, here, baseline(), { intervals, inconclusive: 'pass' });
    expect(gates.map((g) => [g.status, g.pass, g.value])).toEqual([
      ['inconclusive', true, 3.41],
      ['pass', true, 3.41],
      ['inconclusive', true, 0.5],
      // Relative bounds compare with the stored baseline, not an interval; no baseline value: skipped.
      ['skipped', null, 3.45],
      ['pass', true, 0.9],
    ]);
    expect(gates[0].note).toBe(
      'inconclusive (counted as pass): median 3.410, 99.9% CI [3.300, 3.520] over 60 rounds; needs >= 3.4',
    );
    expect(gates[1].note).toBe('median 3.410, 99.9% CI [3.300, 3.520] over 60 rounds; needs >= 3');
    expect(gates[2].note).toBe(
      'inconclusive (counted as pass): median 0.5 ms over 5 rounds, too few for a 99.9% interval; needs <= 1',
    );
    expect(gates[4].note).toBeUndefined();

    // A report from before intervals (or a re-judge without them): the median decides, as it used to.
    expect(judgeGates(checks.slice(0, 1), timedMetrics, here).gates[0]).toMatchObject({ status: 'pass', value: 3.45 });
  });

  it('knows which checks are judged on an interval', () => {
    expect(intervalBound(check('speed.throughputSpeedup', '>', 2))).toEqual({
      metric: 'speed.throughputSpeedup',
      op: '>',
      threshold: 2,
    });
    expect(intervalBound(check('speed.teacherMs', '<', 9))).toEqual({
      metric: 'speed.teacherMs',
      op: '<',
      threshold: 9,
    });
    expect(intervalBound(check('speed.studentMs', 'maxIncrease', 0.1))).toBeUndefined();
    expect(intervalBound(check('size.ratio', '<=', 0.1))).toBeUndefined();
  });

  it('knows which checks a paired timing decides', () => {
    expect(isPairedSpeedCheck(check('speed.studentMs', 'maxIncrease', 0.1))).toBe(true);
    expect(isPairedSpeedCheck(check('speed.studentMs', '<=', 1))).toBe(false);
    expect(isPairedSpeedCheck(check('speed.teacherMs', 'maxIncrease', 0.1))).toBe(false);
  });

  it('compares environments on backend, TF.js, CPU and GPU only', () => {
    expect(sameEnvironment(here, { ...here })).toBe(true);
    expect(sameEnvironment(here, { ...here, gpu: 'x' })).toBe(false);
  });
});

const failing = (metric: string, op: GateCheck['op'], note?: string): GateResult => ({
  ...check(metric, op, 0.01),
  value: 1,
  baseline: 2,
  pass: false,
  status: 'fail',
  expected: `${op} 0.01`,
  ...(note ? { note } : {}),
});

describe('acceptRegressions', () => {
  it('turns failing relative gates into warnings that name the label and who set it', () => {
    const gates = [
      failing('agreement.top1', 'maxDrop'),
      failing('speed.studentMs', 'maxIncrease', 'timed against the baseline'),
    ];
    const { gates: accepted, overridden } = acceptRegressions(gates, { label: 'accept-regression', by: 'octocat' });
    expect(accepted.map((g) => g.status)).toEqual(['warn', 'warn']);
    expect(accepted[0].note).toBe('accepted as an intended regression (label "accept-regression" by octocat)');
    // An earlier note is kept after the acceptance.
    expect(accepted[1].note).toBe(
      'accepted as an intended regression (label "accept-regression" by octocat); timed against the baseline',
    );
    expect(overridden).toEqual(['agreement.top1 maxDrop 0.01', 'speed.studentMs maxIncrease 0.01']);
    expect(accepted[0].pass).toBe(false);
  });

  it('leaves absolute bounds failing, and passing or skipped gates alone', () => {
    const absolute = failing('agreement.top1', '>=');
    const passing: GateResult = { ...failing('size.ratio', 'maxIncrease'), pass: true, status: 'pass' };
    const skipped: GateResult = { ...failing('size.ratio', 'maxDrop'), pass: null, status: 'skipped' };
    const warned: GateResult = { ...failing('kl', 'maxIncrease'), status: 'warn' };
    const { gates, overridden } = acceptRegressions([absolute, passing, skipped, warned], { label: 'l', by: 'b' });
    expect(gates).toEqual([absolute, passing, skipped, warned]);
    expect(overridden).toEqual([]);
  });
});

describe('failed outright', () => {
  it('fails a run whose loss went non-finite or that was cancelled, not one stopped by its budget', () => {
    expect(failsOutright({ stopKind: 'loss', overBudget: false })).toBe(true);
    expect(failsOutright({ stopKind: 'abort', overBudget: false })).toBe(true);
    expect(failsOutright({ stopKind: 'abort', overBudget: true })).toBe(false);
    expect(failsOutright({ overBudget: false })).toBe(false);
  });

  it("overrides the gates' verdict only when the run failed outright", () => {
    const pass: GateResult = { ...failing('size.ratio', '<='), pass: true, status: 'pass' };
    expect(runVerdict([pass], false)).toBe('pass');
    expect(runVerdict([pass], true)).toBe('fail');
    expect(runVerdict([failing('size.ratio', '<=')], false)).toBe('fail');
  });

  it('reads it back from a report as a fail that no failing gate explains', () => {
    const pass: GateResult = { ...failing('size.ratio', '<='), pass: true, status: 'pass' };
    const warn: GateResult = { ...failing('size.ratio', '<='), status: 'warn' };
    expect(failedOutright({ verdict: 'fail', gates: [pass, warn] })).toBe(true);
    expect(failedOutright({ verdict: 'fail', gates: [] })).toBe(true);
    expect(failedOutright({ verdict: 'fail', gates: [failing('size.ratio', '<=')] })).toBe(false);
    expect(failedOutright({ verdict: 'pass', gates: [pass] })).toBe(false);
  });
});
