import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveBackend } from '../src/backend/resolve.js';
import { encodeNpy } from '../src/data/npy.js';
import { writeModelArtifacts } from '../src/models/artifacts.js';
import { synthetic } from '../fixtures/generate.js';

/**
 * The reference pair of `npm run bench` and `bench/epoch-cost.ts`: a 64-512-512-10 teacher (random
 * weights suffice for timing) and a 64-32-10 student on 1,200 synthetic rows (400 to evaluate),
 * batch 64, written with its config into a fresh folder.
 */
export async function referencePairWorkspace(epochs: number): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-reference-pair-'));
  const { tf } = await resolveBackend('cpu');
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  const teacher = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [64], units: 512, activation: 'relu', kernelInitializer: init(1) }),
      tf.layers.dense({ units: 512, activation: 'relu', kernelInitializer: init(2) }),
      tf.layers.dense({ units: 10, kernelInitializer: init(3) }),
    ],
  });
  await teacher.save(
    tf.io.withSaveHandler(async (artifacts) => {
      await writeModelArtifacts(path.join(dir, 'teacher'), artifacts);
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  const train = synthetic(1200, 1);
  const evalSet = synthetic(400, 2);
  await writeFile(path.join(dir, 'train_x.npy'), encodeNpy(train.x, [1200, 64]));
  await writeFile(path.join(dir, 'train_y.npy'), encodeNpy(train.y, [1200]));
  await writeFile(path.join(dir, 'eval_x.npy'), encodeNpy(evalSet.x, [400, 64]));
  await writeFile(
    path.join(dir, 'distill-gate.yml'),
    [
      'teacher: teacher/model.json',
      'student: { layers: [ { type: dense, units: 32, activation: relu }, { type: dense, units: 10 } ] }',
      'data: { train: { x: train_x.npy, y: train_y.npy }, eval: { x: eval_x.npy } }',
      `distill: { temperature: 4, alpha: 0.9, epochs: ${epochs}, batchSize: 64, learningRate: 0.001, seed: 7 }`,
      'measure: { warmup: 3, rounds: 10 }',
    ].join('\n'),
  );
  return dir;
}

/** What bench/peer/kd_torch.py prints for the reference pair. */
export interface PeerFigures {
  torch: string;
  threads: number;
  online_samples_per_s: number;
  cached_samples_per_s: number;
  cached_seconds: number;
  cold_cached_seconds: number;
}

/** bench/peer/kd_torch.py with Debian's python3-torch, when installed. */
export function pytorchPeer(workspace: string, epochs: number): PeerFigures | undefined {
  try {
    const out = execFileSync(
      '/usr/bin/python3',
      [path.join(path.dirname(fileURLToPath(import.meta.url)), 'peer', 'kd_torch.py'), workspace, String(epochs)],
      {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
    return JSON.parse(out.trim().split('\n').pop()!) as PeerFigures;
  } catch {
    return undefined;
  }
}
