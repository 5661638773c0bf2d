/**
 * `npm run bench:image`: an image-sized teacher (224x224x3, a MobileNet-like stack of depthwise
 * and pointwise convolutions, 0.5M parameters, random weights) distilled into a small conv
 * student on the bundled default backend, one epoch: that it runs at all (the fixed 512-row
 * inference batch used to exhaust wasm's memory on such teachers), how long the teacher's pass
 * takes, and the peak RSS against the size of the transfer set. Not a test.
 *
 *   npm run bench:image -- --rows 640
 */
import os from 'node:os';
import path from 'node:path';
import { writeFile, mkdir, mkdtemp } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { resolveBackend } from '../src/backend/resolve.js';
import { parseConfig } from '../src/config/load.js';
import { encodeNpy } from '../src/data/npy.js';
import { writeModelArtifacts } from '../src/models/artifacts.js';
import { runPipeline } from '../src/pipeline.js';
const { values } = parseArgs({ options: { rows: { type: 'string', default: '128' } } });
const rows = Number(values.rows);
const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-bench-image-'));
await mkdir(dir, { recursive: true });
const { tf } = await resolveBackend('wasm');
const init = (seed: number) => tf.initializers.heNormal({ seed });
const block = (filters: number, stride: number, seed: number) => [
  tf.layers.depthwiseConv2d({
    kernelSize: 3,
    strides: stride,
    padding: 'same',
    depthwiseInitializer: init(seed),
    activation: 'relu',
  }),
  tf.layers.conv2d({ filters, kernelSize: 1, activation: 'relu', kernelInitializer: init(seed + 1) }),
];
const teacher = tf.sequential({
  layers: [
    tf.layers.conv2d({
      inputShape: [224, 224, 3],
      filters: 32,
      kernelSize: 3,
      strides: 2,
      padding: 'same',
      activation: 'relu',
      kernelInitializer: init(1),
    }),
    ...block(64, 1, 2),
    ...block(128, 2, 4),
    ...block(128, 1, 6),
    ...block(256, 2, 8),
    ...block(256, 1, 10),
    ...block(512, 2, 12),
    tf.layers.globalAveragePooling2d({}),
    tf.layers.dense({ units: 10, kernelInitializer: init(20) }),
  ],
});
console.log(
  `teacher: 224x224x3, ${teacher.countParams().toLocaleString('en-US')} params; ${rows} rows (train and eval read from the same file)`,
);
await teacher.save(
  tf.io.withSaveHandler(async (a) => {
    await writeModelArtifacts(path.join(dir, 'teacher'), a);
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }),
);
const x = new Float32Array(rows * 224 * 224 * 3);
for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.001) + Math.cos(i * 0.37);
await writeFile(path.join(dir, 'x.npy'), encodeNpy(x, [rows, 224, 224, 3]));
const config = parseConfig(
  `teacher: teacher/model.json
student: { layers: [ { type: conv2d, filters: 8, kernelSize: 4, strides: 4, activation: relu }, { type: conv2d, filters: 16, kernelSize: 3, strides: 2, activation: relu }, { type: globalAveragePooling2d }, { type: dense, units: 10 } ] }
data: { train: { x: x.npy }, eval: { x: x.npy } }
distill: { epochs: 1, batchSize: 32 }
measure: { warmup: 2, rounds: 3, throughputBatch: 16 }
`,
  path.join(dir, 'distill-gate.yml'),
);
// The data above was generated in this process: its peak so far is the generator's, not the run's.
const before = process.resourceUsage().maxRSS / 1024;
const t0 = performance.now();
const { report, markdown } = await runPipeline(config, {
  outDir: path.join(dir, 'out'),
  log: (l) => console.log('  ', l),
});
const peak = process.resourceUsage().maxRSS / 1024;
console.log(
  `whole run ${((performance.now() - t0) / 1000).toFixed(1)} s, teacher pass on the train split ${report.training.teacherSeconds.toFixed(1)} s; ` +
    `${report.training.step?.kind} step on ${report.training.step?.backend}, inference on ${report.backend}; ` +
    `peak RSS ${peak.toFixed(0)} MiB (${before.toFixed(0)} MiB before the run, while generating the data); one split ${((x.length * 4) / 2 ** 20).toFixed(0)} MiB`,
);
// The report's footer: each phase's time (load, teacher pass, distillation, measuring, report).
console.log(/phase times: [^;,]*(, [a-z ]+ [<\d.]+ s)*/.exec(markdown)?.[0] ?? 'phase times: not in the report');
