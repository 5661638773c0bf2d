import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, open, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { main } from '../../src/cli/main.js';
import { loadConfig } from '../../src/config/load.js';
import { readModelArtifacts } from '../../src/models/artifacts.js';
import type { Report } from '../../src/report/report.js';
import { captureIo, EXAMPLE, exampleWorkspace, quickConfig, slowTeacherWorkspace } from '../helpers.js';
import { withoutOnnxRuntime } from '../onnx-runtime.js';
import { sampleReport } from '../sample-report.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

async function runCli(dir: string, ...extra: string[]) {
  const capture = captureIo();
  const out = path.join(dir, 'out');
  const code = await main(['run', '--config', path.join(dir, 'distill-gate.yml'), '--out', out, ...extra], capture.io);
  return { code, out, stdout: capture.stdout(), stderr: capture.stderr() };
}

async function reportOf(out: string): Promise<Report> {
  return JSON.parse(await readFile(path.join(out, 'report.json'), 'utf8')) as Report;
}

let quickCpu: ReturnType<typeof runQuickCpu> | undefined;
async function runQuickCpu() {
  const dir = await exampleWorkspace(quickConfig());
  const cache = path.join(dir, 'cache');
  const first = await runCli(dir, '--backend', 'cpu', '--cache-dir', cache);
  return {
    dir,
    cache,
    first,
    a: await reportOf(first.out),
    cachedFiles: (await readdir(cache)).filter((f) => f.endsWith('.f32')),
  };
}
/**
 * The quick config's run on cpu with an empty soft-target cache, shared: the cache case runs on
 * from it, and the streaming case compares its student with this one, loaded whole. Its report and
 * cache listing are read as the run left them.
 */
const quickCpuRun = () => (quickCpu ??= runQuickCpu());

describe('distill-gate run (end to end on the bundled example)', () => {
  it('distils, measures, passes its gates and writes report.json, report.md and a loadable student', async () => {
    const dir = await exampleWorkspace(quickConfig());
    const { code, out, stdout, stderr } = await runCli(dir);
    expect(stderr).toMatch(/backend: using (wasm|cpu)/);
    expect(stderr).toMatch(/epoch 3\/3 {2}loss \d+\.\d+ {2}agreement \d+\.\d%/);
    expect(code).toBe(0);
    const report = await reportOf(out);
    expect(report.schemaVersion).toBe(1);
    expect(report.verdict).toBe('pass');
    expect(report.training.epochs).toBe(3);
    expect(report.training.loss).toHaveLength(3);
    for (const metric of [
      'size.teacherBytes',
      'size.studentBytes',
      'size.teacherParams',
      'size.studentParams',
      'size.ratio',
      'speed.teacherMs',
      'speed.studentMs',
      'speed.speedup',
      'speed.studentThroughput',
      'agreement.top1',
      'agreement.top5',
      'kl',
      'accuracy.teacher',
      'accuracy.student',
    ]) {
      expect(Number.isFinite(report.metrics[metric]), metric).toBe(true);
    }
    expect(report.metrics['size.studentParams']).toBe(64 * 32 + 32 + 32 * 10 + 10);
    expect(report.metrics['size.ratio']).toBeCloseTo(
      report.metrics['size.studentBytes'] / report.metrics['size.teacherBytes'],
      12,
    );
    expect(report.teacher.output).toBe('probabilities');
    expect(report.gates.map((g) => [g.metric, g.op, g.threshold, g.pass])).toEqual([
      ['agreement.top1', '>=', 0.5, true],
      ['size.ratio', '<=', 0.1, true],
      // The default chance-level gate: the config gates no kappa.
      ['agreement.kappa', '>=', 0.2, true],
    ]);
    expect(report.environment.node).toBe(process.version);
    expect(stdout).toContain('## ✅ distill-gate: pass');
    expect(await readFile(path.join(out, 'report.md'), 'utf8')).toBe(stdout);

    const student = await readModelArtifacts(path.join(out, 'student/model.json'));
    const model = await tf.loadLayersModel(tf.io.fromMemory(student.artifacts));
    expect(model.countParams()).toBe(report.metrics['size.studentParams']);
    expect(student.weightBytes).toBe(report.metrics['size.studentBytes']);
    model.dispose();
  });

  it('gives identical metrics (timings aside) for the same config and seed on cpu', async () => {
    const dir = await exampleWorkspace(
      quickConfig({
        student:
          '  layers:\n    - { type: dense, units: 16, activation: relu }\n    - { type: dropout, rate: 0.3 }\n    - { type: dense, units: 10 }',
      }),
    );
    const first = await runCli(dir, '--backend', 'cpu', '--quiet');
    const a = await reportOf(first.out);
    const second = await runCli(dir, '--backend', 'cpu', '--quiet');
    const b = await reportOf(second.out);
    const withoutTimings = (r: Report) =>
      Object.fromEntries(Object.entries(r.metrics).filter(([k]) => !k.startsWith('speed.')));
    expect(withoutTimings(a)).toEqual(withoutTimings(b));
    expect(a.training.loss).toEqual(b.training.loss);
    expect(a.backend).toBe('cpu');
  });

  it('exits 1 with the failing gate named when a gate fails', async () => {
    const dir = await exampleWorkspace(
      quickConfig({ gates: '  size.ratio: "<= 0.0001"\n  kl: { max: 100, level: warn }' }),
    );
    const { code, out, stdout } = await runCli(dir);
    expect(code).toBe(1);
    const report = await reportOf(out);
    expect(report.verdict).toBe('fail');
    expect(report.gates.map((g) => g.status)).toEqual(['fail', 'pass', 'pass']);
    expect(stdout).toContain('**Failing gates:** size.ratio (<= 0.0001)');
  });

  it('trains a conv student with the WebAssembly kernel on wasm, and one the kernel refuses on cpu with inference still on wasm', async () => {
    const conv = (extra: string) =>
      quickConfig({
        student: `  layers:\n    - { type: reshape, targetShape: [8, 8, 1] }\n    - { type: conv2d, filters: 2, kernelSize: 3, activation: relu${extra} }\n    - { type: maxPooling2d, poolSize: 2 }\n    - { type: flatten }\n    - { type: dense, units: 10 }`,
        distill: '{ epochs: 1, batchSize: 64, seed: 1 }',
        // About the training path, not the student: one epoch may leave it near chance.
        gates: '  agreement.kappa: ">= -1"',
      });
    const fast = await runCli(await exampleWorkspace(conv('')));
    expect(fast.code).toBe(0);
    // The relaxed SIMD build: this test process validates it (vitest.config.ts gives Node 20 the flag).
    // distill.threads unset: auto, one thread for this small a step (kernel-threads.test.ts).
    const threads = 1;
    expect(fast.stderr).toMatch(
      new RegExp(`training: kernel step \\(relaxed-simd module, ${threads} threads?\\) on wasm; inference on wasm`),
    );
    const fastReport = await reportOf(fast.out);
    expect([fastReport.backend, fastReport.training.step]).toEqual([
      'wasm',
      { kind: 'kernel', backend: 'wasm', kernelModule: 'relaxed-simd', threads },
    ]);

    // elu is not among the kernel's activations: autodiff, whose conv gradients wasm lacks.
    const slow = await runCli(await exampleWorkspace(conv('').replace('activation: relu', 'activation: elu')));
    expect(slow.stderr).toMatch(
      /backend: wasm: a training step of this student needs kernels the backend lacks \(.*Conv2DBackpropFilter.*\); training on cpu, inference stays on wasm/,
    );
    expect(slow.stderr).toMatch(
      /training: autodiff step on cpu \(not the WebAssembly kernel: Conv2D layer .*activation "elu"/,
    );
    expect(slow.code).toBe(0);
    const slowReport = await reportOf(slow.out);
    expect(slowReport.backend).toBe('wasm');
    expect(slowReport.training.step).toMatchObject({ kind: 'autodiff', backend: 'cpu' });
    expect(slowReport.environment.backend).toBe('wasm');
  });

  it('trains a student given as a LayersModel model.json from its own weights', async () => {
    const dir = await exampleWorkspace(quickConfig());
    const first = await runCli(dir, '--quiet');
    expect(first.code).toBe(0);
    await writeFile(
      path.join(dir, 'distill-gate.yml'),
      quickConfig({ student: `  model: ${path.join(first.out, 'student/model.json')}` }),
    );
    const second = await runCli(dir, '--quiet');
    expect(second.code).toBe(0);
    const report = await reportOf(second.out);
    expect(report.student.from).toContain('student/model.json');
    // Starting from trained weights, agreement is already where the first run ended.
    expect(report.metrics['agreement.top1']).toBeGreaterThanOrEqual(
      (await reportOf(first.out)).metrics['agreement.top1'] - 0.05,
    );
  });

  it('stops training within a time budget, still measures and reports, marked incomplete', async () => {
    // Student size alone is gated, so the verdict is known before training: pass.
    const dir = await exampleWorkspace(
      quickConfig({ distill: '{ epochs: 100000, batchSize: 64, seed: 7 }', gates: '  size.ratio: "<= 0.1"' }),
    );
    const { code, out, stdout } = await runCli(dir, '--budget', '0.05');
    const report = await reportOf(out);
    expect(report.status).toBe('incomplete');
    expect(report.training.epochs).toBeGreaterThan(0);
    expect(report.training.epochs).toBeLessThan(100000);
    expect(report.reasons.join(' ')).toMatch(
      /Training stopped after \d+ of 100000 epochs: the time budget of 0\.05 min was nearly spent/,
    );
    // A budget stop is judged by the gates on what was reached, not failed outright.
    expect(report.verdict).toBe('pass');
    expect(code).toBe(0);
    expect(stdout).toContain('(incomplete)');
  });

  it("a budget bounds the whole run: a teacher's pass longer than the budget stops, and the run still ends in time with its report", async () => {
    // The teacher's pass alone takes well over the budget of 12 s here.
    const data = '  train: { x: data/train_x.npy }\n  eval:  { x: data/eval_x.npy }';
    // No training happens: the untrained student is at chance, which the default gate would fail.
    const dir = await slowTeacherWorkspace(
      quickConfig({ data, gates: '  size.ratio: "<= 10"\n  agreement.kappa: ">= -1"' }),
      60_000,
      2048,
    );
    const { code, out, stderr } = await runCli(dir, '--budget', '0.2');
    const report = await reportOf(out);
    expect(report.status).toBe('incomplete');
    expect(report.training.epochs).toBe(0);
    expect(report.reasons.join(' ')).toMatch(
      /the teacher's pass stopped after \d+ of \d+ (eval|training) rows, before training began: the time budget of 0\.2 min was nearly spent/,
    );
    // It ended by itself inside the budget: not cut short by the budget's end.
    expect(report.reasons.join(' ')).not.toMatch(/cut short/);
    expect(stderr).toMatch(/teacher's pass: 400 eval and 60000 training rows/);
    // A budget stop is judged on what was reached: the size gate holds.
    expect([report.verdict, code]).toEqual(['pass', 0]);
  });

  it('--require-gpu on a machine without a GPU backend exits 1 before the teacher runs, saying why', async () => {
    const dir = await exampleWorkspace(quickConfig());
    const { code, out, stderr } = await runCli(dir, '--require-gpu');
    const report = await reportOf(out);
    expect([code, report.verdict, report.status, report.training.epochs]).toEqual([1, 'fail', 'incomplete', 0]);
    expect(report.reasons[0]).toMatch(/require-gpu is set, but the run resolved (wasm|cpu)/);
    expect(stderr).not.toMatch(/teacher's pass:/);
  });

  it('on SIGTERM mid-training writes a partial report and exits 1', async () => {
    const dir = await exampleWorkspace(quickConfig({ distill: '{ epochs: 100000, batchSize: 64, seed: 7 }' }));
    const out = path.join(dir, 'out');
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        path.join(ROOT, 'src/cli/index.ts'),
        'run',
        '--config',
        path.join(dir, 'distill-gate.yml'),
        '--out',
        out,
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
      if (/epoch 2\//.test(stderr) && !child.killed) child.kill('SIGTERM');
    });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(1);
    const report = await reportOf(out);
    expect(report.status).toBe('incomplete');
    expect(report.verdict).toBe('fail');
    expect(report.reasons.join(' ')).toMatch(/Training stopped after \d+ of 100000 epochs: received SIGTERM/);
    expect(existsSync(path.join(out, 'student/model.json'))).toBe(true);
  });

  it('an output folder that cannot be written: exit 2 naming it, the report still on stdout', async () => {
    const dir = await exampleWorkspace(quickConfig());
    const capture = captureIo();
    const code = await main(
      ['run', '--config', path.join(dir, 'distill-gate.yml'), '--out', '/dev/null/report', '--quiet'],
      capture.io,
    );
    expect(code).toBe(2);
    expect(capture.stderr()).toMatch(
      /^distill-gate: error: \/dev\/null\/report: cannot write the report and student there \(ENOTDIR\); choose a writable output folder/,
    );
    expect(capture.stdout()).toContain('## ✅ distill-gate: pass');
  });

  it('judges relative gates against a baseline run, timing both students together for latency', async () => {
    const gates =
      '  agreement.top1: { min: 0.5, maxDrop: 0.05 }\n  speed.studentMs: { maxIncrease: "50%" }\n  size.studentBytes: { maxIncrease: "5%", level: warn }';
    const dir = await exampleWorkspace(
      quickConfig({ gates }).replace(
        'measure: { warmup: 1, rounds: 3, throughputBatch: 64 }',
        'measure: { warmup: 1, rounds: 3, throughputBatch: 64, speedBudgetSeconds: 3 }',
      ),
    );
    const first = await runCli(dir, '--quiet');
    const firstReport = await reportOf(first.out);
    // The second run writes to the same folder: keep the first report for compare below.
    const firstFile = path.join(dir, 'first-report.json');
    await writeFile(firstFile, JSON.stringify(firstReport));
    expect(firstReport.gates.filter((g) => g.op !== '>=').map((g) => g.status)).toEqual([
      'skipped',
      'skipped',
      'skipped',
    ]);
    expect(first.code).toBe(0);

    await writeFile(
      path.join(dir, 'distill-gate.yml'),
      (await readFile(path.join(dir, 'distill-gate.yml'), 'utf8')).replace('units: 32', 'units: 48'),
    );
    const second = await runCli(dir, '--baseline', path.join(first.out, 'report.json'));
    const report = await reportOf(second.out);
    const byOp = Object.fromEntries(report.gates.map((g) => [`${g.metric} ${g.op}`, g]));
    expect(byOp['agreement.top1 maxDrop'].baseline).toBe(firstReport.metrics['agreement.top1']);
    expect(byOp['size.studentBytes maxIncrease'].status).toBe('warn');
    const speed = byOp['speed.studentMs maxIncrease'];
    expect(speed.note).toMatch(
      /timed against the baseline's student in this run: ratio [\d.]+, 99\.9% CI \[[\d.]+, [\d.]+\] over \d+ paired rounds; allowed 1\.500/,
    );
    expect(report.speedComparison!.rounds).toBeGreaterThanOrEqual(20);
    expect(report.metrics['speed.vsBaseline']).toBeCloseTo(report.speedComparison!.ratio, 12);
    expect(report.baseline!.student).toBe(path.join(first.out, 'student/model.json'));
    expect(second.stdout).toMatch(/\|\s*Baseline \|\s+Δ \|/);
    expect(second.stdout).toMatch(/Latency against the baseline's student, timed together in this run/);

    const compare = captureIo();
    // A run compared with itself passes its relative gates; 32 -> 48 units fails a 1% size limit.
    expect(await main(['compare', firstFile, firstFile], compare.io)).toBe(0);
    expect(compare.stdout()).toMatch(/\|\s*Baseline \|/);
    await writeFile(path.join(dir, 'strict.yml'), quickConfig({ gates: '  size.studentBytes: { maxIncrease: "1%" }' }));
    const strict = captureIo();
    expect(
      await main(
        ['compare', path.join(second.out, 'report.json'), firstFile, '--config', path.join(dir, 'strict.yml')],
        strict.io,
      ),
    ).toBe(1);
    expect(strict.stdout()).toMatch(/\*\*Failing gates:\*\* size\.studentBytes \(increase <= 1%\)/);
  });

  it("caches the teacher's soft targets by content: a hit skips the teacher and gives the same student", async () => {
    const { dir, cache, first, a, cachedFiles } = await quickCpuRun();
    expect(first.stderr).not.toContain('cache hit');
    expect(a.training.softTargets).toBe('computed');
    expect(cachedFiles).toHaveLength(2);

    const second = await runCli(dir, '--backend', 'cpu', '--cache-dir', cache);
    expect(second.stderr).toMatch(
      /soft targets: cache hit \(.*soft-targets-[0-9a-f]{32}\.f32\), the teacher is skipped/,
    );
    const b = await reportOf(second.out);
    expect(b.training.softTargets).toBe('cache');
    expect(b.training.loss).toEqual(a.training.loss);
    expect(b.metrics['agreement.top1']).toBe(a.metrics['agreement.top1']);

    // The key names what computed the logits: the example's MLP teacher runs on TF.js (a dense
    // stack stays off the kernel), so another backend is another key.
    expect(a.training.teacherPass).toBe('cpu');
    const third = await runCli(dir, '--backend', 'wasm', '--cache-dir', cache);
    expect((await reportOf(third.out)).training.softTargets).toBe('computed');
    expect((await readdir(cache)).filter((f) => f.endsWith('.f32'))).toHaveLength(4);
  });

  it('streams .npy splits above data.streamAboveMB and reaches the same student as loading them whole', async () => {
    const whole = (await quickCpuRun()).a;
    const dir = await exampleWorkspace(
      quickConfig({
        data: '  train: { x: data/train_x.npy, y: data/train_y.npy }\n  eval:  { x: data/eval_x.npy,  y: data/eval_y.npy }\n  streamAboveMB: 0',
      }),
    );
    const run = await runCli(dir, '--backend', 'cpu');
    expect(run.stderr).toMatch(/data: streaming .*train_x\.npy in chunks of \d+ rows/);
    const streamed = await reportOf(run.out);
    // One chunk holds this small split, so even the shuffling is the same.
    expect(streamed.training.loss).toEqual(whole.training.loss);
    expect(streamed.metrics['agreement.top1']).toBe(whole.metrics['agreement.top1']);
  });

  it('documents every flag in --help', async () => {
    const capture = captureIo();
    expect(await main(['run', '--help'], capture.io)).toBe(0);
    for (const flag of ['--config', '--out', '--backend', '--baseline', '--cache-dir', '--budget', '--quiet'])
      expect(capture.stdout()).toContain(flag);
    expect(await main(['--help'], capture.io)).toBe(0);
    expect(capture.stdout()).toMatch(/run[\s\S]*compare[\s\S]*doctor/);
  });

  it.skipIf(withoutOnnxRuntime)(
    "distils from the example's teacher as ONNX: its pass and its timing in onnxruntime-node, named in the report",
    async () => {
      // The committed ONNX variant is the example's config with the ONNX teacher, and its speed gated
      // at batch size (onnxruntime runs the teacher at batch 1 in about TF.js's cost of any call).
      const variant = await loadConfig(path.join(EXAMPLE, 'distill-gate-onnx.yml'));
      const original = await loadConfig(path.join(EXAMPLE, 'distill-gate.yml'));
      const { 'speed.speedup': latencyGate, ...otherGates } = original.gates;
      expect(latencyGate).toBe('>= 1.5');
      expect({ ...variant, teacher: original.teacher, file: original.file }).toEqual({
        ...original,
        gates: { ...otherGates, 'speed.throughputSpeedup': '>= 1.5' },
      });
      expect(path.basename(variant.teacher)).toBe('teacher.onnx');

      const dir = await exampleWorkspace(
        quickConfig().replace('teacher: models/teacher/model.json', 'teacher: models/teacher.onnx'),
      );
      const cache = path.join(dir, 'cache');
      const { code, out, stdout, stderr } = await runCli(dir, '--cache-dir', cache);
      expect(stderr).toMatch(/teacher: runs in onnxruntime-node \d+\.\d+\.\d+ \(cpu, \d+ threads?\)/);
      expect(stderr).toMatch(/teacher's pass: 400 eval and 1200 training rows on onnxruntime-node \d+\.\d+\.\d+ \(cpu/);
      expect(code).toBe(0);
      const report = await reportOf(out);
      expect(report.teacher).toMatchObject({ format: 'onnx', output: 'probabilities', params: 216586, bytes: 866344 });
      expect(report.teacher.runtime).toMatch(/^onnxruntime-node \d+\.\d+\.\d+ \(cpu, \d+ threads?\)$/);
      expect(report.metrics['agreement.top1']).toBeGreaterThan(0.5);
      expect(report.metrics['speed.teacherMs']).toBeGreaterThan(0);
      expect(stdout).toMatch(/The teacher ran in onnxruntime-node .*, the student in TF\.js on (wasm|cpu)\./);
      // The second run finds the ONNX teacher's soft targets in the cache.
      const again = await runCli(dir, '--cache-dir', cache, '--quiet');
      expect((await reportOf(again.out)).training.softTargets).toBe('cache');
    },
  );

  it.skipIf(withoutOnnxRuntime)(
    'exits 2 naming the culprit for a truncated ONNX teacher, and for a student narrower than its output',
    async () => {
      const dir = await exampleWorkspace(
        quickConfig().replace('teacher: models/teacher/model.json', 'teacher: models/teacher.onnx'),
      );
      const teacher = path.join(dir, 'models/teacher.onnx');
      const bytes = await readFile(teacher);
      await writeFile(teacher, bytes.subarray(0, 1000));
      const truncated = await runCli(dir, '--quiet');
      expect(truncated.code).toBe(2);
      expect(truncated.stderr).toMatch(
        /^distill-gate: error: .*models\/teacher\.onnx: is truncated or corrupt: field 7 at byte \d+ declares \d+ bytes/,
      );

      await writeFile(teacher, bytes);
      await writeFile(
        path.join(dir, 'distill-gate.yml'),
        quickConfig({ student: '  layers:\n    - { type: dense, units: 7 }' }).replace(
          'teacher: models/teacher/model.json',
          'teacher: models/teacher.onnx',
        ),
      );
      const narrow = await runCli(dir, '--quiet');
      expect(narrow.code).toBe(2);
      expect(narrow.stderr).toMatch(
        /student\.layers: the student has 7 outputs but the teacher \(.*teacher\.onnx\) has 10; the last layer needs units: 10/,
      );
    },
  );

  it('exits 2 with the install command when the teacher is ONNX and onnxruntime-node is not installed', async () => {
    const dir = await exampleWorkspace(
      quickConfig().replace('teacher: models/teacher/model.json', 'teacher: models/teacher.onnx'),
    );
    // Packages are looked up from the working directory and the config's folder: neither has it.
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      const { code, stderr } = await runCli(dir, '--quiet');
      expect(code).toBe(2);
      expect(stderr).toContain(
        `${path.join(dir, 'models/teacher.onnx')}: is an ONNX model, which runs in onnxruntime-node; it is not installed in`,
      );
      expect(stderr).toContain('`ONNXRUNTIME_NODE_INSTALL=skip npm install --no-save onnxruntime-node@1.30.0` (CPU)');
    } finally {
      process.chdir(cwd);
    }
  });

  it('exits 2 on a usage error', async () => {
    const capture = captureIo();
    expect(await main(['run', '--bogus'], capture.io)).toBe(2);
    expect(capture.stderr()).toMatch(/unknown option '--bogus'/);
    expect(await main(['run', '--backend', 'gpu'], capture.io)).toBe(2);
    expect(capture.stderr()).toMatch(/Allowed choices are auto, tensorflow-gpu, webgpu, tensorflow, wasm, cpu/);
  });
});

describe('distill-gate refuses bad flags and output paths with exit 2 naming them', () => {
  it('history -n takes a whole number of runs from 1', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-history-'));
    const file = path.join(dir, 'history.json');
    await writeFile(file, '[]');
    for (const runs of ['abc', '-5', '0', '2.5', '0x10', '']) {
      const capture = captureIo();
      expect(await main(['history', file, '-n', runs], capture.io), runs).toBe(2);
      expect(capture.stderr()).toMatch(
        /option '-n, --last <runs>' argument '.*' is invalid\. give a whole number of runs from 1/,
      );
      expect(capture.stdout()).toBe('');
    }
    const capture = captureIo();
    expect(await main(['history', file, '-n', '5'], capture.io)).toBe(0);
  });

  it('--budget takes plain decimal minutes: 0x10 or 1e3 is refused, not read as 16 or 1000', async () => {
    for (const budget of ['0x10', '1e3', '0b1']) {
      const capture = captureIo();
      expect(await main(['run', '--config', 'nowhere.yml', '--budget', budget], capture.io), budget).toBe(2);
      expect(capture.stderr()).toMatch(
        /option '--budget <minutes>' argument '.*' is invalid\. give the budget in plain decimal minutes/,
      );
    }
  });

  it('run --out naming a file: exit 2 saying it is a file, the report still on stdout', async () => {
    const dir = await exampleWorkspace(quickConfig());
    const file = path.join(dir, 'out');
    await writeFile(file, 'not a folder');
    const capture = captureIo();
    const code = await main(
      ['run', '--config', path.join(dir, 'distill-gate.yml'), '--out', file, '--quiet'],
      capture.io,
    );
    expect(code).toBe(2);
    expect(capture.stderr()).toBe(
      `distill-gate: error: ${file}: is a file, not a folder: name a folder for the output (it is made when missing), or remove the file.\n`,
    );
    expect(capture.stdout()).toContain('## ✅ distill-gate: pass');
    expect(await readFile(file, 'utf8')).toBe('not a folder');
  });

  it('never writes through a symbolic link in the output folder: a linked student/ or report.json is refused, links inside student/ are replaced', async () => {
    const dir = await exampleWorkspace(quickConfig());
    const out = path.join(dir, 'out');
    const elsewhere = path.join(dir, 'elsewhere');
    await mkdir(elsewhere);
    await mkdir(out);
    await symlink(elsewhere, path.join(out, 'student'));
    const linked = await runCli(dir, '--quiet');
    expect(linked.code).toBe(2);
    expect(linked.stderr).toContain(
      `${path.join(out, 'student')}: is a symbolic link; distill-gate never writes through a link in its output folder`,
    );
    expect(await readdir(elsewhere)).toEqual([]);
    // The report was written before the student.
    expect((await reportOf(out)).verdict).toBe('pass');

    // A real student/ whose files link elsewhere (as a checkout can hold): a fresh student takes its place.
    await rm(path.join(out, 'student'));
    await mkdir(path.join(out, 'student'));
    const kept = path.join(elsewhere, 'kept.json');
    await writeFile(kept, 'keep me');
    await symlink(kept, path.join(out, 'student/model.json'));
    await symlink(path.join(elsewhere, 'shard.bin'), path.join(out, 'student/group1-shard1of1.bin'));
    const replaced = await runCli(dir, '--quiet');
    expect(replaced.code).toBe(0);
    expect(await readFile(kept, 'utf8')).toBe('keep me');
    expect(await readdir(elsewhere)).toEqual(['kept.json']);
    expect((await lstat(path.join(out, 'student/model.json'))).isSymbolicLink()).toBe(false);
    expect((await readdir(out)).sort()).toEqual(['report.json', 'report.md', 'student']);
    const student = await readModelArtifacts(path.join(out, 'student/model.json'));
    expect(student.weightBytes).toBe((await reportOf(out)).metrics['size.studentBytes']);

    await rm(path.join(out, 'report.json'));
    await symlink(kept, path.join(out, 'report.json'));
    const report = await runCli(dir, '--quiet');
    expect(report.code).toBe(2);
    expect(report.stderr).toContain(
      `${path.join(out, 'report.json')}: is a symbolic link; distill-gate never writes through a link`,
    );
    expect(await readFile(kept, 'utf8')).toBe('keep me');
  });

  it('merge --out naming a file, or with report.md a symbolic link: exit 2 naming it, nothing written through', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-merge-out-'));
    await mkdir(path.join(dir, 'reports/a'), { recursive: true });
    await writeFile(path.join(dir, 'reports/a/report.json'), JSON.stringify(sampleReport()));
    const file = path.join(dir, 'merged');
    await writeFile(file, 'not a folder');
    const capture = captureIo();
    expect(
      await main(['merge', path.join(dir, 'reports/*/report.json'), '--expect', '1', '--out', file], capture.io),
    ).toBe(2);
    expect(capture.stderr()).toContain(`distill-gate: error: ${file}: is a file, not a folder`);
    expect(capture.stderr()).not.toMatch(/internal error/);

    const out = path.join(dir, 'out');
    await mkdir(out);
    const kept = path.join(dir, 'kept.md');
    await writeFile(kept, 'keep me');
    await symlink(kept, path.join(out, 'report.md'));
    const linked = captureIo();
    expect(
      await main(['merge', path.join(dir, 'reports/*/report.json'), '--expect', '1', '--out', out], linked.io),
    ).toBe(2);
    expect(linked.stderr()).toContain(`${path.join(out, 'report.md')}: is a symbolic link`);
    expect(await readFile(kept, 'utf8')).toBe('keep me');

    const fine = captureIo();
    expect(
      await main(
        ['merge', path.join(dir, 'reports/*/report.json'), '--expect', '1', '--out', path.join(dir, 'new/merged')],
        fine.io,
      ),
    ).toBe(0);
    expect(await readFile(path.join(dir, 'new/merged/report.md'), 'utf8')).toBe(fine.stdout());
  });
});

describe.skipIf(process.platform === 'win32')('a cancel while the config is still being read', () => {
  /** The CLI reading its config from a FIFO, so that it waits there until the test writes the config. */
  async function readingConfig() {
    const dir = await exampleWorkspace();
    const fifo = path.join(dir, 'distill-gate.yml');
    await rm(fifo);
    execFileSync('mkfifo', [fifo]);
    const out = path.join(dir, 'out');
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', path.join(ROOT, 'src/cli/index.ts'), 'run', '--config', fifo, '--out', out],
      {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on('exit', (code, signal) => resolve({ code, signal })),
    );
    // Opening the FIFO to write returns once the CLI has opened it to read the config.
    const writer = await open(fifo, 'w');
    /** Resolves when stderr matches, or the CLI has exited. */
    const said = (pattern: RegExp) =>
      new Promise<void>((resolve) => {
        const check = () => pattern.test(stderr) && resolve();
        child.stderr.on('data', check);
        void exit.then(() => resolve());
        check();
      });
    return { child, out, writer, exit, said, stderr: () => stderr };
  }

  it('a first signal then the config: the run starts stopped and still writes its cut-short report, exit 1', async () => {
    const run = await readingConfig();
    run.child.kill('SIGINT');
    await run.said(/cancel: received SIGINT/);
    await run.writer.writeFile(quickConfig());
    await run.writer.close();
    expect(await run.exit).toEqual({ code: 1, signal: null });
    const report = await reportOf(run.out);
    expect([report.status, report.verdict, report.training.epochs]).toEqual(['incomplete', 'fail', 0]);
    expect(report.reasons.join(' ')).toMatch(/received SIGINT/);
  });

  it('a second signal before the config arrives: a clean exit 1 saying why, no stack', async () => {
    const run = await readingConfig();
    run.child.kill('SIGINT');
    await run.said(/cancel: received SIGINT/);
    run.child.kill('SIGTERM');
    await run.said(/distill-gate: cancelled:/);
    // Node's exit waits for the read it left blocked on the FIFO (as it would on a hung mount,
    // until the runner's SIGKILL): end that read.
    await run.writer.close();
    expect(await run.exit).toEqual({ code: 1, signal: null });
    expect(run.stderr()).toMatch(
      /distill-gate: cancelled: while reading the config .*distill-gate\.yml \(received SIGTERM again, while the run was finishing\): nothing was run and no report was written\n$/,
    );
    expect(existsSync(run.out)).toBe(false);
  });
});
