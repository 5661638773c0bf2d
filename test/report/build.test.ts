import { describe, expect, it } from 'vitest';
import { buildReport, type RunRecord } from '../../src/report/build.js';
import { renderMarkdown } from '../../src/report/markdown.js';
import { parseReport } from '../../src/report/report-schema.js';
import { SCHEMA_VERSION } from '../../src/report/report.js';
import { sampleEnvironment } from '../sample-report.js';

// Stage results written by hand: buildReport is pure, so the whole report (and its markdown) is
// checked here without training, loading or timing anything.
function record(overrides: Partial<RunRecord> = {}): RunRecord {
  return {
    config: {
      teacher: '/repo/models/teacher/model.json',
      student: { layers: [{ type: 'conv2d', filters: 8, kernelSize: 3 }] },
      distill: { temperature: 4, alpha: 0.9, epochs: 5, batchSize: 64, learningRate: 0.001, seed: 7 },
      file: '/repo/distill-gate.yml',
    },
    session: {
      backend: { name: 'wasm' },
      teacher: { format: 'graph-model', output: 'probabilities', params: 76522, bytes: 306088 },
      student: { params: 810, bytes: 3240 },
      train: { size: 10000, y: new Int32Array(0) },
      evalSet: { size: 2000 },
      baseline: { path: '/base/report.json', report: { createdAt: '2026-11-01T00:00:00.000Z', commit: 'abc123' } },
    },
    distillation: {
      training: { epochsCompleted: 3, loss: [0.5, 0.3, 0.2] },
      path: { kind: 'kernel', backend: 'wasm' },
      seconds: 4.5,
      teacherSeconds: 1.25,
      softTargets: 'computed',
    },
    measurement: {
      metrics: { 'agreement.top1': 0.95, 'size.ratio': 0.0106 },
      baselineStudentPath: '/base/student/model.json',
      environment: { ...sampleEnvironment },
    },
    judgement: {
      verdict: 'fail',
      status: 'incomplete',
      gates: [],
      reasons: ['Training stopped after 3 of 5 epochs: received SIGTERM.'],
      environmentDiffers: true,
      override: { label: 'accept-regression', by: 'octocat', gates: ['agreement.top1'] },
    },
    studentDir: '/out/student',
    commit: 'def456',
    createdAt: '2026-11-25T12:00:00.000Z',
    ...overrides,
  };
}

describe('buildReport', () => {
  it('puts every stage result where report.json readers look for it', () => {
    const report = buildReport(record());
    expect(report.schemaVersion).toBe(SCHEMA_VERSION);
    expect([report.verdict, report.status, report.backend]).toEqual(['fail', 'incomplete', 'wasm']);
    expect(report.training).toMatchObject({
      epochs: 3,
      epochsPlanned: 5,
      seconds: 4.5,
      teacherSeconds: 1.25,
      trainSamples: 10000,
      evalSamples: 2000,
      labels: true,
      step: { kind: 'kernel', backend: 'wasm' },
    });
    expect(report.student).toEqual({ path: '/out/student/model.json', params: 810, bytes: 3240, from: 'layers' });
    expect(report.baseline).toEqual({
      path: '/base/report.json',
      createdAt: '2026-11-01T00:00:00.000Z',
      commit: 'abc123',
      environmentDiffers: true,
      student: '/base/student/model.json',
    });
    expect(report.override).toEqual({ label: 'accept-regression', by: 'octocat', gates: ['agreement.top1'] });
    expect(report.speedComparison).toBeNull();
    expect(report.commit).toBe('def456');
    expect('speedBackend' in report).toBe(false);
    expect('agreement' in report).toBe(false);
  });

  it("carries the classes both models answer, from the measure stage, into report.json's agreement", () => {
    const base = record();
    const agreement = { teacherCounts: [1500, 400, 100], studentCounts: [1600, 350, 50], majorityClass: 0 };
    expect(buildReport({ ...base, measurement: { ...base.measurement, agreement } }).agreement).toEqual(agreement);
  });

  it("keeps each speed metric's interval in report.json, unbounded ones read back as such, and the Speed table shows them beside the medians", () => {
    const base = record();
    const interval = (value: number, low: number, high: number, rounds = 200) => ({
      value,
      low,
      high,
      rounds,
      confidence: 0.999,
    });
    const speedIntervals = {
      'speed.teacherMs': interval(2, 1.9, 2.1),
      'speed.studentMs': interval(0.5, 0.48, 0.53),
      'speed.speedup': interval(4, 3.81, 4.2),
      // Too few rounds to bound it: JSON writes its ends as null, and readers make them infinite again.
      'speed.throughputSpeedup': interval(9, -Infinity, Infinity, 7),
    };
    const metrics = {
      ...base.measurement.metrics,
      'speed.teacherMs': 2,
      'speed.studentMs': 0.5,
      'speed.speedup': 4,
      'speed.throughputSpeedup': 9,
    };
    const comparison = {
      ratio: 1.02,
      low: 0.99,
      high: 1.05,
      rounds: 80,
      verdict: 'pass' as const,
      allowedRatio: 1.1,
      baselineMs: 0.49,
      currentMs: 0.5,
      confidence: 0.999,
    };
    const report = buildReport({
      ...base,
      measurement: { ...base.measurement, metrics, speedIntervals, speedComparison: comparison },
    });
    expect(Object.keys(report.speedIntervals!)).toEqual([
      'speed.teacherMs',
      'speed.studentMs',
      'speed.speedup',
      'speed.throughputSpeedup',
    ]);
    const readBack = parseReport(JSON.parse(JSON.stringify(report)), 'report.json', 'untrusted');
    expect(readBack.speedIntervals!['speed.speedup']).toEqual(interval(4, 3.81, 4.2));
    expect(readBack.speedIntervals!['speed.throughputSpeedup']).toEqual(interval(9, -Infinity, Infinity, 7));
    const md = renderMarkdown(report);
    expect(md).toContain('medians over rounds, each with its 99.9% confidence interval in brackets.');
    expect(md).toMatch(
      /\| Latency, batch 1 \(ms\) +\| +2 \(1\.9–2\.1\) \| 0\.5 \(0\.48–0\.53\) \| +4× \(3\.81–4\.2\) \|/,
    );
    expect(md).toMatch(/\| Throughput \(samples\/s\) +\| +— \| +— \| +9× \(too few rounds\) \|/);
    expect(md).toContain('ratio 1.020 (99.9% CI 0.990–1.050, 80 rounds)');
    expect('speedIntervals' in buildReport(base)).toBe(false);
    expect(renderMarkdown(buildReport(base))).toContain('after warm-up; medians.');
  });

  it('names the workflow run that recorded the baseline, when the store knew it, and the markdown links it', () => {
    const base = record();
    const runUrl = 'https://github.test/acme/models/actions/runs/41';
    const report = buildReport({
      ...base,
      session: {
        ...base.session,
        baseline: { ...base.session.baseline!, report: { ...base.session.baseline!.report, runUrl } },
      },
    });
    expect(report.baseline?.runUrl).toBe(runUrl);
    expect(renderMarkdown(report)).toContain(
      `Baseline: commit abc123 from 2026-11-01 ([its run](${runUrl})) (**another environment**`,
    );
    expect(renderMarkdown(buildReport(base))).toContain(
      'Baseline: commit abc123 from 2026-11-01 (**another environment**',
    );
    // Only a run's address is linked, whatever a report.json that skipped the schema holds.
    const hostile = { ...report, baseline: { ...report.baseline!, runUrl: 'javascript:alert(1)//x/y/actions/runs/1' } };
    expect(renderMarkdown(hostile)).toContain('Baseline: commit abc123 from 2026-11-01 (**another environment**');
  });

  it('records measure.backend, no baseline, no label and no commit as such', () => {
    const base = record();
    const report = buildReport({
      ...base,
      session: { ...base.session, speedBackend: { name: 'cpu' }, baseline: undefined, train: { size: 10000 } },
      judgement: { ...base.judgement, override: undefined },
      commit: undefined,
    });
    expect(report.speedBackend).toBe('cpu');
    expect(report.baseline).toBeNull();
    expect(report.override).toBeNull();
    expect(report.training.labels).toBe(false);
    expect('commit' in report).toBe(false);
  });

  it('gives the same report for the same record, and its markdown names the training step', () => {
    expect(JSON.stringify(buildReport(record()))).toBe(JSON.stringify(buildReport(record())));
    expect(renderMarkdown(buildReport(record()))).toContain('kernel training step on wasm');
  });

  it('records which kernel module trained, through report.json and into the footer', () => {
    const base = record();
    const trained = (kernelModule: string) =>
      buildReport({
        ...base,
        distillation: { ...base.distillation, path: { kind: 'kernel', backend: 'wasm', kernelModule } },
      });
    const report = trained('relaxed-simd');
    expect(report.training.step).toEqual({ kind: 'kernel', backend: 'wasm', kernelModule: 'relaxed-simd' });
    const read = parseReport(JSON.parse(JSON.stringify(report)), 'report.json', 'untrusted');
    expect(read.training.step?.kernelModule).toBe('relaxed-simd');
    expect(renderMarkdown(read)).toContain('kernel training step (relaxed-simd module) on wasm');
    expect(renderMarkdown(trained('simd128'))).toContain('kernel training step (simd128 module) on wasm');
    // The kernel's threads (distill.threads, resolved), beside the module.
    const threaded = buildReport({
      ...base,
      distillation: {
        ...base.distillation,
        path: { kind: 'kernel', backend: 'wasm', kernelModule: 'simd128', threads: 2 },
      },
    });
    const threadedRead = parseReport(JSON.parse(JSON.stringify(threaded)), 'report.json', 'untrusted');
    expect(threadedRead.training.step).toEqual({
      kind: 'kernel',
      backend: 'wasm',
      kernelModule: 'simd128',
      threads: 2,
    });
    expect(renderMarkdown(threadedRead)).toContain('kernel training step (simd128 module, 2 threads) on wasm');
    // Another step has no module, and says none.
    expect('kernelModule' in buildReport(record()).training.step!).toBe(false);
    // An uploaded report's module name is text like any other.
    expect(renderMarkdown(trained('<img src=x>'))).not.toContain('<img');
  });

  it('records distill.augment (its seed resolved) and the image classes, through report.json and into the footer', () => {
    const base = record();
    const augmented = (augment: Record<string, unknown>, classes?: string[]) =>
      buildReport({
        ...base,
        config: { ...base.config, distill: { ...base.config.distill, augment } },
        session: { ...base.session, train: { ...base.session.train, ...(classes ? { classes } : {}) } },
      } as RunRecord);
    const report = augmented({ flip: true, crop: { padding: 2 }, brightness: 0.1, contrast: 0 }, ['cat', 'dog']);
    expect(report.training.augment).toEqual({ flip: true, cropPadding: 2, brightness: 0.1, contrast: 0, seed: 7 });
    const read = parseReport(JSON.parse(JSON.stringify(report)), 'report.json', 'untrusted');
    expect(read.training.augment).toEqual(report.training.augment);
    expect(renderMarkdown(read)).toMatch(
      /seed 7; augmented each epoch: flip, crop ±2 px, brightness ±0\.1 \(seed 7\); classes cat, dog\./,
    );
    // Its own seed wins over distill.seed; every transform off still says the rows were redrawn.
    expect(renderMarkdown(augmented({ flip: false, brightness: 0, contrast: 0, seed: 3 }))).toContain(
      'augmented each epoch: nothing (every transform off) (seed 3)',
    );
    // Without augment, nothing is said; class names are folder names, so text like any other.
    expect(renderMarkdown(buildReport(base))).not.toContain('augmented');
    expect('augment' in buildReport(base).training).toBe(false);
    const many = Array.from({ length: 12 }, (_, i) => (i === 0 ? '<img src=x>' : `c${i}`));
    const footer = renderMarkdown(augmented({ flip: true, brightness: 0, contrast: 0 }, many));
    expect(footer).not.toContain('<img');
    expect(footer).toContain('c9 and 2 more');
    expect(() =>
      parseReport(
        {
          ...JSON.parse(JSON.stringify(report)),
          training: { ...report.training, augment: { ...report.training.augment, contrast: 2 } },
        },
        'report.json',
        'untrusted',
      ),
    ).toThrow(/augment/);
  });

  it("keeps each finished phase's seconds, which report.json readers take back", () => {
    const phases = { load: 0.5, 'teacher pass': 1.25, distillation: 3.25, measuring: 2 };
    const report = buildReport(record({ phases }));
    expect(report.phases).toEqual(phases);
    expect(parseReport(JSON.parse(JSON.stringify(report)), 'report.json', 'untrusted').phases).toEqual(phases);
    expect('phases' in buildReport(record())).toBe(false);
    expect(() =>
      parseReport({ ...JSON.parse(JSON.stringify(report)), phases: { load: -1 } }, 'report.json', 'untrusted'),
    ).toThrow(/phases/);
  });
});
