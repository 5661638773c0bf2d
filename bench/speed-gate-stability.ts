/**
 * `npm run bench:speed-gates`: does an absolute speed gate repeat? (issue #14, item 2.) The
 * bundled example's teacher and student on the real TF.js backend of this machine (wasm by
 * default). The student's speed-up is measured once, thoroughly, and the gate
 * `speed.speedup: '>= <that median>'` is set; then the speed phase of `distill-gate run` is rerun
 * 20 times and each rerun judged: a gate right at the median must come out one and the same way
 * every time. Then a student ~30% slower (a wider hidden layer, calibrated on this machine) is
 * judged 20 times against the same gate: it must be caught every time. Each rerun also shows
 * what the old rule said (the median of the 50 fixed rounds against the threshold). Not a test:
 * it prints a table.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { resolveBackend, type ConcreteBackend } from '../src/backend/resolve.js';
import type { MeasureSettings } from '../src/config/schema.js';
import { loadSplit } from '../src/data/dataset.js';
import type { GateCheck } from '../src/gates/gates.js';
import { intervalBound, judgeGates } from '../src/gates/baseline.js';
import { formatConfidence, medianInterval } from '../src/measure/intervals.js';
import { measureSpeed } from '../src/measure/speed.js';
import { InterleavedTimer, type MetricBound, type Timed } from '../src/measure/timing.js';
import { loadModel } from '../src/models/model.js';
import { buildStudent } from '../src/models/student.js';
import { REFERENCE_STUDENT, tally } from './speed-helpers.js';

const { values } = parseArgs({
  options: {
    backend: { type: 'string', default: 'wasm' },
    runs: { type: 'string', default: '20' },
    // Per rerun; the default 20 s would make the bench take half an hour when gates are undecided.
    budget: { type: 'string', default: '3' },
  },
});
const runs = Number(values.runs);
const example = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/example');
const { tf, name } = await resolveBackend(values.backend as ConcreteBackend);
const teacher = await loadModel(tf, path.join(example, 'models/teacher/model.json'), 'teacher');
const student = await buildStudent(tf, REFERENCE_STUDENT, [64], 7);
const evalSet = await loadSplit({ x: path.join(example, 'data/eval_x.npy') }, 'eval');
// As `distill-gate run` times speed by default, with a smaller throughput batch to keep the bench short.
const settings: MeasureSettings = {
  warmup: 100,
  rounds: 50,
  throughputBatch: 64,
  topK: 5,
  speedBudgetSeconds: Number(values.budget),
  inconclusive: 'pass',
};
const environment = { backend: name, tfjsVersion: tf.version.tfjs, cpu: '', gpu: null };

const slower = await calibratedSlowerStudent(1.3);

// Measured once, thoroughly, the way an undecided gate is: a bound no interval can decide (NaN)
// takes the timing through all its looks. The gate then sits at that median.
const undecidable: MetricBound = { metric: 'speed.speedup', op: '>=', threshold: NaN };
const once = await measureSpeed(tf, teacher, student, evalSet, settings, { bounds: [undecidable] });
const median = once.intervals['speed.speedup'];
const checks: GateCheck[] = [
  { metric: 'speed.speedup', op: '>=', threshold: median.value, relative: false, level: 'error' },
];
const bounds = checks.map(intervalBound).filter((bound): bound is MetricBound => bound !== undefined);
console.log(
  `speed gate bench on ${name}: speed-up of the example's student measured once ${median.value.toFixed(4)} ` +
    `(${formatConfidence(median.confidence)} CI ${median.low.toFixed(4)}-${median.high.toFixed(4)}, ${median.rounds} rounds); ` +
    `gate speed.speedup >= ${median.value.toFixed(4)}; ${runs} reruns each; speed budget ${settings.speedBudgetSeconds} s a rerun\n`,
);

for (const [label, candidate] of [
  ['same student', student],
  ['~30% slower student', slower.model],
] as const) {
  console.log(
    `| ${label} | old rule (median of ${settings.rounds} rounds) | median | ${formatConfidence(median.confidence)} CI | rounds | outcome |`,
  );
  console.log('| ---: | --- | ---: | --- | ---: | --- |');
  const outcomes: string[] = [];
  const oldOutcomes: string[] = [];
  const medians: number[] = [];
  for (let run = 1; run <= runs; run++) {
    // What the median alone said: the fixed rounds, no interval.
    const fixed = await measureSpeed(tf, teacher, candidate, evalSet, settings);
    const oldOutcome = fixed.metrics['speed.speedup'] >= median.value ? 'pass' : 'fail';
    const speed = await measureSpeed(tf, teacher, candidate, evalSet, settings, { bounds });
    const [gate] = judgeGates(checks, speed.metrics, environment, undefined, {
      intervals: speed.intervals,
      inconclusive: settings.inconclusive,
    }).gates;
    const { value, low, high, rounds } = speed.intervals['speed.speedup'];
    outcomes.push(gate.status);
    oldOutcomes.push(oldOutcome);
    medians.push(value);
    console.log(
      `| ${run} | ${oldOutcome} (${fixed.metrics['speed.speedup'].toFixed(4)}) | ${value.toFixed(4)} | ${low.toFixed(4)}-${high.toFixed(4)} | ${rounds} | ${gate.status} |`,
    );
  }
  const spread = (Math.max(...medians) - Math.min(...medians)) / median.value;
  console.log(
    `\n${label}: ${tally(outcomes)} (old rule: ${tally(oldOutcomes)}); rerun medians ${Math.min(...medians).toFixed(4)}-${Math.max(...medians).toFixed(4)}, a spread of ${(spread * 100).toFixed(1)}% of the gate\n`,
  );
}
console.log(
  `slower student: hidden width ${slower.width}, ${slower.ratio.toFixed(3)}x the student's batch-1 latency (median of per-round ratios)`,
);
teacher.dispose();
student.dispose();
slower.model.dispose();

/**
 * The reference student with its hidden layer widened until its batch-1 latency is closest to
 * `target` times the student's, timed interleaved with it: batch-1 latency of a small Dense stack
 * is mostly per-op overhead, so the width that costs 30% depends on the machine.
 */
async function calibratedSlowerStudent(
  target: number,
): Promise<{ model: Timed & { dispose(): void }; width: number; ratio: number }> {
  const input = tf.tensor(await evalSet.read(0, 1), [1, ...evalSet.sampleShape]);
  let best: { model: Timed & { dispose(): void }; width: number; ratio: number } | undefined;
  for (const width of [128, 256, 512, 768, 1024, 1536, 2048, 3072]) {
    const wider = await buildStudent(
      tf,
      { layers: [{ ...REFERENCE_STUDENT.layers[0], units: width }, REFERENCE_STUDENT.layers[1]] },
      [64],
      7,
    );
    const timer = new InterleavedTimer(student, wider, input);
    await timer.warmUp(300);
    await timer.time(1000);
    const ratio = medianInterval(timer.second.map((ms, i) => ms / timer.first[i])).value;
    if (!best || Math.abs(ratio - target) < Math.abs(best.ratio - target)) {
      best?.model.dispose();
      best = { model: wider, width, ratio };
    } else wider.dispose();
    if (ratio > target * 1.2) break;
  }
  input.dispose();
  return best!;
}
