import type { LayersModel, Scalar, Tensor, Variable } from '@tensorflow/tfjs';
import type { Tf } from '../backend/resolve.js';
import type { Config } from '../config/load.js';
import type { Dataset } from '../data/dataset.js';
import { firstLine, studentLayers } from '../models/model.js';
import { type LoadedModel } from '../models/loaded-model.js';
import { buildStudent } from '../models/student.js';
import { rowLength } from '../data/batches.js';
import { InputError } from '../errors.js';
import { FlatAdam } from './adam.js';
import { kdLoss, kdLossAndGradient } from './loss.js';
import { kdTerms } from './targets.js';
import { activationOf, appliedByAutodiffOnly, planKernel } from './kernel-plan.js';
import { NetKernel } from './net-kernel.js';
import { kernelThreads } from './kernel-threads.js';
import type { KernelModuleName } from './kernel-module.js';
import type { SoftmaxTerm } from './targets.js';

/**
 * One optimisation step of the student: forward, KD loss, backward, Adam. Three ways to run it
 * (`trainingStep` picks; `npm run bench:step` measures them):
 * - 'kernel': a Sequential student of the layers the README lists (Dense, convolutions, pools,
 *   normalisation, dropout...), the whole step in one WebAssembly call (net-kernel.ts): no TF.js
 *   op at all, so no per-op cost and no dependence on the backend's gradient kernels;
 * - 'dense': a Dense stack in TF.js ops, with a hand-derived backward pass: two matmuls and a
 *   bias sum per layer, ~60 ops a step where autodiff with `tf.train.adam` takes ~200;
 * - 'autodiff': everything else (functional graphs, other activations, regularisers, frozen
 *   layers), through `tf.variableGrads`.
 * On a small student TF.js's fixed cost per op is most of a step, hence the first two. Tests
 * check each against autodiff through the paper's loss with `tf.train.adam`.
 */
export interface TrainingStep {
  kind: 'kernel' | 'dense' | 'autodiff';
  /** The kernel step only: which build of the kernel trains (kernel-module.ts). */
  kernelModule?: KernelModuleName;
  /** The kernel step only: the threads a step runs on (distill.threads, resolved; kernel-threads.ts). */
  threads?: number;
  /** Why the student did not get the WebAssembly kernel, when it did not. */
  whyNotKernel?: string;
  /**
   * Trains on one batch (`rows` rows of features and of `kdTargets` targets) and returns its loss
   * without the teacher-only constant: a number, or a scalar left on the device so that a GPU is
   * not stalled every step (read it once per epoch).
   */
  run(x: Float32Array, targets: Float32Array, rows: number): number | Scalar;
  /** Brings the student's variables up to date (the kernel trains its own copy of the weights). */
  sync(): void;
  /**
   * The kernel step only: the student's logits on `rows` rows of x, in inference mode, from the
   * weights being trained, without a sync (the per-epoch probe, NetKernel.predict).
   */
  predict?(x: Float32Array, rows: number): Float32Array;
  dispose(): void;
}

export interface StepSettings {
  learningRate: number;
  terms: SoftmaxTerm[];
  sampleShape: number[];
  /** The largest batch `run` will be given. */
  maxRows: number;
  /** Which step to use; by default the kernel where it pays (see `trainingStep`). */
  kind?: TrainingStep['kind'];
  /** Seeds the kernel's dropout masks (distill.seed); the autodiff step seeds Dropout layers itself. */
  seed?: number;
  /** The kernel step's module; by default chooseKernelModule's (DISTILL_GATE_KERNEL, else what the engine validates). */
  kernelModule?: KernelModuleName;
  /** distill.threads: the kernel step's threads, or 'auto' (the default; see kernelThreads). Other steps run on one. */
  threads?: number | 'auto';
}

/** Activations whose derivative the dense step knows, in terms of the layer's output: the kernel's. */
type DenseActivation = NonNullable<ReturnType<typeof activationOf>>;

export interface DenseLayer {
  kernel: Variable;
  bias?: Variable;
  activation: DenseActivation;
}

/**
 * The fastest step that can train this student on this backend. On the bundled CPU backends
 * (wasm, cpu) every student the kernel can express gets it; on tfjs-node and GPU backends, whose
 * ops are cheap to dispatch and fast at large sizes, a Dense stack gets the dense step in TF.js
 * ops; anything else, autodiff.
 */
export function trainingStep(tf: Tf, student: LoadedModel, settings: StepSettings): TrainingStep {
  const model = studentLayers(student);
  const { learningRate, terms, sampleShape, maxRows } = settings;
  const classes = student.outputWidth;
  const width = rowLength(sampleShape);
  const stack = denseStack(model);
  const plan = planKernel(model);
  const whyNotKernel = 'unsupported' in plan ? plan.unsupported : undefined;
  const bundled = ['wasm', 'cpu'].includes(tf.getBackend());
  const kind = settings.kind ?? (bundled && 'ops' in plan ? 'kernel' : stack ? 'dense' : 'autodiff');
  if (kind === 'kernel' && 'unsupported' in plan)
    throw new Error(`the kernel step cannot train this student: ${plan.unsupported}`);
  if (kind === 'dense' && !stack) throw new Error('the dense step trains Dense stacks only');
  const onDevice =
    (inner: (x: Tensor, targets: Tensor) => Scalar) => (x: Float32Array, targets: Float32Array, rows: number) =>
      tf.tidy(() =>
        inner(
          tf.tensor(x.subarray(0, rows * width), [rows, ...sampleShape]),
          tf.tensor2d(targets.subarray(0, rows * classes), [rows, classes]),
        ),
      );

  if (kind === 'kernel' && 'ops' in plan) {
    let kernel: NetKernel;
    try {
      kernel = new NetKernel(
        tf,
        plan.ops,
        terms,
        maxRows,
        learningRate,
        settings.seed ?? 0,
        settings.kernelModule,
        kernelThreads(settings.threads ?? 'auto', maxRows, plan.ops),
      );
    } catch (error) {
      // A student too large for a 32-bit WebAssembly memory (4 GiB) trains in TF.js ops instead,
      // where those have every gradient it needs: a Dense stack. Any other student on this
      // backend needs the kernel, so the batch has to shrink.
      if (settings.kind || !(error instanceof RangeError)) throw error;
      if (!stack) throw new InputError('distill.batchSize', `${error.message}; lower distill.batchSize.`);
      return {
        ...trainingStep(tf, student, { ...settings, kind: stack ? 'dense' : 'autodiff' }),
        whyNotKernel: error.message,
      };
    }
    return {
      kind,
      kernelModule: kernel.module,
      threads: kernel.threads,
      run: (x, targets, rows) => kernel.run(x, targets, rows),
      sync: () => kernel.sync(),
      predict: (x, rows) => kernel.predict(x, rows),
      dispose: () => kernel.dispose(),
    };
  }
  if (kind === 'dense' && stack) {
    const variables = stack.layers.flatMap((l) => (l.bias ? [l.kernel, l.bias] : [l.kernel]));
    const adam = new FlatAdam(tf, variables, learningRate);
    // The wasm backend's matmul with a transposed first operand is ~4x slower than transposing
    // first (185 vs 45 us for the reference student's 64x64 by 64x32); the cpu backend is the
    // other way round.
    const transposeFirst = tf.getBackend() === 'wasm';
    return {
      kind,
      whyNotKernel,
      run: onDevice((x, targets) => denseStep(tf, stack, adam, transposeFirst, x, targets, terms)),
      sync: () => {},
      dispose: () => adam.dispose(),
    };
  }
  const variables = model.trainableWeights.map((w) => w.read() as Variable);
  const constrained = model.trainableWeights.filter((w) => w.constraint != null);
  const adam = new FlatAdam(tf, variables, learningRate);
  return {
    kind: 'autodiff',
    whyNotKernel,
    run: onDevice((x, targets) => {
      const { value, grads } = tf.variableGrads(() => {
        const output = model.apply(x, { training: true }) as Tensor;
        const logits = student.output === 'probabilities' ? tf.log(tf.maximum(output, 1e-12)) : output;
        // Weight regularisers (kernelRegularizer, biasRegularizer) join the loss, as in model.fit.
        const penalties = model.calculateLosses();
        const loss = kdLoss(tf, logits, targets, terms);
        return penalties.length > 0 ? tf.addN<Scalar>([loss, ...penalties]) : loss;
      }, variables);
      // A variable the loss does not reach (a frozen branch) gets no gradient: it stays put.
      adam.apply(variables.map((v) => grads[v.name] ?? tf.zerosLike(v)));
      // Weight constraints (kernelConstraint, biasConstraint) after each update, as in model.fit.
      for (const weight of constrained) (weight.read() as Variable).assign(weight.constraint.apply(weight.read()));
      return value;
    }),
    sync: () => {},
    dispose: () => adam.dispose(),
  };
}

/** The student as a list of Dense layers when the dense step can train it, else undefined. */
export function denseStack(model: LayersModel): { flatten: boolean; layers: DenseLayer[] } | undefined {
  if (model.getClassName() !== 'Sequential') return undefined;
  const flatten = model.layers[0]?.getClassName() === 'Flatten';
  const denses = model.layers.slice(flatten ? 1 : 0);
  if (!flatten && model.inputs[0].shape.length !== 2) return undefined;
  const layers: DenseLayer[] = [];
  for (const [index, layer] of denses.entries()) {
    if (layer.getClassName() !== 'Dense' || !layer.trainable) return undefined;
    const config = layer.getConfig() as { activation?: string; useBias?: boolean } & Record<string, unknown>;
    if (appliedByAutodiffOnly(config)) return undefined;
    const activation = activationOf(config.activation, index === denses.length - 1);
    if (activation === undefined) return undefined;
    const [kernel, bias] = layer.trainableWeights.map((w) => w.read() as Variable);
    if (!kernel || kernel.rank !== 2 || (config.useBias !== false && !bias)) return undefined;
    layers.push({ kernel, bias: config.useBias === false ? undefined : bias, activation });
  }
  return layers.length > 0 ? { flatten, layers } : undefined;
}

function denseStep(
  tf: Tf,
  stack: { flatten: boolean; layers: DenseLayer[] },
  adam: FlatAdam,
  transposeFirst: boolean,
  x: Tensor,
  targets: Tensor,
  terms: SoftmaxTerm[],
): Scalar {
  const inputs: Tensor[] = [];
  const outputs: Tensor[] = [];
  let activations = stack.flatten ? tf.reshape(x, [x.shape[0], -1]) : x;
  for (const { kernel, bias, activation } of stack.layers) {
    inputs.push(activations);
    // tanh is not among the fused matmul's activations; the others fuse into one op.
    const fused = tf.fused.matMul({
      a: activations,
      b: kernel,
      bias,
      activation: activation === 'tanh' ? 'linear' : activation,
    });
    activations = activation === 'tanh' ? tf.tanh(fused) : fused;
    outputs.push(activations);
  }
  const { value, gradient } = kdLossAndGradient(tf, activations, targets, terms);
  const gradients: Tensor[] = [];
  let upstream = gradient;
  for (let i = stack.layers.length - 1; i >= 0; i--) {
    const { kernel, bias, activation } = stack.layers[i];
    const delta =
      activation === 'linear' ? upstream : tf.mul(upstream, activationDerivative(tf, activation, outputs[i]));
    if (bias) gradients.unshift(tf.sum(delta, 0));
    gradients.unshift(
      transposeFirst ? tf.matMul(tf.transpose(inputs[i]), delta) : tf.matMul(inputs[i], delta, true, false),
    );
    if (i > 0) upstream = tf.matMul(delta, kernel, false, true);
  }
  adam.apply(gradients);
  return value;
}

function activationDerivative(tf: Tf, activation: Exclude<DenseActivation, 'linear'>, output: Tensor): Tensor {
  switch (activation) {
    case 'relu':
      return tf.step(output);
    case 'sigmoid':
      return tf.mul(output, tf.sub(1, output));
    case 'tanh':
      return tf.sub(1, tf.square(output));
  }
}

/**
 * One training step on a tiny batch with a throwaway copy of the student, on `tf`'s current
 * backend: a backend that lacks a gradient kernel the step needs fails here, in a second, instead
 * of an hour into a run. Returns the failure's first line, or undefined when the step ran.
 */
export async function probeTrainingStep(
  tf: Tf,
  config: Config,
  inputShape: (number | null)[],
  train: Dataset,
  kind?: TrainingStep['kind'],
): Promise<string | undefined> {
  const probe = await buildStudent(tf, config.student, inputShape, config.distill.seed);
  const rows = Math.min(2, train.size);
  const sample = await train.read(0, rows);
  // The very step training runs (kernel, dense or autodiff), so what is checked is what it needs;
  // a learning rate of 0 leaves the probe's weights as they were.
  const step = trainingStep(tf, probe, {
    learningRate: 0,
    terms: kdTerms(config.distill, train.y !== undefined),
    sampleShape: train.sampleShape,
    maxRows: rows,
    kind,
    // One thread: a two-row probe would not pay for starting workers.
    threads: 1,
  });
  try {
    const loss = step.run(sample, new Float32Array(rows * probe.outputWidth), rows);
    if (typeof loss !== 'number') loss.dispose();
    return undefined;
  } catch (error) {
    return firstLine(error);
  } finally {
    step.dispose();
    probe.dispose();
  }
}
