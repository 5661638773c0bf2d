import { describe, expect, it } from 'vitest';
import { escapeMarkdown } from '../../src/report/escape.js';
import { renderMarkdown } from '../../src/report/markdown.js';
import { lossChart } from '../../src/report/markdown-details.js';
import { failingSizeGate, fullSampleReport, sampleReport } from '../sample-report.js';

describe('escaping untrusted text', () => {
  it.each([
    ['<script>alert(1)</script>', '&lt;script&gt;alert\\(1\\)&lt;/script&gt;'],
    ['@octocat please', '@\u200boctocat please'],
    ['a|b', 'a\\|b'],
    ['`rm -rf`', '\\`rm -rf\\`'],
    ['<!-- distill-gate -->', '&lt;\\!-- distill-gate --&gt;'],
    ['[x](http://evil)', '\\[x\\]\\(http:\u200b//evil\\)'],
    ['line\nbreak', 'line break'],
    ['see https://evil.test/x and www.evil.test', 'see https:\u200b//evil.test/x and www\u200b.evil.test'],
  ])('makes %j inert', (input, expected) => {
    expect(escapeMarkdown(input)).toBe(expected);
  });

  it.each([
    ['\u202a', '[U+202A]'],
    ['\u202b', '[U+202B]'],
    ['\u202c', '[U+202C]'],
    ['\u202d', '[U+202D]'],
    ['\u202e', '[U+202E]'],
    ['\u2066', '[U+2066]'],
    ['\u2067', '[U+2067]'],
    ['\u2068', '[U+2068]'],
    ['\u2069', '[U+2069]'],
    ['\u200e', '[U+200E]'],
    ['\u200f', '[U+200F]'],
    ['\u061c', '[U+061C]'],
    ['\u200b', '[U+200B]'],
    ['\u2060', '[U+2060]'],
    ['\ufeff', '[U+FEFF]'],
    ['\u{e0041}', '[U+E0041]'],
    ['\u0007', '[U+0007]'],
  ])('shows the invisible character %j as its code point', (char, shown) => {
    const escaped = escapeMarkdown(`fail${char}ssap`);
    expect(escaped).toBe(`fail${shown.replace(/[[\]+]/g, (c) => `\\${c}`)}ssap`);
    expect(escaped).not.toContain(char);
  });

  it('lets no bidi or invisible character of an upload reach the markdown, from any text field', () => {
    const rlo = '\u202e';
    const hostile = `x${rlo}\u2066\u200f\u200b`;
    const full = fullSampleReport();
    const report = fullSampleReport({
      reasons: [`reason ${hostile}`],
      gates: full.gates.map((g) => ({ ...g, note: `note ${hostile}` })),
      teacher: { ...full.teacher, path: `/t/${hostile}/model.json`, runtime: `rt ${hostile}` },
      student: { ...full.student, path: `/s/${hostile}/model.json` },
      baseline: {
        ...full.baseline!,
        path: `/b/${hostile}/report.json`,
        commit: `c${hostile}`,
        createdAt: `2026${hostile}`,
      },
      environment: {
        ...full.environment,
        cpu: `cpu ${hostile}`,
        gpu: `gpu ${hostile}`,
        tfjsVersion: `4${hostile}`,
        node: `v20${hostile}`,
        backendSource: `b${hostile}`,
      },
      training: { ...full.training, step: { kind: `k${hostile}`, backend: `w${hostile}` } },
      teacherDiff: { ...full.teacherDiff!, source: `git ${hostile}` },
      override: { label: `l${hostile}`, by: `by${hostile}`, gates: [`g${hostile}`] },
      metricsComputedOn: `host ${hostile}`,
      speedBackend: `wasm${hostile}`,
    });
    const md = renderMarkdown(report);
    expect(md).toContain('\\[U\\+202E\\]');
    expect(md).not.toMatch(/[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]/u);
    // The only zero-width spaces left are the ones escaping adds after @ and inside addresses.
    expect(md.replace(/@\u200b|:\u200b\/\/|www\u200b\./g, '')).not.toContain('\u200b');
  });
});

describe('markdown report', () => {
  it('puts the verdict first, then gates, size, speed, agreement and the loss chart', () => {
    const md = renderMarkdown(sampleReport());
    expect(md.split('\n')[0]).toBe('## ✅ distill-gate: pass');
    const order = ['### Gates', '### Size', '### Speed', '### Agreement', '```mermaid'].map((h) => md.indexOf(h));
    expect(order.every((i, k) => i > 0 && (k === 0 || i > order[k - 1]))).toBe(true);
    // No gated metric here has a teacher's value (agreement compares the two): no Teacher column.
    expect(md).toMatch(/\| Metric\s+\| Student \| Threshold\s+\| Status\s+\|/);
    expect(md).toMatch(/\| `agreement\.top1` \|\s+95\.00% \| >= 0\.93\s+\| ✅ pass \|/);
    expect(md).toContain('line [3, 2, 1]');
  });

  it("shows the teacher's value in the Gates table where the metric has a teacher counterpart", () => {
    const report = sampleReport();
    const latency = {
      metric: 'speed.studentMs',
      op: '<=' as const,
      threshold: 1,
      relative: false,
      level: 'error' as const,
    };
    const md = renderMarkdown({
      ...report,
      gates: [
        ...report.gates,
        { ...latency, value: 0.5, baseline: null, pass: true, status: 'pass', expected: '<= 1' },
      ],
    });
    expect(md).toMatch(/\| Metric\s+\| Teacher \| Student \|/);
    expect(md).toMatch(/\| `speed\.studentMs`\s+\|\s+2 ms \|\s+0\.5 ms \|/);
    expect(md).toMatch(/\| `agreement\.top1`\s+\|\s+— \|\s+95\.00% \|/);
  });

  it("gives every phase's time in the footer, and what precision the speed rounds bought", () => {
    const md = renderMarkdown(
      {
        ...sampleReport(),
        speedIntervals: {
          'speed.teacherMs': { value: 2, low: 1.9, high: 2.1, rounds: 12, confidence: 0.95 },
          'speed.studentMs': { value: 0.5, low: 0.49, high: 0.52, rounds: 12, confidence: 0.95 },
        },
      },
      { phases: { load: 1.25, 'teacher pass': 9.6, distillation: 1.7, measuring: 5.2, report: 0.006 } },
    );
    expect(md).toMatch(
      /phase times: load 1\.3 s, teacher pass 9\.6 s, distillation 1\.7 s, measuring 5\.2 s, report <0\.1 s/,
    );
    expect(md).toMatch(/speed timed to latency 12 rounds, ±5\.0% \(95% intervals of the medians\)/);
  });

  it('escapes a hostile teacher path and lists failing gates', () => {
    const md = renderMarkdown(
      sampleReport({
        verdict: 'fail',
        teacher: {
          path: '/x/<!-- -->@evil`|/model.json',
          format: 'layers-model',
          output: 'logits',
          params: 1,
          bytes: 1,
        },
        gates: [failingSizeGate],
      }),
    );
    expect(md).toContain('## ❌ distill-gate: fail');
    expect(md).toContain('**Failing gates:** size.ratio (<= 0.01)');
    expect(md).not.toContain('<!--');
    expect(md).not.toContain('@evil');
    expect(md).toContain('&lt;\\!-- --&gt;@\u200bevil\\`\\|');
  });

  it('shows baseline and delta columns when a gate has a baseline', () => {
    const md = renderMarkdown(
      sampleReport({
        gates: [
          {
            metric: 'agreement.top1',
            op: 'maxDrop',
            threshold: 0.01,
            relative: false,
            level: 'error',
            value: 0.95,
            baseline: 0.97,
            pass: false,
            status: 'fail',
            expected: 'drop <= 0.01',
          },
        ],
      }),
    );
    expect(md).toMatch(/\| Metric\s+\| Student \| Baseline \|\s+Δ \| Threshold/);
    expect(md).toContain('▼ -2.00% (-2.1%)');
  });

  it('thins a long loss curve to at most about 60 points, keeping the last epoch', () => {
    const chart = lossChart(Array.from({ length: 500 }, (_, i) => 1 / (i + 1)));
    const epochs = /x-axis "epoch" \[([^\]]*)\]/.exec(chart)![1].split(', ');
    expect(epochs.length).toBeLessThanOrEqual(61);
    expect(epochs[epochs.length - 1]).toBe('500');
  });
});
