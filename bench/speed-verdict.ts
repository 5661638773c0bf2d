/**
 * `npm run bench:speed`: does the paired speed verdict repeat? Ten comparisons of a student with
 * itself (the same commit run ten times) and ten of a student made 30% slower, each against a
 * "10% slower at most" gate, on the real TF.js backend of this machine. The slowdown is a busy
 * wait of 30% of the student's own median latency, added to every call, so that it is exactly 30%
 * whatever the machine. Not a test: it prints verdicts and intervals.
 */
import { parseArgs } from 'node:util';
import { resolveBackend } from '../src/backend/resolve.js';
import type { ConcreteBackend } from '../src/backend/resolve.js';
import { comparePairedSpeed } from '../src/measure/paired-speed.js';
import { buildStudent } from '../src/models/student.js';
import { REFERENCE_STUDENT, tally, warmMedianMs } from './speed-helpers.js';

const { values } = parseArgs({
  options: {
    backend: { type: 'string', default: 'wasm' },
    runs: { type: 'string', default: '10' },
    budget: { type: 'string', default: '10' },
  },
});
const { tf, name } = await resolveBackend(values.backend as ConcreteBackend);
// The reference student, built twice from one seed: two identical models.
const student = await buildStudent(tf, REFERENCE_STUDENT, [64], 7);
const copy = await buildStudent(tf, REFERENCE_STUDENT, [64], 7);
const input = tf.randomNormal([1, 64], 0, 1, 'float32', 1);

// Calibrated after a long warm-up, which would otherwise make the added wait too small a share.
const studentMs = await warmMedianMs(student, input);
const extraMs = 0.3 * studentMs;
const slower = {
  predict: (x: Parameters<typeof student.predict>[0]) => {
    const output = student.predict(x);
    const until = performance.now() + extraMs;
    while (performance.now() < until) {
      // busy wait: a slowdown that costs CPU time, like a bigger model would
    }
    return output;
  },
};

const runs = Number(values.runs);
const options = { allowedRatio: 1.1, budgetMs: Number(values.budget) * 1000 };
console.log(
  `speed verdict bench on ${name}: student median ${studentMs.toFixed(4)} ms, slowdown +${extraMs.toFixed(4)} ms; gate: at most 10% slower; ${runs} runs each`,
);
for (const [label, candidate] of [
  ['same student', copy],
  ['30% slower student', slower],
] as const) {
  const verdicts: string[] = [];
  for (let run = 0; run < runs; run++) {
    const result = await comparePairedSpeed(candidate, student, input, options);
    verdicts.push(result.verdict);
    console.log(
      `  ${label.padEnd(20)} run ${String(run + 1).padStart(2)}: ratio ${result.ratio.toFixed(3)} [${result.low.toFixed(3)}, ${result.high.toFixed(3)}] over ${result.rounds} rounds -> ${result.verdict}`,
    );
  }
  console.log(`${label}: ${tally(verdicts)}`);
}
