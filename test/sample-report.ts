import type { Report } from '../src/report/report.js';

/** A complete, plausible report for tests of rendering and GitHub I/O. */
export function sampleReport(overrides: Partial<Report> = {}): Report {
  return {
    schemaVersion: 1,
    verdict: 'pass',
    status: 'complete',
    reasons: [],
    backend: 'wasm',
    metrics: {
      'size.teacherBytes': 1000, 'size.studentBytes': 50, 'size.teacherParams': 250, 'size.studentParams': 12, 'size.ratio': 0.05,
      'speed.teacherMs': 2, 'speed.studentMs': 0.5, 'speed.speedup': 4, 'speed.teacherThroughput': 100, 'speed.studentThroughput': 900, 'speed.throughputSpeedup': 9,
      'agreement.top1': 0.95, kl: 0.01,
    },
    gates: [{ metric: 'agreement.top1', op: '>=', threshold: 0.93, relative: false, level: 'error', value: 0.95, baseline: null, pass: true, status: 'pass', expected: '>= 0.93' }],
    training: { epochs: 3, epochsPlanned: 3, loss: [3, 2, 1], seconds: 1, teacherSeconds: 0.1, trainSamples: 10, evalSamples: 5, temperature: 4, alpha: 0.9, seed: 7, labels: false },
    environment: { backend: 'wasm', backendSource: 'bundled', tfjsVersion: '4.22.0', node: 'v20', platform: 'linux-x64', cpu: 'cpu', cpus: 2, gpu: null, backendNotes: [] },
    teacher: { path: '/repo/models/teacher/model.json', format: 'layers-model', output: 'logits', params: 250, bytes: 1000 },
    student: { path: '/out/student/model.json', params: 12, bytes: 50, from: 'layers' },
    baseline: null,
    metricsComputedOn: 'host',
    config: '/repo/distill-gate.yml',
    createdAt: '2026-01-01T00:00:00.000Z',
    ...overrides,
  };
}
