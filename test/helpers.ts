import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../src/config/load.js';
import { encodeNpy } from '../src/data/npy.js';
import { InputError } from '../src/errors.js';
import { seededRandom } from '../src/distill/random.js';
import { writeModelArtifacts } from '../src/models/artifacts.js';

export const EXAMPLE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/example');

/** A scratch copy of the bundled example; `config` (YAML) replaces its distill-gate.yml when given. */
export async function exampleWorkspace(config?: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-'));
  await cp(EXAMPLE, dir, { recursive: true });
  if (config !== undefined) await writeFile(path.join(dir, 'distill-gate.yml'), config);
  return dir;
}

/** The example's config with few epochs and quick timing, so end-to-end tests stay fast. */
export function quickConfig(
  extra: { student?: string; gates?: string; distill?: string; data?: string; top?: string } = {},
): string {
  return [
    'teacher: models/teacher/model.json',
    extra.top ?? '',
    'student:',
    extra.student ?? '  layers:\n    - { type: dense, units: 32, activation: relu }\n    - { type: dense, units: 10 }',
    'data:',
    extra.data ??
      '  train: { x: data/train_x.npy, y: data/train_y.npy }\n  eval:  { x: data/eval_x.npy,  y: data/eval_y.npy }',
    `distill: ${extra.distill ?? '{ temperature: 4, alpha: 0.9, epochs: 3, batchSize: 64, learningRate: 0.01, seed: 7 }'}`,
    'measure: { warmup: 1, rounds: 3, throughputBatch: 64 }',
    'gates:',
    extra.gates ?? '  agreement.top1: ">= 0.5"\n  size.ratio: "<= 0.1"',
    '',
  ].join('\n');
}

export function captureIo() {
  const out: string[] = [];
  const err: string[] = [];
  return {
    io: { stdout: (t: string) => void out.push(t), stderr: (t: string) => void err.push(t) },
    stdout: () => out.join(''),
    stderr: () => err.join(''),
  };
}

/** Seeded values in [-scale, scale), for tensors a test compares step by step. */
export function randomArray(n: number, seed: number, scale = 1): Float32Array {
  const random = seededRandom(seed);
  return Float32Array.from({ length: n }, () => (random() * 2 - 1) * scale);
}

/** The largest |a - b| / max(|b|, 1e-3) over two arrays: float32 noise is ~1e-6, a wrong gradient ~1. */
export function maxRelativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(1e-3, Math.abs(b[i])));
  return worst;
}

/**
 * A scratch workspace whose teacher's pass takes seconds, not milliseconds: a 64-W-W-10 MLP
 * (1.1M parameters at the default width of 1024) over `trainRows` unlabelled rows of the
 * example's 64 features, so that a signal or a budget can land while the teacher runs. `config`
 * is quickConfig-style YAML for it.
 */
export async function slowTeacherWorkspace(config: string, trainRows = 60_000, width = 1024): Promise<string> {
  const dir = await exampleWorkspace(config);
  const tf = await import('@tensorflow/tfjs');
  await tf.setBackend('cpu');
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  const teacher = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [64], units: width, activation: 'relu', kernelInitializer: init(1) }),
      tf.layers.dense({ units: width, activation: 'relu', kernelInitializer: init(2) }),
      tf.layers.dense({ units: 10, kernelInitializer: init(3) }),
    ],
  });
  await teacher.save(
    tf.io.withSaveHandler(async (artifacts) => {
      await writeModelArtifacts(path.join(dir, 'models/teacher'), artifacts);
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  teacher.dispose();
  await writeFile(path.join(dir, 'data/train_x.npy'), encodeNpy(randomArray(trainRows * 64, 11), [trainRows, 64]));
  await rm(path.join(dir, 'data/train_y.npy'));
  return dir;
}

/** The message of the InputError that parsing `text` as /cfg/distill-gate.yml gives; fails the test when it parses. */
export function configErrorOf(text: string): string {
  try {
    parseConfig(text, '/cfg/distill-gate.yml');
  } catch (error) {
    if (error instanceof InputError) return error.message;
    throw error;
  }
  throw new Error('expected an InputError');
}
