import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import {
  appendHistory,
  historyEntry,
  HISTORY_LIMIT,
  historyTable,
  parseHistory,
  trendCharts,
} from '../../src/report/history.js';
import { captureIo } from '../helpers.js';
import { sampleReport } from '../sample-report.js';

const runs = (n: number) =>
  Array.from({ length: n }, (_, i) =>
    historyEntry(
      sampleReport({ commit: `c0ffee${i}`, metrics: { ...sampleReport().metrics, 'agreement.top1': 0.9 + i / 1000 } }),
      'schedule',
    ),
  );

describe('history and trend', () => {
  it('keeps at most the last HISTORY_LIMIT runs', () => {
    let history = runs(HISTORY_LIMIT);
    history = appendHistory(history, runs(1)[0]);
    expect(history).toHaveLength(HISTORY_LIMIT);
  });

  it('draws the last 30 runs and this one as mermaid xycharts, one per metric', () => {
    const charts = trendCharts(runs(40), sampleReport());
    expect(charts.match(/```mermaid\nxychart-beta/g)).toHaveLength(3);
    expect(charts).toContain('title "Top-1 agreement (last 30 runs)"');
    expect(charts).toMatch(/x-axis \["c0ffee1", .*"this"\]/);
    expect(trendCharts([], undefined)).toBe('');
  });

  it('distill-gate history prints the runs as a table, and refuses a file that is not a history', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-history-'));
    await writeFile(path.join(dir, 'history.json'), JSON.stringify(runs(3)));
    const capture = captureIo();
    expect(await main(['history', path.join(dir, 'history.json'), '--last', '2'], capture.io)).toBe(0);
    const table = capture.stdout().trim().split('\n');
    expect(table).toHaveLength(4);
    expect(table[0]).toMatch(/\| Date \(UTC\)\s+\| Commit\s+\| Event\s+\| Verdict \| Top-1 agreement/);
    expect(table[3]).toMatch(/c0ffee2 \| schedule \| pass\s+\|\s+90\.20%/);
    await writeFile(path.join(dir, 'bad.json'), '{"not": "a list"}');
    const bad = captureIo();
    expect(await main(['history', path.join(dir, 'bad.json')], bad.io)).toBe(2);
    expect(bad.stderr()).toMatch(/bad\.json: is not a distill-gate history file/);
  });

  it('refuses, naming the run, a history whose runs would break the trend or the table', () => {
    const [first, second] = runs(2);
    const cases: Array<[unknown, RegExp]> = [
      [
        { ...second, commit: 42 },
        /h\.json: is not a distill-gate history file: run 2 of 2 has a "commit" that is not text/,
      ],
      [{ ...second, createdAt: undefined }, /run 2 of 2 has no "createdAt" date/],
      [
        { ...second, metrics: { 'agreement.top1': '0.9' } },
        /run 2 of 2 has a metric "agreement.top1" that is not a number/,
      ],
      [{ ...second, verdict: 'maybe' }, /run 2 of 2 has a "verdict" other than pass or fail/],
      [{ ...second, override: { label: 'x' } }, /run 2 of 2 has an "override" without "by"/],
      [[], /run 2 of 2 is not an object/],
    ];
    for (const [bad, fault] of cases) expect(() => parseHistory(JSON.stringify([first, bad]), 'h.json')).toThrow(fault);
    // A metric that was not finite is stored as null, and drawn as a gap.
    const withNull = parseHistory(
      JSON.stringify([first, { ...second, metrics: { ...second.metrics, 'agreement.top1': null } }]),
      'h.json',
    );
    expect(withNull).toHaveLength(2);
    expect(() => [trendCharts(withNull, sampleReport()), historyTable(withNull)]).not.toThrow();
  });
});
