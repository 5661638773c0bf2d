/**
 * `node --import tsx bench/epoch-cost.ts`: the fixed cost of the KD loop per run and per epoch (issue #26,
 * first item), on the reference pair of `npm run bench` (teacher 64-512-512-10, student
 * 64-32-10, 1,200 rows, batch 64: 19 steps an epoch), beside the PyTorch peer's in the same round.
 *
 * The training time (distillation phase less the teacher's pass, warm: the median of three runs
 * in one process) is taken at 30 and 60 epochs; the per-epoch cost is the slope, the fixed cost
 * per run the intercept. The kernel's 19 steps alone, timed on their own, are what an epoch
 * cannot go below; the rest of the slope is the loop's own cost (probe, targets, copies).
 *
 *   node --import tsx bench/epoch-cost.ts --rounds 5
 */
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { resolveBackend } from '../src/backend/resolve.js';
import { parseConfig } from '../src/config/load.js';
import { buildStudent } from '../src/models/student.js';
import { runPipeline } from '../src/pipeline.js';
import { trainingStep } from '../src/distill/training-step.js';
import { kdTerms } from '../src/distill/targets.js';
import { pytorchPeer, referencePairWorkspace, type PeerFigures } from './reference-pair.js';
import { median } from './medians.js';

const here = fileURLToPath(import.meta.url);
const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    child: { type: 'string' },
    workspace: { type: 'string' },
  },
});
const EPOCHS = [30, 60];

interface ChildFigures {
  epochs: number;
  /** Warm training seconds (distillation phase less the teacher's pass), median of 3 runs. */
  training: number;
  /** Median time between consecutive epoch lines of the warm runs, ms: one epoch, probe included. */
  epochMs: number;
  /** The kernel's steps of one epoch alone, ms (median of 30 epochs' worth). */
  kernelEpochMs: number;
  agreement: number;
  step: string;
}

async function child(epochs: number, workspace: string): Promise<void> {
  const file = path.join(workspace, 'distill-gate.yml');
  const base = parseConfig(await readFile(file, 'utf8'), file);
  const config = { ...base, distill: { ...base.distill, epochs } };
  const times: number[] = [];
  let agreement = 0;
  let step = '';
  const intervals: number[] = [];
  for (let run = 0; run < 4; run++) {
    let last: number | undefined;
    const log = (line: string) => {
      if (!line.startsWith('epoch ')) return;
      const now = performance.now();
      if (last !== undefined && run > 0) intervals.push(now - last);
      last = now;
    };
    const { report } = await runPipeline(config, { outDir: path.join(workspace, `out-${epochs}-${run}`), log });
    // The first run is cold (JIT, backend start): left out.
    if (run > 0) times.push(report.training.seconds - report.training.teacherSeconds);
    agreement = report.metrics['agreement.top1'];
    step = `${report.training.step?.kind ?? '?'} on ${report.training.step?.backend ?? report.backend}`;
  }
  // The kernel's own steps: 19 batches of 64 rows (the last 48), random data and targets.
  const { tf } = await resolveBackend('wasm');
  const student = await buildStudent(tf, base.student, [64], 7);
  const kernel = trainingStep(tf, student, {
    learningRate: 1e-3,
    terms: kdTerms(base.distill, true),
    sampleShape: [64],
    maxRows: 64,
    kind: 'kernel',
    seed: 7,
  });
  const x = Float32Array.from({ length: 64 * 64 }, (_, i) => Math.sin(i));
  const targets = Float32Array.from({ length: 64 * 10 }, (_, i) => (i % 10 === 3 ? 3.6 : 0.04));
  const epochMs: number[] = [];
  for (let e = 0; e < 40; e++) {
    const started = performance.now();
    for (let s = 0; s < 1200; s += 64) kernel.run(x, targets, Math.min(64, 1200 - s));
    if (e >= 10) epochMs.push(performance.now() - started);
  }
  kernel.dispose();
  const figures: ChildFigures = {
    epochs,
    training: median(times.sort((a, b) => a - b)),
    epochMs: median(intervals.sort((a, b) => a - b)),
    kernelEpochMs: median(epochMs.sort((a, b) => a - b)),
    agreement,
    step,
  };
  process.stdout.write(`${JSON.stringify(figures)}\n`);
}

async function parent(): Promise<void> {
  const rounds = Number(values.rounds);
  const workspace = await referencePairWorkspace(30);
  console.log(
    `epoch cost: reference pair, 1,200 rows, batch 64, ${EPOCHS.join(' and ')} epochs, on ${os.cpus()[0]?.model} x${os.cpus().length}, Node ${process.version}; ${rounds} interleaved rounds`,
  );
  const ours: Record<number, ChildFigures[]> = {};
  const theirs: Record<number, PeerFigures[]> = {};
  for (let round = 0; round < rounds; round++) {
    for (const epochs of EPOCHS) {
      const out = execFileSync(
        process.execPath,
        ['--import', 'tsx', here, '--child', String(epochs), '--workspace', workspace],
        {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'ignore'],
        },
      );
      (ours[epochs] ??= []).push(JSON.parse(out.trim().split('\n').pop()!) as ChildFigures);
      const p = pytorchPeer(workspace, epochs);
      if (p) (theirs[epochs] ??= []).push(p);
    }
  }
  const med = (xs: number[]) => median([...xs].sort((a, b) => a - b));
  const [short, long] = EPOCHS;
  /** Per round: per-epoch slope (ms) and fixed cost per run (ms) from the two epoch counts. */
  const fit = (a: number[], b: number[]) => {
    const slopes = a.map((_, i) => ((b[i] - a[i]) / (long - short)) * 1000);
    const fixed = a.map((t, i) => t * 1000 - slopes[i] * short);
    return { slope: med(slopes), fixed: med(fixed), slopes, fixed_: fixed };
  };
  const o = fit(
    ours[short].map((f) => f.training),
    ours[long].map((f) => f.training),
  );
  const kernelMs = med([...ours[short], ...ours[long]].map((f) => f.kernelEpochMs));
  const epochMs = med([...ours[short], ...ours[long]].map((f) => f.epochMs));
  const fixedMs = med([...ours[short], ...ours[long]].map((f) => f.training * 1000 - f.epochs * f.epochMs));
  console.log(
    `\ntraining path: ${ours[short][0].step}; agreement ${EPOCHS.map((e) => `${(100 * ours[e][0].agreement).toFixed(1)}% at ${e}`).join(', ')}`,
  );
  console.log('\n| | distill-gate | PyTorch (cached logits) |');
  console.log('| --- | ---: | ---: |');
  const p =
    theirs[short]?.length === rounds && theirs[long]?.length === rounds
      ? fit(
          theirs[short].map((f) => f.cached_seconds),
          theirs[long].map((f) => f.cached_seconds),
        )
      : undefined;
  for (const e of EPOCHS) {
    console.log(
      `| training, ${e} epochs (s, median) | ${med(ours[e].map((f) => f.training)).toFixed(3)} | ${p ? med(theirs[e].map((f) => f.cached_seconds)).toFixed(3) : 'n/a'} |`,
    );
  }
  console.log(`| per epoch (ms, slope 30 -> 60 epochs) | ${o.slope.toFixed(2)} | ${p ? p.slope.toFixed(2) : 'n/a'} |`);
  console.log(`| per epoch (ms, median interval between epoch lines) | ${epochMs.toFixed(2)} | |`);
  console.log(`| of which the kernel's 19 steps alone (ms) | ${kernelMs.toFixed(2)} | |`);
  console.log(`| outside the kernel, per epoch (ms) | ${(epochMs - kernelMs).toFixed(2)} | |`);
  console.log(`| fixed per run (ms, training less epochs x interval) | ${fixedMs.toFixed(1)} | |`);
  console.log(
    `| fixed per run (ms, intercept 30 -> 60 epochs) | ${o.fixed.toFixed(1)} | ${p ? p.fixed.toFixed(1) : 'n/a'} |`,
  );
  const ratios = ours[short]
    .map((f, i) => (p ? f.training / theirs[short][i].cached_seconds : NaN))
    .sort((a, b) => a - b);
  if (p)
    console.log(
      `\nours / PyTorch at ${short} epochs, per round: median ${median(ratios).toFixed(2)}x (${ratios[0].toFixed(2)}-${ratios[ratios.length - 1].toFixed(2)}); PyTorch ${theirs[short][0].torch}, ${theirs[short][0].threads} thread(s)`,
    );
  else
    console.log(
      '\nPyTorch peer skipped: /usr/bin/python3 cannot import torch (apt-get install python3-torch libopenblas0-pthread).',
    );
  console.log(
    `per-round slopes ms: ours ${o.slopes.map((s) => s.toFixed(2)).join(', ')}${p ? `; PyTorch ${p.slopes.map((s) => s.toFixed(2)).join(', ')}` : ''}`,
  );
}

if (values.child) await child(Number(values.child), values.workspace!);
else await parent();
