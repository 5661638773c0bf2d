/**
 * `npm run bench:augment`: what `distill.augment` does to agreement on a small image transfer set
 * (issue #27, fourth item). The student, teacher and data are `bench:conv`'s case c (32x32x3
 * shifted, noisy templates; conv student with batch norm and dropout), made by that bench with
 * `--rounds 0` and cached in the temp folder; each setting is distilled with several seeds and
 * measured on the same eval split, agreement against the teacher.
 *
 *   npm run bench:augment                                   # 1,200 rows, 30 epochs, 3 seeds
 *   npm run bench:augment -- --rows 600 --epochs 20 --seeds 2
 */
import { execFileSync } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseConfig, type Config } from '../src/config/load.js';
import { runPipeline } from '../src/pipeline.js';
import { median } from './medians.js';

const { values } = parseArgs({
  options: {
    case: { type: 'string', default: 'c' },
    rows: { type: 'string', default: '1200' },
    'eval-rows': { type: 'string', default: '2000' },
    epochs: { type: 'string', default: '30' },
    seeds: { type: 'string', default: '3' },
  },
});
const rows = Number(values.rows);
const evalRows = Number(values['eval-rows']);
const epochs = Number(values.epochs);
const seeds = Array.from({ length: Number(values.seeds) }, (_, i) => 7 + i);

/** The settings compared: none, then shifts alone (the data's own variation), then shifts and the rest. */
const SETTINGS: Array<{ name: string; augment?: Config['distill']['augment'] }> = [
  { name: 'no augmentation' },
  { name: 'crop (padding 4)', augment: { flip: false, crop: { padding: 4 }, brightness: 0, contrast: 0 } },
  {
    name: 'crop 4, flip, brightness 0.1, contrast 0.1',
    augment: { flip: true, crop: { padding: 4 }, brightness: 0.1, contrast: 0.1 },
  },
];

async function main(): Promise<void> {
  const conv = path.join(path.dirname(fileURLToPath(import.meta.url)), 'conv.ts');
  const made = execFileSync(
    process.execPath,
    [
      '--import',
      'tsx',
      conv,
      '--cases',
      values.case!,
      '--rows',
      String(rows),
      '--eval-rows',
      String(evalRows),
      '--epochs',
      String(epochs),
      '--rounds',
      '0',
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const root = path.join(os.tmpdir(), 'distill-gate-bench-conv');
  const folder = (await readdir(root)).find((name) => name.endsWith(`-${values.case}-${rows}-${evalRows}`));
  if (!folder) throw new Error(`bench:conv made no workspace for case ${values.case} under ${root}:\n${made}`);
  const dir = path.join(root, folder);
  const file = path.join(dir, `distill-gate-e${epochs}.yml`);
  const base = parseConfig(await readFile(file, 'utf8'), file);
  console.log(
    `distill-gate bench:augment: case ${values.case}, ${rows.toLocaleString('en-US')} train / ${evalRows.toLocaleString('en-US')} eval rows, ${epochs} epochs, seeds ${seeds.join(', ')}; on ${os.cpus()[0]?.model} x${os.cpus().length}, Node ${process.version}`,
  );
  console.log(made.trim().split('\n').at(-1));
  for (const { name, augment } of SETTINGS) {
    const agreements: number[] = [];
    const seconds: number[] = [];
    for (const seed of seeds) {
      const config: Config = { ...base, distill: { ...base.distill, seed, ...(augment ? { augment } : {}) } };
      const { report } = await runPipeline(config, { outDir: path.join(dir, `out-augment-${seed}`), log: () => {} });
      agreements.push(report.metrics['agreement.top1']);
      seconds.push(report.training.seconds);
    }
    const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
    console.log(
      `  ${name.padEnd(44)} agreement median ${pct(median([...agreements].sort((a, b) => a - b)))} (${agreements.map(pct).join(', ')}); distillation ${median([...seconds].sort((a, b) => a - b)).toFixed(1)} s`,
    );
  }
}

await main();
