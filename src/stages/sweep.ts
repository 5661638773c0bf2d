import type { Config } from '../config/load.js';
import { CONFIGURED_NAME, type SweepCandidateSpec } from '../config/students.js';
import type { ProgressSink } from '../distill/progress.js';
import type { GateResult } from '../gates/gates.js';
import { measureAgreement } from '../measure/agreement.js';
import { sizeMetrics } from '../measure/size.js';
import { measureSpeed } from '../measure/speed.js';
import { speedLimits } from '../measure/timing.js';
import { firstLine } from '../models/model.js';
import { type LoadedModel } from '../models/loaded-model.js';
import { predictLogits } from '../models/predict.js';
import { judgeCandidate, sweptMetrics, verdictOf, type SweepCandidate } from '../report/sweep.js';
import { abortReason, type RunClock } from '../run-control.js';
import { trainStudent, type Distillation } from './distill.js';
import type { Session } from './prepare.js';

export interface SweepOptions {
  /** The run's clock: once `stop` has fired (the budget's training share, a cancel), the candidates left are not run. */
  clock: RunClock;
  log: (line: string) => void;
  progress?: ProgressSink;
  /** Told after each candidate, with every candidate's state so far (those not reached yet as not run): what a forced end reports. */
  onCandidate?: (candidates: Array<Omit<SweepCandidate, 'onFront'>>) => void;
}

/**
 * Stage 3b: each candidate distilled from the configured student's soft targets (the teacher's
 * pass is never run again), then measured as the student is (size, speed, agreement) and judged on
 * the config's gates of those metrics, as information. The run's clock bounds the whole sweep: a
 * candidate reached after `stop`, or whose training `stop` ended, is reported as not run.
 */
export async function runSweep(
  session: Session,
  config: Config,
  distillation: Pick<Distillation, 'trainLogits' | 'teacherEvalLogits'>,
  { clock, log, progress, onCandidate }: SweepOptions,
): Promise<Array<Omit<SweepCandidate, 'onFront'>>> {
  const candidates = session.candidates;
  const results: Array<Omit<SweepCandidate, 'onFront'>> = candidates.map(({ spec }) =>
    notRun(spec, 'the run ended before it was reached'),
  );
  const { teacher, evalSet } = session;
  const covers = distillation.teacherEvalLogits.length === evalSet.size * teacher.outputWidth;
  onCandidate?.(results.slice());
  for (const [i, candidate] of candidates.entries()) {
    const { spec, model } = candidate;
    if (!distillation.trainLogits || !covers)
      results[i] = notRun(spec, "the teacher's pass did not finish, so there are no soft targets to train it on");
    else if (clock.stop.aborted) results[i] = notRun(spec, `the sweep stopped before it: ${abortReason(clock.stop)}`);
    else if (!model) results[i] = notRun(spec, 'its model was already disposed (a bug in distill-gate)');
    else {
      log(`sweep: candidate ${i + 1}/${candidates.length} ${JSON.stringify(spec.name)}`);
      const started = performance.now();
      try {
        const targets = { teacherLogits: distillation.trainLogits, teacherEvalLogits: distillation.teacherEvalLogits };
        const { training } = await trainStudent(session, config, model, targets, {
          clock,
          log: (line) => log(`sweep ${spec.name}: ${line}`),
          progress,
        });
        if (training.stopKind === 'abort') {
          results[i] = notRun(
            spec,
            `its training stopped after ${training.epochsCompleted} of ${config.distill.epochs} epochs: ${training.stoppedBecause ?? abortReason(clock.stop)}`,
          );
        } else {
          const metrics = await measureCandidate(session, config, model, distillation.teacherEvalLogits, clock);
          results[i] = {
            ...base(spec),
            status: 'measured',
            metrics,
            ...judgeCandidate(session.checks, metrics, session.baseline?.report.metrics),
            epochs: training.epochsCompleted,
            seconds: (performance.now() - started) / 1000,
            ...(training.stopKind === 'loss' ? { reason: training.stoppedBecause } : {}),
          };
        }
      } catch (error) {
        log(`sweep: candidate ${JSON.stringify(spec.name)} failed: ${firstLine(error)}`);
        results[i] = { ...base(spec), status: 'failed', reason: firstLine(error), metrics: {}, passesGates: null };
      } finally {
        candidate.model?.dispose();
        candidate.model = undefined;
      }
    }
    onCandidate?.(results.slice());
  }
  return results;
}

/** The configured student as a candidate of its own sweep: its measured metrics, and whether every gate passed. */
export function configuredCandidate(
  config: Config,
  metrics: Record<string, number>,
  gates: GateResult[],
): Omit<SweepCandidate, 'onFront'> {
  return {
    name: CONFIGURED_NAME,
    from: 'model' in config.student ? config.student.model : 'layers',
    configured: true,
    status: 'measured',
    metrics: sweptMetrics(metrics),
    ...verdictOf(gates),
  };
}

/** Size, speed (teacher and candidate interleaved, as the student is timed) and agreement of a trained candidate, on the inference backend. */
async function measureCandidate(
  session: Session,
  config: Config,
  model: LoadedModel,
  teacherEvalLogits: Float32Array,
  clock: RunClock,
) {
  const { backend, teacher, evalSet } = session;
  const { tf } = backend;
  const logits = await predictLogits(tf, model, evalSet, evalSet.size);
  const agreement = measureAgreement(teacherEvalLogits, logits, teacher.outputWidth, config.measure.topK, evalSet.y);
  const limits = speedLimits(config.measure.speedBudgetSeconds, {
    speedBudgetMs: clock.measureMs(),
    signal: clock.hurry,
  });
  const speed = await measureSpeed(tf, teacher, model, evalSet, config.measure, { limits });
  return sweptMetrics({ ...sizeMetrics(teacher, model), ...speed.metrics, ...agreement.metrics });
}

const base = (spec: SweepCandidateSpec) => ({
  name: spec.name,
  from: 'model' in spec.source ? spec.source.model : 'layers',
});

function notRun(spec: SweepCandidateSpec, reason: string): Omit<SweepCandidate, 'onFront'> {
  return { ...base(spec), status: 'not run', reason, metrics: {}, passesGates: null };
}
