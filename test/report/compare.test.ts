import { describe, expect, it } from 'vitest';
import { compareReports } from '../../src/report/compare.js';
import { fullSampleReport, sampleReport } from '../sample-report.js';

const baseline = sampleReport({
  metrics: { ...sampleReport().metrics, 'agreement.top1': 0.97 },
  createdAt: '2025-12-01T00:00:00.000Z',
  commit: 'abc123',
});

describe('compareReports', () => {
  it("re-judges the report's own gates against the baseline", () => {
    const current = sampleReport({
      gates: [
        {
          metric: 'agreement.top1',
          op: 'maxDrop',
          threshold: 0.01,
          relative: false,
          level: 'error',
          value: 0.95,
          baseline: null,
          pass: null,
          status: 'skipped',
          expected: 'drop <= 0.01',
          note: 'no baseline',
        },
      ],
    });
    const { verdict, report, markdown } = compareReports(current, baseline, '/b/report.json');
    expect(verdict).toBe('fail');
    expect(report.gates[0]).toMatchObject({ status: 'fail', value: 0.95, baseline: 0.97 });
    expect(report.baseline).toEqual({
      path: '/b/report.json',
      createdAt: baseline.createdAt,
      commit: 'abc123',
      environmentDiffers: false,
    });
    expect(markdown).toContain('**Failing gates:** agreement.top1 (drop <= 0.01)');
  });

  it('takes other gates when given, refusing metrics the report lacks', () => {
    expect(
      compareReports(fullSampleReport(), baseline, '/b/report.json', {
        gates: { 'agreement.top1': '>= 0.9' },
        measure: { inconclusive: 'pass' },
      }).verdict,
    ).toBe('pass');
    expect(() =>
      compareReports(sampleReport(), baseline, '/b/report.json', {
        gates: { 'accuracy.student': '>= 0.9' },
        measure: { inconclusive: 'pass' },
      }),
    ).toThrow(/no metric is named "accuracy\.student"/);
  });

  it('keeps a run that failed outright failed, whatever the gates now say', () => {
    const outright = sampleReport({
      verdict: 'fail',
      status: 'incomplete',
      reasons: ['Training stopped after 1 of 3 epochs: the loss became NaN in epoch 1.'],
    });
    expect(compareReports(outright, baseline, '/b/report.json').verdict).toBe('fail');
    expect(
      compareReports(outright, baseline, '/b/report.json', {
        gates: { 'agreement.top1': '>= 0.5' },
        measure: { inconclusive: 'pass' },
      }).verdict,
    ).toBe('fail');
    // One that failed on a gate is judged afresh.
    expect(
      compareReports(fullSampleReport(), baseline, '/b/report.json', {
        gates: { 'agreement.top1': '>= 0.5' },
        measure: { inconclusive: 'pass' },
      }).verdict,
    ).toBe('pass');
  });

  it('judges speed gates on the intervals the run measured, counting an undecided one as the config says', () => {
    const current = sampleReport({
      speedIntervals: { 'speed.speedup': { value: 4, low: 3.8, high: 4.3, rounds: 60, confidence: 0.999 } },
    });
    const gates = { 'speed.speedup': '>= 4.1' };
    const counted = (inconclusive: 'pass' | 'fail') =>
      compareReports(current, baseline, '/b/report.json', { gates, measure: { inconclusive } }).report.gates[0].status;
    expect([counted('pass'), counted('fail')]).toEqual(['inconclusive', 'fail']);
  });
});
