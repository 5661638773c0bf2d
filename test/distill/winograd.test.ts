// The Winograd F(2x2, 3x3) convolution of the WebAssembly kernel (kernel/winograd.c) against
// TF.js autodiff: forward outputs, input gradient and weight gradient of one step read from the
// kernel's memory, then several training steps with tf.train.adam.
//
// Tolerance. The F(2x2, 3x3) transforms' coefficients are 0, +-1 and +-1/2, exact in binary: a
// transformed value sums at most 9 terms (|U| <= 2.25 max |g|, |V| <= 4 max |d|), and an output
// sums 16 * inC products, then 9 transformed values. Each float32 addition rounds by at most
// 2^-24 ~ 6e-8 of its result, and the transforms make the partial sums up to ~9x larger than a
// direct sum's, so the worst case over n ~ 16 * inC + 9 roundings is ~n * 9 * 6e-8 ~ 1e-4 of the
// largest value for inC = 16; rounding errors have random signs and grow as sqrt(n) in practice,
// ~1e-6, which is what these cases show (im2col: ~1e-7). We compare the largest difference to the
// largest magnitude (an elementwise relative error means nothing where a sum cancels to ~0) and
// allow 2e-5: 20x what we see, inside the worst case, and 5 orders below the O(1) error of any
// wrong coefficient (flipping one sign in a transform gives ~1).
import type { LayersModel, Tensor, Variable } from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveBackend, type Tf } from '../../src/backend/resolve.js';
import { NET, OP } from '../../src/distill/kernel/abi.js';
import { distillationLoss } from '../../src/distill/loss.js';
import { planKernel, usesWinograd, WINOGRAD_MIN_CHANNELS, winogradTile } from '../../src/distill/kernel-plan.js';
import { NetKernel } from '../../src/distill/net-kernel.js';
import { kdTargets, kdTerms } from '../../src/distill/targets.js';
import { maxRelativeError, randomArray } from '../helpers.js';

let tf: Tf;
beforeAll(async () => {
  ({ tf } = await resolveBackend('cpu'));
});

const rows = 3;
const classes = 4;
const settings = { temperature: 3, alpha: 0.7 };
const everyRow = Array.from({ length: rows }, (_, i) => i);
const labels = Int32Array.from(everyRow, (i) => (i * 3) % classes);
const teacher = randomArray(rows * classes, 4, 3);
const TOLERANCE = 2e-5;

interface Conv {
  filters: number;
  padding: 'valid' | 'same';
  activation: 'linear' | 'relu';
}

/** Odd sizes (tiles overhang the right and bottom edges), channel counts off multiples of 4. */
const cases: Record<string, { input: [number, number, number]; convs: [Conv, Conv]; adam?: false }> = {
  'valid then same, 7x9 input, 9 then 6 channels': {
    input: [7, 9, WINOGRAD_MIN_CHANNELS],
    convs: [
      { filters: WINOGRAD_MIN_CHANNELS + 1, padding: 'valid', activation: 'linear' },
      { filters: 6, padding: 'same', activation: 'relu' },
    ],
  },
  'same then valid, 6x5 input, 11 then 3 channels': {
    input: [6, 5, WINOGRAD_MIN_CHANNELS + 3],
    convs: [
      { filters: WINOGRAD_MIN_CHANNELS + 3, padding: 'same', activation: 'linear' },
      { filters: 3, padding: 'valid', activation: 'relu' },
    ],
  },
  'valid to one column then same, 4x3 input, 9 then 5 channels': {
    input: [4, 3, WINOGRAD_MIN_CHANNELS],
    convs: [
      { filters: WINOGRAD_MIN_CHANNELS + 1, padding: 'valid', activation: 'linear' },
      { filters: 5, padding: 'same', activation: 'relu' },
    ],
    // Not compared over Adam steps. On a 2x1 image, many taps' gradients are exactly 0 in TF.js
    // by structure (they see only padding, or only outputs behind a dead relu); Winograd's
    // transforms leave rounding noise there (~1e-8), which Adam, scale-free, turns into a step of
    // ~lr / 10, and the trajectories part after 3 steps while each step's gradients still match
    // autodiff to 1e-6 at the kernel's own weights (the one-step test; checked step by step).
    adam: false,
  },
  'same both, 5x5 input, 16 channels': {
    input: [5, 5, 16],
    convs: [
      { filters: 16, padding: 'same', activation: 'linear' },
      { filters: 13, padding: 'same', activation: 'linear' },
    ],
  },
};

function model(input: [number, number, number], convs: Conv[]): LayersModel {
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  return tf.sequential({
    layers: [
      ...convs.map((c, i) =>
        tf.layers.conv2d({
          ...(i === 0 ? { inputShape: input } : {}),
          kernelSize: 3,
          ...c,
          kernelInitializer: init(i + 1),
          biasInitializer: init(i + 7),
        }),
      ),
      tf.layers.flatten(),
      tf.layers.dense({ units: classes, kernelInitializer: init(5) }),
    ],
  });
}

const loss = (logits: Tensor) =>
  distillationLoss(tf, logits, tf.tensor2d(teacher, [rows, classes]), tf.tensor1d(labels, 'int32'), settings);

/** max |a - b| over max |b|: a Winograd error is relative to the sum's terms, not to an element that cancels. */
function normalisedError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let [worst, largest] = [0, 0];
  for (let i = 0; i < b.length; i++)
    [worst, largest] = [Math.max(worst, Math.abs(a[i] - b[i])), Math.max(largest, Math.abs(b[i]))];
  return worst / largest;
}

/** The kernel's memory, through its private fields: one step's activations and gradients stay there. */
function kernelState(kernel: NetKernel) {
  const k = kernel as unknown as {
    memory: WebAssembly.Memory;
    netAddress: number;
    opsAddress: number;
    offsets: Array<{ variable: Variable; offset: number }>;
  };
  const words = new Uint32Array(k.memory.buffer);
  const net = (field: keyof typeof NET.fields) => words[k.netAddress / 4 + NET.fields[field].word];
  const floats = (address: number, n: number) => new Float32Array(k.memory.buffer, address, n).slice();
  return {
    output: (op: number, n: number) => floats(words[(k.opsAddress + op * OP.bytes) / 4 + OP.fields.output.word], n),
    gradient: (variable: Variable) =>
      floats(net('grads') + 4 * k.offsets.find((o) => o.variable === variable)!.offset, variable.size),
    gradA: (n: number) => floats(net('gradA'), n),
  };
}

describe('Winograd F(2x2, 3x3) convolutions in the WebAssembly kernel', () => {
  it('chooses Winograd for 3x3 stride-1 convolutions with enough input channels only', () => {
    expect(usesWinograd([8, 8, WINOGRAD_MIN_CHANNELS], [3, 3], [1, 1])).toBe(true);
    expect(usesWinograd([8, 8, WINOGRAD_MIN_CHANNELS - 1], [3, 3], [1, 1])).toBe(false);
    expect(usesWinograd([8, 8, 16], [3, 3], [2, 2])).toBe(false);
    expect(usesWinograd([8, 8, 16], [1, 1], [1, 1])).toBe(false);
    expect(usesWinograd([8, 8, 16], [2, 2], [1, 1])).toBe(false);
  });

  for (const [name, { input, convs }] of Object.entries(cases)) {
    it(`${name}: forward outputs, input and weight gradients of one step match autodiff`, () => {
      const student = model(input, convs);
      const plan = planKernel(student);
      if (!('ops' in plan)) throw new Error(plan.unsupported);
      expect(plan.ops.map((op) => op.winograd)).toEqual([2, 2, 0]);
      const x = randomArray(rows * input[0] * input[1] * input[2], 3, 2);
      const before = tf.memory().numTensors;
      const [first, second, dense] = student.layers.filter((l) => l.getClassName() !== 'Flatten');
      const reference = tf.tidy(() => {
        const h1 = first.apply(tf.tensor(x, [rows, ...input])) as Tensor;
        const tail = (h: Tensor) => loss(dense.apply(tf.layers.flatten().apply(second.apply(h)) as Tensor) as Tensor);
        const h2 = second.apply(h1) as Tensor;
        const dH1 = tf.grad(tail)(h1);
        const { grads } = tf.variableGrads(() => tail(first.apply(tf.tensor(x, [rows, ...input])) as Tensor));
        return {
          h1: h1.dataSync(),
          h2: h2.dataSync(),
          dH1: dH1.dataSync(),
          grads: Object.fromEntries(Object.entries(grads).map(([k, g]) => [k, g.dataSync()])),
        };
      });
      const kernel = new NetKernel(tf, plan.ops, kdTerms(settings, true), rows, 0.01, 1);
      const batch = kdTargets(teacher, labels, everyRow, classes, settings);
      kernel.run(x, batch.targets, rows);
      const state = kernelState(kernel);
      expect(normalisedError(state.output(0, reference.h1.length), reference.h1)).toBeLessThan(TOLERANCE);
      expect(normalisedError(state.output(1, reference.h2.length), reference.h2)).toBeLessThan(TOLERANCE);
      // Backward runs dense, the second conv (its input gradient into gradA), then the first, linear conv, which leaves gradA as it is.
      expect(normalisedError(state.gradA(reference.dH1.length), reference.dH1)).toBeLessThan(TOLERANCE);
      for (const layer of [first, second]) {
        for (const weight of layer.trainableWeights) {
          const variable = weight.read() as Variable;
          expect(normalisedError(state.gradient(variable), reference.grads[variable.name]), weight.name).toBeLessThan(
            TOLERANCE,
          );
        }
      }
      expect(tf.memory().numTensors).toBe(before);
      student.dispose();
    });
  }

  for (const [name, { input, convs }] of Object.entries(cases).filter(([, c]) => c.adam !== false)) {
    it(`${name}: trains as autodiff with tf.train.adam does, step by step`, () => {
      const steps = 4;
      const x = randomArray(rows * input[0] * input[1] * input[2], 5, 2);
      const batch = kdTargets(teacher, labels, everyRow, classes, settings);
      const ours = model(input, convs);
      const plan = planKernel(ours);
      if (!('ops' in plan)) throw new Error(plan.unsupported);
      const kernel = new NetKernel(tf, plan.ops, kdTerms(settings, true), rows, 0.01, 1);
      const losses = Array.from({ length: steps }, () => kernel.run(x, batch.targets, rows) + batch.constant / rows);
      kernel.sync();
      const reference = model(input, convs);
      const optimizer = tf.train.adam(0.01);
      const expected = Array.from({ length: steps }, () => {
        const value = optimizer.minimize(() => loss(reference.apply(tf.tensor(x, [rows, ...input])) as Tensor), true)!;
        const v = value.dataSync()[0];
        value.dispose();
        return v;
      });
      expect(maxRelativeError(losses, expected)).toBeLessThan(1e-4);
      const [a, b] = [ours.getWeights(), reference.getWeights()];
      a.forEach((w, i) => expect(maxRelativeError(w.dataSync(), b[i].dataSync()), `weight ${i}`).toBeLessThan(2e-3));
      expect(losses[steps - 1]).toBeLessThan(losses[0]);
      optimizer.dispose();
      ours.dispose();
      reference.dispose();
    });
  }
});

// F(4x4, 3x3), inference only (kernel/winograd_4x4.c). Its transforms have larger coefficients
// (B up to 5, A up to 8, G's 1/6, 1/12 and 1/24, which binary does not hold exactly): a transformed
// input sums up to 36 terms of magnitude ~(4 + 5 + 1) x 10 ~ 100x a pixel, an output adds 36
// products, 6 of them times 8, so partial sums run ~100x larger than a direct sum's, an order of
// magnitude beyond F(2x2)'s ~9x. With random-signed roundings over ~36 * inC + 36 additions that
// is ~1e-5 of the largest output; measured here 1.5e-6 to 4.5e-6. The tolerance is 1e-4: 20x
// what we see, still 4 orders below any wrong coefficient's O(1) error, and 10x inside the 1e-3
// that kernel-teacher.ts checks a teacher's logits to.
const TOLERANCE_4X4 = 1e-4;

describe('Winograd F(4x4, 3x3) for inference in the WebAssembly kernel', () => {
  const shape = (h: number, w: number, c: number): [number, number, number] => [h, w, c];
  it('is planned for inference only, where its 4x4 tiles need fewer products than 2x2 ones', () => {
    const tile = (out: number) => winogradTile(shape(out, out, 16), shape(out, out, 16), [3, 3], [1, 1], 'inference');
    expect(tile(16)).toBe(4);
    expect(tile(8)).toBe(4);
    expect(tile(7)).toBe(4); // 4 x 36 against 16 x 16
    expect(tile(6)).toBe(2); // 4 x 36 = 9 x 16: no gain
    expect(tile(2)).toBe(2);
    expect(winogradTile(shape(16, 16, 16), shape(16, 16, 16), [3, 3], [1, 1], 'training')).toBe(2);
    // Fewer input channels: F(4x4) from 3 on in inference (no backward pass to pay for), im2col below.
    expect(winogradTile(shape(16, 16, 3), shape(16, 16, 16), [3, 3], [1, 1], 'inference')).toBe(4);
    expect(winogradTile(shape(16, 16, 2), shape(16, 16, 16), [3, 3], [1, 1], 'inference')).toBe(0);
    expect(winogradTile(shape(6, 6, 3), shape(6, 6, 16), [3, 3], [1, 1], 'inference')).toBe(0);
    expect(winogradTile(shape(16, 16, 3), shape(16, 16, 16), [3, 3], [1, 1], 'training')).toBe(0);
    expect(winogradTile(shape(16, 16, 16), shape(8, 8, 16), [3, 3], [2, 2], 'inference')).toBe(0);
  });

  const inferenceCases: Record<string, { input: [number, number, number]; convs: [Conv, Conv] }> = {
    'same then valid, 9x11 input (tiles overhang both edges), 8 then 13 channels': {
      input: [9, 11, WINOGRAD_MIN_CHANNELS],
      convs: [
        { filters: 13, padding: 'same', activation: 'relu' },
        { filters: 6, padding: 'valid', activation: 'linear' },
      ],
    },
    'same then same, 10x9 input of 3 channels (an image), 8 then 5 channels': {
      input: [10, 9, 3],
      convs: [
        { filters: 8, padding: 'same', activation: 'relu' },
        { filters: 5, padding: 'same', activation: 'linear' },
      ],
    },
    'same both, 16x16 input, 32 then 64 channels (a teacher layer)': {
      input: [16, 16, 32],
      convs: [
        { filters: 64, padding: 'same', activation: 'relu' },
        { filters: 10, padding: 'same', activation: 'linear' },
      ],
    },
  };
  for (const [name, { input, convs }] of Object.entries(inferenceCases)) {
    it(`${name}: each convolution's outputs match TF.js's`, () => {
      const net = model(input, convs);
      const plan = planKernel(net, 'inference');
      if (!('ops' in plan)) throw new Error(plan.unsupported);
      expect(plan.ops.map((op) => op.winograd)).toEqual([4, 4, 0]);
      const x = randomArray(rows * input[0] * input[1] * input[2], 9, 2);
      const before = tf.memory().numTensors;
      const [first, second, dense] = net.layers.filter((l) => l.getClassName() !== 'Flatten');
      const reference = tf.tidy(() => {
        const h1 = first.apply(tf.tensor(x, [rows, ...input])) as Tensor;
        const h2 = second.apply(h1) as Tensor;
        const logits = dense.apply(tf.layers.flatten().apply(h2)) as Tensor;
        return { h1: h1.dataSync(), h2: h2.dataSync(), logits: logits.dataSync() };
      });
      const kernel = NetKernel.forInference(tf, plan.ops, rows);
      const logits = kernel.predict(x, rows);
      const state = kernelState(kernel);
      expect(normalisedError(state.output(0, reference.h1.length), reference.h1)).toBeLessThan(TOLERANCE_4X4);
      expect(normalisedError(state.output(1, reference.h2.length), reference.h2)).toBeLessThan(TOLERANCE_4X4);
      expect(normalisedError(logits, reference.logits)).toBeLessThan(TOLERANCE_4X4);
      kernel.dispose();
      expect(tf.memory().numTensors).toBe(before);
      net.dispose();
    });
  }
});
