/**
 * `npm run bench:step`: milliseconds per training step of each step kind (kernel, dense,
 * autodiff; see src/distill/training-step.ts) on Dense students from the reference 64-32-10 up to
 * 1.9M parameters, batch 64, on one backend (default wasm). Not a test: it prints the figures, and
 * the ratios that justify which step `trainingStep` picks.
 *
 *   npm run bench:step -- --backend cpu
 */
import { parseArgs } from 'node:util';
import { resolveBackend } from '../src/backend/resolve.js';
import type { BackendName } from '../src/config/schema.js';
import { kdTerms } from '../src/distill/targets.js';
import { trainingStep, type TrainingStep } from '../src/distill/training-step.js';
import { buildStudent } from '../src/models/student.js';

const { values } = parseArgs({ options: { backend: { type: 'string', default: 'wasm' } } });
const { tf, name } = await resolveBackend(values.backend as BackendName);
const students: Array<[number, number[]]> = [
  [64, [32, 10]],
  [64, [128, 10]],
  [64, [256, 256, 10]],
  [784, [512, 256, 10]],
  [784, [1024, 1024, 10]],
];
const kinds: Array<TrainingStep['kind']> = ['kernel', 'dense', 'autodiff'];
const rows = 64;
console.log(`ms per training step, batch ${rows}, ${name} backend, Node ${process.version}\n`);
console.log('| student | params | kernel | dense | autodiff | kernel vs dense | kernel vs autodiff |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const [input, units] of students) {
  const layers = units.map((u, i) => ({
    type: 'dense' as const,
    units: u,
    ...(i < units.length - 1 ? { activation: 'relu' } : {}),
  }));
  const x = Float32Array.from({ length: rows * input }, (_, i) => Math.sin(i));
  const targets = new Float32Array(rows * 10).fill(0.1);
  const ms: Record<string, number> = {};
  for (const kind of kinds) {
    const student = await buildStudent(tf, { layers }, [input], 1);
    const step = trainingStep(tf, student, {
      learningRate: 0.001,
      terms: kdTerms({ temperature: 4, alpha: 0.9 }, true),
      sampleShape: [input],
      maxRows: rows,
      kind,
    });
    const run = () => {
      const loss = step.run(x, targets, rows);
      if (typeof loss !== 'number') loss.dispose();
    };
    for (let i = 0; i < 10; i++) run();
    // About a second per kind and student.
    const started = performance.now();
    let steps = 0;
    while (performance.now() - started < 1000) {
      run();
      steps++;
    }
    ms[kind] = (performance.now() - started) / steps;
    step.dispose();
    student.dispose();
  }
  const params = units.reduce((sum, u, i) => sum + ((i ? units[i - 1] : input) + 1) * u, 0);
  console.log(
    `| ${input}-${units.join('-')} | ${params.toLocaleString('en-US')} | ${ms.kernel.toFixed(2)} | ${ms.dense.toFixed(2)} | ${ms.autodiff.toFixed(2)} | ${(ms.dense / ms.kernel).toFixed(1)}x | ${(ms.autodiff / ms.kernel).toFixed(1)}x |`,
  );
}
