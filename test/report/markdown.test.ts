import { describe, expect, it } from 'vitest';
import { historyEntry, historyTable } from '../../src/report/history.js';
import { renderMarkdown } from '../../src/report/markdown.js';
import { mergeReports } from '../../src/report/merge.js';
import { fullSampleReport, sampleReport } from '../sample-report.js';

// Committed snapshots of whole reports, built by hand from test/sample-report.ts (nothing trained):
// any change to the report's text shows up here as a diff to review, and fails under CI.
const history = [0.93, 0.94, 0.955].map((top1, i) =>
  historyEntry(
    sampleReport({
      commit: `${i}abcdef0123`,
      createdAt: `2025-12-0${i + 1}T08:30:00.000Z`,
      metrics: { ...sampleReport().metrics, 'agreement.top1': top1, 'speed.studentMs': 0.5 + i / 10, 'size.studentBytes': 40 + i * 5 },
    }),
    'push',
  ),
);

describe('markdown snapshots', () => {
  it('renders the sample report', async () => {
    await expect(renderMarkdown(sampleReport())).toMatchFileSnapshot('__snapshots__/sample-report.md');
  });

  it('renders a report with every section: gates against a baseline, an override, paired latency, notes and a trend', async () => {
    await expect(renderMarkdown(fullSampleReport(), { history })).toMatchFileSnapshot('__snapshots__/full-report.md');
  });

  it('renders a merged report and a history table', async () => {
    const merged = mergeReports([
      { file: '/reports/tiny/report.json', report: sampleReport() },
      { file: '/reports/full/report.json', report: fullSampleReport({ config: '/repo/distill-gate-full.yml' }) },
    ]);
    await expect(`${merged.markdown}\n---\n\n${historyTable([...history, historyEntry(fullSampleReport(), 'pull_request')])}`).toMatchFileSnapshot(
      '__snapshots__/merged-and-history.md',
    );
  });
});

describe('the Gates table', () => {
  const row = (md: string, metric: string) =>
    md
      .split('\n')
      .find((line) => line.startsWith(`| \`${metric}\``))!
      .split('|')
      .map((cell) => cell.trim());

  it("shows the teacher's counterpart beside each student metric that has one", () => {
    const md = renderMarkdown(fullSampleReport());
    expect(row(md, 'speed.studentMs').slice(1, 4)).toEqual(['`speed.studentMs`', '2 ms', '0.5 ms']);
    expect(row(md, 'size.studentBytes').slice(2, 4)).toEqual(['1000 B', '50 B']);
    expect(row(md, 'size.studentParams').slice(2, 4)).toEqual(['250', '12']);
    expect(row(md, 'speed.studentThroughput').slice(2, 4)).toEqual(['100', '900']);
    expect(row(md, 'accuracy.student').slice(2, 4)).toEqual(['91.00%', '88.50%']);
  });

  it('leaves the Teacher cell empty for metrics with no teacher counterpart', () => {
    const md = renderMarkdown(fullSampleReport());
    for (const metric of ['agreement.top1', 'kl', 'size.ratio']) expect(row(md, metric)[2]).toBe('—');
  });
});
