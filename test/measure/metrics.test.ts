import { describe, expect, it } from 'vitest';
import {
  HEADLINE_METRICS,
  inMetricRange,
  instanceName,
  metricRange,
  isMachineDependent,
  measuredMetrics,
  metricOutputs,
  METRICS,
  metricSpec,
  teacherCounterpart,
  TREND_METRICS,
  worstOf,
} from '../../src/measure/metrics.js';
import { formatCompact, formatMetric } from '../../src/measure/metric-format.js';

describe('the metric catalogue', () => {
  it('lists the metrics a run measures, in the order the stages produce them', () => {
    expect(measuredMetrics({ classes: 10, topK: 5, labels: false })).toEqual([
      'size.teacherBytes',
      'size.studentBytes',
      'size.teacherParams',
      'size.studentParams',
      'size.ratio',
      'speed.teacherMs',
      'speed.studentMs',
      'speed.speedup',
      'speed.teacherThroughput',
      'speed.studentThroughput',
      'speed.throughputSpeedup',
      'agreement.top1',
      'agreement.top5',
      'agreement.kappa',
      'agreement.minClass',
      'agreement.majority',
      'kl',
    ]);
  });

  it('measures top-k agreement only with more classes than k, accuracy only with labels, paired latency only against a baseline student', () => {
    const names = (context: Parameters<typeof measuredMetrics>[0]) =>
      measuredMetrics(context).filter(
        (n) => !n.startsWith('size.') && !/^speed\.(teacher|student|speedup|throughputSpeedup)/.test(n),
      );
    const chance = ['agreement.kappa', 'agreement.minClass', 'agreement.majority'];
    const calibration = ['calibration.teacherEce', 'calibration.studentEce'];
    expect(names({ classes: 5, topK: 5, labels: false })).toEqual(['agreement.top1', ...chance, 'kl']);
    expect(names({ classes: 6, topK: 3, labels: true })).toEqual([
      'agreement.top1',
      'agreement.top3',
      ...chance,
      'kl',
      'accuracy.teacher',
      'accuracy.student',
      ...calibration,
    ]);
    // The shipped student's metrics only with a quantized export, its accuracy only with labels too.
    expect(names({ classes: 5, topK: 5, labels: false, quantized: true })).toEqual([
      'agreement.top1',
      ...chance,
      'kl',
      'quantized.agreement.top1',
      'quantized.kl',
    ]);
    expect(
      names({ classes: 5, topK: 5, labels: true, quantized: true }).filter(
        (n) => n.startsWith('quantized.') || n === 'size.studentFloatBytes',
      ),
    ).toEqual(['quantized.agreement.top1', 'quantized.kl', 'quantized.accuracy']);
    expect(measuredMetrics({ classes: 5, topK: 5, labels: false, quantized: true })).toContain(
      'size.studentFloatBytes',
    );
    expect(measuredMetrics({ classes: 5, topK: 5, labels: false })).not.toContain('size.studentFloatBytes');
    expect(names({ classes: 5, topK: 5, labels: false, baseTeacher: true })).toEqual([
      'agreement.top1',
      ...chance,
      'kl',
      'teacherDiff.agreement',
      'teacherDiff.kl',
      'teacherDiff.studentVsBase',
    ]);
    expect(names({ classes: 2, topK: 5, labels: false, baselineStudent: true })).toEqual([
      'agreement.top1',
      ...chance,
      'kl',
      'speed.baselineStudentMs',
      'speed.vsBaseline',
    ]);
  });

  it('has one entry per name, and teacher counterparts that are catalogue metrics of the same unit', () => {
    expect(new Set(METRICS.map((m) => m.name)).size).toBe(METRICS.length);
    for (const spec of METRICS.filter((m) => m.teacher)) {
      const teacher = metricSpec(spec.teacher!);
      expect(teacher, spec.name).toBeDefined();
      expect(teacher!.unit, spec.name).toEqual(spec.unit);
    }
  });

  it('pairs each student metric with its teacher counterpart', () => {
    const pairs = Object.fromEntries(METRICS.filter((m) => m.teacher).map((m) => [m.name, m.teacher]));
    expect(pairs).toEqual({
      'size.studentBytes': 'size.teacherBytes',
      'size.studentParams': 'size.teacherParams',
      'speed.studentMs': 'speed.teacherMs',
      'speed.studentThroughput': 'speed.teacherThroughput',
      'accuracy.student': 'accuracy.teacher',
      'size.studentFloatBytes': 'size.teacherBytes',
      'calibration.studentEce': 'calibration.teacherEce',
      'quantized.accuracy': 'accuracy.teacher',
    });
    expect(teacherCounterpart('agreement.top1')).toBeUndefined();
    expect(teacherCounterpart('no.such.metric')).toBeUndefined();
  });

  it('finds top-k agreement for any k, and nothing for names no run produces', () => {
    expect(metricSpec('agreement.top1')?.name).toBe('agreement.top1');
    expect(metricSpec('agreement.top5')?.name).toBe('agreement.top<k>');
    expect(metricSpec('agreement.top12')?.unit).toBe('fraction');
    for (const name of ['agreement.top', 'agreement.topk', 'xagreement.top5', 'agreement.top5x', 'speed.studentms'])
      expect(metricSpec(name), name).toBeUndefined();
  });

  it('says which way is better', () => {
    const better = (name: string) => metricSpec(name)?.better;
    expect(
      [
        'agreement.top1',
        'agreement.top5',
        'agreement.kappa',
        'accuracy.student',
        'speed.speedup',
        'speed.studentThroughput',
      ].map(better),
    ).toEqual(Array(6).fill('higher'));
    // A lower chance level is a teacher spreading its answers, where top-1 agreement says more.
    expect(
      ['kl', 'size.ratio', 'size.studentBytes', 'speed.studentMs', 'speed.vsBaseline', 'agreement.majority'].map(
        better,
      ),
    ).toEqual(Array(6).fill('lower'));
  });

  it("marks the timed metrics as the ones another machine's baseline says nothing about", () => {
    expect(METRICS.filter((m) => isMachineDependent(m.name)).map((m) => m.name)).toEqual(
      METRICS.filter((m) => m.name.startsWith('speed.')).map((m) => m.name),
    );
    expect(isMachineDependent('agreement.top1')).toBe(false);
  });
});

describe('formatting by unit', () => {
  it.each([
    ['agreement.top1', 0.95, '95.00%'],
    ['agreement.top3', 0.123456, '12.35%'],
    ['size.ratio', 0.05, '5.00%'],
    ['size.studentBytes', 50, '50 B'],
    ['size.teacherBytes', 1536, '1.5 KiB'],
    ['size.teacherBytes', 5 * 2 ** 20, '5.0 MiB'],
    ['size.studentParams', 1234567.4, '1,234,567'],
    ['speed.studentThroughput', 899.6, '900'],
    ['speed.studentMs', 0.123456, '0.12346 ms'],
    ['speed.speedup', 4.123456, '4.12346'],
    ['kl', 0.0123456, '0.0123456'],
    ['agreement.kappa', 0.912345, '0.912'],
    ['agreement.kappa', 0, '0.000'],
    ['agreement.kappa', -0.0357, '-0.036'],
    ['agreement.majority', 271 / 280, '96.79%'],
    ['speed.vsBaseline', 1.0417123, '1.04171'],
    ['no.such.metric', 1.23456789, '1.23457'],
    ['agreement.top1', NaN, '—'],
    ['agreement.top1', undefined, '—'],
    ['speed.studentMs', Infinity, '—'],
    ['size.studentBytes', -Infinity, '—'],
  ])('shows %s = %s as %j', (name, value, text) => {
    expect(formatMetric(name, value)).toBe(text);
  });

  it.each([
    ['agreement.top1', 0.95, '95.00%'],
    ['speed.speedup', 4, '4.00×'],
    ['speed.studentMs', 0.5, '0.5000'],
    ['agreement.kappa', 0.5, '0.500'],
    ['size.studentBytes', 51200, '51200'],
    ['size.ratio', undefined, '—'],
    ['speed.speedup', NaN, '—'],
  ])('shows %s = %s as %j in one-row-per-run tables', (name, value, text) => {
    expect(formatCompact(name, value)).toBe(text);
  });
});

describe('headline and trend metrics', () => {
  it('gives the action its outputs, empty when not measured', () => {
    expect(HEADLINE_METRICS.map((m) => [m.name, m.headline.output, m.label])).toEqual([
      ['agreement.top1', 'agreement', 'Top-1 agreement'],
      ['speed.speedup', 'speedup', 'Speed-up'],
      ['size.ratio', 'size-ratio', 'Size ratio'],
    ]);
    expect(metricOutputs({ 'agreement.top1': 0.95, 'speed.speedup': 4, kl: 1 })).toEqual({
      agreement: '0.95',
      speedup: '4',
      'size-ratio': '',
    });
  });

  it('takes the worst value among runs, by which way is better', () => {
    expect(worstOf('agreement.top1', [0.9, 0.8, NaN])).toBe(0.8);
    expect(worstOf('speed.speedup', [4, 2])).toBe(2);
    expect(worstOf('size.ratio', [0.1, 0.3, Infinity])).toBe(0.3);
    expect(worstOf('size.ratio', [NaN])).toBeNaN();
  });

  it('draws agreement, latency and size in the trend', () => {
    expect(TREND_METRICS.map((m) => [m.name, m.label, m.trend.column, m.trend.axis, m.trend.scale])).toEqual([
      ['agreement.top1', 'Top-1 agreement', 'Top-1 agreement', '%', 100],
      ['speed.studentMs', 'Student latency, batch 1', 'Student ms', 'ms', 1],
      ['size.studentBytes', 'Student size', 'Student bytes', 'KiB', 1 / 1024],
    ]);
  });
});

describe('the range of each metric', () => {
  it('is known for every metric of the catalogue, from its unit or its own', () => {
    for (const spec of METRICS) expect(metricRange(instanceName(spec, 5)), spec.name).toBeDefined();
    expect(metricRange('size.ratio')).toEqual({ min: 0, max: Infinity });
    expect(metricRange('agreement.top1')).toEqual({ min: 0, max: 1 });
  });

  it.each([
    ['agreement.top1', 1, true],
    ['agreement.top1', 1.01, false],
    ['agreement.top5', -0.1, false],
    ['agreement.kappa', -1, true],
    ['agreement.kappa', -1.5, false],
    ['size.ratio', 3, true],
    ['size.ratio', -3, false],
    ['size.studentBytes', 10.5, false],
    ['size.studentParams', -1, false],
    ['speed.studentMs', 0, false],
    ['speed.speedup', 0.5, true],
    ['kl', -1e-17, true],
    ['kl', -0.1, false],
    ['agreement.top1', NaN, true],
  ])('%s = %d is in range: %s', (name, value, expected) => {
    expect(inMetricRange(name, value)).toBe(expected);
  });
});
