/**
 * The usual config mistakes, caught where they are written: a percentage where a fraction is meant
 * (accepted as one on fractions, refused elsewhere), no gates at all (a warning in the report),
 * gate and student errors raised after loading that still name file:line:column, and a Git LFS
 * pointer checked out in place of a model or data file.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, parseConfig } from '../../src/config/load.js';
import { loadSplit } from '../../src/data/dataset.js';
import { parseGates } from '../../src/gates/gates.js';
import { measureAgreement } from '../../src/measure/agreement.js';
import { measuredMetrics } from '../../src/measure/metrics.js';
import { readModelArtifacts } from '../../src/models/artifacts.js';
import { loadOnnxTeacher } from '../../src/models/onnx.js';
import { loadTeacherAndStudent } from '../../src/models/pair.js';
import { buildStudent } from '../../src/models/student.js';
import type { Distillation } from '../../src/stages/distill.js';
import { judgeRun, NO_GATES } from '../../src/stages/judge.js';
import type { Measurement } from '../../src/stages/measure.js';
import { configErrorOf, exampleWorkspace, quickConfig } from '../helpers.js';
import { sampleEnvironment } from '../sample-report.js';

const FILE = '/cfg/distill-gate.yml';
const base = `teacher: t/model.json
student: { layers: [ { type: dense, units: 3 } ] }
data: { train: { x: a.npy }, eval: { x: b.npy, y: c.npy } }
`;
const withGates = (lines: string) => `${base}gates:\n${lines}\n`;
const measured = measuredMetrics({ classes: 3, topK: 5, labels: true });

function errorOf(work: () => unknown): string {
  try {
    work();
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('expected an error');
}

async function rejection(work: Promise<unknown>): Promise<string> {
  return work.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: Error) => error.message,
  );
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('a percentage wherever a fraction is', () => {
  it('reads N% on an absolute gate of a fraction as N/100, in strings and in min/max', () => {
    const config = parseConfig(
      withGates(
        [
          '  agreement.top1: ">= 93%"',
          '  size.ratio: "<= 10%"',
          '  accuracy.student: { min: "90%", max: 99.5% }',
          '  agreement.minClass: "> 12.5 %"',
        ].join('\n'),
      ),
      FILE,
    );
    expect(parseGates(config.gates, measured).map((c) => [c.metric, c.op, c.threshold, c.relative])).toEqual([
      ['agreement.top1', '>=', 0.93, false],
      ['size.ratio', '<=', 0.1, false],
      ['accuracy.student', '>=', 0.9, false],
      ['accuracy.student', '<=', 0.995, false],
      ['agreement.minClass', '>', 0.125, false],
    ]);
  });

  it('refuses a percentage on a metric that is not a fraction, at its line and column, pointing at maxIncrease or maxDrop', () => {
    expect(configErrorOf(withGates('  speed.studentMs: "<= 10%"'))).toBe(
      '/cfg/distill-gate.yml:5:20 gates.speed.studentMs: "<= 10%": a percentage stands for a fraction (93% is 0.93), and speed.studentMs is a time in ms, not a fraction. ' +
        'For a bound relative to the baseline\'s value write { maxIncrease: "10%" }.',
    );
    expect(configErrorOf(withGates('  speed.speedup: { min: "150%" }'))).toMatch(
      /^\/cfg\/distill-gate\.yml:5:25 gates\.speed\.speedup\.min: min: "150%": a percentage .* speed\.speedup is a ratio .* write \{ maxDrop: "150%" \}\.$/,
    );
    expect(configErrorOf(withGates('  agreement.kappa: ">= 60%"'))).toMatch(
      /agreement\.kappa is a coefficient from -1 to 1, not a fraction\. Write the number itself, e\.g\. ">= 0\.6"\.$/,
    );
  });

  it('still refuses a percent-sized plain number on a fraction, now offering N% too, and a percentage past 100%', () => {
    expect(configErrorOf(withGates('  agreement.top1: ">= 93"'))).toMatch(
      /Write ">= 0\.93" or ">= 93%" for 93%, not 93\.$/,
    );
    expect(configErrorOf(withGates('  agreement.top1: ">= 930%"'))).toBe(
      '/cfg/distill-gate.yml:5:19 gates.agreement.top1: ">= 930%" lies outside the values agreement.top1 can take (a fraction from 0 to 1), so this bound would never pass.',
    );
    expect(configErrorOf(withGates('  agreement.top1: { min: "lots" }'))).toMatch(
      /:5:26 gates\.agreement\.top1\.min: min: "lots" does not parse/,
    );
  });
});

describe('a config with no gates', () => {
  const finished = {
    training: { epochsCompleted: 3, loss: [1, 0.5, 0.25], batchSize: 64, notes: [] },
    overBudget: false,
  } as unknown as Distillation;
  const oneHot = (rows: number, top: (r: number) => number) =>
    Float32Array.from({ length: rows * 3 }, (_, i) => (i % 3 === top(Math.floor(i / 3)) ? 1 : 0));
  const judged = (gates: string) => {
    // quickConfig ends with its gates: without lines, the key goes too.
    const config = parseConfig(
      gates ? quickConfig({ gates }) : quickConfig().replace(/gates:\n[\s\S]*$/, ''),
      '/repo/distill-gate.yml',
    );
    const { metrics, classes } = measureAgreement(
      oneHot(90, (r) => r % 3),
      oneHot(90, (r) => r % 3),
      3,
      5,
    );
    const measurement: Measurement = { metrics, environment: sampleEnvironment, agreement: classes };
    return judgeRun(
      {
        checks: parseGates(config.gates, measuredMetrics({ classes: 3, topK: 5, labels: false })),
        baseline: undefined,
      },
      config,
      finished,
      measurement,
    );
  };

  it('passes with a warning in the reasons that names gates to add', () => {
    const judgement = judged('');
    expect(judgement.verdict).toBe('pass');
    expect(judgement.reasons).toContain(NO_GATES);
    expect(NO_GATES).toMatch(
      /^No gates: .*passes whatever it measures.*add gates, e\.g\. agreement\.top1 and agreement\.kappa\.$/,
    );
  });

  it('has no such warning once a gate is set', () => {
    expect(judged('  agreement.top1: ">= 0.5"').reasons).not.toContain(NO_GATES);
  });
});

describe('errors raised after loading still name file:line:column', () => {
  it('a gate on a metric this run does not measure, at its key', () => {
    const config = parseConfig(withGates('  kl: "<= 0.1"\n  agreement.top: ">= 0.9"'), FILE);
    expect(errorOf(() => parseGates(config.gates, measured))).toMatch(
      /^\/cfg\/distill-gate\.yml:6:3 gates\.agreement\.top: no metric is named "agreement\.top"\. Did you mean "agreement\.top1"\?/,
    );
    const unlabelled = parseConfig(withGates('  accuracy.student: ">= 0.9"'), FILE);
    expect(
      errorOf(() => parseGates(unlabelled.gates, measuredMetrics({ classes: 3, topK: 5, labels: false }))),
    ).toMatch(/^\/cfg\/distill-gate\.yml:5:3 gates\.accuracy\.student: no metric is named "accuracy\.student"/);
  });

  it('a gate spec refused by the run (not checked at load: a metric outside the catalogue), at its value', () => {
    const config = parseConfig(withGates('  custom.metric: "=> 3"'), FILE);
    expect(errorOf(() => parseGates(config.gates, [...measured, 'custom.metric']))).toMatch(
      /^\/cfg\/distill-gate\.yml:5:18 gates\.custom\.metric: threshold "=> 3" does not parse/,
    );
  });

  it('a student layer TF.js refuses, and an initialiser distill-gate cannot seed', async () => {
    const config = parseConfig(
      `${base.replace('student: { layers: [ { type: dense, units: 3 } ] }', 'student:\n  layers:\n    - { type: dense, units: 8, activation: relu }\n    - { type: dense, units: 3, activation: sigmoidal }')}`,
      FILE,
    );
    expect(await rejection(buildStudent(tf, config.student, [4], 1))).toMatch(
      /^\/cfg\/distill-gate\.yml:5:7 student\.layers\[1\] \(dense\): .*sigmoidal/,
    );
    const seeded = parseConfig(base.replace('units: 3 }', 'units: 3, kernelInitializer: varianceScaling }'), FILE);
    expect(await rejection(buildStudent(tf, seeded.student, [4], 1))).toMatch(
      /^\/cfg\/distill-gate\.yml:2:66 student\.layers\[0\]\.kernelInitializer: initialiser "varianceScaling" is not one distill-gate can seed/,
    );
  });

  it("a student whose outputs do not match the teacher's, at the last layer's units", async () => {
    const dir = await exampleWorkspace(
      quickConfig({
        student: '  layers:\n    - { type: dense, units: 32, activation: relu }\n    - { type: dense, units: 7 }',
      }),
    );
    const config = await loadConfig(path.join(dir, 'distill-gate.yml'));
    const [train, evalSet] = await Promise.all([
      loadSplit(config.data.train, 'train'),
      loadSplit(config.data.eval, 'eval'),
    ]);
    expect(await rejection(loadTeacherAndStudent(tf, config, train, evalSet, { searchFrom: [dir] }))).toMatch(
      new RegExp(
        `^${path.join(dir, 'distill-gate.yml').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:6:29 student\\.layers: the student has 7 outputs but the teacher .* has 10`,
      ),
    );
  });
});

describe('a Git LFS pointer in place of a file', () => {
  const pointer = (bytes: number) =>
    `version https://git-lfs.github.com/spec/v1\noid sha256:${'4d7a'.repeat(16)}\nsize ${bytes}\n`;
  const lfs = (file: string, bytes: number) =>
    `${file}: is a Git LFS pointer (to a file of ${bytes} bytes), not the file: run \`git lfs pull\` (or actions/checkout with \`lfs: true\`).`;

  it('is named as such for a weight shard and for the model.json itself', async () => {
    const dir = await exampleWorkspace();
    const shard = path.join(dir, 'models/teacher/group1-shard1of1.bin');
    await writeFile(shard, pointer(9_000_000));
    const model = path.join(dir, 'models/teacher/model.json');
    expect(await rejection(readModelArtifacts(model))).toBe(lfs(shard, 9_000_000));
    await writeFile(model, pointer(4321));
    expect(await rejection(readModelArtifacts(model))).toBe(lfs(model, 4321));
  });

  it('is named as such for a .npy and a CSV', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'lfs-'));
    const npy = path.join(dir, 'train_x.npy');
    const csv = path.join(dir, 'train.csv');
    await writeFile(npy, pointer(1_228_928));
    await writeFile(csv, pointer(52_000));
    expect(await rejection(loadSplit({ x: npy }, 'train'))).toBe(lfs(npy, 1_228_928));
    expect(await rejection(loadSplit({ csv, label: 'y' }, 'train'))).toBe(lfs(csv, 52_000));
  });

  it('is named as such for an ONNX teacher, before onnxruntime is looked for', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'lfs-'));
    const onnx = path.join(dir, 'teacher.onnx');
    await writeFile(onnx, pointer(88_000_000));
    const context = { data: { sampleShape: [4], source: 'train' }, searchFrom: [dir] };
    expect(await rejection(loadOnnxTeacher(tf, onnx, {}, context))).toBe(lfs(onnx, 88_000_000));
  });
});
