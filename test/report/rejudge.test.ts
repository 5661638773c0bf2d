import { describe, expect, it } from 'vitest';
import { DEFAULT_KAPPA_FLOOR } from '../../src/gates/defaults.js';
import type { GateResult } from '../../src/gates/gates.js';
import type { Report } from '../../src/report/report.js';
import { renderMarkdown } from '../../src/report/markdown.js';
import { rejudgeReport, type TrustedConfig } from '../../src/report/rejudge.js';
import { failingSizeGate, fullSampleReport, sampleReport } from '../sample-report.js';

const FILE = 'upload/report.json';
const config = (gates: TrustedConfig['gates'], inconclusive: 'pass' | 'fail' = 'pass'): TrustedConfig => ({
  gates,
  measure: { warmup: 1, rounds: 3, throughputBatch: 64, topK: 5, speedBudgetSeconds: 20, inconclusive },
  file: '/trusted/.github/distill-gate.yml',
});
const gate = (extra: Partial<GateResult>): GateResult => ({ ...sampleReport().gates[0], ...extra });
const statuses = (gates: GateResult[]) => gates.map((g) => [g.metric, g.op, g.status]);

describe('re-judging an uploaded report', () => {
  it('a forged pass beside a failing gate becomes a fail, and the report says what was claimed', () => {
    const forged = sampleReport({ verdict: 'pass', gates: [{ ...failingSizeGate, pass: true, status: 'pass' }] });
    const report = rejudgeReport(forged, FILE);
    expect(report.verdict).toBe('fail');
    expect(report.gates[0]).toMatchObject({ status: 'fail', pass: false, note: 'uploaded as pass' });
    expect(report.reasons).toEqual([
      'The uploaded report claimed pass; re-judged from its values with its own thresholds: fail (failing: size.ratio (<= 0.01)).',
    ]);
    expect(renderMarkdown(report)).toContain(
      '> **Note:** The uploaded report claimed pass; re-judged from its values with its own thresholds: fail',
    );
  });

  it('an honest report re-judges unchanged', () => {
    const honest = sampleReport({ gates: [gate({}), { ...failingSizeGate, level: 'warn', status: 'warn' }] });
    expect(rejudgeReport(honest, FILE)).toEqual({ ...honest, override: null });
  });

  it('an uploaded fail stays fail: a cancelled run, or gates that would pass', () => {
    const cancelled = sampleReport({
      verdict: 'fail',
      status: 'incomplete',
      reasons: ['Training stopped after 2 of 30 epochs: the job was cancelled (SIGINT).'],
    });
    expect(rejudgeReport(cancelled, FILE)).toMatchObject({ verdict: 'fail', reasons: cancelled.reasons });
    const inconsistent = sampleReport({ verdict: 'fail', gates: [gate({ pass: false, status: 'fail' })] });
    const report = rejudgeReport(inconsistent, FILE);
    expect(report.verdict).toBe('fail');
    expect(report.gates[0]).toMatchObject({ status: 'pass', note: 'uploaded as fail' });
    expect(report.reasons).toEqual([
      'The uploaded report claimed fail; its gates re-judge as passing with its own thresholds, but re-judging never turns a fail into a pass.',
    ]);
  });

  it("recomputes the threshold text and the pass flag, never printing the upload's", () => {
    const forged = sampleReport({ gates: [gate({ expected: '<!-- @octocat -->', pass: false })] });
    expect(rejudgeReport(forged, FILE).gates[0]).toMatchObject({ expected: '>= 0.93', pass: true, status: 'pass' });
  });

  it('takes the checks from the trusted config: its thresholds, and a metric the upload lacks fails as not measured', () => {
    const report = rejudgeReport(sampleReport(), FILE, {
      trusted: config({
        'agreement.top1': '>= 0.99',
        'accuracy.student': { min: 0.5, level: 'warn' },
        'agreement.top5': '>= 0.9',
      }),
    });
    expect(statuses(report.gates)).toEqual([
      ['agreement.top1', '>=', 'fail'],
      ['accuracy.student', '>=', 'warn'],
      ['agreement.top5', '>=', 'fail'],
    ]);
    expect(report.gates.map((g) => g.note)).toEqual(['uploaded as pass', 'metric not measured', 'metric not measured']);
    expect(report.verdict).toBe('fail');
    expect(report.reasons[0]).toMatch(
      /^The uploaded report claimed pass; re-judged from its values with the thresholds of the trusted distill-gate\.yml: fail/,
    );
  });

  it('a trusted config whose gate names no metric is an error naming the config file and the gate', () => {
    expect(() => rejudgeReport(sampleReport(), FILE, { trusted: config({ 'agreement.top3': '>= 0.9' }) })).toThrow(
      /^\/trusted\/\.github\/distill-gate\.yml gates\.agreement\.top3: no metric is named "agreement\.top3"\./,
    );
  });

  it('a trusted config with no gates leaves only the uploaded verdict to decide', () => {
    expect(rejudgeReport(sampleReport(), FILE, { trusted: config({}) }).verdict).toBe('pass');
    expect(rejudgeReport(sampleReport({ verdict: 'fail' }), FILE, { trusted: config({}) }).verdict).toBe('fail');
  });

  describe('relative gates', () => {
    const withBaseline = (gates: GateResult[], environmentDiffers = false) =>
      sampleReport({
        gates,
        baseline: { path: '/b/report.json', createdAt: '2026-01-01T00:00:00Z', commit: 'abc', environmentDiffers },
      });

    it('are re-judged against the baseline values the upload carries', () => {
      const forged = withBaseline([
        gate({
          op: 'maxDrop',
          threshold: 0.01,
          value: 0.95,
          baseline: 0.99,
          pass: true,
          status: 'pass',
          expected: 'drop <= 0.01',
        }),
      ]);
      expect(statuses(rejudgeReport(forged, FILE).gates)).toEqual([['agreement.top1', 'maxDrop', 'fail']]);
    });

    it('a trusted relative gate on a metric the upload never gated fails when the run had a baseline, and is skipped when it had none', () => {
      const trusted = config({ 'size.studentBytes': { maxIncrease: '5%', level: 'error' } });
      expect(rejudgeReport(withBaseline([gate({ baseline: 0.95 })]), FILE, { trusted }).gates[0]).toMatchObject({
        status: 'fail',
        note: "the upload had a baseline but carries no baseline value of this metric (its run did not gate it), so this gate can't be judged",
      });
      expect(rejudgeReport(sampleReport(), FILE, { trusted }).gates[0]).toMatchObject({
        status: 'skipped',
        note: 'no baseline',
      });
    });

    it('on speed, are skipped when the upload says the baseline ran elsewhere, as a run would', () => {
      const report = withBaseline(
        [
          gate({
            metric: 'speed.studentMs',
            op: 'maxIncrease',
            threshold: 0.1,
            relative: true,
            value: 0.5,
            baseline: 0.3,
            pass: null,
            status: 'skipped',
          }),
        ],
        true,
      );
      expect(rejudgeReport(report, FILE).gates[0]).toMatchObject({
        status: 'skipped',
        note: 'baseline from another environment',
      });
      expect(
        rejudgeReport({ ...report, baseline: { ...report.baseline!, environmentDiffers: false } }, FILE).gates[0]
          .status,
      ).toBe('fail');
    });

    it('two gates on one metric with different baselines mean an edited upload, named by its JSON path', () => {
      const edited = withBaseline([
        gate({ baseline: 0.95 }),
        gate({ op: 'maxDrop', threshold: 0.01, baseline: 0.5, expected: 'drop <= 0.01' }),
      ]);
      expect(() => rejudgeReport(edited, FILE)).toThrow(
        'upload/report.json: gates[1].baseline: 0.5 disagrees with 0.95, the baseline of an earlier gate on agreement.top1',
      );
    });
  });

  describe('the paired latency gate', () => {
    const paired = (low: number, high: number) =>
      fullSampleReport({
        verdict: 'pass',
        status: 'complete',
        reasons: [],
        override: null,
        gates: [fullSampleReport().gates[3]],
        metrics: { ...fullSampleReport().metrics, 'speed.vsBaseline': (low + high) / 2 },
        speedComparison: {
          ...fullSampleReport().speedComparison!,
          ratio: (low + high) / 2,
          low,
          high,
          verdict: 'pass',
        },
      });

    it('is re-decided from the uploaded interval, not from its status', () => {
      const report = rejudgeReport(paired(1.2, 1.4), FILE);
      expect(report.gates[0]).toMatchObject({ status: 'fail', value: 0.5, baseline: 0.48 });
      expect(report.gates[0].note).toMatch(
        /^timed against the baseline's student in this run: .*allowed 1\.100; uploaded as pass$/,
      );
      expect(report.verdict).toBe('fail');
      expect(rejudgeReport(paired(1.01, 1.08), FILE).gates[0].status).toBe('pass');
    });

    it("with the trusted config's threshold and its rule for an inconclusive interval", () => {
      const straddling = paired(1.01, 1.08);
      expect(
        rejudgeReport(straddling, FILE, {
          trusted: config({ 'speed.studentMs': { maxIncrease: '5%', level: 'error' } }),
        }).gates[0].status,
      ).toBe('inconclusive');
      expect(
        rejudgeReport(straddling, FILE, {
          trusted: config({ 'speed.studentMs': { maxIncrease: '5%', level: 'error' } }, 'fail'),
        }).gates[0].status,
      ).toBe('fail');
    });
  });

  it("does not apply the upload's accepted regression, and says so", () => {
    const accepted = fullSampleReport();
    const report = rejudgeReport(accepted, FILE);
    expect(report.override).toBeNull();
    expect(report.gates.find((g) => g.metric === 'size.studentBytes')).toMatchObject({ status: 'fail' });
    expect(report.reasons.at(-1)).toBe(
      'The upload\'s accepted regression (label "accept-regression" by octocat) was not applied: an override is only taken from a pull request\'s labels by the run that reads them, never from an upload.',
    );
  });

  it('follows no link from the upload', () => {
    const report = rejudgeReport(
      sampleReport({
        baseline: { path: '/b/report.json', runUrl: 'https://evil.test/a/b/actions/runs/1', environmentDiffers: false },
      }),
      FILE,
    );
    expect(report.baseline).toEqual({ path: '/b/report.json', environmentDiffers: false });
  });
});

describe('re-judging what the run measured, not only what it concluded', () => {
  const interval = { value: 4, low: 3.8, high: 4.3, rounds: 60, confidence: 0.999 };
  const speedGate = gate({ metric: 'speed.speedup', op: '>=', threshold: 4.1, value: 4, baseline: null });

  it('an absolute speed gate is re-decided on the uploaded interval, as the run decided it', () => {
    // The median alone (4 < 4.1) would fail it; the interval [3.8, 4.3] straddles 4.1: inconclusive.
    const upload = sampleReport({
      gates: [{ ...speedGate, pass: true, status: 'inconclusive' }],
      speedIntervals: { 'speed.speedup': interval },
    });
    expect(statuses(rejudgeReport(upload, FILE).gates)).toEqual([['speed.speedup', '>=', 'inconclusive']]);
    expect(
      statuses(rejudgeReport(upload, FILE, { trusted: config({ 'speed.speedup': '>= 4.1' }, 'fail') }).gates),
    ).toEqual([['speed.speedup', '>=', 'fail']]);
  });

  it('refuses an interval that does not hold its own median: the report was edited', () => {
    const edited = sampleReport({
      gates: [speedGate],
      speedIntervals: { 'speed.speedup': { ...interval, value: 4.5, low: 4.2, high: 4.8 } },
    });
    expect(() => rejudgeReport(edited, FILE)).toThrow(
      /upload\/report\.json: speedIntervals\["speed\.speedup"\]: .*does not hold the reported speed\.speedup \(4\)/,
    );
  });

  it('puts back the chance-level warning an upload left out', () => {
    const upload = sampleReport({
      metrics: { ...sampleReport().metrics, 'agreement.top1': 0.97, 'agreement.majority': 0.968, 'agreement.kappa': 0 },
    });
    expect(rejudgeReport(upload, FILE).reasons.join(' ')).toMatch(
      /a constant student scores by always answering the teacher's most frequent class/,
    );
  });
});

describe("re-judging relative gates against the trusted store's baseline", () => {
  const stored = {
    report: sampleReport({ metrics: { ...sampleReport().metrics, 'agreement.top1': 0.99 }, commit: 'base123' }),
    path: '/store/report.json',
  };
  const dropGate = config({ 'agreement.top1': { maxDrop: 0.01, level: 'error' } });

  it('an upload that left its baseline out cannot skip a relative gate when the store holds one', () => {
    const upload = sampleReport({ baseline: null, gates: [] });
    // Without the store's baseline the gate is skipped; with it, the 0.95 against 0.99 fails.
    expect(statuses(rejudgeReport(upload, FILE, { trusted: dropGate }).gates)).toEqual([
      ['agreement.top1', 'maxDrop', 'skipped'],
    ]);
    const report = rejudgeReport(upload, FILE, { trusted: dropGate, stored });
    expect(statuses(report.gates)).toEqual([['agreement.top1', 'maxDrop', 'fail']]);
    expect(report.gates[0]).toMatchObject({ baseline: 0.99, value: 0.95 });
    expect(report.baseline).toMatchObject({ path: '/store/report.json', commit: 'base123' });
    expect(report.verdict).toBe('fail');
  });

  it("the store's baseline replaces an edited one the upload carried", () => {
    const edited = sampleReport({
      baseline: { path: '/up/base.json', environmentDiffers: false, commit: 'forged' },
      gates: [
        gate({
          metric: 'agreement.top1',
          op: 'maxDrop',
          threshold: 0.01,
          value: 0.95,
          baseline: 0.95,
          pass: true,
          status: 'pass',
          expected: 'drop <= 0.01',
        }),
      ],
    });
    expect(rejudgeReport(edited, FILE, { trusted: dropGate }).verdict).toBe('pass');
    expect(rejudgeReport(edited, FILE, { trusted: dropGate, stored }).verdict).toBe('fail');
  });
});

describe("re-judging with the PR's accept label, read live by the trusted job", () => {
  const acceptance = { label: 'distill-gate:accept-regression', by: '@maintainer' };
  const stored = {
    report: sampleReport({ metrics: { ...sampleReport().metrics, 'agreement.top1': 0.99 } }),
    path: '/store/report.json',
  };
  const dropGate = config({ 'agreement.top1': { maxDrop: 0.01, level: 'error' } });

  it('turns a failing relative gate into a warning, naming who accepted it, and the report passes', () => {
    // The fork's own run failed on the same relative gate.
    const failing = gate({
      metric: 'agreement.top1',
      op: 'maxDrop',
      threshold: 0.01,
      value: 0.95,
      baseline: 0.99,
      pass: false,
      status: 'fail',
      expected: 'drop <= 0.01',
    });
    const upload = sampleReport({ verdict: 'fail', gates: [failing] });
    expect(rejudgeReport(upload, FILE, { trusted: dropGate, stored }).verdict).toBe('fail');
    const report = rejudgeReport(upload, FILE, { trusted: dropGate, stored, acceptance });
    expect(statuses(report.gates)).toEqual([['agreement.top1', 'maxDrop', 'warn']]);
    expect(report.override).toEqual({
      label: acceptance.label,
      by: '@maintainer',
      gates: ['agreement.top1 drop <= 0.01'],
    });
    expect(report.verdict).toBe('pass');
  });

  it('cannot pass a run that failed outright, nor an absolute gate', () => {
    const cancelled = sampleReport({
      verdict: 'fail',
      status: 'incomplete',
      reasons: ['Training stopped: the job was cancelled (SIGINT).'],
      gates: [],
    });
    expect(rejudgeReport(cancelled, FILE, { trusted: dropGate, stored, acceptance }).verdict).toBe('fail');
    const floor = config({ 'agreement.top1': { min: 0.99, maxDrop: 0.01, level: 'error' } });
    expect(rejudgeReport(sampleReport(), FILE, { trusted: floor, stored, acceptance }).verdict).toBe('fail');
  });
});

describe('every trusted gate is judged, whatever the upload leaves out', () => {
  /** An honest report, then the metrics named deleted from it (and the sections that explain them). */
  const without = (metrics: string[], sections: Partial<Report> = {}): Report => {
    const full = fullSampleReport({ verdict: 'pass', status: 'complete', reasons: [], override: null, gates: [] });
    const kept = Object.fromEntries(Object.entries(full.metrics).filter(([name]) => !metrics.includes(name)));
    return { ...full, metrics: kept, ...sections };
  };

  it('a teacherDiff gate on an upload that deleted teacherDiff fails as not measured, not skipped', () => {
    const upload = without(['teacherDiff.agreement', 'teacherDiff.kl', 'teacherDiff.studentVsBase']);
    delete upload.teacherDiff;
    const report = rejudgeReport(upload, FILE, { trusted: config({ 'teacherDiff.agreement': '>= 0.9' }) });
    expect(report.gates[0]).toMatchObject({
      metric: 'teacherDiff.agreement',
      status: 'fail',
      pass: false,
      note: 'metric not measured: the upload has no teacherDiff.agreement; a run skips this gate with no base teacher to compare with, which re-judging an upload cannot confirm',
    });
    expect(report.verdict).toBe('fail');
    // At level warn it warns, as any gate on a metric not measured does.
    expect(
      rejudgeReport(upload, FILE, { trusted: config({ 'teacherDiff.kl': { max: 0.1, level: 'warn' } }) }).gates[0]
        .status,
    ).toBe('warn');
  });

  it('is skipped as a run skips it when the trusted job itself knows there was no base teacher', () => {
    const upload = without(['teacherDiff.agreement', 'teacherDiff.kl', 'teacherDiff.studentVsBase']);
    const report = rejudgeReport(upload, FILE, {
      trusted: config({ 'teacherDiff.agreement': '>= 0.9', 'quantized.kl': { max: 1, level: 'error' } }),
      noBaseTeacher: 'a push has no base branch',
    });
    expect(report.gates.map((g) => [g.metric, g.status, g.note])).toEqual([
      ['teacherDiff.agreement', 'skipped', 'no base teacher to compare with: a push has no base branch'],
      ['quantized.kl', 'pass', undefined],
      // The default chance-level gate, which re-judging adds as a run does.
      ['agreement.kappa', 'pass', undefined],
    ]);
  });

  it("and so does the upload's own gate that it marked skipped, when no trusted config is given", () => {
    const upload = without(['teacherDiff.agreement'], {
      gates: [
        gate({
          metric: 'teacherDiff.agreement',
          threshold: 0.9,
          value: null,
          pass: null,
          status: 'skipped',
          expected: '>= 0.9',
          note: 'no base teacher to compare with',
        }),
      ],
    });
    // The upload's uint8 export also brings the shipped student's default gate, which its values pass.
    expect(rejudgeReport(upload, FILE)).toMatchObject({
      verdict: 'fail',
      gates: [
        { metric: 'teacherDiff.agreement', status: 'fail' },
        { metric: 'agreement.kappa', status: 'pass', threshold: DEFAULT_KAPPA_FLOOR },
        { metric: 'quantized.agreement.top1', status: 'pass' },
      ],
    });
  });

  it.each([
    ['teacherDiff.agreement', { min: 0.5 }, {}],
    [
      'teacherDiff.kl',
      { max: 1 },
      { teacherDiff: { status: 'unavailable', note: 'the base commit cannot be fetched' } },
    ],
    ['teacherDiff.studentVsBase', { min: 0.5 }, {}],
    ['quantized.agreement.top1', { min: 0.5 }, { export: { quantize: 'none', output: 'logits' } }],
    ['quantized.kl', { max: 1 }, {}],
    ['quantized.accuracy', { min: 0.5 }, {}],
    ['agreement.minClass', { min: 0.1 }, {}],
    ['agreement.top5', { min: 0.5 }, {}],
    ['agreement.kappa', { min: 0.1 }, {}],
    ['accuracy.student', { min: 0.1 }, {}],
    ['calibration.studentEce', { max: 0.9 }, {}],
    ['speed.baselineStudentMs', { max: 100 }, {}],
    ['speed.vsBaseline', { max: 2 }, {}],
    ['speed.studentMs', { maxIncrease: '10%' }, { speedComparison: null }],
    [
      'speed.studentMs',
      { maxIncrease: '10%' },
      { speedComparison: null, baseline: { path: '/b/report.json', environmentDiffers: true } },
    ],
    ['size.studentFloatBytes', { maxIncrease: '10%' }, {}],
    ['kl', { maxIncrease: 0.01 }, {}],
  ] as Array<[string, TrustedConfig['gates'][string], Partial<Report>]>)(
    'a gate on %s fails when the upload leaves the metric out (%j)',
    (metric, spec, sections) => {
      const stored = { report: fullSampleReport(), path: '/store/report.json' };
      for (const options of [{}, { stored }]) {
        const report = rejudgeReport(without([metric], sections), FILE, {
          trusted: config({ [metric]: { level: 'error', ...(spec as object) } }),
          ...options,
        });
        // Beside the default chance-level gate (agreement.kappa >= 0.2), which the sample's kappa passes.
        const gated = report.gates.filter((g) => g.metric === metric || g.metric !== 'agreement.kappa');
        expect(gated.map((g) => [g.metric, g.status, g.note?.startsWith('metric not measured')])).toEqual([
          [metric, 'fail', true],
        ]);
        expect(report.verdict).toBe('fail');
      }
    },
  );

  it('says so when relative gates are skipped because neither the upload nor this job has a baseline', () => {
    const report = rejudgeReport(sampleReport({ baseline: null }), FILE, {
      trusted: config({ 'agreement.top1': { maxDrop: 0.01, level: 'error' } }),
    });
    expect(report.gates[0]).toMatchObject({ status: 'skipped', note: 'no baseline' });
    expect(report.reasons).toContain(
      'Relative gates were skipped: the upload names no baseline, and this job read none of its own (a baseline store, or a baseline input) to judge them against.',
    );
  });
});

describe('speed intervals an honest run cannot have written', () => {
  const speedGate = gate({
    metric: 'speed.speedup',
    op: '>=',
    threshold: 4.5,
    value: 4,
    baseline: null,
    expected: '>= 4.5',
  });

  it('an open interval over hundreds of rounds is refused, not judged inconclusive (counted as pass)', () => {
    const forged = sampleReport({
      gates: [{ ...speedGate, pass: true, status: 'inconclusive' }],
      speedIntervals: { 'speed.speedup': { value: 4, low: -Infinity, high: Infinity, rounds: 400, confidence: 0.999 } },
    });
    expect(() => rejudgeReport(forged, FILE)).toThrow(
      /^upload\/report\.json: speedIntervals\["speed\.speedup"\]\.low: \[-Infinity, Infinity\] around 4 is open, but 400 rounds always bound the 99\.9% interval of their median \(from 11 rounds on\), so this interval was edited after its run\.$/,
    );
    // With too few rounds to bound it, the same open interval is what a run writes: inconclusive.
    const honest = {
      ...forged,
      speedIntervals: { 'speed.speedup': { value: 4, low: -Infinity, high: Infinity, rounds: 7, confidence: 0.999 } },
    };
    expect(statuses(rejudgeReport(honest, FILE).gates)).toEqual([['speed.speedup', '>=', 'inconclusive']]);
  });

  it('an open paired comparison over hundreds of rounds is refused, and so is one whose ratio is not the reported speed.vsBaseline', () => {
    const full = fullSampleReport({
      verdict: 'pass',
      status: 'complete',
      reasons: [],
      override: null,
      gates: [fullSampleReport().gates[3]],
    });
    const open = {
      ...full,
      speedComparison: { ...full.speedComparison!, ratio: 1.2, low: -Infinity, high: Infinity, rounds: 500 },
    };
    expect(() => rejudgeReport(open, FILE)).toThrow(
      /^upload\/report\.json: speedComparison\.low: .* is open, but 500 rounds always bound/,
    );
    const edited = { ...full, speedComparison: { ...full.speedComparison!, ratio: 1.05 } };
    expect(() => rejudgeReport(edited, FILE)).toThrow(
      'upload/report.json: speedComparison.ratio: 1.05 is not the reported speed.vsBaseline (1.0417); a run writes both from one timing',
    );
  });

  it('a gate on a timed metric whose interval the upload left out fails, rather than being judged on the bare median', () => {
    const upload = sampleReport({
      gates: [gate({ metric: 'speed.speedup', op: '>=', threshold: 3.5, value: 4, expected: '>= 3.5' })],
    });
    const report = rejudgeReport(upload, FILE, { trusted: config({ 'speed.speedup': '>= 3.5' }, 'fail') });
    expect(report.gates[0]).toMatchObject({
      status: 'fail',
      note: "the upload carries no interval of speed.speedup, which every run writes for each timed metric, so this gate can't be judged; uploaded as pass",
    });
    expect(report.verdict).toBe('fail');
  });
});

describe("the shipped student's default gate, as a run applies it", () => {
  const uint8 = { quantize: 'uint8' as const, output: 'auto' as const };
  const broken = sampleReport({
    export: { quantize: 'uint8', output: 'logits' },
    metrics: { ...sampleReport().metrics, 'quantized.agreement.top1': 0.4 },
  });

  it('an upload whose quantized student falls far below the float one fails, though its gates skip quantized.*', () => {
    const report = rejudgeReport(broken, FILE);
    expect(report.verdict).toBe('fail');
    expect(report.gates.find((g) => g.metric === 'quantized.agreement.top1')).toMatchObject({
      status: 'fail',
      threshold: 0.9,
    });
  });

  it('the trusted config that exports uint8 gates an upload that dropped its quantized metrics and its export: not measured', () => {
    const dropped = sampleReport({ gates: [] });
    const report = rejudgeReport(dropped, FILE, { trusted: { ...config({}), export: uint8 } });
    expect(report.verdict).toBe('fail');
    expect(report.gates).toEqual([
      expect.objectContaining({ metric: 'quantized.agreement.top1', status: 'fail', value: null }),
    ]);
  });

  it('an explicit quantized gate in the trusted config replaces the default', () => {
    const report = rejudgeReport(broken, FILE, {
      trusted: { ...config({ 'quantized.agreement.top1': '>= 0.3' }), export: uint8 },
    });
    expect(report.gates.filter((g) => g.metric === 'quantized.agreement.top1')).toHaveLength(1);
    expect(report.verdict).toBe('pass');
  });
});
