import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { teacherLogits } from '../../src/distill/teacher-logits.js';
import { runPipeline } from '../../src/pipeline.js';
import { readReport } from '../../src/report/read.js';
import type { RunClock } from '../../src/run-control.js';
import { exampleWorkspace, quickConfig } from '../helpers.js';

// The teacher's pass, counted: the sweep must reuse the configured student's soft targets.
vi.mock('../../src/distill/teacher-logits.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../src/distill/teacher-logits.js')>();
  return { ...original, teacherLogits: vi.fn(original.teacherLogits) };
});

const STUDENTS = [
  'students:',
  '  - name: "w{width}"',
  '    layers: [{ type: dense, units: "{width}", activation: relu }, { type: dense, units: 10 }]',
  '    widths: [2, 16]',
  '  - { name: teacher-sized, model: models/teacher/model.json }',
].join('\n');

async function sweepRun(
  control?: ReturnType<typeof manualClock>,
  onLog?: (line: string, control: ReturnType<typeof manualClock>) => void,
) {
  const dir = await exampleWorkspace(
    quickConfig({
      top: STUDENTS,
      distill: '{ epochs: 2, batchSize: 64, learningRate: 0.01, seed: 7 }',
      gates: '  agreement.top1: ">= 0.3"\n  size.ratio: "<= 0.5"',
    }),
  );
  const config = await loadConfig(path.join(dir, 'distill-gate.yml'));
  const lines: string[] = [];
  const out = path.join(dir, 'out');
  const result = await runPipeline(config, {
    outDir: out,
    searchFrom: [dir],
    clock: control?.clock,
    log: (line) => {
      lines.push(line);
      if (control) onLog?.(line, control);
    },
  });
  return { result, out, log: lines.join('\n') };
}

/** A RunClock the test drives by hand. */
function manualClock() {
  const stop = new AbortController();
  const hurry = new AbortController();
  const force = new AbortController();
  const clock: RunClock = { stop: stop.signal, hurry: hurry.signal, force: force.signal, measureMs: () => Infinity };
  return {
    clock,
    budgetStop: (why: string) => stop.abort(new Error(why)),
    force: (why: string) => force.abort(new Error(why)),
  };
}

describe('the sweep (students:)', () => {
  it('trains every candidate from one teacher pass, measures each, and reports the front', async () => {
    vi.mocked(teacherLogits).mockClear();
    await tf.ready();
    const tensorsBefore = tf.memory().numTensors;
    const { result, out, log } = await sweepRun();
    // One pass over the eval split and one over the training split, for four students.
    expect(vi.mocked(teacherLogits)).toHaveBeenCalledTimes(2);
    // Every candidate's model was disposed with the session.
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    const sweep = result.report.sweep!;
    expect(sweep.candidates.map((c) => [c.name, c.status, c.configured ?? false])).toEqual([
      ['student', 'measured', true],
      ['w2', 'measured', false],
      ['w16', 'measured', false],
      ['teacher-sized', 'measured', false],
    ]);
    for (const c of sweep.candidates) {
      expect(c.metrics['size.studentBytes']).toBeGreaterThan(0);
      expect(c.metrics['speed.studentMs']).toBeGreaterThan(0);
      expect(c.metrics['agreement.top1']).toBeGreaterThanOrEqual(0);
      // Only the metrics of the stages a candidate is measured in.
      expect(c.metrics.kl).toBeGreaterThanOrEqual(0);
      expect(Object.keys(c.metrics).filter((m) => /^(quantized|teacherDiff|export)\.|vsBaseline/.test(m))).toEqual([]);
    }
    const byName = Object.fromEntries(sweep.candidates.map((c) => [c.name, c]));
    // The configured student's figures are its run's own.
    expect(byName.student.metrics['agreement.top1']).toBe(result.report.metrics['agreement.top1']);
    expect(byName.w2.metrics['size.studentParams']).toBe(64 * 2 + 2 + 2 * 10 + 10);
    // The teacher-sized candidate is judged on the gates: its size ratio is 1, above 0.5.
    expect(byName['teacher-sized'].passesGates).toBe(false);
    expect(byName['teacher-sized'].failingGates).toEqual(['size.ratio (<= 0.5)']);
    // The smallest is on the front whatever it agrees; the front lists names smallest first.
    expect(sweep.front[0]).toBe('w2');
    expect(byName.w2.onFront).toBe(true);
    // The gates judge the configured student alone: a candidate's failing size does not fail the run.
    expect(result.report.gates.find((g) => g.metric === 'size.ratio')?.status).toBe('pass');
    expect(result.report.gates.some((g) => /w2|w16|teacher-sized/.test(g.metric))).toBe(false);
    expect(log).toMatch(/sweep: candidate 3\/3 "teacher-sized"/);
    // report.json on disk reads back through the schema with the sweep intact.
    const read = await readReport(path.join(out, 'report.json'));
    expect(read.sweep).toEqual(sweep);
    const md = await readFile(path.join(out, 'report.md'), 'utf8');
    expect(md).toContain('### Sweep: size against agreement');
    expect(md).toMatch(/\| w16 +\|/);
    expect(md).toContain('xychart-beta');
  });

  it('a budget that runs out mid-sweep reports the candidates left as not run, and the run as the student left it', async () => {
    const { result, out } = await sweepRun(manualClock(), (line, control) => {
      if (line.startsWith('sweep: candidate 2/3')) control.budgetStop('the time budget of 1 min was nearly spent');
    });
    const sweep = result.report.sweep!;
    expect(sweep.candidates.map((c) => [c.name, c.status])).toEqual([
      ['student', 'measured'],
      ['w2', 'measured'],
      ['w16', 'not run'],
      ['teacher-sized', 'not run'],
    ]);
    expect(sweep.candidates[2].reason).toMatch(
      /^its training stopped after 0 of 2 epochs: .*the time budget of 1 min was nearly spent/,
    );
    expect(sweep.candidates[3].reason).toBe('the sweep stopped before it: the time budget of 1 min was nearly spent');
    // The configured student was measured and judged before the sweep: the run is complete.
    expect(result.report.status).toBe('complete');
    expect(result.cutShort).toBeUndefined();
    const md = await readFile(path.join(out, 'report.md'), 'utf8');
    expect(md).toContain('- teacher-sized: not run: the sweep stopped before it');
  });

  it('a forced end mid-sweep writes the cut-short report with the sweep as far as it got', async () => {
    const { result, out } = await sweepRun(manualClock(), (line, control) => {
      if (line.startsWith('sweep: candidate 2/3')) control.force('received SIGTERM again');
    });
    expect(result.cutShort).toBe(true);
    const written = JSON.parse(await readFile(path.join(out, 'report.json'), 'utf8'));
    expect(written.reasons).toEqual(['The run was cut short while sweeping the candidates: received SIGTERM again.']);
    expect(written.sweep.candidates.map((c: { name: string; status: string }) => [c.name, c.status])).toEqual([
      ['student', 'measured'],
      ['w2', 'measured'],
      ['w16', 'not run'],
      ['teacher-sized', 'not run'],
    ]);
    // The abandoned candidate's training ends at its next batch; let it.
    await new Promise((resolve) => setTimeout(resolve, 500));
  });
});
