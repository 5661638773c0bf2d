import type { LayersModel, Tensor, Variable } from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveBackend, type Tf } from '../../src/backend/resolve.js';
import type { LayerSpec } from '../../src/config/schema.js';
import { FlatAdam } from '../../src/distill/adam.js';
import { distillationLoss, kdLossAndGradient } from '../../src/distill/loss.js';
import { kdTargets, kdTerms } from '../../src/distill/targets.js';
import { denseStack, trainingStep, type TrainingStep } from '../../src/distill/training-step.js';
import { buildStudent } from '../../src/models/student.js';
import { maxRelativeError, randomArray } from '../helpers.js';

let tf: Tf;
beforeAll(async () => {
  ({ tf } = await resolveBackend('cpu'));
});

const rows = 12;
const classes = 5;
const everyRow = Array.from({ length: rows }, (_, i) => i);
const labels = Int32Array.from(everyRow, (i) => (i * 3) % classes);
const settings = { temperature: 3, alpha: 0.7 };

describe('KD loss from host-side targets', () => {
  const teacher = randomArray(rows * classes, 1, 4);
  const student = randomArray(rows * classes, 2, 4);
  const logProbs = Float32Array.from(teacher, (_, i) => {
    const row = teacher.subarray(i - (i % classes), i - (i % classes) + classes);
    return teacher[i] - Math.log(row.reduce((sum, v) => sum + Math.exp(v), 0));
  });
  const cases = [
    { name: 'with labels', teacher, labels },
    { name: 'without labels', teacher, labels: undefined },
    { name: 'from a softmax teacher (log-probabilities)', teacher: logProbs, labels },
  ];

  for (const c of cases) {
    it(`equals the paper's loss and its autodiff gradient, ${c.name}`, () => {
      const s = tf.tensor2d(student, [rows, classes]);
      const y = c.labels ? tf.tensor1d(c.labels, 'int32') : undefined;
      // The reference uses the teacher's logits, not log-probabilities: both give the same targets.
      const reference = (logits: Tensor) =>
        distillationLoss(tf, logits, tf.tensor2d(teacher, [rows, classes]), y, settings);
      const { value: expected, grad } = tf.valueAndGrad(reference)(s);
      const batch = kdTargets(c.teacher, c.labels, everyRow, classes, settings);
      const { value, gradient } = kdLossAndGradient(
        tf,
        s,
        tf.tensor2d(batch.targets, [rows, classes]),
        kdTerms(settings, c.labels !== undefined),
      );
      expect(value.dataSync()[0] + batch.constant / rows).toBeCloseTo(expected.dataSync()[0], 4);
      expect(maxRelativeError(gradient.dataSync(), grad.dataSync())).toBeLessThan(1e-4);
    });
  }

  it('is zero, with a zero gradient, where the student equals the teacher and no labels are given', () => {
    const batch = kdTargets(teacher, undefined, everyRow, classes, settings);
    const { value, gradient } = kdLossAndGradient(
      tf,
      tf.tensor2d(teacher, [rows, classes]),
      tf.tensor2d(batch.targets, [rows, classes]),
      kdTerms(settings, false),
    );
    expect(value.dataSync()[0] + batch.constant / rows).toBeCloseTo(0, 5);
    expect(Math.max(...gradient.abs().dataSync())).toBeLessThan(1e-6);
  });
});

describe('FlatAdam', () => {
  it('takes the steps tf.train.adam takes', () => {
    const shapes = [[4, 3], [3], [3, 2]];
    const make = () =>
      shapes.map((shape, i) =>
        tf.variable(
          tf.tensor(
            randomArray(
              shape.reduce((a, b) => a * b),
              10 + i,
            ),
            shape,
          ),
        ),
      );
    const ours = make();
    const theirs = make();
    const flat = new FlatAdam(tf, ours, 0.01);
    const reference = tf.train.adam(0.01);
    for (let step = 0; step < 20; step++) {
      const gradients = shapes.map((shape, i) =>
        tf.tensor(
          randomArray(
            shape.reduce((a, b) => a * b),
            100 * step + i,
          ),
          shape,
        ),
      );
      tf.tidy(() => flat.apply(gradients));
      reference.applyGradients(theirs.map((v, i) => ({ name: v.name, tensor: gradients[i] })));
    }
    for (let i = 0; i < shapes.length; i++)
      expect(maxRelativeError(ours[i].dataSync(), theirs[i].dataSync())).toBeLessThan(1e-4);
    // The weights did move: the comparison is not between two untouched copies.
    expect(maxRelativeError(ours[0].dataSync(), randomArray(12, 10))).toBeGreaterThan(1e-2);
    flat.dispose();
    reference.dispose();
  });
});

describe('training step', () => {
  const denseStudents: Record<string, LayerSpec[]> = {
    'relu stack': [
      { type: 'dense', units: 6, activation: 'relu' },
      { type: 'dense', units: classes },
    ],
    'tanh and sigmoid, one layer without bias': [
      { type: 'dense', units: 6, activation: 'tanh' },
      { type: 'dense', units: 6, activation: 'sigmoid', useBias: false },
      { type: 'dense', units: classes },
    ],
    'softmax output': [
      { type: 'dense', units: 6, activation: 'relu' },
      { type: 'dense', units: classes, activation: 'softmax' },
    ],
  };
  const otherStudents: Record<string, LayerSpec[]> = {
    'batch normalisation': [
      { type: 'dense', units: 6, activation: 'relu' },
      { type: 'batchNormalization' },
      { type: 'dense', units: classes },
    ],
    'elu activation': [
      { type: 'dense', units: 6, activation: 'elu' },
      { type: 'dense', units: classes },
    ],
    'softmax in a hidden layer': [
      { type: 'dense', units: 6, activation: 'softmax' },
      { type: 'dense', units: classes },
    ],
    'an L2 kernel regulariser': [
      {
        type: 'dense',
        units: 6,
        activation: 'relu',
        kernelRegularizer: { className: 'L1L2', config: { l1: 0, l2: 0.05 } },
      },
      { type: 'dense', units: classes },
    ],
  };
  const x = randomArray(rows * 8, 3);
  const teacher = randomArray(rows * classes, 4, 3);

  /** The textbook step: autodiff through the paper's loss, tf.train.adam. */
  async function referenceRun(layers: LayerSpec[], steps: number) {
    const student = await buildStudent(tf, { layers }, [8], 5);
    const model = student.layers as LayersModel;
    const optimizer = tf.train.adam(0.01);
    const losses: number[] = [];
    for (let i = 0; i < steps; i++) {
      const loss = optimizer.minimize(() => {
        const output = model.apply(tf.tensor2d(x, [rows, 8]), { training: true }) as Tensor;
        const logits = student.output === 'probabilities' ? tf.log(tf.maximum(output, 1e-12)) : output;
        const loss = distillationLoss(
          tf,
          logits,
          tf.tensor2d(teacher, [rows, classes]),
          tf.tensor1d(labels, 'int32'),
          settings,
        );
        return tf.addN([loss, ...model.calculateLosses()]) as typeof loss;
      }, true);
      losses.push(loss!.dataSync()[0]);
    }
    return { losses, weights: model.getWeights().map((w) => w.dataSync()) };
  }

  /** A seeded student of `layers` on [8] features and its training step of `kind` (default: the step's choice). */
  async function studentAndStep(layers: LayerSpec[], kind?: TrainingStep['kind']) {
    const student = await buildStudent(tf, { layers }, [8], 5);
    const step = trainingStep(tf, student, {
      learningRate: 0.01,
      terms: kdTerms(settings, true),
      sampleShape: [8],
      maxRows: rows,
      kind,
    });
    return { student, step };
  }

  async function ourRun(layers: LayerSpec[], steps: number, kind?: TrainingStep['kind']) {
    const { student, step } = await studentAndStep(layers, kind);
    const batch = kdTargets(teacher, labels, everyRow, classes, settings);
    const losses: number[] = [];
    for (let i = 0; i < steps; i++) {
      const loss = step.run(x, batch.targets, rows);
      losses.push((typeof loss === 'number' ? loss : loss.dataSync()[0]) + batch.constant / rows);
      if (typeof loss !== 'number') loss.dispose();
    }
    step.sync();
    step.dispose();
    return { kind: step.kind, losses, weights: (student.layers as LayersModel).getWeights().map((w) => w.dataSync()) };
  }

  const cases = [
    ...Object.entries(denseStudents).flatMap(([name, layers]) => [
      { name, layers, kind: 'kernel' as const },
      { name, layers, kind: 'dense' as const },
    ]),
    ...Object.entries(otherStudents).map(([name, layers]) => ({ name, layers, kind: 'autodiff' as const })),
  ];
  for (const { name, layers, kind } of cases) {
    it(`trains a student (${name}) with the ${kind} step exactly as autodiff with tf.train.adam does`, async () => {
      const steps = 8;
      const [ours, reference] = [await ourRun(layers, steps, kind), await referenceRun(layers, steps)];
      expect(ours.kind).toBe(kind);
      expect(maxRelativeError(ours.losses, reference.losses)).toBeLessThan(1e-4);
      expect(ours.weights).toHaveLength(reference.weights.length);
      ours.weights.forEach((w, i) => expect(maxRelativeError(w, reference.weights[i])).toBeLessThan(1e-3));
      expect(ours.losses[steps - 1]).toBeLessThan(ours.losses[0]);
    });
  }

  it('picks the kernel on the bundled CPU backends for the layers it knows, autodiff for the rest', async () => {
    const dense = await buildStudent(tf, { layers: denseStudents['relu stack'] }, [8], 5);
    const normalised = await buildStudent(tf, { layers: otherStudents['batch normalisation'] }, [8], 5);
    const other = await buildStudent(tf, { layers: otherStudents['elu activation'] }, [8], 5);
    const settingsFor = { learningRate: 0.01, terms: kdTerms(settings, true), sampleShape: [8], maxRows: rows };
    expect(tf.getBackend()).toBe('cpu');
    expect(trainingStep(tf, dense, settingsFor).kind).toBe('kernel');
    expect(trainingStep(tf, normalised, settingsFor).kind).toBe('kernel');
    expect(trainingStep(tf, other, settingsFor).kind).toBe('autodiff');
    expect(trainingStep(tf, other, settingsFor).whyNotKernel).toMatch(/activation "elu"/);
    expect(() => trainingStep(tf, other, { ...settingsFor, kind: 'dense' })).toThrow(/Dense stacks only/);
    // Batches too large for a 32-bit WebAssembly memory: the dense step in TF.js ops instead,
    // unless the kernel was asked for by name.
    const huge = { ...settingsFor, maxRows: 60_000_000 };
    expect(trainingStep(tf, dense, huge).kind).toBe('dense');
    expect(() => trainingStep(tf, dense, { ...huge, kind: 'kernel' })).toThrow(RangeError);
  });

  it('keeps the live tensor count flat from the second step on, on every path', async () => {
    for (const [layers, kind] of [
      [denseStudents['relu stack'], 'kernel'],
      [denseStudents['relu stack'], 'dense'],
      [otherStudents['batch normalisation'], 'autodiff'],
    ] as const) {
      const { student, step } = await studentAndStep([...layers], kind);
      const batch = kdTargets(teacher, labels, everyRow, classes, settings);
      const counts: number[] = [];
      for (let i = 0; i < 5; i++) {
        const loss = step.run(x, batch.targets, rows);
        if (typeof loss !== 'number') loss.dispose();
        step.sync();
        counts.push(tf.memory().numTensors);
      }
      expect(new Set(counts).size).toBe(1);
      step.dispose();
      student.dispose();
    }
  });

  it('applies weight constraints after every update', async () => {
    const student = await buildStudent(
      tf,
      {
        layers: [
          { type: 'dense', units: 6, activation: 'relu', kernelConstraint: 'nonNeg' },
          { type: 'dense', units: classes },
        ],
      },
      [8],
      5,
    );
    const step = trainingStep(tf, student, {
      learningRate: 0.05,
      terms: kdTerms(settings, true),
      sampleShape: [8],
      maxRows: rows,
    });
    expect(step.kind).toBe('autodiff');
    const batch = kdTargets(teacher, labels, everyRow, classes, settings);
    for (let i = 0; i < 20; i++) (step.run(x, batch.targets, rows) as Tensor).dispose();
    const kernel = (student.layers as LayersModel).getWeights()[0].dataSync();
    expect(Math.min(...kernel)).toBeGreaterThanOrEqual(0);
    step.dispose();
  });

  it('takes the dense step only for Sequential stacks of trainable Dense layers', async () => {
    const withFlatten = await buildStudent(
      tf,
      { layers: [{ type: 'flatten' }, { type: 'dense', units: 3 }] },
      [2, 4],
      1,
    );
    expect(denseStack(withFlatten.layers as LayersModel)?.flatten).toBe(true);
    const frozen = await buildStudent(
      tf,
      {
        layers: [
          { type: 'dense', units: 3, trainable: false },
          { type: 'dense', units: 3 },
        ],
      },
      [8],
      1,
    );
    expect(denseStack(frozen.layers as LayersModel)).toBeUndefined();
    const conv = await buildStudent(
      tf,
      { layers: [{ type: 'conv2d', filters: 2, kernelSize: 2 }, { type: 'flatten' }, { type: 'dense', units: 3 }] },
      [4, 4, 1],
      1,
    );
    expect(denseStack(conv.layers as LayersModel)).toBeUndefined();
    const variables = denseStack(
      (await buildStudent(tf, { layers: denseStudents['tanh and sigmoid, one layer without bias'] }, [8], 1))
        .layers as LayersModel,
    )!.layers;
    expect(variables.map((l) => [l.activation, l.bias !== undefined])).toEqual([
      ['tanh', true],
      ['sigmoid', false],
      ['linear', true],
    ]);
    expect((variables[0].kernel as Variable).shape).toEqual([8, 6]);
  });
});
