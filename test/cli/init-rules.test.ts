import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { evaluateGates, parseGates } from '../../src/gates/gates.js';
import { gatesFromMetrics, renderConfig } from '../../src/cli/init-config.js';
import { splitFileName, splitRows } from '../../src/cli/init-split.js';
import { addIgnoreLine, workflowFor } from '../../src/cli/init-files.js';
import { proposeStudent, proposeTraining, widthReadingInput } from '../../src/cli/propose-student.js';

describe("init's student rule", () => {
  it('flat inputs: one hidden layer at a quarter of the first width, at least 16, 64 when unknown', () => {
    expect(proposeStudent([64], 10, 256).layers).toEqual([
      { type: 'dense', units: 64, activation: 'relu' },
      { type: 'dense', units: 10 },
    ]);
    expect(proposeStudent([64], 3, 32).layers[0]).toMatchObject({ units: 16 });
    expect(proposeStudent([64], 3, undefined).layers[0]).toMatchObject({ units: 64 });
  });

  it('image inputs: a small conv stack, pooling only where both sides are at least 4', () => {
    expect(proposeStudent([28, 28, 1], 10, 64).layers.map((l) => [l.type, l.filters ?? l.units])).toEqual([
      ['conv2d', 16],
      ['maxPooling2d', undefined],
      ['conv2d', 32],
      ['globalAveragePooling2d', undefined],
      ['dense', 10],
    ]);
    expect(proposeStudent([3, 3, 2], 4, undefined).layers.map((l) => l.type)).toEqual([
      'conv2d',
      'conv2d',
      'globalAveragePooling2d',
      'dense',
    ]);
    expect(proposeStudent([8, 8, 3], 4, 16).layers[0]).toMatchObject({ filters: 8 });
  });

  it('other ranks are flattened first', () => {
    expect(proposeStudent([20, 8], 5, undefined).layers.map((l) => l.type)).toEqual(['flatten', 'dense', 'dense']);
  });

  it('epochs for about 20,000 samples seen, between 3 and 30; batch 64 or fewer rows', () => {
    expect(proposeTraining(960)).toEqual({ epochs: 21, batchSize: 64 });
    expect(proposeTraining(100)).toEqual({ epochs: 30, batchSize: 64 });
    expect(proposeTraining(1_000_000)).toEqual({ epochs: 3, batchSize: 64 });
    expect(proposeTraining(40)).toEqual({ epochs: 30, batchSize: 40 });
  });

  it("reads the first width off the weight that reads the input, in TF.js's and ONNX's layouts", () => {
    expect(widthReadingInput([[10], [64, 128], [128, 10]], [64], 'tfjs')).toBe(128); // TF.js [in, out]
    expect(widthReadingInput([[256, 64], [256]], [64], 'onnx')).toBe(256); // ONNX Gemm [out, in]
    expect(widthReadingInput([[3, 3, 3, 32]], [28, 28, 3], 'tfjs')).toBe(32); // TF.js kernel [kh, kw, in, out]
    expect(widthReadingInput([[24, 3, 3, 3]], [28, 28, 3], 'onnx')).toBe(24); // ONNX [out, in, kh, kw]
    expect(widthReadingInput([[5, 7]], [64], 'tfjs')).toBeUndefined();
  });
});

describe("init's gates and config", () => {
  it('agreement min is the measured value less 2 points, rounded down; size ratio max 10% above', () => {
    const gates = gatesFromMetrics({ 'agreement.top1': 0.95, 'size.ratio': 0.0222 });
    expect(gates.map((g) => [g.metric, g.bounds])).toEqual([
      ['agreement.top1', { min: 0.93, maxDrop: 0.01 }],
      ['size.ratio', { max: 0.0244 }],
    ]);
    expect(gatesFromMetrics({ 'agreement.top1': 0.0125 })[0].bounds.min).toBe(0);
    expect(gatesFromMetrics({})).toEqual([]);
  });

  it('gates kappa at the measured value less 0.05, rounded down, so a collapsed student fails (issue #24)', () => {
    const gates = gatesFromMetrics({ 'agreement.top1': 0.968, 'agreement.kappa': 0.8137, 'size.ratio': 0.0222 });
    expect(gates.map((g) => [g.metric, g.bounds])).toEqual([
      ['agreement.top1', { min: 0.94, maxDrop: 0.01 }],
      ['agreement.kappa', { min: 0.76 }],
      ['size.ratio', { max: 0.0244 }],
    ]);
    expect(gates[1].comment.join(' ')).toMatch(/0\.814 when init ran\. min is that less 0\.05/);
    const config = parseConfig(
      renderConfig({
        teacher: 't/model.json',
        student: { ...proposeStudent([64], 10, 256), why: 'a test' },
        train: { x: 'x.npy' },
        eval: { x: 'e.npy' },
        distill: { ...proposeTraining(960), seed: 7, why: 'a test' },
        gates,
      }),
      '/repo/distill-gate.yml',
    );
    const checks = parseGates(config.gates, ['agreement.top1', 'agreement.kappa', 'size.ratio']);
    // The collapsed student: 96.8% agreement on a 97/3 split, kappa 0.
    const collapsed = evaluateGates(checks, { 'agreement.top1': 0.968, 'agreement.kappa': 0, 'size.ratio': 0.0222 });
    expect(collapsed.filter((g) => g.status === 'fail').map((g) => g.metric)).toEqual(['agreement.kappa']);
    expect(gatesFromMetrics({ 'agreement.kappa': 0.03 })[0].bounds.min).toBe(0);
  });

  it('writes YAML that parses, whose gates pass the measured values and fail a regression of more than the margin', () => {
    const measured = { 'agreement.top1': 0.9875, 'size.ratio': 0.0222 };
    const text = renderConfig({
      teacher: '../models/teacher 1/model.json',
      student: { ...proposeStudent([64], 10, 256), why: 'a test' },
      train: { x: '../data/x.train.npy', y: '1e5' },
      eval: { csv: 'data/true.csv', label: 'null' },
      distill: { ...proposeTraining(960), seed: 7, why: 'a test' },
      gates: gatesFromMetrics(measured),
    });
    const config = parseConfig(text, '/repo/distill-gate.yml');
    expect(config.teacher).toBe('/models/teacher 1/model.json');
    expect(config.data.train).toEqual({ x: '/data/x.train.npy', y: '/repo/1e5' });
    expect(config.data.eval).toEqual({ csv: '/repo/data/true.csv', label: 'null' });
    expect(text).toContain('x: ../data/x.train.npy');
    const checks = parseGates(config.gates, ['agreement.top1', 'size.ratio']);
    const verdicts = (metrics: Record<string, number>) => evaluateGates(checks, metrics).map((g) => g.status);
    expect(verdicts(measured)).toEqual(['pass', 'skipped', 'pass']);
    expect(verdicts({ 'agreement.top1': 0.95, 'size.ratio': 0.0222 })).toEqual(['fail', 'skipped', 'pass']);
    expect(verdicts({ 'agreement.top1': 0.99, 'size.ratio': 0.03 })).toEqual(['pass', 'skipped', 'fail']);
  });
});

describe("init's files", () => {
  it('splits rows by a seeded shuffle: 20% eval, disjoint, whole, the same each time', () => {
    const { train, eval: evalRows } = splitRows(10, 7);
    expect(train).toHaveLength(8);
    expect(evalRows).toHaveLength(2);
    expect([...train, ...evalRows].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(splitRows(10, 7)).toEqual({ train, eval: evalRows });
    expect(() => splitRows(1, 7)).toThrow(/at least 2/);
    expect(splitFileName('/d/train_x.npy', 'eval')).toBe('/d/train_x.eval.npy');
  });

  it('adds distill-report/ to .gitignore once, keeping what is there', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-ignore-'));
    const file = path.join(dir, '.gitignore');
    expect(await addIgnoreLine(file)).toBe(true);
    expect(await readFile(file, 'utf8')).toBe('distill-report/\n');
    expect(await addIgnoreLine(file)).toBe(false);
    await writeFile(file, 'node_modules');
    expect(await addIgnoreLine(file)).toBe(true);
    expect(await readFile(file, 'utf8')).toBe('node_modules\ndistill-report/\n');
    await writeFile(file, '/distill-report\n');
    expect(await addIgnoreLine(file)).toBe(false);
  });

  it("points the workflow's config inputs at the written config", () => {
    const template = 'jobs:\n  a:\n    with:\n      config: distill-gate.yml\n      budget: 25\n';
    expect(workflowFor(template, 'ml/distill-gate.yml')).toContain(
      '      config: ml/distill-gate.yml\n      budget: 25\n',
    );
  });
});
