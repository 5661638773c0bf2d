import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { parseReport } from '../../src/report/report-schema.js';
import { IMAGES_CONFIG, IMAGES_EXAMPLE } from '../../fixtures/images.js';
import { captureIo } from '../helpers.js';

describe('distill-gate run on image folders (end to end)', () => {
  it('distils from PNG and JPEG folders, writes the class list into report.json, and reads the decoded images from the cache on a second run', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-images-'));
    await cp(IMAGES_EXAMPLE, dir, { recursive: true });
    const run = async () => {
      const capture = captureIo();
      const args = [
        'run',
        '--config',
        path.join(dir, 'distill-gate.yml'),
        '--out',
        path.join(dir, 'out'),
        '--cache-dir',
        path.join(dir, 'cache'),
      ];
      const code = await main(args, capture.io);
      return { code, stderr: capture.stderr() };
    };
    const first = await run();
    expect(first.code).toBe(0);
    expect(first.stderr).toMatch(/data: 16 images for train \(decoded into the cache, .*images-[0-9a-f]{32}\.f32\)/);
    expect(first.stderr).toMatch(/data: 6 images for eval \(decoded into the cache/);
    expect(first.stderr).toMatch(/epoch 5\/5 {2}loss/);
    const text = await readFile(path.join(dir, 'out/report.json'), 'utf8');
    const report = parseReport(JSON.parse(text), 'report.json', 'untrusted');
    expect(report.training.classes).toEqual(['cat', 'dog']);
    expect(report.training.trainSamples).toBe(16);
    expect(report.training.evalSamples).toBe(6);
    expect(report.training.labels).toBe(true);
    // The teacher tells red from blue, and the student learns it from the soft targets.
    expect(report.metrics['accuracy.teacher']).toBe(1);
    expect(report.metrics['agreement.top1']).toBe(1);

    const second = await run();
    expect(second.code).toBe(0);
    expect(second.stderr).toMatch(/data: 16 images for train \(from the cache/);
    expect(second.stderr).toMatch(/data: 6 images for eval \(from the cache/);
    expect(second.stderr).toMatch(/soft targets: cache hit/);
  });

  it('distill.augment: the same seed trains the same student twice, another seed another', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-images-'));
    await cp(IMAGES_EXAMPLE, dir, { recursive: true });
    const run = async (seed: number, out: string) => {
      const augment = `augment: { flip: true, crop: { padding: 2 }, brightness: 0.1, contrast: 0.1, seed: ${seed} }`;
      await writeFile(path.join(dir, 'distill-gate.yml'), IMAGES_CONFIG.replace('seed: 7 }', `seed: 7, ${augment} }`));
      const capture = captureIo();
      const code = await main(
        ['run', '--config', path.join(dir, 'distill-gate.yml'), '--out', path.join(dir, out)],
        capture.io,
      );
      const report = parseReport(
        JSON.parse(await readFile(path.join(dir, out, 'report.json'), 'utf8')),
        'report.json',
        'untrusted',
      );
      return { code, stderr: capture.stderr(), loss: report.training.loss };
    };
    const first = await run(3, 'a');
    expect(first.code).toBe(0);
    expect(first.stderr).toMatch(
      /augment: each epoch's 16 training rows augmented \(seed 3\) and the teacher run on them/,
    );
    expect((await run(3, 'b')).loss).toEqual(first.loss);
    expect((await run(4, 'c')).loss).not.toEqual(first.loss);
  });
});
