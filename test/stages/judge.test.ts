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
const finished = {
  training: { epochsCompleted: 3, loss: [1, 0.5, 0.25], batchSize: 64, notes: [] },
  overBudget: false,
} as unknown as Distillation;

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
    expect(judgement.reasons).toEqual([
      expect.stringMatching(/^Top-1 agreement 96\.79% is within a point of the 96\.79% that a constant student scores/),
    ]);
  });

  it('fails the collapsed student by default when only agreement.top1 is gated (issue #24), with the default gate in the table', () => {
    const judgement = judgeAgreement('  agreement.top1: ">= 0.95"', () => 0);
    expect(judgement.verdict).toBe('fail');
    expect(judgement.gates.map((g) => [g.metric, g.status, g.expected])).toEqual([
      ['agreement.top1', 'pass', '>= 0.95'],
      ['agreement.kappa', 'fail', '>= 0.2'],
    ]);
    expect(judgement.gates[1].note).toMatch(
      /^default gate: a student at chance level fails .*gate agreement\.kappa to set your own, ">= -1" to turn it off$/,
    );
    expect(judgement.reasons.join(' ')).toContain(
      "Cohen's kappa, corrected for chance, is 0.000. Gate on agreement.kappa.",
    );
  });

  it('leaves kappa to the config where it gates kappa itself, ">= -1" turning the default off', () => {
    const judgement = judgeAgreement('  agreement.top1: ">= 0.95"\n  agreement.kappa: ">= -1"', () => 0);
    expect(judgement.verdict).toBe('pass');
    expect(judgement.gates.map((g) => g.metric)).toEqual(['agreement.top1', 'agreement.kappa']);
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
    const cancelled = judgeRun({ checks, baseline: undefined }, config, finished, measurement, {
      cancelledWhileMeasuring: 'the job was cancelled (SIGINT)',
    });
    expect([cancelled.verdict, cancelled.status]).toEqual(['fail', 'incomplete']);
    expect(cancelled.gates.map((g) => g.status)).toEqual(['pass']);
    expect(cancelled.reasons).toEqual([
      'The run was cancelled while measuring (the job was cancelled (SIGINT)): its metrics are what the few seconds left gave.',
    ]);
  });
});

describe('judgeRun on a quantized export', () => {
  const judgeShipped = (
    top: string,
    gates: string,
    shipped: Float32Array,
    measurementExtra: Partial<Measurement> = {},
  ) => {
    const config = parseConfig(quickConfig({ top, gates }), '/repo/distill-gate.yml');
    const checks = parseGates(config.gates, measuredMetrics({ classes: 3, topK: 5, labels: false, quantized: true }));
    // The teacher answers class 0 for 90 of 100 rows; the float32 student agrees on every row.
    const teacher = answering(3, 100, (r) => (r < 90 ? 0 : 1));
    const float = measureAgreement(teacher, teacher, 3, 5);
    const quantized = measureAgreement(teacher, shipped, 3, 5).metrics;
    const metrics = {
      ...float.metrics,
      'quantized.agreement.top1': quantized['agreement.top1'],
      'quantized.kl': quantized.kl,
    };
    return judgeRun({ checks, baseline: undefined }, config, finished, {
      metrics,
      environment,
      agreement: float.classes,
      ...measurementExtra,
    });
  };
  const nanStudent = new Float32Array(300).fill(NaN);

  it('fails a shipped student that outputs NaN on a default quantized.agreement.top1 gate, and warns, though the config gates nothing quantized', () => {
    const judgement = judgeShipped('export: { quantize: float16 }', '  agreement.top1: ">= 0.9"', nanStudent);
    expect(judgement.gates.map((g) => [g.metric, g.expected, g.status, g.value])).toEqual([
      ['agreement.top1', '>= 0.9', 'pass', 1],
      // NaN rows are disagreements: 0, not the 90% that reading them as class 0 gave.
      ['quantized.agreement.top1', '>= 0.95', 'fail', 0],
    ]);
    expect(judgement.gates[1].note).toBe(
      "default gate (export.quantize float16): at most 5 points below the float32 student's 100.00%; gate a quantized.* metric to set your own",
    );
    expect(judgement.verdict).toBe('fail');
    expect(judgement.reasons).toContain(
      "The shipped student (export.quantize float16) agrees with the teacher on 0.00% of eval rows, 100.00 points below the float32 student's 100.00%: quantization broke it. Ship float32 (export.quantize: none).",
    );
  });

  it('passes a shipped student within 5 points of the float32 one, and adds no gate without quantization or with a quantized gate of its own', () => {
    const close = answering(3, 100, (r) => (r < 86 ? 0 : 1)); // rows 86-89 differ: 96%
    const within = judgeShipped('export: { quantize: uint8 }', '  agreement.top1: ">= 0.9"', close);
    expect(within.gates.map((g) => [g.metric, g.status])).toEqual([
      ['agreement.top1', 'pass'],
      ['quantized.agreement.top1', 'pass'],
    ]);
    expect([within.verdict, within.reasons]).toEqual(['pass', []]);
    const own = judgeShipped('export: { quantize: uint8 }', '  quantized.kl: "<= 100"', nanStudent);
    expect(own.gates.map((g) => g.metric)).toEqual(['quantized.kl']);
    const none = judgeShipped('', '  agreement.top1: ">= 0.9"', nanStudent);
    expect(none.gates.map((g) => g.metric)).toEqual(['agreement.top1']);
  });

  it("puts the measurement's warnings in the reasons", () => {
    const judgement = judgeShipped('', '  agreement.top1: ">= 0.9"', nanStudent, { warnings: ['The teacher is odd.'] });
    expect(judgement.reasons).toEqual(['The teacher is odd.']);
  });
});

describe('judgeRun on a loss that is not finite', () => {
  it("names the teacher's file when the teacher's outputs made it so, and the student's when its weights did", () => {
    const stopped = (nonFiniteInput: 'teacher outputs' | 'student weights') =>
      ({
        training: {
          epochsCompleted: 1,
          loss: [NaN],
          batchSize: 64,
          notes: [],
          stoppedBecause: 'the loss became NaN in epoch 1 because …',
          stopKind: 'loss',
          nonFiniteInput,
        },
        overBudget: false,
      }) as unknown as Distillation;
    const reasonOf = (student: string, nonFiniteInput: 'teacher outputs' | 'student weights') => {
      const config = parseConfig(quickConfig({ gates: '  size.ratio: "<= 10"', student }), '/repo/distill-gate.yml');
      const checks = parseGates(config.gates, measuredMetrics({ classes: 3, topK: 5, labels: false }));
      const judgement = judgeRun({ checks, baseline: undefined }, config, stopped(nonFiniteInput), {
        metrics: { 'size.ratio': 0.1 },
        environment,
      });
      expect(judgement.verdict).toBe('fail');
      return judgement.reasons[0];
    };
    expect(reasonOf(undefined as unknown as string, 'teacher outputs')).toBe(
      'Training stopped after 1 of 3 epochs: the loss became NaN in epoch 1 because … (the teacher: /repo/models/teacher/model.json).',
    );
    expect(reasonOf('  model: models/student/model.json', 'student weights')).toBe(
      'Training stopped after 1 of 3 epochs: the loss became NaN in epoch 1 because … (the student: /repo/models/student/model.json).',
    );
  });
});
