import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.js';
import { InputError } from '../src/errors.js';
import * as tf from '@tensorflow/tfjs';
import { runPipeline } from '../src/pipeline.js';
import type { RunClock } from '../src/run-control.js';
import { exampleWorkspace, quickConfig, slowTeacherWorkspace } from './helpers.js';

async function run(top: string) {
  const dir = await exampleWorkspace(
    quickConfig({ top, distill: '{ epochs: 1, batchSize: 64, seed: 3 }' }).replace(
      'measure: { warmup: 1, rounds: 3, throughputBatch: 64 }\n',
      '',
    ),
  );
  const config = await loadConfig(path.join(dir, 'distill-gate.yml'));
  const lines: string[] = [];
  const result = await runPipeline(config, {
    outDir: path.join(dir, 'out'),
    searchFrom: [dir],
    log: (line) => lines.push(line),
  });
  return { result, log: lines.join('\n') };
}

describe('measure.backend', () => {
  it('times teacher and student on the named backend while the rest of the run stays on its own', async () => {
    const { result, log } = await run(
      'measure: { warmup: 1, rounds: 3, throughputBatch: 64, backend: cpu }\nbackend: wasm',
    );
    expect(result.report.backend).toBe('wasm');
    expect(result.report.speedBackend).toBe('cpu');
    // Resolving cpu for timing did not move the rest of the run there: it ends on wasm, and the
    // environment later runs compare timings with is the one speed was timed on.
    expect(tf.getBackend()).toBe('wasm');
    expect(result.report.environment.backend).toBe('cpu');
    // The relaxed SIMD kernel: Node 22 and later validate it, Node 20's test processes get the flag (vitest.config.ts).
    // distill.threads unset: auto, one thread for this small student (kernel-threads.test.ts).
    const threads = 1;
    expect(log).toMatch(
      new RegExp(`training: kernel step \\(relaxed-simd module, ${threads} threads?\\) on wasm; inference on wasm`),
    );
    expect(result.report.training.step).toEqual({
      kind: 'kernel',
      backend: 'wasm',
      kernelModule: 'relaxed-simd',
      threads,
    });
    expect(log).toMatch(/speed: timed on cpu \(measure\.backend\)/);
    expect(result.report.metrics['speed.studentMs']).toBeGreaterThan(0);
  });

  it("is left out of the report when it is the run's own backend", async () => {
    const { result, log } = await run(
      'measure: { warmup: 1, rounds: 3, throughputBatch: 64, backend: wasm }\nbackend: wasm',
    );
    expect(result.report.speedBackend).toBeUndefined();
    expect(log).not.toMatch(/speed: timed on/);
  });

  it('fails before training, naming measure.backend, when that backend is not installed', async () => {
    const error = await run(
      'measure: { warmup: 1, rounds: 3, throughputBatch: 64, backend: tensorflow }\nbackend: wasm',
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).culprit).toBe('measure.backend');
    expect((error as Error).message).toMatch(/@tensorflow\/tfjs-node/);
  });
});

describe('DISTILL_GATE_KERNEL', () => {
  const withKernel = async <T>(value: string, body: () => Promise<T>): Promise<T> => {
    const before = process.env.DISTILL_GATE_KERNEL;
    process.env.DISTILL_GATE_KERNEL = value;
    try {
      return await body();
    } finally {
      if (before === undefined) delete process.env.DISTILL_GATE_KERNEL;
      else process.env.DISTILL_GATE_KERNEL = before;
    }
  };

  it('trains on the SIMD128 kernel when set to simd128, and the report says so', async () => {
    const { result, log } = await withKernel('simd128', () => run('backend: wasm'));
    expect(log).toMatch(/training: kernel step \(simd128 module, \d+ threads?\) on wasm/);
    expect(result.report.training.step?.kernelModule).toBe('simd128');
  });

  it('fails before any training, naming the variable, on a value it does not know', async () => {
    const error = await withKernel('fma', () => run('backend: wasm')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).culprit).toBe('DISTILL_GATE_KERNEL');
    expect((error as Error).message).toMatch(/"fma" is not a kernel module/);
  });
});

describe('a student TF.js cannot train', () => {
  it('exits 2 naming student.layers before any training, not as an internal error an hour in', async () => {
    const dir = await exampleWorkspace(
      quickConfig({
        student:
          '  layers:\n    - { type: reshape, targetShape: [8, 8, 1] }\n    - { type: conv2d, filters: 2, kernelSize: 3, dilationRate: 2 }\n    - { type: flatten }\n    - { type: dense, units: 10 }',
      }),
    );
    const config = await loadConfig(path.join(dir, 'distill-gate.yml'));
    const error = await runPipeline(config, { outDir: path.join(dir, 'out'), searchFrom: [dir] }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).culprit).toBe(`${path.join(dir, 'distill-gate.yml')}:5:5 student.layers`);
    expect((error as Error).message).toMatch(/cannot train this student on any backend \(.*dilation/);
  });
});

/** A RunClock a test drives by hand; `measureMs` is what the measure stage is told it has. */
function manualClock(measureMs = Infinity) {
  const stop = new AbortController();
  const hurry = new AbortController();
  const force = new AbortController();
  const clock: RunClock = { stop: stop.signal, hurry: hurry.signal, force: force.signal, measureMs: () => measureMs };
  return {
    clock,
    cancel: (why: string) => (hurry.abort(new Error(why)), stop.abort(new Error(why))),
    budgetStop: (why: string) => stop.abort(new Error(why)),
    force: (why: string) => force.abort(new Error(why)),
  };
}

describe('the run clock', () => {
  const noLabels = '  train: { x: data/train_x.npy }\n  eval:  { x: data/eval_x.npy }';

  it("a stop during the teacher's pass ends it, and the report says how far it got", async () => {
    const dir = await slowTeacherWorkspace(
      quickConfig({ data: noLabels, gates: '  agreement.top1: ">= 0.5"\n  size.ratio: "<= 10"' }),
      20_000,
    );
    const config = await loadConfig(path.join(dir, 'distill-gate.yml'));
    const control = manualClock();
    const lines: string[] = [];
    const result = await runPipeline(config, {
      outDir: path.join(dir, 'out'),
      searchFrom: [dir],
      clock: control.clock,
      log: (line) => {
        lines.push(line);
        if (line.startsWith("teacher's pass:")) control.budgetStop('the time budget of 1 min was nearly spent');
      },
    });
    const { report } = result;
    expect(report.status).toBe('incomplete');
    expect(report.training.epochs).toBe(0);
    expect(report.reasons.join(' ')).toMatch(
      /Training stopped after 0 of 3 epochs: the teacher's pass stopped after 0 of 400 eval rows, before training began: the time budget of 1 min was nearly spent/,
    );
    // No agreement on part of the eval split: its gate fails as not measured, the size gate still passes.
    expect(report.metrics['agreement.top1']).toBeUndefined();
    expect(report.gates.map((g) => [g.metric, g.status, g.note ?? ''])).toEqual([
      ['agreement.top1', 'fail', 'metric not measured'],
      ['size.ratio', 'pass', ''],
    ]);
    expect(report.verdict).toBe('fail');
  });

  it('a cancel after the last epoch, while measuring, still fails the run as incomplete', async () => {
    const dir = await exampleWorkspace(quickConfig({ gates: '  size.ratio: "<= 10"' }));
    const config = await loadConfig(path.join(dir, 'distill-gate.yml'));
    const control = manualClock();
    const { report } = await runPipeline(config, {
      outDir: path.join(dir, 'out'),
      searchFrom: [dir],
      clock: control.clock,
      log: (line) => {
        if (line.startsWith('epoch 3/3')) control.cancel('received SIGINT');
      },
    });
    expect([report.training.epochs, report.verdict, report.status]).toEqual([3, 'fail', 'incomplete']);
    expect(report.reasons).toContain(
      'The run was cancelled while measuring (received SIGINT): its metrics are what the few seconds left gave.',
    );
  });

  it('a forced end writes the report of what exists at once: incomplete, failed, sizes measured, no student', async () => {
    const dir = await exampleWorkspace(quickConfig({ distill: '{ epochs: 100000, batchSize: 64, seed: 7 }' }));
    const config = await loadConfig(path.join(dir, 'distill-gate.yml'));
    const control = manualClock();
    const out = path.join(dir, 'out');
    const result = await runPipeline(config, {
      outDir: out,
      searchFrom: [dir],
      clock: control.clock,
      log: (line) => {
        if (line.startsWith('epoch 2/')) control.force('received SIGTERM again');
      },
    });
    expect(result.cutShort).toBe(true);
    expect(result.studentPath).toBe('');
    const written = JSON.parse(await readFile(path.join(out, 'report.json'), 'utf8'));
    expect(written).toEqual(result.report);
    expect([written.status, written.verdict]).toEqual(['incomplete', 'fail']);
    expect(written.reasons).toEqual(['The run was cut short while distilling: received SIGTERM again.']);
    expect(written.metrics['size.ratio']).toBeGreaterThan(0);
    expect(written.gates.map((g: { metric: string; status: string }) => [g.metric, g.status])).toEqual([
      ['agreement.top1', 'fail'],
      ['size.ratio', 'pass'],
    ]);
    expect(existsSync(path.join(out, 'student'))).toBe(false);
    expect(await readFile(path.join(out, 'report.md'), 'utf8')).toContain('cut short');
    // The abandoned stages stop at the next batch; let them, so that they do not outlive the test.
    control.cancel('test over');
    await new Promise((resolve) => setTimeout(resolve, 200));
  });
});
