import { cp, mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { evaluateGates, parseGates } from '../../src/gates/gates.js';
import { argmax, measureAgreement } from '../../src/measure/agreement.js';
import { measuredMetrics } from '../../src/measure/metrics.js';
import { compareTeachers } from '../../src/measure/teacher-diff.js';
import { readModelArtifacts, writeModelArtifacts } from '../../src/models/artifacts.js';
import type { Report } from '../../src/report/report.js';
import type { ResolvedBackend } from '../../src/backend/resolve.js';
import { parseConfig } from '../../src/config/load.js';
import { inMemoryDataset } from '../../src/data/dataset.js';
import { loadModel } from '../../src/models/model.js';
import { predictLogits } from '../../src/models/predict.js';
import { diffTeachers } from '../../src/stages/measure/teacher-diff.js';
import { captureIo, EXAMPLE, exampleWorkspace, quickConfig, randomArray } from '../helpers.js';

const rowsOf = (...rows: number[][]) => Float32Array.from(rows.flat());

describe('compareTeachers', () => {
  // Base teacher: classes 0, 0, 1, 2; head: 0, 1, 1, 2; student: 0, 1, 1, 1.
  const base = rowsOf([3, 0, 0], [2, 1, 0], [0, 4, 0], [0, 0, 5]);
  const head = rowsOf([3, 0, 0], [1, 2, 0], [0, 4, 0], [0, 0, 5]);
  const student = rowsOf([1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 1, 0]);

  it("takes the base teacher as the reference: agreement, KL(base || head), and the student's agreement with the base", () => {
    const { metrics } = compareTeachers(base, head, student, 3);
    expect(metrics['teacherDiff.agreement']).toBe(0.75);
    expect(metrics['teacherDiff.kl']).toBeCloseTo(measureAgreement(base, head, 3, 1).metrics.kl, 12);
    // Only row 1 differs: KL of softmax([2, 1, 0]) against softmax([1, 2, 0]), over 4 rows.
    const p = [2, 1, 0].map(Math.exp);
    const q = [1, 2, 0].map(Math.exp);
    const [ps, qs] = [p.reduce((a, b) => a + b), q.reduce((a, b) => a + b)];
    const kl = p.reduce((sum, pi, i) => sum + (pi / ps) * Math.log(pi / ps / (q[i] / qs)), 0);
    expect(metrics['teacherDiff.kl']).toBeCloseTo(kl / 4, 6);
    expect(metrics['teacherDiff.studentVsBase']).toBe(0.5);
  });

  it('lists the classes whose share of the answers moved, largest move first, and none that did not move', () => {
    expect(compareTeachers(base, head, student, 3).moved).toEqual([
      { class: 0, base: 0.5, head: 0.25 },
      { class: 1, base: 0.25, head: 0.5 },
    ]);
    expect(compareTeachers(base, base, undefined, 3).moved).toEqual([]);
  });

  it('skips a teacherDiff gate when no base teacher was compared, instead of failing it as not measured', () => {
    const checks = parseGates(
      { 'teacherDiff.agreement': '>= 0.9', 'agreement.top1': '>= 0.5' },
      measuredMetrics({ classes: 3, topK: 5, labels: false, baseTeacher: true }),
    );
    expect(evaluateGates(checks, {}).map((g) => [g.metric, g.status, g.note])).toEqual([
      ['teacherDiff.agreement', 'skipped', 'no base teacher to compare with'],
      ['agreement.top1', 'fail', 'metric not measured'],
    ]);
  });
});

/** The example's teacher with its last layer's bias moved by `shift` on `towards`, written to a folder of its own. */
async function changedTeacher(dir: string, shift: number, towards: number): Promise<string> {
  const { artifacts } = await readModelArtifacts(path.join(dir, 'models/teacher/model.json'));
  const specs = artifacts.weightSpecs!;
  const data = new Float32Array((artifacts.weightData as ArrayBuffer).slice(0));
  let offset = 0;
  for (const spec of specs) {
    const size = spec.shape.reduce((a, b) => a * b, 1);
    if (spec === specs[specs.length - 1]) data[offset + towards] += shift;
    offset += size;
  }
  const out = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-base-teacher-'));
  await writeModelArtifacts(out, { ...artifacts, weightData: data.buffer });
  return path.join(out, 'model.json');
}

async function runWith(dir: string, ...extra: string[]): Promise<{ code: number; report?: Report; err: string }> {
  const capture = captureIo();
  const out = path.join(dir, 'out');
  const code = await main(
    ['run', '--config', path.join(dir, 'distill-gate.yml'), '--out', out, '--quiet', ...extra],
    capture.io,
  );
  const report = code === 2 ? undefined : (JSON.parse(await readFile(path.join(out, 'report.json'), 'utf8')) as Report);
  return { code, report, err: capture.stderr() };
}

describe('distill-gate run --base-teacher', () => {
  const gates = '  agreement.top1: ">= 0.1"\n  teacherDiff.agreement: ">= 0.2"';

  it("compares the base branch's teacher with the head's on the eval split, as TF.js answers with both", async () => {
    const dir = await exampleWorkspace(quickConfig({ gates, distill: '{ epochs: 1, batchSize: 64, seed: 3 }' }));
    const base = await changedTeacher(dir, 3, 2);
    const { code, report } = await runWith(dir, '--base-teacher', base);
    expect(code).toBe(0);
    expect(report!.teacherDiff).toMatchObject({ status: 'compared', source: `--base-teacher ${base}` });
    // Recomputed with stock TF.js: both teachers' top-1 answers on the eval features.
    const { readNpy } = await import('../../src/data/npy.js');
    const x = await readNpy(path.join(dir, 'data/eval_x.npy'));
    const answers = async (file: string) => {
      const { artifacts } = await readModelArtifacts(file);
      const model = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
      const rows = tf.tidy(
        () =>
          (
            model.predict(tf.tensor2d(x.data as Float32Array, x.header.shape as [number, number])) as tf.Tensor
          ).arraySync() as number[][],
      );
      model.dispose();
      return rows.map(argmax);
    };
    const [before, after] = [await answers(base), await answers(path.join(dir, 'models/teacher/model.json'))];
    const agree = before.filter((c, i) => c === after[i]).length / before.length;
    expect(agree).toBeLessThan(1);
    expect(report!.metrics['teacherDiff.agreement']).toBeCloseTo(agree, 12);
    expect(report!.metrics['teacherDiff.kl']).toBeGreaterThan(0);
    // The bias pushed answers into class 2: it is the class that moved most.
    expect(report!.teacherDiff!.moved![0]).toMatchObject({ class: 2 });
    expect(report!.teacherDiff!.moved![0].base).toBeGreaterThan(report!.teacherDiff!.moved![0].head);
    expect(report!.gates.find((g) => g.metric === 'teacherDiff.agreement')!.status).toBe('pass');
  }, 120_000);

  it('says "teacher unchanged" for the same bytes, and exits 2 naming the flag for a path that is not there', async () => {
    const dir = await exampleWorkspace(quickConfig({ gates, distill: '{ epochs: 1, batchSize: 64, seed: 3 }' }));
    const copy = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-base-teacher-'));
    await cp(path.join(dir, 'models/teacher'), copy, { recursive: true });
    const same = await runWith(dir, '--base-teacher', path.join(copy, 'model.json'));
    expect(same.report!.teacherDiff).toMatchObject({ status: 'unchanged' });
    expect(same.report!.metrics['teacherDiff.agreement']).toBe(1);
    expect(same.report!.metrics['teacherDiff.kl']).toBe(0);
    expect(same.report!.metrics['teacherDiff.studentVsBase']).toBe(same.report!.metrics['agreement.top1']);
    const missing = await runWith(dir, '--base-teacher', path.join(copy, 'nope.json'));
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/--base-teacher/);
    // Without a base teacher the gate on it is skipped, and the run still passes.
    const none = await runWith(dir);
    expect(none.code).toBe(0);
    expect(none.report!.gates.find((g) => g.metric === 'teacherDiff.agreement')).toMatchObject({ status: 'skipped' });
  }, 120_000);
});

describe('a base teacher that cannot run on the eval split', () => {
  /** A dense teacher over `features` inputs with 10 classes, written to a folder of its own. */
  async function denseTeacher(features: number): Promise<string> {
    await tf.setBackend('cpu');
    const model = tf.sequential({
      layers: [
        tf.layers.dense({
          inputShape: [features],
          units: 10,
          kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
        }),
      ],
    });
    const out = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-base-teacher-'));
    await model.save(
      tf.io.withSaveHandler(async (artifacts) => {
        await writeModelArtifacts(out, artifacts);
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    model.dispose();
    return path.join(out, 'model.json');
  }

  it('is reported as unavailable, naming both input shapes, instead of crashing the run', async () => {
    const head = await denseTeacher(64);
    const base = await denseTeacher(32);
    const config = parseConfig(quickConfig(), path.join(EXAMPLE, 'distill-gate.yml'));
    const teacher = await loadModel(tf, head, 'teacher');
    const evalSet = inMemoryDataset('eval_x.npy', randomArray(12 * 64, 5), [64]);
    const lines: string[] = [];
    try {
      const headLogits = await predictLogits(tf, teacher, evalSet);
      const before = tf.memory().numTensors;
      const diff = await diffTeachers(
        { backend: { tf } as unknown as ResolvedBackend, teacher, evalSet },
        config,
        { path: base, source: 'git: model.json at base' },
        headLogits,
        headLogits,
        (line) => lines.push(line),
      );
      expect(diff.metrics).toBeUndefined();
      expect(diff.report).toEqual({
        status: 'unavailable',
        source: 'git: model.json at base',
        note: "the base teacher takes inputs of shape [32] and the head teacher [64]: the eval split's samples (shape [64]) cannot feed the base teacher",
      });
      expect(lines).toEqual([`teacher diff: skipped, ${diff.report.note}`]);
      // The base teacher was loaded and is disposed again.
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      teacher.dispose();
    }
  });
});
