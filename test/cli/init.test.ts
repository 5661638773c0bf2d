import { cp, mkdir, mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { loadConfig } from '../../src/config/load.js';
import { readNpy } from '../../src/data/npy.js';
import type { Report } from '../../src/report/report.js';
import { captureIo, EXAMPLE } from '../helpers.js';
import { withoutOnnxRuntime } from '../onnx-runtime.js';

const WORKFLOWS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../examples/workflows');

/** A scratch folder holding the example's teacher (model.json and ONNX) and its data, and no config. */
async function teacherAndData(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-init-'));
  await cp(path.join(EXAMPLE, 'models'), path.join(dir, 'models'), { recursive: true });
  await cp(path.join(EXAMPLE, 'data'), path.join(dir, 'data'), { recursive: true });
  return dir;
}

async function cli(...argv: string[]) {
  const capture = captureIo();
  const code = await main(argv, capture.io);
  return { code, stdout: capture.stdout(), stderr: capture.stderr() };
}

async function run(config: string, out: string) {
  const result = await cli('run', '--config', config, '--out', out, '-q');
  const report = JSON.parse(await readFile(path.join(out, 'report.json'), 'utf8')) as Report;
  return { ...result, report };
}

describe('distill-gate init', () => {
  it('writes a config, the hosted workflow and .gitignore from one data file; run passes it, a degraded student fails it', async () => {
    const dir = await teacherAndData();
    const at = (file: string) => path.join(dir, file);
    const init = await cli(
      'init',
      '--teacher',
      at('models/teacher/model.json'),
      '--data',
      at('data/train_x.npy'),
      '--labels',
      at('data/train_y.npy'),
      '--dir',
      dir,
    );
    expect(init.code, init.stderr).toBe(0);
    // What it found, as the pipeline's loader reads the teacher.
    expect(init.stdout).toContain('TF.js LayersModel');
    expect(init.stdout).toMatch(/input shape +\[64\]/);
    expect(init.stdout).toMatch(/classes +10/);
    expect(init.stdout).toMatch(/parameters +216,586/);
    expect(init.stdout).toMatch(/output +probabilities/);
    // The student rule: a quarter of the teacher's first hidden width (256); epochs by data size.
    expect(init.stdout).toContain('dense 64 relu -> dense 10');
    expect(init.stdout).toMatch(/21 epochs of batch 64/);

    // One data file: a seeded 20% eval split written beside it, train and eval disjoint and whole.
    const [trainX, evalX, trainY, evalY, allY] = await Promise.all(
      ['train_x.train', 'train_x.eval', 'train_y.train', 'train_y.eval', 'train_y'].map((name) =>
        readNpy(at(`data/${name}.npy`)),
      ),
    );
    expect(trainX.header.shape).toEqual([960, 64]);
    expect(evalX.header.shape).toEqual([240, 64]);
    expect(trainY.header.shape).toEqual([960]);
    expect(evalY.header.shape).toEqual([240]);
    const counts = (values: ArrayLike<number | bigint>) =>
      Array.from(values, Number).reduce<Record<number, number>>((c, v) => ({ ...c, [v]: (c[v] ?? 0) + 1 }), {});
    const merged = counts([...Array.from(trainY.data as Int32Array), ...Array.from(evalY.data as Int32Array)]);
    expect(merged).toEqual(counts(allY.data as Int32Array));

    // The config loads as any config does, with gates set from the calibration run.
    const config = await loadConfig(at('distill-gate.yml'));
    expect(config.teacher).toBe(at('models/teacher/model.json'));
    expect(config.data.train).toEqual({ x: at('data/train_x.train.npy'), y: at('data/train_y.train.npy') });
    expect(config.data.eval).toEqual({ x: at('data/train_x.eval.npy'), y: at('data/train_y.eval.npy') });
    expect(config.student).toEqual({
      layers: [
        { type: 'dense', units: 64, activation: 'relu' },
        { type: 'dense', units: 10 },
      ],
    });
    expect(config.distill.epochs).toBe(21);
    expect(Object.keys(config.gates)).toEqual(['agreement.top1', 'agreement.kappa', 'size.ratio']);
    const agreementGate = config.gates['agreement.top1'] as { min: number; maxDrop: number };
    expect(agreementGate.maxDrop).toBe(0.01);
    const text = await readFile(at('distill-gate.yml'), 'utf8');
    expect(text).toMatch(/# Top-1 agreement with the teacher on the eval split: \d+\.\d\d% when init ran/);
    expect(text).toContain('# No absolute speed gate');
    expect(text).toMatch(
      /# Cohen's kappa of the two top-1 answers \(agreement corrected for chance\): 0\.\d+ when init ran\./,
    );

    // The hosted workflow, as the example has it, and the report folder ignored.
    const workflow = await readFile(at('.github/workflows/distill-gate.yml'), 'utf8');
    const template = await readFile(path.join(WORKFLOWS, 'pull-request-hosted.yml'), 'utf8');
    expect(workflow.endsWith(template)).toBe(true);
    expect(await readFile(at('.gitignore'), 'utf8')).toBe('distill-report/\n');

    // A rerun passes the written gates: the margin holds.
    const rerun = await run(at('distill-gate.yml'), at('out'));
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(rerun.report.verdict).toBe('pass');
    expect(rerun.report.metrics['agreement.top1']).toBeGreaterThanOrEqual(agreementGate.min);
    expect(rerun.report.gates.filter((g) => g.status === 'pass').map((g) => g.metric)).toEqual([
      'agreement.top1',
      'agreement.kappa',
      'size.ratio',
    ]);

    // A second init overwrites nothing: exit 2 naming the config, before anything runs.
    const again = await cli(
      'init',
      '--teacher',
      at('models/teacher/model.json'),
      '--data',
      at('data/train_x.npy'),
      '--dir',
      dir,
    );
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('distill-gate.yml: exists');
    expect(again.stderr).toContain('--force');
    expect(again.stdout).toBe('');
    expect(await readFile(at('distill-gate.yml'), 'utf8')).toBe(text);

    // A real regression fails them: a student of one hidden unit.
    await writeFile(at('degraded.yml'), text.replace('units: 64, activation: relu', 'units: 1, activation: relu'));
    const degraded = await run(at('degraded.yml'), at('out-degraded'));
    expect(degraded.code).toBe(1);
    expect(degraded.report.verdict).toBe('fail');
    expect(degraded.report.gates.find((g) => g.metric === 'agreement.top1')?.status).toBe('fail');
  });

  it('with an eval file, a config folder below the repository and the GPU runner: the workflow at the root names the config', async () => {
    const dir = await teacherAndData();
    const at = (file: string) => path.join(dir, file);
    await mkdir(at('.git'));
    await writeFile(at('.gitignore'), 'node_modules/\ndistill-report/'); // no final newline, and the line already there
    const args = [
      'init',
      '-t',
      at('models/teacher/model.json'),
      '-d',
      at('data/train_x.npy'),
      '--labels',
      at('data/train_y.npy'),
      '--eval-data',
      at('data/eval_x.npy'),
      '--eval-labels',
      at('data/eval_y.npy'),
      '--runner',
      'gpu',
      '--dir',
      at('ml'),
    ];
    const init = await cli(...args);
    expect(init.code, init.stderr).toBe(0);
    expect(init.stdout).toMatch(/17 epochs of batch 64/); // ceil(20000 / 1200)
    const config = await loadConfig(at('ml/distill-gate.yml'));
    expect(config.data.eval).toEqual({ x: at('data/eval_x.npy'), y: at('data/eval_y.npy') });
    expect(await readFile(at('ml/distill-gate.yml'), 'utf8')).toContain('teacher: ../models/teacher/model.json');
    // No split files when an eval split is given.
    expect((await readdir(at('data'))).sort()).toEqual(['eval_x.npy', 'eval_y.npy', 'train_x.npy', 'train_y.npy']);

    const workflow = await readFile(at('.github/workflows/distill-gate.yml'), 'utf8');
    const template = await readFile(path.join(WORKFLOWS, 'pull-request.yml'), 'utf8');
    expect(workflow).toContain('runs-on: [self-hosted, gpu]');
    expect(workflow).not.toMatch(/config: distill-gate\.yml/);
    expect(workflow.match(/config: ml\/distill-gate\.yml/g)).toHaveLength(
      template.match(/config: distill-gate\.yml/g)!.length,
    );
    expect(existsSync(at('ml/.github'))).toBe(false);
    expect(await readFile(at('.gitignore'), 'utf8')).toBe('node_modules/\ndistill-report/');

    const rerun = await run(at('ml/distill-gate.yml'), at('out'));
    expect(rerun.code, rerun.stderr).toBe(0);

    // --force writes again over what is there.
    const forced = await cli(...args, '--force');
    expect(forced.code, forced.stderr).toBe(0);
  });

  it('refuses an existing workflow before reading the data or running anything', async () => {
    const dir = await teacherAndData();
    const at = (file: string) => path.join(dir, file);
    await mkdir(at('.github/workflows'), { recursive: true });
    await writeFile(at('.github/workflows/distill-gate.yml'), 'name: mine\n');
    const init = await cli(
      'init',
      '--teacher',
      at('models/teacher/model.json'),
      '--data',
      at('data/train_x.npy'),
      '--dir',
      dir,
    );
    expect(init.code).toBe(2);
    expect(init.stderr).toContain('.github/workflows/distill-gate.yml: exists');
    expect(existsSync(at('distill-gate.yml'))).toBe(false);
    expect(existsSync(at('data/train_x.train.npy'))).toBe(false);
    expect(existsSync(at('.gitignore'))).toBe(false);
  });

  it('refuses data the teacher cannot take (a GraphModel of 4 features) before proposing anything, writing nothing', async () => {
    const dir = await teacherAndData();
    const at = (file: string) => path.join(dir, file);
    await cp(path.join(EXAMPLE, '../graph-models/softmax'), at('models/graph'), { recursive: true });
    const init = await cli(
      'init',
      '--teacher',
      at('models/graph/model.json'),
      '--data',
      at('data/train_x.npy'),
      '--dir',
      dir,
    );
    expect(init.code).toBe(2);
    expect(init.stderr).toContain('samples have shape [64] but the teacher');
    expect(init.stderr).toContain('takes [4]');
    expect(init.stdout).toBe('');
    expect((await readdir(dir)).sort()).toEqual(['data', 'models']);
    expect(existsSync(at('data/train_x.train.npy'))).toBe(false);
  });

  it('splits a CSV data file into CSV files with the header, labels in a column', async () => {
    const dir = await teacherAndData();
    const at = (file: string) => path.join(dir, file);
    const [x, y] = await Promise.all([readNpy(at('data/train_x.npy')), readNpy(at('data/train_y.npy'))]);
    const header = [...Array.from({ length: 64 }, (_, i) => `f${i}`), 'label'].join(',');
    const rows = Array.from({ length: 300 }, (_, r) =>
      [...Array.from((x.data as Float32Array).subarray(r * 64, (r + 1) * 64)), (y.data as Int32Array)[r]].join(','),
    );
    await writeFile(at('data/train.csv'), `${header}\n${rows.join('\n')}\n`);
    const init = await cli(
      'init',
      '--teacher',
      at('models/teacher/model.json'),
      '--data',
      at('data/train.csv'),
      '--label-column',
      'label',
      '--dir',
      dir,
    );
    expect(init.code, init.stderr).toBe(0);
    const config = await loadConfig(at('distill-gate.yml'));
    expect(config.data.train).toEqual({ csv: at('data/train.train.csv'), label: 'label' });
    expect(config.data.eval).toEqual({ csv: at('data/train.eval.csv'), label: 'label' });
    const [train, evalText] = await Promise.all([
      readFile(at('data/train.train.csv'), 'utf8'),
      readFile(at('data/train.eval.csv'), 'utf8'),
    ]);
    expect(train.split('\n')[0]).toBe(header);
    expect(evalText.split('\n')[0]).toBe(header);
    const body = (text: string) => text.trim().split('\n').slice(1);
    expect(body(train)).toHaveLength(240);
    expect(body(evalText)).toHaveLength(60);
    expect([...body(train), ...body(evalText)].sort()).toEqual([...rows].sort());
    expect(config.distill.epochs).toBe(30); // ceil(20000 / 240) capped at 30
  });

  it.skipIf(withoutOnnxRuntime)(
    'reads an ONNX teacher through the pipeline and writes a config that passes',
    async () => {
      const dir = await teacherAndData();
      const at = (file: string) => path.join(dir, file);
      const init = await cli(
        'init',
        '-t',
        at('models/teacher.onnx'),
        '-d',
        at('data/train_x.npy'),
        '--eval-data',
        at('data/eval_x.npy'),
        '--dir',
        dir,
      );
      expect(init.code, init.stderr).toBe(0);
      expect(init.stdout).toMatch(/\(ONNX, onnxruntime-node/);
      expect(init.stdout).toMatch(/classes +10/);
      // The first width read off the ONNX initializers (fc1.weight [256, 64]).
      expect(init.stdout).toContain("25% of the teacher's first hidden width 256");
      const config = await loadConfig(at('distill-gate.yml'));
      expect(config.teacher).toBe(at('models/teacher.onnx'));
      expect(config.data.train).toEqual({ x: at('data/train_x.npy') });
      const rerun = await run(at('distill-gate.yml'), at('out'));
      expect(rerun.code, rerun.stderr).toBe(0);
      expect(rerun.report.teacher.format).toBe('onnx');
    },
  );
});
