import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { parseGates } from '../../src/gates/gates.js';
import { measureAgreement } from '../../src/measure/agreement.js';
import { measuredMetrics } from '../../src/measure/metrics.js';
import type { Distillation } from '../../src/stages/distill.js';
import { judgeRun } from '../../src/stages/judge.js';
import type { Measurement } from '../../src/stages/measure.js';
import { quickConfig } from '../helpers.js';
import { sampleEnvironment } from '../sample-report.js';

const environment: Measurement['environment'] = sampleEnvironment;
/** A distillation that ran all its epochs: judgeRun reads only how training ended. */
const finished = { training: { epochsCompleted: 3, loss: [1, 0.5, 0.25], batchSize: 64, notes: [] }, overBudget: false } as unknown as Distillation;

/** `rows` one-hot logit rows over `classes`, row r's class given by `top`. */
const answering = (classes: number, rows: number, top: (row: number) => number) =>
  Float32Array.from({ length: rows * classes }, (_, i) => (i % classes === top(Math.floor(i / classes)) ? 1 : 0));

function judgeAgreement(gates: string, student: (row: number) => number) {
  const config = parseConfig(quickConfig({ gates }), '/repo/distill-gate.yml');
  const checks = parseGates(config.gates, measuredMetrics({ classes: 3, topK: 5, labels: false }));
  // The face crops: the teacher picks class 0 for 271 of 280 inputs.
  const { metrics, classes } = measureAgreement(
    answering(3, 280, (r) => (r < 271 ? 0 : r < 277 ? 1 : 2)),
    answering(3, 280, student),
    3,
    5,
  );
  const measurement: Measurement = { metrics, environment, agreement: classes };
  return judgeRun({ checks, baseline: undefined }, config, finished, measurement);
}

describe('judgeRun on agreement near chance', () => {
  it('fails the constant student on agreement.kappa, passes it on agreement.top1, and warns in the reasons', () => {
    const judgement = judgeAgreement('  agreement.top1: ">= 0.95"\n  agreement.kappa: ">= 0.5"', () => 0);
    expect(judgement.gates.map((g) => [g.metric, g.status])).toEqual([
      ['agreement.top1', 'pass'],
      ['agreement.kappa', 'fail'],
    ]);
    expect(judgement.verdict).toBe('fail');
    expect(judgement.reasons).toEqual([expect.stringMatching(/^Top-1 agreement 96\.79% is within a point of the 96\.79% that a constant student scores/)]);
  });

  it('warns even when only agreement.top1 is gated and passes', () => {
    const judgement = judgeAgreement('  agreement.top1: ">= 0.95"', () => 0);
    expect(judgement.verdict).toBe('pass');
    expect(judgement.reasons.join(' ')).toContain("Cohen's kappa, corrected for chance, is 0.000. Gate on agreement.kappa.");
  });

  it('adds no warning for a student that agrees with the teacher on every class', () => {
    const judgement = judgeAgreement('  agreement.kappa: ">= 0.5"', (r) => (r < 271 ? 0 : r < 277 ? 1 : 2));
    expect([judgement.verdict, judgement.reasons]).toEqual(['pass', []]);
  });
});

describe('judgeRun on a run cancelled after training', () => {
  it('fails it as incomplete whatever its gates say, and says so', () => {
    const config = parseConfig(quickConfig({ gates: '  size.ratio: "<= 10"' }), '/repo/distill-gate.yml');
    const checks = parseGates(config.gates, measuredMetrics({ classes: 3, topK: 5, labels: false }));
    const measurement: Measurement = { metrics: { 'size.ratio': 0.1 }, environment };
    const passing = judgeRun({ checks, baseline: undefined }, config, finished, measurement);
    expect([passing.verdict, passing.status]).toEqual(['pass', 'complete']);
    const cancelled = judgeRun({ checks, baseline: undefined }, config, finished, measurement, { cancelledWhileMeasuring: 'the job was cancelled (SIGINT)' });
    expect([cancelled.verdict, cancelled.status]).toEqual(['fail', 'incomplete']);
    expect(cancelled.gates.map((g) => g.status)).toEqual(['pass']);
    expect(cancelled.reasons).toEqual([
      'The run was cancelled while measuring (the job was cancelled (SIGINT)): its metrics are what the few seconds left gave.',
    ]);
  });
});
