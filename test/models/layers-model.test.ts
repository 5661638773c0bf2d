import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { LayersModel } from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveBackend, type Tf } from '../../src/backend/resolve.js';
import { InputError } from '../../src/errors.js';
import { writeModelArtifacts } from '../../src/models/artifacts.js';
import { loadModel } from '../../src/models/model.js';
import { type LoadedModel } from '../../src/models/loaded-model.js';

let tf: Tf;
beforeAll(async () => {
  ({ tf } = await resolveBackend('cpu'));
});

const ROWS = [
  [1, -0.5, 0.25, 2],
  [0, 0.5, 0, 0],
  [-1.5, 2, 0.75, -0.25],
];

async function save(model: LayersModel): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'layers-teacher-'));
  let file = '';
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      file = (await writeModelArtifacts(dir, artifacts)).modelJson;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return file;
}

const init = (seed: number) => tf.initializers.glorotUniform({ seed });

/** Input 4 -> dense 8 relu -> `classes` (3, softmax) and `flag` (1, sigmoid). */
function twoHeads(): LayersModel {
  const input = tf.input({ shape: [4] });
  const hidden = tf.layers.dense({ units: 8, activation: 'relu', kernelInitializer: init(1) }).apply(input);
  const classes = tf.layers
    .dense({ units: 3, activation: 'softmax', name: 'classes', kernelInitializer: init(2) })
    .apply(hidden);
  const flag = tf.layers
    .dense({ units: 1, activation: 'sigmoid', name: 'flag', kernelInitializer: init(3) })
    .apply(hidden);
  return tf.model({ inputs: input, outputs: [classes, flag] as ReturnType<typeof tf.input>[] });
}

function run(model: LoadedModel): number[][] {
  return tf.tidy(() => model.predict(tf.tensor2d(ROWS)).arraySync() as number[][]);
}

function reference(model: LayersModel, output: number): number[][] {
  return tf.tidy(
    () => (model.predict(tf.tensor2d(ROWS)) as ReturnType<typeof tf.tensor>[])[output].arraySync() as number[][],
  );
}

describe('LayersModel teachers', () => {
  it('refuses several outputs without teacherHead, listing them with their widths', async () => {
    const model = twoHeads();
    const file = await save(model);
    await expect(loadModel(tf, file, 'teacher')).rejects.toThrow(InputError);
    await expect(loadModel(tf, file, 'teacher')).rejects.toThrow(
      /has 2 outputs: classes \([^)]*3 wide\), flag \([^)]*1 wide\)\. Set teacherHead/,
    );
    await expect(loadModel(tf, file, 'teacher', { head: 'flags' })).rejects.toThrow(
      /teacherHead "flags": is not an output of .*model\.json; its outputs: classes/,
    );
    model.dispose();
  });

  it('picks an output layer by name, and disposes the outputs it does not return', async () => {
    const model = twoHeads();
    const file = await save(model);
    const classes = await loadModel(tf, file, 'teacher', { head: 'classes' });
    expect([classes.outputWidth, classes.output, classes.head]).toEqual([3, 'probabilities', 'classes']);
    const expected = reference(model, 0);
    run(classes).forEach((row, i) => row.forEach((v, j) => expect(v).toBeCloseTo(expected[i][j], 6)));

    const flag = await loadModel(tf, file, 'teacher', { head: 'flag' });
    expect([flag.outputWidth, flag.output, flag.head]).toEqual([2, 'probabilities', 'flag']);
    const p = reference(model, 1).map(([v]) => v);
    run(flag).forEach((row, i) => {
      expect(row[0]).toBeCloseTo(1 - p[i], 6);
      expect(row[1]).toBeCloseTo(p[i], 6);
    });

    const before = tf.memory().numTensors;
    const x = tf.tensor2d(ROWS);
    classes.predict(x).dispose();
    flag.predict(x).dispose();
    x.dispose();
    expect(tf.memory().numTensors).toBe(before);
    classes.dispose();
    flag.dispose();
    model.dispose();
  });

  it('distils a one-unit sigmoid layer (activation or Activation layer) as two classes', async () => {
    for (const last of [
      [tf.layers.dense({ units: 1, activation: 'sigmoid', kernelInitializer: init(5) })],
      [tf.layers.dense({ units: 1, kernelInitializer: init(5) }), tf.layers.activation({ activation: 'sigmoid' })],
    ]) {
      const model = tf.sequential({
        layers: [
          tf.layers.dense({ inputShape: [4], units: 8, activation: 'relu', kernelInitializer: init(4) }),
          ...last,
        ],
      });
      const teacher = await loadModel(tf, await save(model), 'teacher');
      expect([teacher.outputWidth, teacher.output]).toEqual([2, 'probabilities']);
      expect(teacher.notes?.join('\n')).toMatch(/has one unit, read as a probability p \(it ends in a sigmoid\)/);
      const p = tf
        .tidy(() => (model.predict(tf.tensor2d(ROWS)) as ReturnType<typeof tf.tensor>).arraySync() as number[][])
        .map(([v]) => v);
      run(teacher).forEach((row, i) => expect(row).toEqual([expect.closeTo(1 - p[i], 6), expect.closeTo(p[i], 6)]));
      teacher.dispose();
      model.dispose();
    }
  });

  it('reads a one-unit linear layer as a logit z: logits [0, z]', async () => {
    const model = tf.sequential({
      layers: [tf.layers.dense({ inputShape: [4], units: 1, kernelInitializer: init(6) })],
    });
    const teacher = await loadModel(tf, await save(model), 'teacher');
    expect([teacher.outputWidth, teacher.output]).toEqual([2, 'logits']);
    const z = tf
      .tidy(() => (model.predict(tf.tensor2d(ROWS)) as ReturnType<typeof tf.tensor>).arraySync() as number[][])
      .map(([v]) => v);
    run(teacher).forEach((row, i) => expect(row).toEqual([0, expect.closeTo(z[i], 6)]));
    teacher.dispose();
    model.dispose();
  });

  it('leaves single-output many-class teachers and students as they were', async () => {
    const model = tf.sequential({
      layers: [tf.layers.dense({ inputShape: [4], units: 5, activation: 'softmax', kernelInitializer: init(7) })],
    });
    const file = await save(model);
    const teacher = await loadModel(tf, file, 'teacher');
    expect([teacher.outputWidth, teacher.output, teacher.notes]).toEqual([5, 'probabilities', []]);
    const student = await loadModel(tf, file, 'student');
    expect([student.outputWidth, student.output, student.head]).toEqual([5, 'probabilities', undefined]);
    teacher.dispose();
    student.dispose();
    model.dispose();
  });
});
