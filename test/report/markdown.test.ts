import { describe, expect, it } from 'vitest';
import { COMMENT_LIMIT, commentMarker, fitComment } from '../../src/action/github/comment.js';
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
      metrics: {
        ...sampleReport().metrics,
        'agreement.top1': top1,
        'speed.studentMs': 0.5 + i / 10,
        'size.studentBytes': 40 + i * 5,
      },
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
    await expect(
      `${merged.markdown}\n---\n\n${historyTable([...history, historyEntry(fullSampleReport(), 'pull_request')])}`,
    ).toMatchFileSnapshot('__snapshots__/merged-and-history.md');
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

describe('the chance level', () => {
  /** The trimmed cells of the class table's rows: ['class 0', '96.79% (271)', '100.00% (280)']. */
  const classRows = (md: string) =>
    md
      .split('\n')
      .filter((line) => /^\| (class \d+|\d+ other classes) /.test(line))
      .map((line) =>
        line
          .split('|')
          .slice(1, -1)
          .map((cell) => cell.trim()),
      );

  // The issue's constant student: the teacher answers class 0 for 271 of 280 face crops, the student always does.
  const constantStudent = sampleReport({
    metrics: {
      ...sampleReport().metrics,
      'agreement.top1': 271 / 280,
      'agreement.kappa': 0,
      'agreement.majority': 271 / 280,
    },
    agreement: { teacherCounts: [271, 6, 3], studentCounts: [280, 0, 0], majorityClass: 0 },
    training: { ...sampleReport().training, evalSamples: 280 },
  });

  it('warns when top-1 agreement is no better than a constant student, and shows the classes that make it so', () => {
    const md = renderMarkdown(constantStudent);
    expect(md).toContain(
      '> ⚠️ **Top-1 agreement (96.79%) is within a point of the chance level or below it:** a constant student scores as well. Judge the student by `agreement.kappa` (0.000).',
    );
    expect(md).toContain('scores 96.79% top-1 agreement');
    expect(classRows(md)).toEqual([
      ['class 0', '96.79% (271)', '100.00% (280)'],
      ['class 1', '2.14% (6)', '0.00% (0)'],
      ['class 2', '1.07% (3)', '0.00% (0)'],
    ]);
  });

  it('shows the chance level without a warning when top-1 agreement is clear of it', () => {
    const md = renderMarkdown(fullSampleReport());
    expect(md).toContain(
      "Chance level: a student that always answers the teacher's most frequent class (class 0) scores 62.00% top-1 agreement",
    );
    expect(md).not.toContain('⚠️ **Top-1 agreement');
  });

  it("keeps a 1000-class head to the teacher's five most frequent classes, the student's own, and one row for the rest", () => {
    const teacherCounts = Array.from({ length: 1000 }, (_, c) => (c < 500 ? 2 : 0));
    const studentCounts = Array.from({ length: 1000 }, (_, c) => (c === 700 ? 1000 : 0));
    const md = renderMarkdown(sampleReport({ agreement: { teacherCounts, studentCounts, majorityClass: 0 } }));
    const rows = classRows(md);
    expect(rows.map((cells) => cells[0])).toEqual([
      'class 0',
      'class 1',
      'class 2',
      'class 3',
      'class 4',
      'class 700',
      '994 other classes',
    ]);
    expect(rows[5]).toEqual(['class 700', '0.00% (0)', '100.00% (1,000)']);
    expect(rows[6]).toEqual(['994 other classes', '99.00% (990)', '0.00% (0)']);
  });
});

describe('per-class agreement and the shipped student', () => {
  const full = fullSampleReport();
  const passing = fullSampleReport({
    verdict: 'pass',
    status: 'complete',
    reasons: [],
    override: null,
    gates: full.gates.filter((g) => g.status === 'pass'),
  });

  it('opens the per-class and shipped-student sections when a gate fails, and folds them into <details> when every gate passes', () => {
    const failing = renderMarkdown(full);
    expect(failing).toContain('### Per-class agreement\n');
    expect(failing).toContain('### Shipped student\n');
    expect(failing).not.toContain('<details>');
    const md = renderMarkdown(passing);
    expect(md).not.toContain('### Per-class agreement');
    expect(md).toContain('<details>\n<summary><b>Per-class agreement</b>: worst class 50.00% (class 4)</summary>\n\n');
    expect(md).toContain('<details>\n<summary><b>Shipped student</b>: uint8, top-1 agreement 94.00%</summary>\n\n');
    // Every fold is closed, and the chart inside it is still a mermaid block GitHub renders.
    expect(md.split('<details>').length).toBe(md.split('</details>').length);
    // Nothing in the new sections (the chart's axis included) reads as the end of an HTML comment.
    for (const text of [failing, md]) expect(text).not.toContain('-->');
    expect(md).toMatch(
      /<details>[^]*```mermaid\nxychart-beta\n {2}title "Top-1 agreement by teacher's class[^]*<\/details>/,
    );
  });

  it('renders a passing report with the new sections folded', async () => {
    await expect(renderMarkdown(passing)).toMatchFileSnapshot('__snapshots__/passing-report.md');
  });

  it("keeps a 1,000-class report's comment under GitHub's 65,536-character limit, with the tables and chart bounded", () => {
    const classes = 1000;
    const teacherCounts = Array.from({ length: classes }, (_, c) => 3 + (c % 17));
    const agreedCounts = teacherCounts.map((n, c) => n - (c % 5));
    const confusions = Array.from({ length: 10 }, (_, i) => ({ teacher: 999 - i, student: i, count: 9 - i }));
    const report = fullSampleReport({
      agreement: {
        teacherCounts,
        studentCounts: teacherCounts,
        majorityClass: 16,
        agreedCounts,
        confusions,
        minClassSamples: 5,
      },
    });
    const md = renderMarkdown(report, { history });
    const { truncated } = fitComment(`${commentMarker('distill-gate.yml')}\n${md}`);
    expect(truncated).toBe(false);
    expect(md.length).toBeLessThan(COMMENT_LIMIT);
    // Ten worst classes in the table, twenty in the chart.
    const perClass = md.slice(md.indexOf('### Per-class agreement'), md.indexOf('Largest confusions'));
    expect(perClass.split('\n').filter((line) => /^\| class \d+ /.test(line))).toHaveLength(10);
    expect(perClass).toMatch(/worst 20 of \d+"/);
    expect(perClass.match(/ {2}bar \[(.*)\]/)![1].split(', ')).toHaveLength(20);
  });
});
