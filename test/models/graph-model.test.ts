import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { GraphModel, Tensor } from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveBackend, type Tf } from '../../src/backend/resolve.js';
import { inMemoryDataset } from '../../src/data/dataset.js';
import { cacheKey } from '../../src/distill/teacher-logits.js';
import { InputError } from '../../src/errors.js';
import { readModelArtifacts } from '../../src/models/artifacts.js';
import { loadModel } from '../../src/models/model.js';
import { type LoadedModel, type TeacherOptions } from '../../src/models/loaded-model.js';
import { predictLogits } from '../../src/models/predict.js';
import { GRAPH_MODELS, graphModels } from '../../fixtures/graph-models.js';
import { evaluate, readFixture, type ModelJson } from './graph-reference.js';

let tf: Tf;
beforeAll(async () => {
  ({ tf } = await resolveBackend('cpu'));
});

const ROWS = [
  [1, -0.5, 0.25, 2],
  [0, 0, 0, 0],
  [-1.5, 2, 0.75, -0.25],
  [0.3, 0.1, -2, 1],
];
const dir = (name: string) => path.join(GRAPH_MODELS, name);
const modelJson = (name: string) => path.join(dir(name), 'model.json');
const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

function run(model: LoadedModel, rows = ROWS): number[][] {
  return tf.tidy(() => model.predict(tf.tensor2d(rows)).arraySync() as number[][]);
}

/** A scratch copy of a fixture with its model.json edited. */
async function edited(name: string, edit: (json: ModelJson) => void): Promise<string> {
  const target = await mkdtemp(path.join(os.tmpdir(), 'graph-model-'));
  await cp(dir(name), target, { recursive: true });
  const json = JSON.parse(await readFile(path.join(target, 'model.json'), 'utf8')) as ModelJson;
  edit(json);
  await writeFile(path.join(target, 'model.json'), JSON.stringify(json));
  return path.join(target, 'model.json');
}

async function loadError(file: string, options: TeacherOptions = {}): Promise<string> {
  try {
    (await loadModel(tf, file, 'teacher', options)).dispose();
  } catch (error) {
    expect(error).toBeInstanceOf(InputError);
    return (error as Error).message;
  }
  throw new Error('expected an InputError');
}

function expectRowsClose(actual: number[][], expected: number[][], digits = 5): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((row, i) => {
    expect(row.length).toBe(expected[i].length);
    row.forEach((v, j) => expect(v).toBeCloseTo(expected[i][j], digits));
  });
}

describe("GraphModel fixtures (the converter's format)", () => {
  it('are what fixtures/graph-models.ts writes', async () => {
    for (const [name, { json, shard }] of Object.entries(graphModels())) {
      expect(JSON.parse(await readFile(modelJson(name), 'utf8')), name).toEqual(json);
      expect((await readFile(path.join(dir(name), 'group1-shard1of1.bin'))).equals(shard), name).toBe(true);
    }
  });

  it.each(['softmax', 'two-head', 'sigmoid'])(
    "%s loads with tf.loadGraphModel, predicts as the hand reference, and has no output shape but the signature's",
    async (name) => {
      const artifacts = (await readModelArtifacts(modelJson(name))).artifacts;
      const model = (await tf.loadGraphModel(tf.io.fromMemory(artifacts))) as GraphModel;
      const fixture = await readFixture(dir(name));
      const outputs = Object.entries(fixture.json.signature.outputs);
      // The converter's Identity output nodes carry no shape: the bug this fixture reproduces.
      expect(model.outputs.map((o) => o.shape)).toEqual(outputs.map(() => undefined));
      expect(model.outputNodes).toEqual(outputs.map(([key]) => key));
      expect(model.inputs[0].shape).toEqual([-1, 4]);
      for (const [key, info] of outputs) {
        const actual = tf.tidy(() => (model.execute(tf.tensor2d(ROWS), key) as Tensor).arraySync() as number[][]);
        expectRowsClose(
          actual,
          ROWS.map((row) => evaluate(fixture, row, info.name)),
        );
        expect(actual[0].length).toBe(Number(info.tensorShape.dim[1].size));
      }
      model.dispose();
    },
  );
});

describe('loading a GraphModel teacher', () => {
  it('takes input shape and output width from the signature', async () => {
    const teacher = await loadModel(tf, modelJson('softmax'), 'teacher');
    expect(teacher.format).toBe('graph-model');
    expect(teacher.inputShape).toEqual([4]);
    expect(teacher.outputWidth).toBe(3);
    expect(teacher.output).toBe('probabilities');
    expect(teacher.head).toBe('output_0');
    expect(teacher.notes).toEqual([]);
    const fixture = await readFixture(dir('softmax'));
    expectRowsClose(
      run(teacher),
      ROWS.map((row) => evaluate(fixture, row, 'Identity:0')),
    );
    teacher.dispose();
  });

  it('finds the width by one forward pass when there is no signature, and leaks no tensor doing so', async () => {
    const bare = await edited('softmax', (json) => {
      delete (json as Partial<ModelJson>).signature;
    });
    const before = tf.memory().numTensors;
    const withSignature = await loadModel(tf, modelJson('softmax'), 'teacher');
    const weights = tf.memory().numTensors - before;
    withSignature.dispose();
    const teacher = await loadModel(tf, bare, 'teacher');
    expect(tf.memory().numTensors - before).toBe(weights);
    expect(teacher.outputWidth).toBe(3);
    expect(teacher.inputShape).toEqual([4]);
    expect(teacher.output).toBe('probabilities');
    expect(teacher.notes?.join('\n')).toMatch(
      /width of head Identity found by running the teacher once on zeros of shape \[1, 4\]/,
    );
    const fixture = await readFixture(dir('softmax'));
    expectRowsClose(
      run(teacher),
      ROWS.map((row) => evaluate(fixture, row, 'Identity:0')),
    );
    teacher.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('runs the forward pass when the signature leaves the width free', async () => {
    const free = await edited('softmax', (json) => {
      json.signature.outputs.output_0.tensorShape.dim[1].size = '-1';
    });
    const teacher = await loadModel(tf, free, 'teacher');
    expect(teacher.outputWidth).toBe(3);
    expect(teacher.notes?.join('\n')).toMatch(/found by running the teacher once/);
    teacher.dispose();
  });

  it('refuses an output that is not [batch, classes]', async () => {
    const image = await edited('softmax', (json) => {
      json.signature.outputs.output_0.tensorShape.dim = [{ size: '-1' }, { size: '2' }, { size: '2' }, { size: '3' }];
    });
    expect(await loadError(image)).toMatch(
      /head output_0 has shape \[None, 2, 2, 3\]; distill-gate distills a \[batch, classes\] output/,
    );
  });
});

describe('teacherHead: picking one output of a multi-output teacher', () => {
  it('refuses a multi-output graph without teacherHead, listing the outputs and their widths', async () => {
    expect(await loadError(modelJson('two-head'))).toMatch(
      /two-head\/model\.json: has 2 outputs: output_0 \(Identity:0, 3 wide\), output_1 \(Identity_1:0, 1 wide\)\. Set teacherHead to the one to distill/,
    );
  });

  it('lists the widths found by running the graph when the signature has none', async () => {
    const bare = await edited('two-head', (json) => {
      delete (json as Partial<ModelJson>).signature;
    });
    const before = tf.memory().numTensors;
    expect(await loadError(bare)).toMatch(
      /has 2 outputs: Identity \(Identity:0, 3 wide\), Identity_1 \(Identity_1:0, 1 wide\)/,
    );
    expect(tf.memory().numTensors).toBe(before);
  });

  it('refuses a name that is not an output, listing the outputs', async () => {
    expect(await loadError(modelJson('two-head'), { head: 'Identity_2' })).toMatch(
      /teacherHead "Identity_2": is not an output of .*two-head\/model\.json; its outputs: output_0 \(Identity:0, 3 wide\), output_1 \(Identity_1:0, 1 wide\)/,
    );
    expect(await loadError(modelJson('softmax'), { head: 'logits' })).toMatch(/teacherHead "logits": is not an output/);
  });

  it.each(['output_0', 'Identity', 'Identity:0'])('picks the softmax head by %s', async (head) => {
    const teacher = await loadModel(tf, modelJson('two-head'), 'teacher', { head });
    expect([teacher.outputWidth, teacher.output, teacher.head]).toEqual([3, 'probabilities', 'output_0']);
    expect(teacher.notes?.[0]).toMatch(/distilling head output_0 \(3 wide\), one of 2 outputs/);
    const fixture = await readFixture(dir('two-head'));
    expectRowsClose(
      run(teacher),
      ROWS.map((row) => evaluate(fixture, row, 'Identity:0')),
    );
    teacher.dispose();
  });

  it.each(['output_1', 'Identity_1', 'Identity_1:0'])('picks the sigmoid head by %s, as two classes', async (head) => {
    const teacher = await loadModel(tf, modelJson('two-head'), 'teacher', { head });
    expect([teacher.outputWidth, teacher.output, teacher.head]).toEqual([2, 'probabilities', 'output_1']);
    const fixture = await readFixture(dir('two-head'));
    expectRowsClose(
      run(teacher),
      ROWS.map((row) => {
        const p = evaluate(fixture, row, 'Identity_1:0')[0];
        return [1 - p, p];
      }),
    );
    teacher.dispose();
  });

  it('keys the soft-target cache by the head', async () => {
    const a = await loadModel(tf, modelJson('two-head'), 'teacher', { head: 'output_0' });
    const b = await loadModel(tf, modelJson('two-head'), 'teacher', { head: 'output_1' });
    const data = inMemoryDataset('d', new Float32Array(ROWS.flat()), [4]);
    expect(a.fingerprint).toBe(b.fingerprint);
    expect(await cacheKey(a, data, 'cpu')).not.toBe(await cacheKey(b, data, 'cpu'));
    a.dispose();
    b.dispose();
  });
});

describe('one-unit teachers are distilled as two classes', () => {
  it('reads a sigmoid output p as probabilities [1 - p, p]', async () => {
    const teacher = await loadModel(tf, modelJson('sigmoid'), 'teacher');
    expect([teacher.outputWidth, teacher.output]).toEqual([2, 'probabilities']);
    expect(teacher.notes?.join('\n')).toMatch(
      /head output_0 has one unit, read as a probability p \(it ends in a sigmoid\): distilled as two classes, probabilities \[1 - p, p\]/,
    );
    const fixture = await readFixture(dir('sigmoid'));
    const p = ROWS.map((row) => evaluate(fixture, row, 'Identity:0')[0]);
    expectRowsClose(
      run(teacher),
      p.map((v) => [1 - v, v]),
    );
    // The soft targets are log-probabilities of two classes, not a constant column (loss 0).
    const logits = await predictLogits(tf, teacher, inMemoryDataset('d', new Float32Array(ROWS.flat()), [4]));
    expect(Array.from(logits)).toHaveLength(ROWS.length * 2);
    p.forEach((v, i) => {
      expect(logits[2 * i]).toBeCloseTo(Math.log(1 - v), 5);
      expect(logits[2 * i + 1]).toBeCloseTo(Math.log(v), 5);
    });
    teacher.dispose();
  });

  it('reads a single logit z (no sigmoid) as logits [0, z], whose softmax is [1 - sigmoid(z), sigmoid(z)]', async () => {
    // The same graph with its Sigmoid removed: Identity reads the last dense layer directly.
    const logit = await edited('sigmoid', (json) => {
      const nodes = json.modelTopology.node;
      const sig = nodes.find((n) => n.op === 'Sigmoid')!;
      nodes.find((n) => n.name === 'Identity')!.input = sig.input;
      json.modelTopology.node = nodes.filter((n) => n !== sig);
    });
    const teacher = await loadModel(tf, logit, 'teacher');
    expect([teacher.outputWidth, teacher.output]).toEqual([2, 'logits']);
    expect(teacher.notes?.join('\n')).toMatch(
      /read as a logit z \(it does not end in a sigmoid\): distilled as two classes, logits \[0, z\]/,
    );
    const fixture = await readFixture(dir('sigmoid'));
    const z = ROWS.map((row) => evaluate(fixture, row, 'StatefulPartitionedCall/functional_1/dense_2/BiasAdd'));
    const out = run(teacher);
    expectRowsClose(
      out,
      z.map(([v]) => [0, v]),
    );
    const probabilities = tf.tidy(() => tf.softmax(tf.tensor2d(out)).arraySync() as number[][]);
    expectRowsClose(
      probabilities,
      z.map(([v]) => [1 - sigmoid(v), sigmoid(v)]),
    );
    teacher.dispose();
  });

  it("follows teacherOutput for the chosen head: logits makes a sigmoid head's output a logit", async () => {
    const teacher = await loadModel(tf, modelJson('sigmoid'), 'teacher', { output: 'logits' });
    expect([teacher.outputWidth, teacher.output]).toEqual([2, 'logits']);
    expect(teacher.notes?.join('\n')).toMatch(/read as a logit z \(teacherOutput: logits\)/);
    const fixture = await readFixture(dir('sigmoid'));
    expectRowsClose(
      run(teacher),
      ROWS.map((row) => [0, evaluate(fixture, row, 'Identity:0')[0]]),
    );
    teacher.dispose();
  });

  it('teacherOutput still overrides a many-class head', async () => {
    const teacher = await loadModel(tf, modelJson('softmax'), 'teacher', { output: 'logits' });
    expect([teacher.outputWidth, teacher.output]).toEqual([3, 'logits']);
    teacher.dispose();
  });

  it('predicting leaves no tensor behind', async () => {
    const teacher = await loadModel(tf, modelJson('sigmoid'), 'teacher');
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      const x = tf.tensor2d(ROWS);
      teacher.predict(x).dispose();
      x.dispose();
    }
    await predictLogits(tf, teacher, inMemoryDataset('d', new Float32Array(ROWS.flat()), [4]), ROWS.length, 3);
    expect(tf.memory().numTensors).toBe(before);
    teacher.dispose();
  });
});
