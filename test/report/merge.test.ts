import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { mergedAsReport, mergeReports, parseExpected, readReports } from '../../src/report/merge.js';
import { captureIo } from '../helpers.js';
import type { Report } from '../../src/report/report.js';
import type { TrustedConfig } from '../../src/report/rejudge.js';
import { failingSizeGate, fullSampleReport, sampleReport } from '../sample-report.js';

async function matrixReports(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-merge-'));
  const tiny = sampleReport({ config: '/repo/.github/distill-gate-tiny.yml' });
  const small = sampleReport({
    config: '/repo/.github/distill-gate-small.yml',
    verdict: 'fail',
    metrics: { ...sampleReport().metrics, 'agreement.top1': 0.8, 'size.ratio': 0.2 },
    gates: [
      {
        metric: 'agreement.top1',
        op: '>=',
        threshold: 0.93,
        relative: false,
        level: 'error',
        value: 0.8,
        baseline: null,
        pass: false,
        status: 'fail',
        expected: '>= 0.93',
      },
    ],
  });
  for (const [name, report] of [
    ['distill-report-tiny', tiny],
    ['distill-report-small', small],
  ] as const) {
    await mkdir(path.join(dir, 'reports', name), { recursive: true });
    await writeFile(path.join(dir, 'reports', name, 'report.json'), JSON.stringify(report));
  }
  return dir;
}

describe('merging a matrix of reports', () => {
  it('gives one table, each report folded, and fails when any run failed', async () => {
    const dir = await matrixReports();
    const merged = mergeReports(await readReports(['reports/*/report.json'], dir));
    expect(merged.verdict).toBe('fail');
    expect(merged.markdown.split('\n')[0]).toBe('## ❌ distill-gate: fail (2 runs)');
    expect(merged.markdown).toMatch(
      /\| distill-gate-small\.yml \| ❌ fail\s+\|\s+80\.00% \|.*\| agreement\.top1 \(>= 0\.93\)\s+\|/,
    );
    expect(merged.markdown).toMatch(/\| distill-gate-tiny\.yml\s+\| ✅ pass\s+\|\s+95\.00% \|/);
    expect(merged.markdown.match(/<details>/g)).toHaveLength(2);
    const asReport = mergedAsReport(merged);
    expect(asReport.metrics).toEqual({ 'agreement.top1': 0.8, 'speed.speedup': 4, 'size.ratio': 0.2 });
    expect(asReport.gates.map((g) => g.metric)).toEqual([
      'distill-gate-small.yml: agreement.top1',
      'distill-gate-tiny.yml: agreement.top1',
    ]);
  });

  it('distill-gate merge exits by the merged verdict, and 2 when nothing matches', async () => {
    const dir = await matrixReports();
    const capture = captureIo();
    expect(
      await main(['merge', path.join(dir, 'reports/*/report.json'), '--out', path.join(dir, 'merged')], capture.io),
    ).toBe(1);
    expect(capture.stdout()).toContain('(2 runs)');
    const none = captureIo();
    expect(await main(['merge', path.join(dir, 'nothing/*.json')], none.io)).toBe(2);
    expect(none.stderr()).toMatch(/matches no report\.json files/);
  });
});

/** A matrix run where one leg (small) crashed and uploaded nothing: only tiny's report, a pass, arrived. */
async function oneLegArrived(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-merge-'));
  await mkdir(path.join(dir, 'reports', 'distill-report-tiny'), { recursive: true });
  await writeFile(
    path.join(dir, 'reports', 'distill-report-tiny', 'report.json'),
    JSON.stringify(sampleReport({ config: '/repo/.github/distill-gate-tiny.yml' })),
  );
  return dir;
}

describe('a merge that expects its legs', () => {
  it('reads expect as a count or as leg names, and refuses what is neither', () => {
    expect(parseExpected('', 'input expect')).toBeUndefined();
    expect(parseExpected(' 2 ', 'input expect')).toEqual({ count: 2 });
    expect(parseExpected('tiny\nsmall  large', 'input expect')).toEqual({
      count: 3,
      names: ['tiny', 'small', 'large'],
    });
    expect(() => parseExpected('0', 'input expect')).toThrow(
      'input expect: "0" is not a number of reports; give a whole number from 1 (e.g. 2), or the legs\' names.',
    );
    expect(() => parseExpected('2.5', '--expect')).toThrow('--expect: "2.5" is not a number of reports');
    expect(() => parseExpected('tiny tiny', '--expect')).toThrow(
      '--expect: names the leg "tiny" twice; name each leg once.',
    );
  });

  it('reads LEG=CONFIG (a leg and its trusted config) only where asked to (mode report), refusing it elsewhere', () => {
    expect(parseExpected('tiny=cfg/tiny.yml\nsmall', 'input expect', { configs: true })).toEqual({
      count: 2,
      names: ['tiny', 'small'],
      configs: { tiny: 'cfg/tiny.yml' },
    });
    expect(parseExpected('tiny small', 'input expect', { configs: true })).toEqual({
      count: 2,
      names: ['tiny', 'small'],
    });
    expect(() => parseExpected('tiny=a.yml', '--expect')).toThrow(
      '--expect: "tiny=a.yml" pairs a leg with a config, which only mode report does',
    );
    expect(() => parseExpected('=a.yml', 'input expect', { configs: true })).toThrow(
      'input expect: "=a.yml" is not LEG=CONFIG',
    );
    expect(() => parseExpected('tiny=a.yml tiny=b.yml', 'input expect', { configs: true })).toThrow(
      'names the leg "tiny" twice',
    );
  });

  it("re-judges each report with what judgeLeg gives the leg it answers to, and shows it by that leg's name", () => {
    const strict: TrustedConfig = {
      gates: { 'agreement.top1': '>= 0.99' },
      measure: { warmup: 1, rounds: 3, throughputBatch: 64, topK: 5, speedBudgetSeconds: 20, inconclusive: 'pass' },
      file: '/trusted/strict.yml',
    };
    const reports = [
      { file: '/r/distill-report-tiny/report.json', report: sampleReport({ config: '/fork/tiny.yml' }) },
      { file: '/r/distill-report-small/report.json', report: sampleReport({ config: '/fork/small.yml' }) },
    ];
    const asked: Array<string | undefined> = [];
    const merged = mergeReports(
      reports,
      { count: 2, names: ['distill-report-tiny', 'distill-report-small'] },
      {
        judgeLeg: (leg) => (asked.push(leg), leg === 'distill-report-small' ? { trusted: strict } : {}),
        notes: ['a note'],
      },
    );
    expect(asked).toEqual(['distill-report-tiny', 'distill-report-small']);
    expect(merged.reports.map(({ name, report }) => [name, report.verdict])).toEqual([
      ['distill-report-tiny', 'pass'],
      ['distill-report-small', 'fail'],
    ]);
    expect(merged).toMatchObject({ verdict: 'fail', reasons: [], notes: ['a note'] });
    expect(merged.markdown).toContain('> **Note:** a note');
    expect(mergedAsReport(merged).reasons).toContain('a note');
  });

  it('fails when fewer reports arrive than expected, though every one that arrived passed', async () => {
    const merged = mergeReports(await readReports(['reports/*/report.json'], await oneLegArrived()), { count: 2 });
    expect(merged.verdict).toBe('fail');
    expect(merged.markdown.split('\n')[0]).toBe('## ❌ distill-gate: fail (1 of 2 runs)');
    expect(merged.reasons).toEqual([
      'Only 1 of 2 expected reports arrived (distill-gate-tiny.yml): a leg that crashed or was cancelled uploads none. Name the legs in expect to see which are missing.',
    ]);
    expect(mergedAsReport(merged)).toMatchObject({ verdict: 'fail', reasons: merged.reasons });
  });

  it('names the missing legs, by run name or folder, with a row each', async () => {
    const dir = await oneLegArrived();
    for (const names of [
      ['distill-report-tiny', 'distill-report-small'],
      ['distill-gate-tiny.yml', 'distill-report-small'],
    ]) {
      const merged = mergeReports(await readReports(['reports/*/report.json'], dir), { count: 2, names });
      expect(merged.verdict).toBe('fail');
      expect(merged.reasons).toEqual([
        'Missing: distill-report-small (1 of 2 expected reports arrived): a leg that crashed or was cancelled uploads no report.json.',
      ]);
      expect(merged.markdown).toMatch(
        /\| distill-report-small\s+\| ❌ missing \|\s+— \|\s+— \|\s+— \| no report\.json arrived \|/,
      );
      expect(merged.markdown).toContain('> **Note:** Missing: distill-report-small');
    }
  });

  it('fails on more reports than expected, or on one no name matches', async () => {
    const dir = await matrixReports();
    const reports = await readReports(['reports/*/report.json'], dir);
    expect(mergeReports(reports, { count: 1 }).reasons).toEqual([
      '2 reports arrived where 1 were expected (distill-gate-small.yml, distill-gate-tiny.yml): a stale or duplicate report.json matches the pattern.',
    ]);
    expect(mergeReports(reports, { count: 1, names: ['distill-report-tiny'] }).reasons).toEqual([
      'Not expected: distill-gate-small.yml (in distill-report-small); expect names distill-report-tiny.',
    ]);
  });

  it('passes when exactly the expected legs arrive and pass', async () => {
    const dir = await oneLegArrived();
    const reports = await readReports(['reports/*/report.json'], dir);
    expect(mergeReports(reports, { count: 1 })).toMatchObject({ verdict: 'pass', reasons: [] });
    expect(mergeReports(reports, { count: 1, names: ['distill-report-tiny'] }).markdown.split('\n')[0]).toBe(
      '## ✅ distill-gate: pass (1 runs)',
    );
  });

  it('distill-gate merge --expect exits 1 naming the missing leg, 2 on a bad --expect, and notes when it is not given', async () => {
    const dir = await oneLegArrived();
    const pattern = path.join(dir, 'reports/*/report.json');
    const missing = captureIo();
    expect(await main(['merge', pattern, '--expect', 'distill-report-tiny distill-report-small'], missing.io)).toBe(1);
    expect(missing.stdout()).toContain('Missing: distill-report-small');
    const bad = captureIo();
    expect(await main(['merge', pattern, '--expect', 'none'], bad.io)).toBe(1);
    const zero = captureIo();
    expect(await main(['merge', pattern, '--expect', '0'], zero.io)).toBe(2);
    expect(zero.stderr()).toContain('--expect: "0" is not a number of reports');
    const unchecked = captureIo();
    expect(await main(['merge', pattern], unchecked.io)).toBe(0);
    expect(unchecked.stderr()).toContain('without --expect, a matrix leg that wrote no report.json goes unnoticed');
  });

  it('with every leg missing, the error says how many were expected', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-merge-'));
    await expect(readReports(['reports/*/report.json'], dir, { count: 2, names: ['tiny', 'small'] })).rejects.toThrow(
      'reports/*/report.json: matches no report.json files (2 expected: tiny, small: every leg is missing, or the pattern is wrong)',
    );
  });
});

/** Legs written into reports/<folder>/report.json, one per entry. */
async function legs(entries: Array<[string, Report]>): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-merge-'));
  for (const [folder, report] of entries) {
    await mkdir(path.join(dir, 'reports', folder), { recursive: true });
    await writeFile(path.join(dir, 'reports', folder, 'report.json'), JSON.stringify(report));
  }
  return dir;
}

describe('a merge judges each leg, never believes it', () => {
  const tiny = sampleReport({ config: '/repo/.github/distill-gate-tiny.yml' });
  const small = sampleReport({ config: '/repo/.github/distill-gate-small.yml' });

  it('fails a leg whose verdict says pass while its own gates table holds a failing gate, and the merge with it', async () => {
    const forged = sampleReport({
      config: '/repo/.github/distill-gate-small.yml',
      verdict: 'pass',
      gates: [{ ...failingSizeGate, pass: true, status: 'pass' }],
    });
    const dir = await legs([
      ['distill-report-tiny', tiny],
      ['distill-report-small', forged],
    ]);
    const merged = mergeReports(await readReports(['reports/*/report.json'], dir), { count: 2 });
    expect(merged.verdict).toBe('fail');
    expect(merged.markdown).toMatch(/\| distill-gate-small\.yml \| ❌ fail\s+\|.*\| size\.ratio \(<= 0\.01\)\s+\|/);
    expect(merged.reports.find(({ report }) => report.config.endsWith('small.yml'))!.report.reasons).toContain(
      'The uploaded report claimed pass; re-judged from its values with its own thresholds: fail (failing: size.ratio (<= 0.01)).',
    );
    const capture = captureIo();
    expect(await main(['merge', path.join(dir, 'reports/*/report.json'), '--expect', '2'], capture.io)).toBe(1);
  });

  it('re-judges a leg handed over in memory too: a pass verdict beside a failing gate fails', async () => {
    const claimed = sampleReport({ verdict: 'pass', gates: [{ ...failingSizeGate }] });
    const merged = mergeReports([{ file: '/reports/a/report.json', report: claimed }]);
    expect(merged.verdict).toBe('fail');
  });

  it('--expect 2 with one leg twice and the other missing fails, naming the copies and the missing leg', async () => {
    const dir = await legs([
      ['distill-report-tiny', tiny],
      ['distill-report-tiny-again', tiny],
    ]);
    const merged = mergeReports(await readReports(['reports/*/report.json'], dir), { count: 2 });
    expect(merged.verdict).toBe('fail');
    expect(merged.reasons).toEqual([
      'distill-gate-tiny.yml arrived 2 times (in distill-report-tiny-again, distill-report-tiny): the same config, commit and environment are one leg, which counts once.',
      'Only 1 of 2 expected legs arrived (distill-gate-tiny.yml): 1 missing, though 2 reports arrived; a leg that crashed or was cancelled uploads none. Name the legs in expect to see which are missing.',
    ]);
    const capture = captureIo();
    expect(await main(['merge', path.join(dir, 'reports/*/report.json'), '--expect', '2'], capture.io)).toBe(1);
    expect(capture.stdout()).toContain('distill-gate-tiny.yml arrived 2 times');
  });

  it("with the legs named, a copy of one leg in the other's folder cannot stand in for it", async () => {
    const dir = await legs([
      ['distill-report-tiny', tiny],
      ['distill-report-small', tiny],
    ]);
    const merged = mergeReports(await readReports(['reports/*/report.json'], dir), {
      count: 2,
      names: ['distill-report-tiny', 'distill-report-small'],
    });
    expect(merged.verdict).toBe('fail');
    expect(merged.reasons).toEqual([
      'distill-gate-tiny.yml arrived 2 times (in distill-report-small, distill-report-tiny): the same config, commit and environment are one leg, which counts once.',
      'Missing: 1 of distill-report-tiny, distill-report-small (1 of 2 expected legs arrived): their reports are copies of fewer legs.',
    ]);
  });

  it('counts a duplicate without --expect too, and legs of one config on two backends as two', async () => {
    const dir = await legs([
      ['a', tiny],
      ['b', tiny],
    ]);
    expect(mergeReports(await readReports(['reports/*/report.json'], dir))).toMatchObject({
      verdict: 'fail',
      reasons: [
        'distill-gate-tiny.yml arrived 2 times (in a, b): the same config, commit and environment are one leg, which counts once.',
      ],
    });
    const cpu = sampleReport({
      config: tiny.config,
      backend: 'cpu',
      environment: { ...tiny.environment, backend: 'cpu' },
    });
    const matrix = await legs([
      ['wasm', tiny],
      ['cpu', cpu],
    ]);
    expect(mergeReports(await readReports(['reports/*/report.json'], matrix), { count: 2 })).toMatchObject({
      verdict: 'pass',
      reasons: [],
    });
    const two = await legs([
      ['tiny', tiny],
      ['small', small],
    ]);
    expect(mergeReports(await readReports(['reports/*/report.json'], two), { count: 2 })).toMatchObject({
      verdict: 'pass',
      reasons: [],
    });
  });

  it('refuses a leg a run could not have written, naming its file and field (exit 2)', async () => {
    const forged = sampleReport({ metrics: { ...tiny.metrics, 'agreement.top1': 7.5 } });
    const dir = await legs([['distill-report-tiny', forged]]);
    const file = path.join(dir, 'reports/distill-report-tiny/report.json');
    await expect(readReports(['reports/*/report.json'], dir)).rejects.toThrow(
      `${file}: metrics["agreement.top1"]: 7.5 is no value of agreement.top1`,
    );
    const capture = captureIo();
    expect(await main(['merge', path.join(dir, 'reports/*/report.json')], capture.io)).toBe(2);
    expect(capture.stderr()).toContain(`${file}: metrics["agreement.top1"]`);
  });

  it("does not apply a leg's own accepted regression, but applies the merging job's", () => {
    const leg = fullSampleReport({ verdict: 'pass', status: 'complete', reasons: [], speedIntervals: undefined });
    const gates = leg.gates.filter(
      (g) => g.metric !== 'speed.studentThroughput' && !(g.metric === 'agreement.top1' && g.op === 'maxDrop'),
    );
    const report = { ...leg, gates };
    expect(mergeReports([{ file: '/r/full/report.json', report }]).verdict).toBe('fail');
    expect(
      mergeReports([{ file: '/r/full/report.json', report }], undefined, {
        acceptance: { label: 'accept-regression', by: 'octocat' },
      }).verdict,
    ).toBe('pass');
  });
});
