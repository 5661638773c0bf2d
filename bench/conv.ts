/**
 * `npm run bench:conv`: convolutional students, distill-gate against PyTorch (issue #12's
 * benchmark). For each case, side by side in one run: distill-gate's distillation phase
 * (`runPipeline` with the bundled default backend `auto`, the teacher's soft-target pass included)
 * and the same student trained in PyTorch (`bench/peer/kd_conv_torch.py`, Debian's python3-torch)
 * from the teacher's outputs stored as .npy, with the same KD loss, Adam, batch size, epochs,
 * learning rate and seed. Each side runs in its own child process so that peak RSS is its own.
 * Not a test: it prints figures and ratios.
 *
 *   npm run bench:conv                                    # cases a,b,c,d, 10,000 train rows, 5 epochs, 1 round
 *   npm run bench:conv -- --cases a --rows 256 --epochs 1 # smoke test
 *   npm run bench:conv -- --rounds 3                      # medians of 3 interleaved rounds
 *   npm run bench:conv -- --rounds 0                      # only make (and cache) the workspaces
 *   npm run bench:conv -- --threads 2                     # both sides on 2 threads: distill.threads
 *                                                         # and PyTorch's torch.set_num_threads
 *                                                         # (without it: auto, and PyTorch's default)
 *
 * Cases (synthetic, seeded, learnable: class-dependent gratings and blobs, shifted, scaled, noisy):
 *   a. 8x8x1, student conv8 3x3 / maxpool 2 / dense 10
 *   b. 28x28x1, student conv16 3x3 / conv32 3x3 / maxpool 2 / dense 10
 *   c. 32x32x3, student 2x [conv (16, 32) 3x3 same, batchnorm, relu, maxpool 2], dropout 0.25, dense 10
 *   d. 32x32x3 (c's data and teacher), a mobile-style student: conv 3x3 stride 2 (16), then
 *      depthwise 3x3 (stride 1, then 2) each followed by a 1x1 conv (32, 64), batchnorm and relu
 *      after every convolution, global average pool, dense 10 (depthwise-separable, as MobileNet)
 * The teacher of each case is a bigger TF.js conv net (tf.layers, saved with writeModelArtifacts).
 * Its conv layers keep their seeded random weights and its Dense head is fitted on the labels
 * (model.fit, wasm backend): TF.js cannot fit the conv layers in reasonable time today (wasm lacks
 * Conv2DBackpropFilter, and the cpu backend takes ~2 s per 32x32x3 sample), while random conv
 * features with a trained head already make an accurate teacher, so agreement means something.
 * Workspaces (data, teacher, its stored outputs) are cached in $TMPDIR/distill-gate-bench-conv/,
 * keyed by case and size, so reruns start at once.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { layers, LayersModel, SymbolicTensor, Tensor } from '@tensorflow/tfjs';
import { resolveBackend, type Tf } from '../src/backend/resolve.js';
import { parseConfig, withOverrides } from '../src/config/load.js';
import type { BackendName, LayerSpec } from '../src/config/schema.js';
import { encodeNpy } from '../src/data/npy.js';
import { seededRandom } from '../src/distill/random.js';
import { writeModelArtifacts } from '../src/models/artifacts.js';
import { runPipeline } from '../src/pipeline.js';
import { median, medianOf } from './medians.js';

const here = fileURLToPath(import.meta.url);
const { values } = parseArgs({
  options: {
    cases: { type: 'string', default: 'a,b,c,d' },
    rows: { type: 'string', default: '10000' },
    'eval-rows': { type: 'string' },
    epochs: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '1' },
    backend: { type: 'string', default: 'auto' },
    child: { type: 'string' },
    workspace: { type: 'string' },
    config: { type: 'string' },
    threads: { type: 'string' },
  },
});
/** --threads N: distill.threads and the peer's torch.set_num_threads; undefined leaves both at their defaults. */
const threads = values.threads === undefined ? undefined : Number(values.threads);
if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1))
  throw new Error(`--threads must be an integer >= 1, not "${values.threads}"`);

/** Bumped whenever the data or the teacher changes, so that no stale workspace is reused. */
const WORKSPACE_VERSION = 1;
const CLASSES = 10;
/** Train rows the teacher's Dense head is fitted on. */
const HEAD_ROWS = 3000;
/** distill-gate's defaults, written out so both sides read the same numbers. */
const SETTINGS = { temperature: 4, alpha: 0.9, batchSize: 64, learningRate: 0.001, seed: 7 };

interface Case {
  id: string;
  title: string;
  shape: [number, number, number];
  /** Largest shift (pixels, each axis, wrapping) of a sample's pattern. */
  shift: number;
  /** Standard deviation of the per-pixel noise; the patterns have unit standard deviation. */
  noise: number;
  /** Teacher layers up to and including flatten (random, frozen), and its Dense head's widths. */
  teacherFeatures: (tf: Tf, init: (seed: number) => ReturnType<Tf['initializers']['glorotUniform']>) => layers.Layer[];
  teacherHead: number[];
  student: LayerSpec[];
}

/** The teacher of the 32x32x3 cases (c and d): two 3x3 convolutions with pools. */
const imageTeacher: Case['teacherFeatures'] = (tf, init) => [
  tf.layers.conv2d({
    inputShape: [32, 32, 3],
    filters: 32,
    kernelSize: 3,
    padding: 'same',
    activation: 'relu',
    kernelInitializer: init(1),
  }),
  tf.layers.maxPooling2d({ poolSize: 2 }),
  tf.layers.conv2d({ filters: 64, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: init(2) }),
  tf.layers.maxPooling2d({ poolSize: 2 }),
  tf.layers.flatten(),
];

/** Batch normalisation then a relu, after each convolution of the mobile-style student (case d). */
const normRelu: LayerSpec[] = [{ type: 'batchNormalization' }, { type: 'activation', activation: 'relu' }];

const CASES: Case[] = [
  {
    id: 'a',
    title: '8x8x1, conv8 3x3 / maxpool 2 / dense 10',
    shape: [8, 8, 1],
    shift: 1,
    noise: 1.1,
    teacherFeatures: (tf, init) => [
      tf.layers.conv2d({
        inputShape: [8, 8, 1],
        filters: 32,
        kernelSize: 3,
        padding: 'same',
        activation: 'relu',
        kernelInitializer: init(1),
      }),
      tf.layers.conv2d({ filters: 32, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: init(2) }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.flatten(),
    ],
    teacherHead: [128],
    student: [
      { type: 'conv2d', filters: 8, kernelSize: 3, activation: 'relu' },
      { type: 'maxPooling2d', poolSize: 2 },
      { type: 'flatten' },
      { type: 'dense', units: 10 },
    ],
  },
  {
    id: 'b',
    title: '28x28x1, conv16 3x3 / conv32 3x3 / maxpool 2 / dense 10',
    shape: [28, 28, 1],
    shift: 3,
    noise: 2.5,
    teacherFeatures: (tf, init) => [
      tf.layers.conv2d({
        inputShape: [28, 28, 1],
        filters: 32,
        kernelSize: 3,
        activation: 'relu',
        kernelInitializer: init(1),
      }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.conv2d({ filters: 64, kernelSize: 3, activation: 'relu', kernelInitializer: init(2) }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.flatten(),
    ],
    teacherHead: [128],
    student: [
      { type: 'conv2d', filters: 16, kernelSize: 3, activation: 'relu' },
      { type: 'conv2d', filters: 32, kernelSize: 3, activation: 'relu' },
      { type: 'maxPooling2d', poolSize: 2 },
      { type: 'flatten' },
      { type: 'dense', units: 10 },
    ],
  },
  {
    id: 'c',
    title: '32x32x3, 2x [conv 3x3 same (16, 32), batchnorm, relu, maxpool 2], dropout 0.25, dense 10',
    shape: [32, 32, 3],
    shift: 4,
    noise: 3.5,
    teacherFeatures: imageTeacher,
    teacherHead: [128],
    student: [
      { type: 'conv2d', filters: 16, kernelSize: 3, padding: 'same' },
      { type: 'batchNormalization' },
      { type: 'activation', activation: 'relu' },
      { type: 'maxPooling2d', poolSize: 2 },
      { type: 'conv2d', filters: 32, kernelSize: 3, padding: 'same' },
      { type: 'batchNormalization' },
      { type: 'activation', activation: 'relu' },
      { type: 'maxPooling2d', poolSize: 2 },
      { type: 'dropout', rate: 0.25 },
      { type: 'flatten' },
      { type: 'dense', units: 10 },
    ],
  },
  {
    id: 'd',
    title:
      '32x32x3, mobile-style: conv 3x3/2 (16), 2x [depthwise 3x3 (/1, /2), conv 1x1 (32, 64)], BN + relu each, global average pool, dense 10',
    shape: [32, 32, 3],
    shift: 4,
    noise: 3.5,
    teacherFeatures: imageTeacher,
    teacherHead: [128],
    student: [
      { type: 'conv2d', filters: 16, kernelSize: 3, strides: 2, padding: 'same' },
      ...normRelu,
      { type: 'depthwiseConv2d', kernelSize: 3, padding: 'same' },
      ...normRelu,
      { type: 'conv2d', filters: 32, kernelSize: 1 },
      ...normRelu,
      { type: 'depthwiseConv2d', kernelSize: 3, strides: 2, padding: 'same' },
      ...normRelu,
      { type: 'conv2d', filters: 64, kernelSize: 1 },
      ...normRelu,
      { type: 'globalAveragePooling2d' },
      { type: 'dense', units: 10 },
    ],
  },
];

// ---------------------------------------------------------------------------------------------
// Data and teacher (cached workspace)

/** Unit-variance class patterns (a grating of class-specific orientation and frequency, plus blobs). */
function prototypes([h, w, c]: Case['shape'], seed: number): Float32Array[] {
  const random = seededRandom(seed);
  const gaussian = gaussianOf(random);
  return Array.from({ length: CLASSES }, (_, k) => {
    const p = new Float32Array(h * w * c);
    const angle = (Math.PI * k) / CLASSES + 0.2 * (random() - 0.5);
    const frequency = (h <= 8 ? 0.7 : 1.2) + random() * (h <= 8 ? 1.3 : 2.5);
    const phase = 2 * Math.PI * random();
    const gratingColour = Array.from({ length: c }, () => (c === 1 ? 1 : gaussian()));
    const blobs = Array.from({ length: 2 }, () => ({
      y: random() * h,
      x: random() * w,
      sigma: h * (0.08 + 0.1 * random()),
      sign: random() < 0.5 ? -1 : 1,
      colour: Array.from({ length: c }, () => (c === 1 ? 1 : gaussian())),
    }));
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const g = Math.cos((2 * Math.PI * frequency * (x * Math.cos(angle) + y * Math.sin(angle))) / w + phase);
        for (let ch = 0; ch < c; ch++) {
          let v = g * gratingColour[ch];
          for (const b of blobs)
            v += 1.5 * b.sign * b.colour[ch] * Math.exp(-((y - b.y) ** 2 + (x - b.x) ** 2) / (2 * b.sigma ** 2));
          p[(y * w + x) * c + ch] = v;
        }
      }
    }
    let mean = 0;
    for (const v of p) mean += v / p.length;
    let variance = 0;
    for (const v of p) variance += (v - mean) ** 2 / p.length;
    const scale = 1 / Math.sqrt(variance + 1e-12);
    for (let i = 0; i < p.length; i++) p[i] = (p[i] - mean) * scale;
    return p;
  });
}

function gaussianOf(random: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(random() + 1e-12)) * Math.cos(2 * Math.PI * random());
}

/** NHWC samples: a class pattern, shifted (wrapping), scaled, offset, plus noise. */
function images(spec: Case, count: number, seed: number): { x: Float32Array; y: Int32Array } {
  const [h, w, c] = spec.shape;
  const patterns = prototypes(spec.shape, 1000 + spec.id.charCodeAt(0));
  const random = seededRandom(seed);
  const gaussian = gaussianOf(random);
  const size = h * w * c;
  const x = new Float32Array(count * size);
  const y = new Int32Array(count);
  for (let n = 0; n < count; n++) {
    const k = Math.floor(random() * CLASSES);
    y[n] = k;
    const dy = Math.floor(random() * (2 * spec.shift + 1)) - spec.shift;
    const dx = Math.floor(random() * (2 * spec.shift + 1)) - spec.shift;
    const amplitude = 0.6 + 0.8 * random();
    const offset = 0.3 * gaussian();
    const p = patterns[k];
    for (let i = 0; i < h; i++) {
      const si = (((i - dy) % h) + h) % h;
      for (let j = 0; j < w; j++) {
        const sj = (((j - dx) % w) + w) % w;
        for (let ch = 0; ch < c; ch++)
          x[n * size + (i * w + j) * c + ch] = amplitude * p[(si * w + sj) * c + ch] + offset + spec.noise * gaussian();
      }
    }
  }
  return { x, y };
}

interface Meta {
  case: string;
  rows: number;
  evalRows: number;
  teacherAccuracy: number;
  teacherParams: number;
  seconds: number;
}

/**
 * Writes (or reuses) a case's workspace: data as .npy (NHWC float32, int32 labels), the teacher,
 * and the teacher's logits on both splits for the PyTorch peer.
 */
async function workspaceFor(spec: Case, rows: number, evalRows: number): Promise<{ dir: string; meta: Meta }> {
  const dir = path.join(os.tmpdir(), 'distill-gate-bench-conv', `v${WORKSPACE_VERSION}-${spec.id}-${rows}-${evalRows}`);
  const metaFile = path.join(dir, 'meta.json');
  if (existsSync(metaFile)) return { dir, meta: JSON.parse(await readFile(metaFile, 'utf8')) as Meta };
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const started = performance.now();
  const [h, w, c] = spec.shape;
  const train = images(spec, rows, 11);
  const evalSet = images(spec, evalRows, 12);
  await writeFile(path.join(dir, 'train_x.npy'), encodeNpy(train.x, [rows, h, w, c]));
  await writeFile(path.join(dir, 'train_y.npy'), encodeNpy(train.y, [rows]));
  await writeFile(path.join(dir, 'eval_x.npy'), encodeNpy(evalSet.x, [evalRows, h, w, c]));
  await writeFile(path.join(dir, 'eval_y.npy'), encodeNpy(evalSet.y, [evalRows]));

  // The teacher: seeded random conv features (frozen), a Dense head fitted on them. The features
  // are computed once and the head fitted alone, so no conv gradient is ever needed.
  const phases: string[] = [`data ${((performance.now() - started) / 1000).toFixed(1)} s`];
  let phaseStart = performance.now();
  const phase = (name: string) => {
    phases.push(`${name} ${((performance.now() - phaseStart) / 1000).toFixed(1)} s`);
    phaseStart = performance.now();
  };
  const { tf } = await resolveBackend('wasm');
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  const features = spec.teacherFeatures(tf, init);
  const headLayers = (inputWidth?: number) => [
    ...spec.teacherHead.map((units, i) =>
      tf.layers.dense({
        ...(i === 0 && inputWidth ? { inputShape: [inputWidth] } : {}),
        units,
        activation: 'relu',
        kernelInitializer: init(10 + i),
      }),
    ),
    tf.layers.dense({ units: CLASSES, kernelInitializer: init(20) }),
  ];
  const teacher = tf.sequential({ layers: [...features, ...headLayers()] });
  const extractor = tf.model({
    inputs: teacher.inputs,
    outputs: features[features.length - 1].output as SymbolicTensor,
  });
  const featureWidth = extractor.outputs[0].shape[1]!;
  const trainFeatures = predictRows(tf, extractor, train.x, [h, w, c], featureWidth);
  const evalFeatures = predictRows(tf, extractor, evalSet.x, [h, w, c], featureWidth);
  phase('teacher conv features (wasm)');
  const head = tf.sequential({ layers: headLayers(featureWidth) });
  // The teacher ends in logits: cross-entropy on logits (the 'sparseCategoricalCrossentropy'
  // string loss expects probabilities).
  head.compile({
    optimizer: tf.train.adam(0.002),
    loss: (yTrue: Tensor, yPred: Tensor) => tf.losses.softmaxCrossEntropy(yTrue, yPred),
  });
  // A few thousand rows and epochs are plenty for a head on fixed features, and keep this step
  // (~1 GFLOP/s in model.fit on wasm) under a minute.
  const headRows = Math.min(rows, HEAD_ROWS);
  const fx = tf.tensor2d(trainFeatures.subarray(0, headRows * featureWidth), [headRows, featureWidth]);
  const fy = tf.oneHot(tf.tensor1d(train.y.subarray(0, headRows), 'int32'), CLASSES);
  // Data rows are i.i.d., so no shuffle (fit's shuffle draws from Math.random: not repeatable).
  await head.fit(fx, fy, { epochs: 6, batchSize: 128, shuffle: false, verbose: 0 });
  tf.dispose([fx, fy]);
  phase('head fit');
  const dense = teacher.layers.slice(features.length);
  head.layers.forEach((layer, i) => dense[i].setWeights(layer.getWeights()));

  // The teacher's outputs, for the PyTorch peer: the head on the features (the same function as
  // the whole teacher, without a second pass through its conv layers).
  const trainLogits = predictRows(tf, head, trainFeatures, [featureWidth], CLASSES);
  const evalLogits = predictRows(tf, head, evalFeatures, [featureWidth], CLASSES);
  await writeFile(path.join(dir, 'teacher_train_logits.npy'), encodeNpy(trainLogits, [rows, CLASSES]));
  await writeFile(path.join(dir, 'teacher_eval_logits.npy'), encodeNpy(evalLogits, [evalRows, CLASSES]));
  await teacher.save(
    tf.io.withSaveHandler(async (artifacts) => {
      await writeModelArtifacts(path.join(dir, 'teacher'), artifacts);
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  phase('outputs and save');
  console.error(`case ${spec.id}: workspace made: ${phases.join(', ')}`);
  let correct = 0;
  for (let n = 0; n < evalRows; n++) if (argmax(evalLogits, n, CLASSES) === evalSet.y[n]) correct++;
  const meta: Meta = {
    case: spec.id,
    rows,
    evalRows,
    teacherAccuracy: correct / evalRows,
    teacherParams: teacher.countParams(),
    seconds: (performance.now() - started) / 1000,
  };
  teacher.dispose();
  head.dispose();
  await writeFile(metaFile, JSON.stringify(meta));
  return { dir, meta };
}

function predictRows(tf: Tf, model: LayersModel, x: Float32Array, sampleShape: number[], width: number): Float32Array {
  const size = sampleShape.reduce((a, b) => a * b, 1);
  const count = x.length / size;
  const out = new Float32Array(count * width);
  for (let start = 0; start < count; start += 256) {
    const rows = Math.min(256, count - start);
    const y = tf.tidy(
      () => model.predict(tf.tensor(x.subarray(start * size, (start + rows) * size), [rows, ...sampleShape])) as Tensor,
    );
    out.set(y.dataSync() as Float32Array, start * width);
    y.dispose();
  }
  return out;
}

function argmax(logits: Float32Array, row: number, width: number): number {
  let best = 0;
  for (let k = 1; k < width; k++) if (logits[row * width + k] > logits[row * width + best]) best = k;
  return best;
}

/** The run's settings, as distill-gate's YAML and as JSON for the PyTorch peer: one source for both. */
async function writeConfigs(spec: Case, dir: string, epochs: number): Promise<{ yml: string; peer: string }> {
  const suffix = `e${epochs}${threads ? `-t${threads}` : ''}`;
  const yml = path.join(dir, `distill-gate-${suffix}.yml`);
  const peer = path.join(dir, `peer-${suffix}.json`);
  const distill = { ...SETTINGS, epochs, ...(threads ? { threads } : {}) };
  await writeFile(
    yml,
    [
      'teacher: teacher/model.json',
      `student: { layers: ${JSON.stringify(spec.student)} }`,
      'data: { train: { x: train_x.npy, y: train_y.npy }, eval: { x: eval_x.npy, y: eval_y.npy } }',
      `distill: ${JSON.stringify(distill)}`,
      'measure: { warmup: 3, rounds: 10 }',
    ].join('\n'),
  );
  await writeFile(peer, JSON.stringify({ layers: spec.student, inputShape: spec.shape, classes: CLASSES, ...distill }));
  return { yml, peer };
}

// ---------------------------------------------------------------------------------------------
// The two sides, each in its own process

interface DgFigures {
  backend: string;
  step: string;
  inference: string;
  seconds: number;
  teacherSeconds: number;
  agreement: number;
  peakRssMiB: number;
  wallSeconds: number;
  backendLines: string[];
}
interface TorchFigures {
  torch: string;
  threads: number;
  seconds: number;
  agreement: number;
  peak_rss_mib: number;
}

/** distill-gate's whole pipeline, once (a CI job's run), on the requested backend. */
async function child(configFile: string, backend: BackendName): Promise<void> {
  const config = parseConfig(await readFile(configFile, 'utf8'), configFile);
  const lines: string[] = [];
  const log = (line: string) => {
    lines.push(line);
    if (!line.startsWith('backend: skipped')) process.stderr.write(`    dg | ${line}\n`);
  };
  const started = performance.now();
  const { report } = await runPipeline(withOverrides(config, { backend }), {
    outDir: path.join(path.dirname(configFile), 'out-dg'),
    log,
  });
  const figures: DgFigures = {
    backend: report.backend,
    ...stepKind(report as unknown as Record<string, unknown>, lines),
    seconds: report.training.seconds,
    teacherSeconds: report.training.teacherSeconds,
    agreement: report.metrics['agreement.top1'],
    peakRssMiB: peakRssMiB(),
    wallSeconds: (performance.now() - started) / 1000,
    backendLines: lines.filter((l) => /^backend: using|falling back|^training:|^soft targets:|^inference/.test(l)),
  };
  process.stdout.write(`${JSON.stringify(figures)}\n`);
}

/**
 * The training path (step kind, the kernel's build, its backend) and the inference backend, where the report or
 * the log names them (report.training.step = { kind, backend }; the log's "training: ... step on
 * ...; inference on ..." line), else '-'.
 */
function stepKind(report: Record<string, unknown>, lines: string[]): { step: string; inference: string } {
  const training = (report.training ?? {}) as Record<string, unknown>;
  const step = training.step as
    { kind?: string; backend?: string; kernelModule?: string; threads?: number } | string | undefined;
  const line = lines.find((l) => /^training:/.test(l));
  const fromLine = line?.match(/training:\s*([\w-]+) step(?: on ([\w-]+))?/);
  const inference =
    line?.match(/inference on ([\w-]+)/)?.[1] ??
    (typeof report.inferenceBackend === 'string' ? report.inferenceBackend : '-');
  if (typeof step === 'string') return { step, inference };
  if (step?.kind) {
    const module = step.kernelModule
      ? ` (${step.kernelModule}${step.threads ? `, ${step.threads} thread${step.threads === 1 ? '' : 's'}` : ''})`
      : '';
    return { step: `${step.kind} step${module}${step.backend ? ` on ${step.backend}` : ''}`, inference };
  }
  if (fromLine) return { step: `${fromLine[1]} step${fromLine[2] ? ` on ${fromLine[2]}` : ''}`, inference };
  return { step: '-', inference };
}

function runDg(yml: string): DgFigures {
  const out = execFileSync(process.execPath, ['--import', 'tsx', here, '--child', values.backend!, '--config', yml], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 26,
  });
  return JSON.parse(out.trim().split('\n').pop()!) as DgFigures;
}

/** bench/peer/kd_conv_torch.py with Debian's python3-torch; undefined when torch is missing. */
function runTorch(dir: string, peerConfig: string): TorchFigures | undefined {
  try {
    const out = execFileSync(
      '/usr/bin/python3',
      [path.join(path.dirname(here), 'peer', 'kd_conv_torch.py'), dir, peerConfig],
      {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
        maxBuffer: 1 << 26,
      },
    );
    return JSON.parse(out.trim().split('\n').pop()!) as TorchFigures;
  } catch (error) {
    process.stderr.write(`    torch | failed: ${(error as Error).message.split('\n')[0]}\n`);
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------

async function parent(): Promise<void> {
  const rows = Number(values.rows);
  const evalRows = values['eval-rows']
    ? Number(values['eval-rows'])
    : Math.min(2000, Math.max(64, Math.round(rows / 5)));
  const epochs = Number(values.epochs);
  const rounds = Number(values.rounds);
  const ids = values
    .cases!.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const cases = ids.map((id) => {
    const spec = CASES.find((c) => c.id === id);
    if (!spec) throw new Error(`unknown case "${id}"; cases: ${CASES.map((c) => c.id).join(', ')}`);
    return spec;
  });
  console.log(
    `distill-gate bench:conv: ${rows.toLocaleString('en-US')} train / ${evalRows.toLocaleString('en-US')} eval rows, ${epochs} epochs, batch ${SETTINGS.batchSize}, T = ${SETTINGS.temperature}, alpha ${SETTINGS.alpha}, Adam ${SETTINGS.learningRate}; backend ${values.backend}; threads ${threads ?? 'auto (PyTorch: its default)'}; on ${os.cpus()[0]?.model} x${os.cpus().length}, Node ${process.version}; medians of ${rounds} interleaved round(s)`,
  );

  const prepared: Array<{ spec: Case; dir: string; meta: Meta; yml: string; peer: string }> = [];
  for (const spec of cases) {
    const { dir, meta } = await workspaceFor(spec, rows, evalRows);
    const { yml, peer } = await writeConfigs(spec, dir, epochs);
    console.log(
      `case ${spec.id}: ${spec.title}; teacher ${meta.teacherParams.toLocaleString('en-US')} params, eval accuracy ${(100 * meta.teacherAccuracy).toFixed(1)}% (workspace ${dir}${meta.seconds ? `, made in ${meta.seconds.toFixed(1)} s` : ''})`,
    );
    prepared.push({ spec, dir, meta, yml, peer });
  }
  if (rounds === 0) return; // --rounds 0: prepare (and cache) the workspaces only.

  // Each round runs every case's two sides back to back, so that a ratio taken within a round
  // compares runs that saw the same machine; the medians damp a shared machine's swings.
  const perRound: Array<Array<{ dg: DgFigures; torch?: TorchFigures }>> = [];
  for (let round = 0; round < rounds; round++) {
    perRound.push(
      prepared.map(({ spec, dir, yml, peer }) => {
        console.error(`round ${round + 1}/${rounds}, case ${spec.id}: distill-gate`);
        const dg = runDg(yml);
        console.error(`round ${round + 1}/${rounds}, case ${spec.id}: PyTorch`);
        const torch = runTorch(dir, peer);
        return { dg, torch };
      }),
    );
  }

  const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
  console.log(
    '\n| case | distill-gate s (teacher pass) | PyTorch s | ratio dg / PyTorch | agreement dg / PyTorch | peak RSS MiB dg / PyTorch | dg backend; training step; inference |',
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | --- |');
  const notes: string[] = [];
  prepared.forEach(({ spec }, i) => {
    const dgs = perRound.map((r) => r[i].dg);
    const torches = perRound.flatMap((r) => (r[i].torch ? [r[i].torch!] : []));
    const dg = medianOf(dgs);
    const torch = torches.length === rounds ? medianOf(torches) : undefined;
    const ratios = torch ? perRound.map((r) => r[i].dg.seconds / r[i].torch!.seconds).sort((a, b) => a - b) : [];
    const ratio = torch
      ? `${median(ratios).toFixed(2)}x${rounds > 1 ? ` (${ratios[0].toFixed(2)}-${ratios[ratios.length - 1].toFixed(2)})` : ''}`
      : 'n/a';
    console.log(
      `| ${spec.id}: ${spec.title} | ${dg.seconds.toFixed(2)} (${dg.teacherSeconds.toFixed(2)}) | ${torch ? torch.seconds.toFixed(2) : 'n/a'} | ${ratio} | ${pct(dg.agreement)} / ${torch ? pct(torch.agreement) : 'n/a'} | ${dg.peakRssMiB.toFixed(0)} / ${torch ? torch.peak_rss_mib.toFixed(0) : 'n/a'} | ${dg.backend}; ${dg.step}; ${dg.inference} |`,
    );
    notes.push(
      `case ${spec.id}: distill-gate whole run ${dg.wallSeconds.toFixed(2)} s; ${dg.backendLines.join('; ') || 'no backend lines logged'}`,
    );
    if (torch) notes.push(`case ${spec.id}: PyTorch ${torch.torch}, ${torch.threads} thread(s)`);
  });
  console.log(`\n${notes.join('\n')}`);
  if (perRound.some((r) => r.some((c) => !c.torch)))
    console.log(
      '\nPyTorch peer missing in some runs: /usr/bin/python3 cannot import torch (apt-get install python3-torch), or it failed (see stderr).',
    );
  console.log(
    '\ndistill-gate s: report.training.seconds, the distillation phase (teacher soft-target pass on the train split, then the KD loop with its per-epoch agreement probe); the teacher pass alone in parentheses. PyTorch s: its training loop from the stored teacher logits. Agreement: top-1 against the teacher on the eval split.',
  );
}

if (values.child) await child(values.config!, values.child as BackendName);
else await parent();

/**
 * This process's peak resident set, MiB: VmHWM, which starts afresh at exec. Not
 * resourceUsage().maxRSS: Linux keeps ru_maxrss across fork and exec, so every child of this
 * bench would report at least the parent's own peak (both sides read ~418 MiB on 2026-12-05).
 */
function peakRssMiB(): number {
  const hwm = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return hwm ? Number(hwm[1]) / 1024 : process.resourceUsage().maxRSS / 1024;
}
