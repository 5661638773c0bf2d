import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { loadConfig, parseConfig } from '../../src/config/load.js';
import { inMemoryDataset } from '../../src/data/dataset.js';
import { parseGates } from '../../src/gates/gates.js';
import { measuredMetrics } from '../../src/measure/metrics.js';
import { wrapLayersModel } from '../../src/models/model.js';
import { type LoadedModel } from '../../src/models/loaded-model.js';
import { predictLogits } from '../../src/models/predict.js';
import type { Distillation } from '../../src/stages/distill.js';
import { judgeRun } from '../../src/stages/judge.js';
import { shippedStudentMetrics } from '../../src/stages/measure/shipped.js';
import { sampleEnvironment } from '../sample-report.js';
import { readNpy } from '../../src/data/npy.js';
import { argmax, measureAgreement } from '../../src/measure/agreement.js';
import { SOFTMAX_LAYER } from '../../src/models/export.js';
import { runPipeline } from '../../src/pipeline.js';
import { exampleWorkspace, quickConfig, randomArray } from '../helpers.js';

// The example's teacher ends in a softmax: it outputs probabilities. The student trains on logits
// whatever the export, and student/ is what an app loads in the teacher's place.

async function run(exportLine: string) {
  const dir = await exampleWorkspace(
    quickConfig({ top: exportLine, distill: '{ epochs: 2, batchSize: 64, seed: 3, learningRate: 0.01 }' }),
  );
  const config = await loadConfig(path.join(dir, 'distill-gate.yml'));
  const outDir = path.join(dir, 'out');
  const result = await runPipeline(config, { outDir, searchFrom: [dir] });
  return { dir, outDir, report: result.report };
}

/** student/ as stock TF.js loads it, run on the example's eval features. */
async function shippedAnswers(
  outDir: string,
  evalX: tf.Tensor2D,
): Promise<{ rows: number[][]; json: { modelTopology: unknown } }> {
  const dir = path.join(outDir, 'student');
  const json = JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8'));
  const shard = await readFile(path.join(dir, json.weightsManifest[0].paths[0]));
  const model = await tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: json.modelTopology,
      weightSpecs: json.weightsManifest[0].weights,
      weightData: shard.buffer.slice(shard.byteOffset, shard.byteOffset + shard.byteLength),
    }),
  );
  const rows = tf.tidy(() => (model.predict(evalX) as tf.Tensor).arraySync() as number[][]);
  model.dispose();
  return { rows, json };
}

async function evalSet(dir: string) {
  const x = await readNpy(path.join(dir, 'data/eval_x.npy'));
  return tf.tensor2d(Float32Array.from(x.data as Float32Array), x.header.shape as [number, number]);
}

describe('the shipped student', () => {
  it("answers with the teacher's output kind (a final softmax) by default, and exactly softmax of what a logits export answers", async () => {
    const probabilities = await run('');
    const logits = await run('export: { output: logits }');
    // The export does not touch training or measuring: the same seed gives the same metrics.
    expect(probabilities.report.metrics.kl).toBe(logits.report.metrics.kl);
    expect(probabilities.report.export).toEqual({ quantize: 'none', output: 'probabilities' });
    expect(logits.report.export).toEqual({ quantize: 'none', output: 'logits' });
    const x = await evalSet(probabilities.dir);
    const p = await shippedAnswers(probabilities.outDir, x);
    const l = await shippedAnswers(logits.outDir, x);
    const layers = (json: { modelTopology: unknown }) =>
      (json.modelTopology as { config: { layers: Array<{ config: { name: string } }> } }).config.layers;
    expect(layers(p.json).at(-1)!.config.name).toBe(SOFTMAX_LAYER);
    expect(layers(l.json).at(-1)!.config.name).not.toBe(SOFTMAX_LAYER);
    const softmaxed = tf.tidy(() => tf.softmax(tf.tensor2d(l.rows)).arraySync());
    expect(Math.max(...p.rows.flat().map((v, i) => Math.abs(v - softmaxed.flat()[i])))).toBeLessThan(1e-6);
    x.dispose();
  }, 120_000);

  it('ships uint8 weights: size.studentBytes counts the shard, and quantized.* are what the loaded student/ scores', async () => {
    const { dir, outDir, report } = await run('export: { quantize: uint8 }');
    const m = report.metrics;
    const shard = await readFile(path.join(outDir, 'student/group1-shard1of1.bin'));
    expect(m['size.studentBytes']).toBe(shard.length);
    expect(m['size.studentFloatBytes']).toBe(4 * shard.length);
    expect(m['size.ratio']).toBeCloseTo(shard.length / m['size.teacherBytes'], 12);
    expect(Object.keys(m)).toEqual(
      expect.arrayContaining(['quantized.agreement.top1', 'quantized.kl', 'quantized.accuracy']),
    );
    // Recomputed from student/ as an app loads it, against the teacher's answers on the eval split.
    const x = await evalSet(dir);
    const teacher = await tf.loadLayersModel(
      tf.io.fromMemory(
        await (async () => {
          const json = JSON.parse(await readFile(path.join(dir, 'models/teacher/model.json'), 'utf8'));
          const bin = await readFile(path.join(dir, 'models/teacher', json.weightsManifest[0].paths[0]));
          return {
            modelTopology: json.modelTopology,
            weightSpecs: json.weightsManifest[0].weights,
            weightData: bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength),
          };
        })(),
      ),
    );
    const teacherRows = tf.tidy(() => (teacher.predict(x) as tf.Tensor).arraySync() as number[][]);
    teacher.dispose();
    const { rows } = await shippedAnswers(outDir, x);
    const agree = rows.filter((row, i) => argmax(row) === argmax(teacherRows[i])).length / rows.length;
    expect(m['quantized.agreement.top1']).toBeCloseTo(agree, 12);
    const labels = (await readNpy(path.join(dir, 'data/eval_y.npy'))).data;
    const correct = rows.filter((row, i) => argmax(row) === Number(labels[i])).length / rows.length;
    expect(m['quantized.accuracy']).toBeCloseTo(correct, 12);
    x.dispose();
  }, 120_000);
});

describe('a shipped student that quantization breaks', () => {
  it('clips float16 weights beyond 65,504 with a warning, and fails the default quantized gate when the shipped student answers otherwise', async () => {
    await tf.setBackend('cpu');
    // class 0 = 70000·x0, class 1 = 65504·x0 + 10000·x1: clipped to 65,504, class 0 loses to class 1 whenever x1 > 0.
    const model = tf.sequential({
      layers: [tf.layers.dense({ inputShape: [2], units: 2, useBias: false, name: 'wide' })],
    });
    const kernel = tf.tensor2d([
      [70000, 65504],
      [0, 10000],
    ]);
    model.setWeights([kernel]);
    kernel.dispose();
    const student = wrapLayersModel(model, 16);
    const evalSet = inMemoryDataset('eval_x.npy', randomArray(400, 3), [2]);
    const config = parseConfig(
      quickConfig({ top: 'export: { quantize: float16 }', gates: '  agreement.top1: ">= 0.5"' }),
      '/repo/distill-gate.yml',
    );
    const floatLogits = await predictLogits(tf, student, evalSet);
    const before = tf.memory().numTensors;
    try {
      // The teacher answers as the float32 student does: agreement 1.
      const shipped = await shippedStudentMetrics(
        tf,
        { student, teacher: { params: 4, bytes: 16 } as LoadedModel, evalSet },
        { quantize: 'float16', output: 'logits' },
        config,
        floatLogits,
        floatLogits,
      );
      expect(tf.memory().numTensors).toBe(before);
      expect(shipped.warnings).toEqual([
        "export.quantize float16: 1 weight value in wide/kernel (1) did not fit and was clipped to float16's largest value, ±65,504 (beyond it they would ship as Infinity and the student would output NaN).",
      ]);
      const top1 = shipped.agreement!['quantized.agreement.top1']!;
      expect(top1).toBeGreaterThan(0.5);
      expect(top1).toBeLessThan(0.95);
      expect(Number.isFinite(shipped.agreement!['quantized.kl'])).toBe(true);
      const checks = parseGates(config.gates, measuredMetrics({ classes: 2, topK: 5, labels: false, quantized: true }));
      const metrics = { ...measureAgreement(floatLogits, floatLogits, 2, 5).metrics, ...shipped.agreement };
      const finished = {
        training: { epochsCompleted: 3, loss: [1], batchSize: 64, notes: [] },
        overBudget: false,
      } as unknown as Distillation;
      const judgement = judgeRun({ checks, baseline: undefined }, config, finished, {
        metrics,
        environment: sampleEnvironment,
        warnings: shipped.warnings,
      });
      expect(judgement.gates.map((g) => [g.metric, g.status])).toEqual([
        ['agreement.top1', 'pass'],
        ['quantized.agreement.top1', 'fail'],
      ]);
      expect(judgement.verdict).toBe('fail');
      expect(judgement.reasons).toEqual([
        shipped.warnings[0],
        expect.stringMatching(/^The shipped student \(export\.quantize float16\) agrees with the teacher on/),
      ]);
    } finally {
      student.dispose();
    }
  });
});
