/**
 * `npm run bench:stream -- --gb 2`: distils over a generated transfer set larger than the memory
 * distill-gate may use (default 2 GB of float32 features), streamed from disk, and prints the
 * peak RSS. One epoch, a small teacher (64-128-10) and student (64-16-10) keep it to minutes.
 * Not a test.
 */
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { resolveBackend } from '../src/backend/resolve.js';
import { parseConfig, withOverrides } from '../src/config/load.js';
import { encodeNpy } from '../src/data/npy.js';
import { seededRandom } from '../src/distill/random.js';
import { writeModelArtifacts } from '../src/models/artifacts.js';
import { runPipeline } from '../src/pipeline.js';

const { values } = parseArgs({
  options: { gb: { type: 'string', default: '2' }, backend: { type: 'string', default: 'wasm' } },
});
const FEATURES = 64;
const rows = Math.floor((Number(values.gb) * 1e9) / (FEATURES * 4));
const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-stream-'));
try {
  // Written in slices, so that generating the file does not itself need the memory.
  const header = encodeNpy(new Float32Array(0), [rows, FEATURES]);
  const handle = await open(path.join(dir, 'train_x.npy'), 'w');
  await handle.write(header.subarray(0, header.length));
  const random = seededRandom(3);
  const slice = new Float32Array(65536 * FEATURES);
  for (let written = 0; written < rows; written += 65536) {
    const count = Math.min(65536, rows - written);
    for (let i = 0; i < count * FEATURES; i++) slice[i] = random() * 2 - 1;
    await handle.write(new Uint8Array(slice.buffer, 0, count * FEATURES * 4));
  }
  await handle.close();
  const evalRows = 2000;
  await writeFile(
    path.join(dir, 'eval_x.npy'),
    encodeNpy(
      Float32Array.from({ length: evalRows * FEATURES }, () => random() * 2 - 1),
      [evalRows, FEATURES],
    ),
  );

  const { tf } = await resolveBackend('cpu');
  const teacher = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [FEATURES], units: 128, activation: 'relu' }),
      tf.layers.dense({ units: 10 }),
    ],
  });
  await teacher.save(
    tf.io.withSaveHandler(async (artifacts) => {
      await writeModelArtifacts(path.join(dir, 'teacher'), artifacts);
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  const file = path.join(dir, 'distill-gate.yml');
  const config = parseConfig(
    [
      'teacher: teacher/model.json',
      'student: { layers: [ { type: dense, units: 16, activation: relu }, { type: dense, units: 10 } ] }',
      'data: { train: { x: train_x.npy }, eval: { x: eval_x.npy } }',
      'distill: { epochs: 1, batchSize: 256, learningRate: 0.001 }',
      'measure: { warmup: 10, rounds: 10 }',
    ].join('\n'),
    file,
  );
  const started = performance.now();
  const { report } = await runPipeline(withOverrides(config, { backend: values.backend as 'wasm' }), {
    outDir: path.join(dir, 'out'),
  });
  const seconds = (performance.now() - started) / 1000;
  const peak = process.resourceUsage().maxRSS / 1024;
  console.log(
    `streamed ${((rows * FEATURES * 4) / 1e9).toFixed(2)} GB (${rows.toLocaleString('en-US')} rows of ${FEATURES} float32) on ${report.backend}: one epoch in ${seconds.toFixed(1)} s, peak RSS ${peak.toFixed(0)} MiB (teacher logits held in memory: ${((rows * 10 * 4) / 2 ** 20).toFixed(0)} MiB)`,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
