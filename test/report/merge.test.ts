import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { mergedAsReport, mergeReports, readReports } from '../../src/report/merge.js';
import { captureIo } from '../helpers.js';
import { sampleReport } from '../sample-report.js';

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
    expect(merged.markdown).toMatch(/\| distill-gate-small\.yml \| ❌ fail\s+\|\s+80\.00% \|.*\| agreement\.top1 \(>= 0\.93\)\s+\|/);
    expect(merged.markdown).toMatch(/\| distill-gate-tiny\.yml\s+\| ✅ pass\s+\|\s+95\.00% \|/);
    expect(merged.markdown.match(/<details>/g)).toHaveLength(2);
    const asReport = mergedAsReport(merged);
    expect(asReport.metrics).toEqual({ 'agreement.top1': 0.8, 'speed.speedup': 4, 'size.ratio': 0.2 });
    expect(asReport.gates.map((g) => g.metric)).toEqual(['distill-gate-small.yml: agreement.top1', 'distill-gate-tiny.yml: agreement.top1']);
  });

  it('distill-gate merge exits by the merged verdict, and 2 when nothing matches', async () => {
    const dir = await matrixReports();
    const capture = captureIo();
    expect(await main(['merge', path.join(dir, 'reports/*/report.json'), '--out', path.join(dir, 'merged')], capture.io)).toBe(1);
    expect(capture.stdout()).toContain('(2 runs)');
    const none = captureIo();
    expect(await main(['merge', path.join(dir, 'nothing/*.json')], none.io)).toBe(2);
    expect(none.stderr()).toMatch(/matches no report\.json files/);
  });
});
