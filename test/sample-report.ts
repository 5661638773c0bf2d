import type { GateResult } from '../src/gates/gates.js';
import type { Report } from '../src/report/report.js';

/** The environment of every sample run: wasm on a 2-core Linux machine. */
export const sampleEnvironment = {
  backend: 'wasm' as const,
  backendSource: 'bundled',
  tfjsVersion: '4.22.0',
  node: 'v20',
  platform: 'linux-x64',
  cpu: 'cpu',
  cpus: 2,
  gpu: null,
  backendNotes: [] as string[],
};

/** A failing absolute gate (size.ratio 0.05 against <= 0.01), for reports that must fail on a gate. */
export const failingSizeGate: GateResult = {
  metric: 'size.ratio',
  op: '<=',
  threshold: 0.01,
  relative: false,
  level: 'error',
  value: 0.05,
  baseline: null,
  pass: false,
  status: 'fail',
  expected: '<= 0.01',
};

/** A complete, plausible report for tests of rendering and GitHub I/O. */
export function sampleReport(overrides: Partial<Report> = {}): Report {
  return {
    schemaVersion: 1,
    verdict: 'pass',
    status: 'complete',
    reasons: [],
    backend: 'wasm',
    metrics: {
      'size.teacherBytes': 1000,
      'size.studentBytes': 50,
      'size.teacherParams': 250,
      'size.studentParams': 12,
      'size.ratio': 0.05,
      'speed.teacherMs': 2,
      'speed.studentMs': 0.5,
      'speed.speedup': 4,
      'speed.teacherThroughput': 100,
      'speed.studentThroughput': 900,
      'speed.throughputSpeedup': 9,
      'agreement.top1': 0.95,
      kl: 0.01,
    },
    gates: [
      {
        metric: 'agreement.top1',
        op: '>=',
        threshold: 0.93,
        relative: false,
        level: 'error',
        value: 0.95,
        baseline: null,
        pass: true,
        status: 'pass',
        expected: '>= 0.93',
      },
    ],
    training: {
      epochs: 3,
      epochsPlanned: 3,
      loss: [3, 2, 1],
      seconds: 1,
      teacherSeconds: 0.1,
      trainSamples: 10,
      evalSamples: 5,
      temperature: 4,
      alpha: 0.9,
      seed: 7,
      labels: false,
    },
    environment: { ...sampleEnvironment },
    teacher: {
      path: '/repo/models/teacher/model.json',
      format: 'layers-model',
      output: 'logits',
      params: 250,
      bytes: 1000,
    },
    student: { path: '/out/student/model.json', params: 12, bytes: 50, from: 'layers' },
    baseline: null,
    metricsComputedOn: 'host',
    config: '/repo/distill-gate.yml',
    createdAt: '2026-01-01T00:00:00.000Z',
    ...overrides,
  };
}

/**
 * A report with every section filled: all metrics (top-5, kappa, accuracy, the worst class,
 * calibration, the quantized student's and the teacher diff included), the classes both models
 * answer, per-class agreement and confusions, a uint8 export with a final softmax, a changed teacher, gates of every status against a baseline, an accepted regression, a paired
 * latency comparison, a note and a training step; built by hand, training nothing, for the
 * markdown snapshot tests.
 */
export function fullSampleReport(overrides: Partial<Report> = {}): Report {
  const base = sampleReport();
  const gate = (
    metric: string,
    op: GateResult['op'],
    threshold: number,
    value: number,
    baseline: number | null,
    status: GateResult['status'],
    expected: string,
    extra: Partial<GateResult> = {},
  ): GateResult => ({
    metric,
    op,
    threshold,
    relative: false,
    level: 'error',
    value,
    baseline,
    pass: status === 'pass' ? true : status === 'skipped' ? null : status !== 'fail',
    status,
    expected,
    ...extra,
  });
  return sampleReport({
    verdict: 'fail',
    status: 'incomplete',
    reasons: [
      'Training stopped after 3 of 5 epochs: the time budget of 1 min was nearly spent (training gets 85% of it).',
    ],
    // In the order a run measures them.
    metrics: {
      'size.teacherBytes': 1000,
      'size.studentBytes': 50,
      'size.teacherParams': 250,
      'size.studentParams': 12,
      'size.studentFloatBytes': 200,
      'size.ratio': 0.05,
      'speed.teacherMs': 2,
      'speed.studentMs': 0.5,
      'speed.speedup': 4,
      'speed.teacherThroughput': 100,
      'speed.studentThroughput': 900,
      'speed.throughputSpeedup': 9,
      'agreement.top1': 0.95,
      'agreement.top5': 0.99,
      'agreement.kappa': 0.9113,
      'agreement.minClass': 0.5,
      'agreement.majority': 0.62,
      kl: 0.0123456,
      'accuracy.teacher': 0.91,
      'accuracy.student': 0.885,
      'calibration.teacherEce': 0.031,
      'calibration.studentEce': 0.0425,
      'quantized.agreement.top1': 0.94,
      'quantized.kl': 0.0151,
      'quantized.accuracy': 0.88,
      'teacherDiff.agreement': 0.97,
      'teacherDiff.kl': 0.021,
      'teacherDiff.studentVsBase': 0.93,
      'speed.baselineStudentMs': 0.48,
      'speed.vsBaseline': 1.0417,
    },
    gates: [
      gate('agreement.top1', '>=', 0.93, 0.95, 0.96, 'pass', '>= 0.93'),
      gate('agreement.top1', 'maxDrop', 0.005, 0.95, 0.96, 'fail', 'drop <= 0.005'),
      gate('accuracy.student', '>=', 0.9, 0.885, 0.89, 'warn', '>= 0.9', { level: 'warn' }),
      gate('speed.studentMs', 'maxIncrease', 0.1, 0.5, 0.48, 'pass', 'increase <= 10%', {
        relative: true,
        note: "timed against the baseline's student in this run: ratio 1.042, 95% CI [1.010, 1.080] over 60 paired rounds; allowed 1.100",
      }),
      gate('size.studentBytes', 'maxIncrease', 0.05, 50, 40, 'warn', 'increase <= 5%', {
        relative: true,
        note: 'accepted as an intended regression (label "accept-regression" by octocat)',
      }),
      gate('size.studentParams', '<=', 20, 12, 10, 'pass', '<= 20'),
      gate('speed.studentThroughput', '>=', 500, 900, null, 'pass', '>= 500'),
      gate('kl', 'maxIncrease', 0.01, 0.0123456, null, 'skipped', 'increase <= 0.01', { note: 'no baseline' }),
      gate('size.ratio', '<=', 0.1, 0.05, 0.04, 'pass', '<= 0.1'),
      gate('agreement.minClass', '>=', 0.4, 0.5, null, 'pass', '>= 0.4'),
      gate('quantized.agreement.top1', '>=', 0.93, 0.94, null, 'pass', '>= 0.93'),
      gate('quantized.accuracy', '>=', 0.85, 0.88, null, 'pass', '>= 0.85'),
      gate('calibration.studentEce', '<=', 0.05, 0.0425, null, 'pass', '<= 0.05'),
      gate('teacherDiff.agreement', '>=', 0.9, 0.97, null, 'pass', '>= 0.9'),
    ],
    training: {
      ...base.training,
      evalSamples: 200,
      epochs: 3,
      epochsPlanned: 5,
      loss: [3, 2.5, 1.25],
      step: { kind: 'kernel', backend: 'wasm' },
      labels: true,
      softTargets: 'cache',
    },
    baseline: {
      path: '/repo/baseline/report.json',
      createdAt: '2025-12-24T10:00:00.000Z',
      commit: '0123456789abcdef',
      environmentDiffers: false,
      student: '/repo/baseline/student/model.json',
    },
    speedComparison: {
      ratio: 1.0417,
      low: 1.01,
      high: 1.08,
      rounds: 60,
      verdict: 'pass',
      allowedRatio: 1.1,
      baselineMs: 0.48,
      currentMs: 0.5,
      confidence: 0.95,
    },
    override: { label: 'accept-regression', by: 'octocat', gates: ['size.studentBytes increase <= 5%'] },
    // Twelve classes on the 200 eval samples: more than the markdown names one by one.
    agreement: {
      teacherCounts: [124, 30, 20, 10, 6, 4, 3, 2, 1, 0, 0, 0],
      studentCounts: [130, 28, 18, 9, 5, 3, 3, 2, 1, 1, 0, 0],
      majorityClass: 0,
      // 190 of 200 agree (agreement.top1 95%); class 4 is the worst gated class at 3 of 6.
      agreedCounts: [123, 29, 19, 9, 3, 4, 2, 1, 0, 0, 0, 0],
      confusions: [
        { teacher: 4, student: 0, count: 3 },
        { teacher: 0, student: 1, count: 1 },
        { teacher: 1, student: 0, count: 1 },
        { teacher: 2, student: 3, count: 1 },
        { teacher: 3, student: 0, count: 1 },
        { teacher: 6, student: 5, count: 1 },
        { teacher: 7, student: 9, count: 1 },
        { teacher: 8, student: 0, count: 1 },
      ],
      minClassSamples: 5,
    },
    // The teacher outputs probabilities, so the student ships with a final softmax, and uint8 weights.
    teacher: { ...base.teacher, output: 'probabilities' },
    export: { quantize: 'uint8', output: 'probabilities' },
    // The PR changed the teacher: the base branch's, from git, moved 2 points of answers into class 1.
    teacherDiff: {
      status: 'compared',
      source: 'git: models/teacher/model.json at 0123456789ab (the base of the pull request)',
      moved: [
        { class: 1, base: 0.13, head: 0.15 },
        { class: 0, base: 0.63, head: 0.62 },
        { class: 3, base: 0.055, head: 0.05 },
      ],
    },
    commit: 'fedcba9876543210',
    ...overrides,
  });
}
