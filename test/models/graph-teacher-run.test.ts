import { cp, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { encodeNpy } from '../../src/data/npy.js';
import { seededRandom } from '../../src/distill/random.js';
import type { Report } from '../../src/report/report.js';
import { GRAPH_MODELS } from '../../fixtures/graph-models.js';
import { captureIo } from '../helpers.js';

/** A workspace with the GraphModel fixtures as teachers and 4-feature data. */
async function workspace(teacher: string, extra: string, units: number): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'graph-teacher-'));
  await cp(GRAPH_MODELS, path.join(dir, 'models'), { recursive: true });
  await mkdir(path.join(dir, 'data'));
  const random = seededRandom(5);
  for (const [name, rows] of [
    ['train', 256],
    ['eval', 128],
  ] as const) {
    const x = Float32Array.from({ length: rows * 4 }, () => random() * 4 - 2);
    await writeFile(path.join(dir, `data/${name}_x.npy`), encodeNpy(x, [rows, 4]));
  }
  await writeFile(
    path.join(dir, 'distill-gate.yml'),
    [
      `teacher: models/${teacher}/model.json`,
      extra,
      'student:',
      '  layers:',
      '    - { type: dense, units: 8, activation: relu }',
      `    - { type: dense, units: ${units} }`,
      'data:',
      '  train: { x: data/train_x.npy }',
      '  eval: { x: data/eval_x.npy }',
      'distill: { epochs: 3, batchSize: 32, learningRate: 0.01 }',
      'measure: { warmup: 1, rounds: 3, throughputBatch: 32 }',
      'backend: wasm',
      // These runs are about reading the teacher, not about the student, which 3 epochs leave
      // near chance: the default chance-level gate (agreement.kappa >= 0.2) is set off.
      'gates: { agreement.kappa: ">= -1" }',
      '',
    ].join('\n'),
  );
  return dir;
}

async function run(dir: string) {
  const capture = captureIo();
  const out = path.join(dir, 'out');
  const code = await main(['run', '--config', path.join(dir, 'distill-gate.yml'), '--out', out], capture.io);
  const report = code === 2 ? undefined : (JSON.parse(await readFile(path.join(out, 'report.json'), 'utf8')) as Report);
  return { code, stderr: capture.stderr(), report };
}

describe('distill-gate run with a converted GraphModel teacher', () => {
  it('distils a sigmoid teacher as two classes, with a loss above 0, and says so in the log', async () => {
    const { code, stderr, report } = await run(await workspace('sigmoid', '', 2));
    expect(code, stderr).toBe(0);
    expect(stderr).toMatch(
      /teacher: head output_0 has one unit, read as a probability p \(it ends in a sigmoid\): distilled as two classes/,
    );
    expect(report!.teacher.output).toBe('probabilities');
    expect(report!.training.loss.every((l) => l > 1e-4)).toBe(true);
    expect(report!.metrics['agreement.top1']).toBeGreaterThan(0.5);
  });

  it('distils the head teacherHead names', async () => {
    const { code, stderr, report } = await run(await workspace('two-head', 'teacherHead: Identity', 3));
    expect(code, stderr).toBe(0);
    expect(stderr).toMatch(/teacher: distilling head output_0 \(3 wide\), one of 2 outputs/);
    expect(report!.training.loss[0]).toBeGreaterThan(0);
  });

  it('exits 2 on a multi-output teacher without teacherHead', async () => {
    const { code, stderr } = await run(await workspace('two-head', '', 3));
    expect(code).toBe(2);
    expect(stderr).toMatch(
      /has 2 outputs: output_0 \(Identity:0, 3 wide\), output_1 \(Identity_1:0, 1 wide\)\. Set teacherHead/,
    );
  });
});
