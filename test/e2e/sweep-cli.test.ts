import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import type { Report } from '../../src/report/report.js';
import { exampleWorkspace, quickConfig } from '../helpers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

describe('distill-gate run with students: (the built CLI, end to end)', () => {
  it('sweeps three candidates in one run under a budget, gates the configured student, and writes the front', async () => {
    const students = [
      'students:',
      '  - name: "w{width}"',
      '    layers: [{ type: dense, units: "{width}", activation: relu }, { type: dense, units: 10 }]',
      '    widths: [4, 16]',
      '  - { name: "deep | <two>", layers: [{ type: dense, units: 16, activation: relu }, { type: dense, units: 16, activation: relu }, { type: dense, units: 10 }] }',
    ].join('\n');
    const dir = await exampleWorkspace(
      quickConfig({ top: students, distill: '{ epochs: 2, batchSize: 64, learningRate: 0.01, seed: 7 }' }),
    );
    const out = path.join(dir, 'out');
    const { stderr } = await promisify(execFile)(
      process.execPath,
      [
        path.join(ROOT, 'bin/distill-gate.js'),
        'run',
        '--config',
        path.join(dir, 'distill-gate.yml'),
        '--out',
        out,
        '--budget',
        '10',
      ],
      { cwd: dir },
    );
    expect(stderr).toMatch(/sweep: 3 of 3 candidates measured; front: /);
    const report = JSON.parse(await readFile(path.join(out, 'report.json'), 'utf8')) as Report;
    expect(report.verdict).toBe('pass');
    expect(report.sweep?.candidates.map((c) => [c.name, c.status])).toEqual([
      ['student', 'measured'],
      ['w4', 'measured'],
      ['w16', 'measured'],
      ['deep | <two>', 'measured'],
    ]);
    expect(report.sweep?.front.length).toBeGreaterThanOrEqual(1);
    const md = await readFile(path.join(out, 'report.md'), 'utf8');
    expect(md).toContain('### Sweep: size against agreement');
    expect(md).toContain('| deep \\| &lt;two&gt; ');
    expect(md).toMatch(/```mermaid\nxychart-beta\n {2}title "Agreement top-1 by candidate, smallest first"/);
  });
});
