/**
 * `npm run bench`: distillation throughput and peak RSS per TF.js backend, measured side by side
 * in one run on this machine, on the reference pair of issue #6 (teacher MLP 64-512-512-10,
 * student 64-32-10, 1,200 samples, batch 64, T = 4). Each backend runs in its own child process so
 * that peak RSS is its own. Not a test: it prints figures and ratios.
 *
 *   npm run bench -- --epochs 20 --rounds 3 --backends auto,webgpu,wasm,cpu   (webgpu: a GPU runner with the `webgpu` package)
 *
 * `auto` is what a CI job runs by default: its row is the time to verdict the floors are about.
 */
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { resolveBackend } from '../src/backend/resolve.js';
import { parseConfig, withOverrides } from '../src/config/load.js';
import type { BackendName } from '../src/config/schema.js';
import { runPipeline } from '../src/pipeline.js';
import { pytorchPeer, referencePairWorkspace, type PeerFigures } from './reference-pair.js';
import { median, medianOf } from './medians.js';

const here = fileURLToPath(import.meta.url);
const { values } = parseArgs({
  options: {
    epochs: { type: 'string', default: '20' },
    rounds: { type: 'string', default: '3' },
    backends: { type: 'string', default: 'auto,wasm,cpu' },
    child: { type: 'string' },
    naive: { type: 'string' },
    workspace: { type: 'string' },
  },
});

interface ChildFigures {
  requested: string;
  backend: string;
  samplesPerSecond: number;
  coldSamplesPerSecond: number;
  coldWallSeconds: number;
  seconds: number;
  teacherSeconds: number;
  peakRssMiB: number;
  agreement: number;
}

/**
 * Runs the whole pipeline twice in one process: the first run is the cold time to verdict a CI job
 * sees (JIT and backend warm-up included); the second is the steady state, comparable with the
 * PyTorch peer, which also times a second run.
 */
async function child(backend: BackendName, workspace: string): Promise<void> {
  const file = path.join(workspace, 'distill-gate.yml');
  const config = parseConfig(await (await import('node:fs/promises')).readFile(file, 'utf8'), file);
  const coldStart = performance.now();
  const cold = (
    await runPipeline(withOverrides(config, { backend }), { outDir: path.join(workspace, `out-${backend}-cold`) })
  ).report;
  const coldWallSeconds = (performance.now() - coldStart) / 1000;
  const { report } = await runPipeline(withOverrides(config, { backend }), {
    outDir: path.join(workspace, `out-${backend}`),
  });
  const figures: ChildFigures = {
    requested: backend,
    backend: report.backend,
    coldSamplesPerSecond: (cold.training.trainSamples * cold.training.epochs) / cold.training.seconds,
    coldWallSeconds,
    samplesPerSecond: (report.training.trainSamples * report.training.epochs) / report.training.seconds,
    seconds: report.training.seconds,
    teacherSeconds: report.training.teacherSeconds,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    agreement: report.metrics['agreement.top1'],
  };
  process.stdout.write(`${JSON.stringify(figures)}\n`);
}

/**
 * The baseline a team would write first in TF.js: `cpu` backend, the teacher run on every batch
 * (online KD), same loss and optimiser. Issue #6's 15x floor is measured against this.
 */
async function naiveOnlineKd(workspace: string, epochs: number): Promise<void> {
  const { tf } = await resolveBackend('cpu');
  const { loadModel } = await import('../src/models/model.js');
  const { buildStudent } = await import('../src/models/student.js');
  const { distillationLoss } = await import('../src/distill/loss.js');
  const { loadSplit } = await import('../src/data/dataset.js');
  const teacher = await loadModel(tf, path.join(workspace, 'teacher/model.json'), 'teacher');
  const student = await buildStudent(
    tf,
    {
      layers: [
        { type: 'dense', units: 32, activation: 'relu' },
        { type: 'dense', units: 10 },
      ],
    },
    [64],
    7,
  );
  const train = await loadSplit(
    { x: path.join(workspace, 'train_x.npy'), y: path.join(workspace, 'train_y.npy') },
    'train',
  );
  const features = await train.read(0, train.size);
  const optimizer = tf.train.adam(0.001);
  const started = performance.now();
  for (let epoch = 0; epoch < epochs; epoch++) {
    for (let start = 0; start < train.size; start += 64) {
      const rows = Math.min(64, train.size - start);
      tf.tidy(() => {
        const x = tf.tensor2d(features.subarray(start * 64, (start + rows) * 64), [rows, 64]);
        const labels = tf.tensor1d(train.y!.subarray(start, start + rows), 'int32');
        const teacherLogits = teacher.predict(x);
        optimizer.minimize(() =>
          distillationLoss(tf, student.layers!.apply(x, { training: true }) as typeof x, teacherLogits, labels, {
            temperature: 4,
            alpha: 0.9,
          }),
        );
      });
    }
  }
  const seconds = (performance.now() - started) / 1000;
  process.stdout.write(`${JSON.stringify({ samplesPerSecond: (train.size * epochs) / seconds })}\n`);
}

async function parent(): Promise<void> {
  const epochs = Number(values.epochs);
  const rounds = Number(values.rounds);
  const workspace = await referencePairWorkspace(epochs);
  const backends = values.backends!.split(',') as BackendName[];
  console.log(
    `distill-gate bench: reference pair, ${epochs} epochs of 1,200 samples, on ${os.cpus()[0]?.model} x${os.cpus().length}, Node ${process.version}; medians of ${rounds} interleaved rounds`,
  );
  // Each round runs every backend and the PyTorch peer back to back, so a ratio taken within a
  // round compares runs that saw the same machine; the medians damp a shared machine's swings.
  const perRound: Array<{ results: ChildFigures[]; peer?: PeerFigures }> = [];
  for (let round = 0; round < rounds; round++) {
    const results = backends.map((backend) => {
      const out = execFileSync(
        process.execPath,
        ['--import', 'tsx', here, '--child', backend, '--workspace', workspace],
        {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'ignore'],
        },
      );
      return JSON.parse(out.trim().split('\n').pop()!) as ChildFigures;
    });
    perRound.push({ results, peer: pytorchPeer(workspace, epochs) });
  }
  const results = backends.map((_, i) => medianOf(perRound.map((r) => r.results[i])));
  const peers = perRound.flatMap((r) => (r.peer ? [r.peer] : []));
  const peer = peers.length === rounds ? medianOf(peers) : undefined;
  const baseline = results.find((r) => r.requested === 'cpu') ?? results[results.length - 1];
  const label = (r: ChildFigures) => (r.requested === r.backend ? r.backend : `${r.requested} (${r.backend})`);
  // The naive loop is slow: a quarter of the epochs, once, is plenty for its rate.
  const naiveEpochs = Math.max(1, Math.round(epochs / 4));
  const naive = JSON.parse(
    execFileSync(
      process.execPath,
      ['--import', 'tsx', here, '--naive', 'cpu', '--workspace', workspace, '--epochs', String(naiveEpochs)],
      {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    )
      .trim()
      .split('\n')
      .pop()!,
  ) as { samplesPerSecond: number };
  const n = (v: number) => Math.round(v).toLocaleString('en-US');
  console.log(
    '\n| backend | distillation samples/s, warm | seconds (teacher soft targets) | cold run: samples/s, whole run s | peak RSS MiB | top-1 agreement | vs cpu, warm | vs PyTorch (cached logits) |',
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results) {
    const vsPeer = peer ? `${(r.samplesPerSecond / peer.cached_samples_per_s).toFixed(2)}x` : 'n/a';
    console.log(
      `| ${label(r)} | ${n(r.samplesPerSecond)} | ${r.seconds.toFixed(2)} (${r.teacherSeconds.toFixed(2)}) | ${n(r.coldSamplesPerSecond)}, ${r.coldWallSeconds.toFixed(2)} | ${r.peakRssMiB.toFixed(0)} | ${(100 * r.agreement).toFixed(1)}% | ${(r.samplesPerSecond / baseline.samplesPerSecond).toFixed(2)}x | ${vsPeer} |`,
    );
  }
  const autoIndex = Math.max(0, backends.indexOf('auto'));
  const auto = results[autoIndex];
  console.log(
    `\nNaive TF.js online KD on the cpu backend (teacher on every batch, ${naiveEpochs} epochs): ${n(naive.samplesPerSecond)} samples/s. distill-gate with ${label(auto)}: ${(auto.coldSamplesPerSecond / naive.samplesPerSecond).toFixed(1)}x cold, ${(auto.samplesPerSecond / naive.samplesPerSecond).toFixed(1)}x warm.`,
  );
  if (!peer) {
    console.log(
      '\nPyTorch peer skipped: /usr/bin/python3 cannot import torch (apt-get install python3-torch libopenblas0-pthread).',
    );
    return;
  }
  console.log(
    `PyTorch ${peer.torch} (${peer.threads} thread(s)), same job: ${n(peer.online_samples_per_s)} samples/s online KD, ${n(peer.cached_samples_per_s)} samples/s with teacher logits computed once (${peer.cached_seconds.toFixed(2)} s; first run ${peer.cold_cached_seconds.toFixed(2)} s).`,
  );
  /** The per-round ratio ours/PyTorch: median, and the range over rounds. */
  const ratio = (ours: (r: ChildFigures) => number, theirs: (p: PeerFigures) => number) => {
    const values = perRound.map((r) => ours(r.results[autoIndex]) / theirs(r.peer!)).sort((a, b) => a - b);
    return `${median(values).toFixed(2)}x (${values[0].toFixed(2)}-${values[values.length - 1].toFixed(2)})`;
  };
  const onlineSeconds = (p: PeerFigures) => (1200 * epochs) / p.online_samples_per_s;
  console.log(`\nRatios ours / PyTorch, with ${label(auto)}: median of ${rounds} rounds (range)`);
  console.log(
    `  distillation phase, warm / PyTorch's warm training run:        ${ratio(
      (r) => r.seconds,
      (p) => p.cached_seconds,
    )}`,
  );
  // Issue #6's floor: the whole cold run (backend choice and start, loading, teacher,
  // distillation, measurement, report) against the PyTorch script's training time alone.
  console.log(
    `  time to verdict, cold (${auto.coldWallSeconds.toFixed(2)} s: backend choice, loading, teacher, distillation, measurement, report)`,
  );
  console.log(
    `    / PyTorch's first training run (what a CI job sees, like ours): ${ratio(
      (r) => r.coldWallSeconds,
      (p) => p.cold_cached_seconds,
    )}`,
  );
  console.log(
    `    / PyTorch's warm training run, logits computed once:          ${ratio(
      (r) => r.coldWallSeconds,
      (p) => p.cached_seconds,
    )}`,
  );
  console.log(
    `    / PyTorch's warm online-KD training run:                       ${ratio((r) => r.coldWallSeconds, onlineSeconds)}`,
  );
}

if (values.naive) await naiveOnlineKd(values.workspace!, Number(values.epochs));
else if (values.child) await child(values.child as BackendName, values.workspace!);
else await parent();
