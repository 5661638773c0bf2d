/**
 * `npm run bench:onnx`: the teacher's soft-target pass of one and the same teacher in
 * onnxruntime-node (intra-op threads: every core, and one), in TF.js on wasm (one thread, and
 * the worker threads distill-gate starts for a TF.js teacher on large in-memory sets) and, as
 * the pipeline runs a TF.js teacher it can plan on wasm, in the training kernel, in
 * samples/s, measured in one run with the passes interleaved round by round. Two teachers: the bundled example's MLP scaled
 * up (64-1024-1024-1024-1024-10, softmax) and a small image teacher (32x32x3, three convolutions,
 * NCHW in ONNX as PyTorch exports it, so its pass includes the transpose from the NHWC data).
 * Not a test; needs onnxruntime-node (ONNXRUNTIME_NODE_INSTALL=skip npm install --no-save onnxruntime-node@1.30.0).
 *
 *   npm run bench:onnx -- --mlp-rows 32768 --conv-rows 4096 --rounds 3
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { LayersModel } from '@tensorflow/tfjs';
import { resolveBackend } from '../src/backend/resolve.js';
import { inMemoryDataset, type Dataset } from '../src/data/dataset.js';
import { seededRandom } from '../src/distill/random.js';
import { attachKernelPass } from '../src/distill/kernel-teacher.js';
import { teacherLogits } from '../src/distill/teacher-logits.js';
import { workersFor } from '../src/distill/teacher-workers.js';
import { writeModelArtifacts } from '../src/models/artifacts.js';
import { loadModel } from '../src/models/model.js';
import { type LoadedModel } from '../src/models/loaded-model.js';
import { loadOnnxTeacher } from '../src/models/onnx.js';
import { availableCores, INSTALL_ONNXRUNTIME_CPU } from '../src/models/onnx-runtime.js';
import { mlpSpec, type DenseWeights } from '../fixtures/onnx-models.js';
import { DataType, writeModel, type ModelSpec, type NodeSpec } from '../src/models/onnx-writer.js';
import { median } from './medians.js';

const { values } = parseArgs({
  options: {
    'mlp-rows': { type: 'string', default: '32768' },
    'conv-rows': { type: 'string', default: '4096' },
    width: { type: 'string', default: '1024' },
    rounds: { type: 'string', default: '3' },
  },
});
const rounds = Number(values.rounds);
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { tf } = await resolveBackend('wasm');
const dir = await mkdtemp(path.join(os.tmpdir(), 'bench-onnx-'));

/** Seeded weights, Glorot-uniform scaled, so that activations stay in range through the layers. */
function weights(count: number, fanIn: number, fanOut: number, random: () => number): Float32Array {
  const limit = Math.sqrt(6 / (fanIn + fanOut));
  return Float32Array.from({ length: count }, () => (random() * 2 - 1) * limit);
}

/** The example's MLP made `width` wide: the same network as a TF.js LayersModel and as ONNX. */
function mlp(width: number): { tfjs: LayersModel; onnx: ModelSpec } {
  const random = seededRandom(17);
  const sizes = [64, width, width, width, width, 10];
  const layers: DenseWeights[] = sizes.slice(1).map((units, i) => ({
    kernel: weights(sizes[i] * units, sizes[i], units, random),
    bias: weights(units, sizes[i], units, random),
    inputs: sizes[i],
    units,
  }));
  const tfjs = tf.sequential({
    layers: layers.map((l, i) =>
      tf.layers.dense({
        ...(i === 0 ? { inputShape: [64] } : {}),
        units: l.units,
        activation: i === layers.length - 1 ? 'softmax' : 'relu',
      }),
    ),
  });
  tf.tidy(() =>
    tfjs.setWeights(layers.flatMap((l) => [tf.tensor2d(l.kernel, [l.inputs, l.units]), tf.tensor1d(l.bias)])),
  );
  return { tfjs, onnx: mlpSpec(layers) };
}

/** A small image teacher: conv 3->32 (same) -> conv 32->64 /2 -> conv 64->128 /2 (valid), ReLUs, global average pool, dense 10. */
function convNet(): { tfjs: LayersModel; onnx: ModelSpec } {
  const random = seededRandom(23);
  const convs = [
    { inputs: 3, filters: 32, stride: 1, pad: 1 },
    { inputs: 32, filters: 64, stride: 2, pad: 0 },
    { inputs: 64, filters: 128, stride: 2, pad: 0 },
  ];
  const nodes: NodeSpec[] = [];
  const initializers: ModelSpec['initializers'] = [];
  const tfjsWeights: Float32Array[] = [];
  let x = 'pixels';
  convs.forEach((c, i) => {
    // ONNX weights [out, in, kh, kw]; TF.js kernels [kh, kw, in, out].
    const onnxKernel = weights(c.filters * c.inputs * 9, c.inputs * 9, c.filters * 9, random);
    const kernel = new Float32Array(onnxKernel.length);
    for (let o = 0; o < c.filters; o++)
      for (let k = 0; k < c.inputs; k++)
        for (let p = 0; p < 9; p++) kernel[(p * c.inputs + k) * c.filters + o] = onnxKernel[(o * c.inputs + k) * 9 + p];
    const bias = weights(c.filters, c.inputs * 9, c.filters, random);
    initializers.push(
      { name: `conv${i}.weight`, dims: [c.filters, c.inputs, 3, 3], values: onnxKernel },
      { name: `conv${i}.bias`, dims: [c.filters], values: bias },
    );
    tfjsWeights.push(kernel, bias);
    nodes.push(
      {
        op: 'Conv',
        inputs: [x, `conv${i}.weight`, `conv${i}.bias`],
        outputs: [`conv${i}`],
        attributes: [
          { name: 'kernel_shape', ints: [3, 3] },
          { name: 'strides', ints: [c.stride, c.stride] },
          { name: 'pads', ints: [c.pad, c.pad, c.pad, c.pad] },
        ],
      },
      { op: 'Relu', inputs: [`conv${i}`], outputs: [`relu${i}`] },
    );
    x = `relu${i}`;
  });
  const dense: DenseWeights = {
    kernel: weights(128 * 10, 128, 10, random),
    bias: weights(10, 128, 10, random),
    inputs: 128,
    units: 10,
  };
  const fc = mlpSpec([dense], { softmax: false, input: 'pooled', output: 'logits' });
  nodes.push(
    { op: 'GlobalAveragePool', inputs: [x], outputs: ['gap'] },
    { op: 'Flatten', inputs: ['gap'], outputs: ['pooled'], attributes: [{ name: 'axis', int: 1 }] },
    ...fc.nodes,
  );
  const tfjs = tf.sequential({
    layers: [
      ...convs.map((c, i) =>
        tf.layers.conv2d({
          ...(i === 0 ? { inputShape: [32, 32, 3] } : {}),
          filters: c.filters,
          kernelSize: 3,
          strides: c.stride,
          padding: c.pad ? 'same' : 'valid',
          activation: 'relu',
        }),
      ),
      tf.layers.globalAveragePooling2d({}),
      tf.layers.dense({ units: 10 }),
    ],
  });
  tf.tidy(() =>
    tfjs.setWeights([
      ...convs.flatMap((c, i) => [
        tf.tensor4d(tfjsWeights[2 * i], [3, 3, c.inputs, c.filters]),
        tf.tensor1d(tfjsWeights[2 * i + 1]),
      ]),
      tf.tensor2d(dense.kernel, [128, 10]),
      tf.tensor1d(dense.bias),
    ]),
  );
  return {
    tfjs,
    onnx: {
      nodes,
      initializers: [...initializers, ...fc.initializers],
      inputs: [{ name: 'pixels', elemType: DataType.FLOAT, shape: ['batch', 3, 32, 32] }],
      outputs: [{ name: 'logits', elemType: DataType.FLOAT, shape: ['batch', 10] }],
    },
  };
}

interface Contender {
  name: string;
  /** One whole soft-target pass over `data`, as distill-gate runs it. */
  pass: (data: Dataset) => Promise<Float32Array>;
}

async function bench(title: string, net: { tfjs: LayersModel; onnx: ModelSpec }, data: Dataset): Promise<void> {
  const folder = await mkdtemp(path.join(dir, 'teacher-'));
  const onnxFile = path.join(folder, 'teacher.onnx');
  await writeFile(onnxFile, writeModel(net.onnx));
  const modelJson = (
    await new Promise<{ modelJson: string }>((resolve, reject) => {
      net.tfjs
        .save(
          tf.io.withSaveHandler(
            async (artifacts) => (
              resolve(await writeModelArtifacts(folder, artifacts)),
              { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } }
            ),
          ),
        )
        .catch(reject);
    })
  ).modelJson;
  const context = (threads: number) => ({
    data: { sampleShape: data.sampleShape, source: 'bench' },
    searchFrom: [repo],
    threads,
  });
  const cores = availableCores();
  const ortAll = await loadOnnxTeacher(tf, onnxFile, {}, context(cores));
  const ortOne = await loadOnnxTeacher(tf, onnxFile, {}, context(1));
  const tfjs = await loadModel(tf, modelJson, 'teacher');
  // The same TF.js teacher as the pipeline runs it on wasm: its pass in the training kernel, on
  // one thread and split over every core's kernel thread (distill.threads).
  // A teacher the pipeline keeps on TF.js (a dense stack) has no kernel rows.
  const inKernel = async (threads: number) => {
    const model = await loadModel(tf, modelJson, 'teacher');
    const choice = attachKernelPass(tf, model, 'wasm', { threads });
    if ('attached' in choice) return model;
    console.log(`  (no kernel rows: ${choice.notAttached})`);
    model.dispose();
    return undefined;
  };
  const kernel = await inKernel(1);
  const kernelAll = kernel && (await inKernel(cores));
  const workers = workersFor(data, 'wasm');
  // As the pipeline calls it: given the model.json, a TF.js teacher gets workers on large sets.
  const run = (teacher: LoadedModel, json?: string) => async (d: Dataset) =>
    (await teacherLogits(tf, teacher, d, 'wasm', undefined, json)).logits;
  const contenders: Contender[] = [
    { name: `onnxruntime-node ${ortAll.runtime?.version} cpu, ${cores} threads`, pass: run(ortAll) },
    { name: `onnxruntime-node ${ortOne.runtime?.version} cpu, 1 thread`, pass: run(ortOne) },
    { name: 'TF.js wasm, 1 thread', pass: run(tfjs) },
    ...(workers > 1 ? [{ name: `TF.js wasm, ${workers} worker threads`, pass: run(tfjs, modelJson) }] : []),
    ...(kernel ? [{ name: `TF.js teacher in the ${kernel.rowPass?.label}, 1 thread`, pass: run(kernel) }] : []),
    ...(kernelAll && cores > 1
      ? [{ name: `TF.js teacher in the kernel, ${cores} threads`, pass: run(kernelAll) }]
      : []),
  ];
  // Warm-up: each runtime's first call compiles and allocates.
  const warm = inMemoryDataset('warm-up', (await data.read(0, 64)).slice(), data.sampleShape);
  for (const c of contenders) await c.pass(warm);
  const seconds: number[][] = contenders.map(() => []);
  const outputs: Float32Array[] = [];
  for (let round = 0; round < rounds; round++) {
    for (const [i, c] of contenders.entries()) {
      const started = performance.now();
      outputs[i] = await c.pass(data);
      seconds[i].push((performance.now() - started) / 1000);
    }
  }
  // A loop, not Math.max(...array): hundreds of thousands of arguments overflow the stack.
  let worst = 0;
  for (let i = 0; i < outputs[0].length; i++)
    worst = Math.max(worst, Math.abs(outputs[2][i] - outputs[0][i]) / Math.max(1, Math.abs(outputs[2][i])));
  console.log(
    `\n${title}: ${data.size.toLocaleString('en-US')} rows of [${data.sampleShape.join(', ')}], median of ${rounds} passes`,
  );
  const tfjsRate = data.size / median([...seconds[2]].sort((a, b) => a - b));
  for (const [i, c] of contenders.entries()) {
    const s = median([...seconds[i]].sort((a, b) => a - b));
    console.log(
      `  ${c.name.padEnd(44)} ${(data.size / s).toFixed(0).padStart(8)} samples/s  (${s.toFixed(2)} s; ${(data.size / s / tfjsRate).toFixed(2)}x TF.js wasm 1 thread)`,
    );
  }
  console.log(`  onnxruntime and TF.js logits agree to ${worst.toExponential(1)} (relative, floor 1)`);
  for (const t of [ortAll, ortOne, tfjs, kernel, kernelAll]) t?.dispose();
}

const cpus = os.cpus();
console.log(
  `teacher pass, onnxruntime-node vs TF.js wasm; ${cpus.length} logical cores (${cpus[0]?.model.trim()}), Node ${process.version}`,
);
try {
  const width = Number(values.width);
  const random = seededRandom(3);
  const mlpRows = Number(values['mlp-rows']);
  await bench(
    `MLP 64-${width}x4-10 (softmax)`,
    mlp(width),
    inMemoryDataset(
      'mlp',
      Float32Array.from({ length: mlpRows * 64 }, () => random() * 2 - 1),
      [64],
    ),
  );
  const convRows = Number(values['conv-rows']);
  await bench(
    'conv 32x32x3 (NCHW in ONNX)',
    convNet(),
    inMemoryDataset(
      'conv',
      Float32Array.from({ length: convRows * 32 * 32 * 3 }, () => random()),
      [32, 32, 3],
    ),
  );
} catch (error) {
  if (/onnxruntime-node; it is not installed/.test(String(error)))
    console.error(`onnxruntime-node is missing: ${INSTALL_ONNXRUNTIME_CPU}`);
  throw error;
}
