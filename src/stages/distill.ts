import type { Config } from '../config/load.js';
import { onBackend } from '../backend/resolve.js';
import { teacherLogits } from '../distill/teacher-logits.js';
import { distill, type TrainingPath, type TrainResult } from '../distill/train.js';
import { top1Agreement } from '../measure/agreement.js';
import { predictLogits } from '../models/predict.js';
import type { Session } from './prepare.js';

/** What distillation produced, beside the trained student (which stays in the session). */
export interface Distillation {
  training: TrainResult;
  /** How the student was trained, once the loop had chosen. */
  path?: TrainingPath;
  /** The teacher's logits on the eval split, for agreement. */
  teacherEvalLogits: Float32Array;
  /** Wall time of the whole phase, the teacher's soft targets included, and of those alone. */
  seconds: number;
  teacherSeconds: number;
  softTargets: 'computed' | 'cache';
  /** Training stopped because the run's own time budget ran out (not a cancellation). */
  overBudget: boolean;
}

export interface DistillOptions {
  /** Cancellation (SIGINT, SIGTERM): training stops between batches, the run goes on to report. */
  signal?: AbortSignal;
  /** The run's time budget (`trainingBudget`), started with the run: training stops when it fires. */
  budget?: AbortSignal;
  log: (line: string) => void;
}

/** Share of the budget given to training; the rest is kept for measuring and writing. */
export const TRAINING_SHARE_OF_BUDGET = 0.85;

/** Stage 2: the teacher's soft targets (computed or from the cache), then the KD loop. */
export async function distillStudent(session: Session, config: Config, { signal, budget, log }: DistillOptions): Promise<Distillation> {
  const { backend, teacher, student, train, evalSet } = session;
  const { tf } = backend;
  const teacherEvalLogits = (await teacherLogits(tf, teacher, evalSet, backend.name, config.cacheDir, config.teacher)).logits;
  const started = performance.now();
  const targets = await teacherLogits(tf, teacher, train, backend.name, config.cacheDir, config.teacher);
  if ((targets.workers ?? 1) > 1) log(`soft targets: computed in ${targets.workers} worker threads`);
  if (targets.source === 'cache') log(`soft targets: cache hit (${targets.cacheFile}), the teacher is skipped`);
  const teacherSeconds = (performance.now() - started) / 1000;
  const probeRows = Math.min(evalSet.size, 256);
  let path: TrainingPath | undefined;
  const training = await onBackend(tf, session.trainingBackend, () =>
    distill(tf, student, train, {
      settings: config.distill,
      teacherLogits: targets.logits,
      signal: signal && budget ? AbortSignal.any([signal, budget]) : (signal ?? budget),
      probe: async () =>
        top1Agreement(
          teacherEvalLogits.subarray(0, probeRows * teacher.outputWidth),
          await predictLogits(tf, student, evalSet, probeRows),
          teacher.outputWidth,
        ),
      onEpoch: (p) =>
        log(`epoch ${p.epoch}/${p.epochs}  loss ${p.loss.toFixed(5)}  agreement ${p.agreement === undefined ? '-' : (100 * p.agreement).toFixed(1)}%`),
      onStep: (chosen) => {
        path = chosen;
        log(
          `training: ${chosen.kind} step on ${chosen.backend}${chosen.whyNotKernel ? ` (not the WebAssembly kernel: ${chosen.whyNotKernel})` : ''}; inference on ${backend.name}`,
        );
      },
    }),
  );
  const overBudget = budget?.aborted === true && training.stopKind === 'abort' && signal?.aborted !== true;
  return { training, path, teacherEvalLogits, seconds: (performance.now() - started) / 1000, teacherSeconds, softTargets: targets.source, overBudget };
}

/**
 * The run's time budget: a signal that fires when TRAINING_SHARE_OF_BUDGET of `minutes` has
 * passed since this call (the run's start), so that measuring and writing fit in the rest.
 */
export function trainingBudget(minutes: number | undefined): { signal: AbortSignal; clear: () => void } | undefined {
  if (minutes === undefined) return undefined;
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new Error(`the time budget of ${minutes} min was nearly spent (training gets ${TRAINING_SHARE_OF_BUDGET * 100}% of it)`)),
    minutes * 60_000 * TRAINING_SHARE_OF_BUDGET,
  );
  // A run that fails before training must not be kept alive by its budget timer.
  timer.unref();
  return { signal: controller.signal, clear: () => clearTimeout(timer) };
}
