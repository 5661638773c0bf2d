import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { mergeReports, readReports } from '../../src/report/merge.js';
import { parseReport } from '../../src/report/report-schema.js';
import { buildSweep, paretoFront, smallestPassing, type SweepCandidate } from '../../src/report/sweep.js';
import { frontChart, mermaidText, summarySentence, sweepSection } from '../../src/report/sweep-markdown.js';
import { sampleReport } from '../sample-report.js';

type Input = Omit<SweepCandidate, 'onFront'>;
const metrics = (bytes: number, agreement: number) => ({
  'size.studentBytes': bytes,
  'size.studentParams': bytes / 4,
  'speed.studentMs': 0.1,
  'agreement.top1': agreement,
});
const measured = (
  name: string,
  bytes: number,
  agreement: number,
  passesGates = true,
  extra: Partial<Input> = {},
): Input => ({
  name,
  from: 'layers',
  status: 'measured',
  metrics: metrics(bytes, agreement),
  passesGates,
  ...extra,
});

describe('the Pareto front of size against agreement', () => {
  it('keeps the points nothing dominates, smallest first', () => {
    const front = paretoFront([
      { name: 'big-good', size: 400, agreement: 0.99 },
      { name: 'small-bad', size: 100, agreement: 0.8 },
      { name: 'mid', size: 200, agreement: 0.9 },
      // Larger and worse than mid: dominated.
      { name: 'dominated', size: 300, agreement: 0.85 },
      // As large as mid and worse: dominated by mid on agreement alone.
      { name: 'same-size-worse', size: 200, agreement: 0.89 },
      // As good as big-good and larger: dominated on size alone.
      { name: 'same-agreement-larger', size: 500, agreement: 0.99 },
    ]);
    expect(front.map((p) => p.name)).toEqual(['small-bad', 'mid', 'big-good']);
  });

  it('keeps both of two equal points (ties dominate neither), and leaves out points not measured', () => {
    const front = paretoFront([
      { name: 'b', size: 100, agreement: 0.9 },
      { name: 'a', size: 100, agreement: 0.9 },
      { name: 'nan', size: 50, agreement: NaN },
      { name: 'inf', size: Infinity, agreement: 1 },
    ]);
    expect(front.map((p) => p.name)).toEqual(['a', 'b']);
  });

  it('buildSweep marks each candidate; not-run and failed ones are never on the front', () => {
    const sweep = buildSweep([
      measured('student', 800, 0.97, true, { configured: true }),
      measured('w8', 100, 0.9, false),
      {
        name: 'w4',
        from: 'layers',
        status: 'not run',
        reason: 'the sweep stopped',
        metrics: metrics(10, 1),
        passesGates: null,
      },
      { name: 'broken', from: 'layers', status: 'failed', reason: 'out of memory', metrics: {}, passesGates: null },
    ]);
    expect(sweep.front).toEqual(['w8', 'student']);
    expect(sweep.candidates.map((c) => c.onFront)).toEqual([true, true, false, false]);
  });

  it('smallestPassing picks the smallest candidate that passes every gate, the better agreement on a tie', () => {
    const sweep = buildSweep([
      measured('student', 800, 0.97, true, { configured: true }),
      measured('w8', 100, 0.9, false),
      measured('w16-b', 200, 0.95),
      measured('w16-a', 200, 0.96),
    ]);
    expect(smallestPassing(sweep)?.name).toBe('w16-a');
    expect(summarySentence(smallestPassing(sweep), sweep.candidates[0])).toBe(
      '**w16-a**: 4.0x smaller than the configured student, agreement 96.00%, passes every gate.',
    );
    expect(summarySentence(undefined, sweep.candidates[0])).toBe('No candidate passes every gate.');
    expect(summarySentence(sweep.candidates[0], sweep.candidates[0])).toMatch(
      /^The configured student is the smallest candidate that passes every gate/,
    );
  });
});

describe('the sweep in report.md', () => {
  const hostile = '"]; x-axis ["pwned"] <img src=x onerror=alert(1)> @octocat |a| `b` \u202Eevil\nline';
  const sweep = buildSweep([
    measured('student', 800, 0.97, true, { configured: true }),
    measured(hostile, 100, 0.9),
    measured('w16', 200, 0.96),
    {
      name: '<b>late</b>',
      from: 'layers',
      status: 'not run',
      reason: 'the time budget of 1 min ran out <script>',
      metrics: {},
      passesGates: null,
    },
  ]);

  it('escapes hostile names in the table, the sentence and the notes', () => {
    const md = sweepSection(sweep).join('\n');
    expect(md).not.toContain('<img');
    expect(md).not.toContain('<b>');
    expect(md).not.toContain('<script>');
    expect(md).not.toContain('@octocat');
    expect(md).not.toContain('\u202E');
    expect(md).toContain('&lt;img src=x onerror=alert\\(1\\)&gt;');
    expect(md).toContain('- &lt;b&gt;late&lt;/b&gt;: not run: the time budget of 1 min ran out &lt;script&gt;');
    // The hostile name is the smallest passing candidate: the sentence names it, escaped.
    expect(md).toMatch(/^\*\*&quot;\\\]; x-axis \\\[&quot;pwned&quot;\\\] &lt;img/m);
    // Every table row has the table's seven cells: no pipe of a name split one.
    const rows = md.split('\n').filter((line) => line.startsWith('| '));
    for (const row of rows) expect(row.split(/(?<!\\)\|/).length - 2).toBe(7);
  });

  it('keeps names in the mermaid chart to plain characters, so none can close a label or add a statement', () => {
    const chart = frontChart(sweep, sweep.candidates[0], smallestPassing(sweep))!;
    const lines = chart.split('\n');
    expect(lines).toHaveLength(8);
    const axis = lines.find((line) => line.startsWith('  x-axis'))!;
    // Four labels, each one quoted string: the quotes are only the labels' own.
    expect(axis.match(/"/g)).toHaveLength(6);
    expect(axis).toBe('  x-axis ["___ x-axis __pwned__ _img src_x… ● ★", "w16 ●", "student ● ◆"]');
    expect(axis).not.toMatch(/[<>`@;\n]/);
    expect(mermaidText('a"b\nc')).toBe('a_b_c');
    expect(mermaidText('wide-16.v2+x y')).toBe('wide-16.v2+x y');
  });

  it('draws no chart with fewer than two measured candidates', () => {
    expect(frontChart(buildSweep([measured('student', 800, 0.97, true, { configured: true })]))).toBeUndefined();
  });
});

describe('report.json carries the sweep', () => {
  const sweep = buildSweep([
    measured('student', 800, 0.97, true, { configured: true }),
    measured('w8', 100, 0.9, false, { failingGates: ['agreement.top1 (>= 0.95)'] }),
  ]);

  it('through the schema, trusted and untrusted', () => {
    const json = JSON.parse(JSON.stringify(sampleReport({ sweep })));
    expect(parseReport(json, 'report.json', 'trusted').sweep).toEqual(sweep);
    expect(parseReport(json, 'report.json', 'untrusted').sweep).toEqual(sweep);
  });

  it('refuses an upload whose front names no candidate, or whose candidate metric is out of range', () => {
    const badFront = JSON.parse(JSON.stringify(sampleReport({ sweep: { ...sweep, front: ['nobody'] } })));
    expect(() => parseReport(badFront, 'r.json', 'untrusted')).toThrow(
      /r\.json: sweep\.front\[0\].*names no candidate of the sweep/,
    );
    const outOfRange = JSON.parse(JSON.stringify(sampleReport({ sweep })));
    outOfRange.sweep.candidates[1].metrics['agreement.top1'] = 7.5;
    expect(() => parseReport(outOfRange, 'r.json', 'untrusted')).toThrow(
      /sweep\.candidates\[1\]\.metrics\["agreement\.top1"\].*7\.5 is no value of agreement\.top1/,
    );
  });
});

describe('merge builds the front from a matrix of legs', () => {
  async function legs(reports: Array<[string, ReturnType<typeof sampleReport>]>): Promise<string> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-sweep-merge-'));
    for (const [name, report] of reports) {
      await mkdir(path.join(dir, 'reports', name), { recursive: true });
      await writeFile(path.join(dir, 'reports', name, 'report.json'), JSON.stringify(report));
    }
    return dir;
  }
  const leg = (name: string, bytes: number, agreement: number, params: number) =>
    sampleReport({
      config: `/repo/${name}.yml`,
      student: { path: 'student/model.json', params, bytes, from: 'layers' },
      metrics: {
        ...sampleReport().metrics,
        'size.studentBytes': bytes,
        'size.studentParams': params,
        'agreement.top1': agreement,
      },
    });

  it('makes each leg that ran a different student a candidate, judged by its re-judged gates', async () => {
    const dir = await legs([
      ['w8', leg('w8', 100, 0.9, 25)],
      ['w32', leg('w32', 400, 0.97, 100)],
      ['w64', leg('w64', 800, 0.96, 200)],
    ]);
    const merged = mergeReports(await readReports(['reports/*/report.json'], dir));
    expect(merged.markdown).toContain('### Sweep: the legs side by side');
    // w8's agreement (90%) fails the sample's agreement.top1 >= 0.93 gate once re-judged.
    expect(merged.markdown).toContain(
      '**w32.yml**: the smallest candidate that passes every gate, agreement 97.00%, passes every gate.',
    );
    expect(merged.markdown).toMatch(/\| w64\.yml +\| +200 \| +800 B \| .* \| no +\|/);
    expect(merged.markdown).toMatch(/\| w8\.yml +\| +25 \| +100 B \| .* \| ● yes +\| ❌ no \(agreement\.top1/);
  });

  it('adds no sweep for legs that all ran the same student (a matrix of runners)', async () => {
    const dir = await legs([
      ['linux', sampleReport({ config: '/repo/a.yml' })],
      ['macos', sampleReport({ config: '/repo/b.yml' })],
    ]);
    const merged = mergeReports(await readReports(['reports/*/report.json'], dir));
    expect(merged.markdown).not.toContain('### Sweep');
  });
});

describe('an uploaded sweep is re-judged, not believed', () => {
  it("recomputes each candidate's gates with the report's thresholds and the front from the metrics", async () => {
    const { rejudgeReport } = await import('../../src/report/rejudge.js');
    const claimed = buildSweep([
      measured('student', 800, 0.97, true, { configured: true }),
      // Claims to pass at 50% agreement, beside the report's agreement.top1 >= 0.93 gate.
      measured('liar', 100, 0.5, true),
      measured('w16', 200, 0.96, true),
    ]);
    const forged = {
      ...claimed,
      front: ['w16'],
      candidates: claimed.candidates.map((c) => ({ ...c, onFront: c.name === 'w16' })),
    };
    const upload = parseReport(JSON.parse(JSON.stringify(sampleReport({ sweep: forged }))), 'r.json', 'untrusted');
    const sweep = rejudgeReport(upload, 'r.json').sweep!;
    expect(sweep.candidates.map((c) => [c.name, c.passesGates, c.onFront])).toEqual([
      ['student', true, true],
      ['liar', false, true],
      ['w16', true, true],
    ]);
    expect(sweep.candidates[1].failingGates).toEqual(['agreement.top1 (>= 0.93)']);
    expect(sweep.front).toEqual(['liar', 'w16', 'student']);
  });
});
