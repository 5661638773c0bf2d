import type { Config } from '../config/load.js';
import type { Dataset } from '../data/dataset.js';
import { onBackend } from '../backend/resolve.js';
import { augmentedEpochs } from '../distill/augment.js';
import { teacherLogits } from '../distill/teacher-logits.js';
import { distill, type TrainingPath, type TrainResult } from '../distill/train.js';
import { phaseProgress, type Progress, type ProgressSink } from '../distill/progress.js';
import { top1AgreementAndKappa } from '../measure/agreement.js';
import { formatMetric } from '../measure/metric-format.js';
import { predictLogits } from '../models/predict.js';
import { abortReason, type RunClock } from '../run-control.js';
import type { LoadedModel } from '../models/loaded-model.js';
import type { Session } from './prepare.js';

/** What distillation produced, beside the trained student (which stays in the session). */
export interface Distillation {
  training: TrainResult;
  /** How the student was trained, once the loop had chosen. */
  path?: TrainingPath;
  /** The teacher's logits on the eval split, for agreement: shorter than the split when its pass was stopped. */
  teacherEvalLogits: Float32Array;
  /** Wall time of the whole phase, the teacher's soft targets included, and of those alone. */
  seconds: number;
  teacherSeconds: number;
  softTargets: 'computed' | 'cache';
  /** What ran the teacher's pass, when it ran: the TF.js backend, "kernel simd128", or the teacher's runtime. */
  teacherPass?: string;
  /** The teacher's logits on the training split (the soft targets), kept for the sweep's candidates; absent when its pass was stopped. */
  trainLogits?: Float32Array;
  /** Training (or the teacher's pass) stopped because the run's own time budget ran out, not a cancellation. */
  overBudget: boolean;
}

export interface DistillOptions {
  /** The run's clock: `stop` (a cancel, or the budget's training share spent) ends the teacher's pass and training between batches. */
  clock: RunClock;
  log: (line: string) => void;
  /** Where a long pass or training shows its progress; none without it. */
  progress?: ProgressSink;
  /** Told when the teacher's pass is over and training begins. */
  onTraining?: () => void;
}

/** Stage 2: the teacher's soft targets (computed or from the cache), then the KD loop. */
export async function distillStudent(
  session: Session,
  config: Config,
  { clock, log, progress: sink, onTraining }: DistillOptions,
): Promise<Distillation> {
  const { backend, teacher, student, train, evalSet } = session;
  const { tf } = backend;
  const started = performance.now();
  // One progress over both splits: the eval rows first, then the training rows.
  const pass = phaseProgress("teacher's pass", evalSet.size + train.size, 'rows', sink);
  const passOver = (split: Dataset, before: number) =>
    teacherLogits(tf, teacher, split, backend.name, config.cacheDir, config.teacher, clock.stop, (done) =>
      pass.update(before + done),
    );
  log(
    `teacher's pass: ${evalSet.size} eval and ${train.size} training rows on ${teacher.rowPass?.label ?? teacher.runtime?.label ?? backend.name}`,
  );
  let evalTargets;
  let targets;
  try {
    evalTargets = await passOver(evalSet, 0);
    // No training targets are worth computing once the eval pass was cut short: the run is ending.
    targets = evalTargets.rows === evalSet.size ? await passOver(train, evalSet.size) : undefined;
  } finally {
    pass.finish();
  }
  onTraining?.();
  const teacherSeconds = (performance.now() - started) / 1000;
  const overBudget = clock.stop.aborted && !clock.hurry.aborted;
  const outcome = { teacherEvalLogits: evalTargets.logits, teacherSeconds, overBudget };
  if (!targets || targets.rows < train.size) {
    const [split, done] = targets ? ['training', targets.rows] : ['eval', evalTargets.rows];
    const size = targets ? train.size : evalSet.size;
    const why = `the teacher's pass stopped after ${done} of ${size} ${split} rows, before training began: ${abortReason(clock.stop)}`;
    log(why);
    const training: TrainResult = {
      epochsCompleted: 0,
      loss: [],
      stoppedBecause: why,
      stopKind: 'abort',
      batchSize: config.distill.batchSize,
      notes: [],
    };
    return { ...outcome, training, seconds: teacherSeconds, softTargets: 'computed' };
  }
  if ((targets.workers ?? 1) > 1) log(`soft targets: computed in ${targets.workers} worker threads`);
  if (targets.source === 'cache') log(`soft targets: cache hit (${targets.cacheFile}), the teacher is skipped`);
  const trainingStarted = performance.now();
  const { training, path } = await trainStudent(
    session,
    config,
    student,
    { teacherLogits: targets.logits, teacherEvalLogits: evalTargets.logits },
    { clock, log, progress: sink },
  );
  const seconds = teacherSeconds + (performance.now() - trainingStarted) / 1000;
  return {
    ...outcome,
    training,
    path,
    seconds,
    softTargets: targets.source,
    ...(targets.source === 'computed' ? { teacherPass: targets.computedBy } : {}),
    // Kept for the sweep only: a large transfer set's logits are not held through measuring otherwise.
    ...(config.students ? { trainLogits: targets.logits } : {}),
    overBudget: clock.stop.aborted && !clock.hurry.aborted,
  };
}

/** The teacher's logits a student is distilled from: the training split's (soft targets) and the eval split's (the probe's agreement). */
export interface SoftTargets {
  teacherLogits: Float32Array;
  teacherEvalLogits: Float32Array;
}

/**
 * The KD loop for one student from soft targets already computed: the configured student, and
 * each candidate of the sweep from the same targets (the teacher runs once for all of them).
 */
export async function trainStudent(
  session: Session,
  config: Config,
  student: LoadedModel,
  targets: SoftTargets,
  { clock, log, progress: sink }: Pick<DistillOptions, 'clock' | 'log' | 'progress'>,
): Promise<{ training: TrainResult; path?: TrainingPath }> {
  const { backend, teacher, train, evalSet } = session;
  const { tf } = backend;
  const probeRows = Math.min(evalSet.size, 256);
  let probeX: Float32Array | undefined;
  let path: TrainingPath | undefined;
  const rows: Progress = phaseProgress('training', config.distill.epochs * train.size, 'rows', sink);
  const { augment } = config.distill;
  // distill.augment: each epoch's rows are drawn afresh and the teacher answers them, on the
  // inference backend; the un-augmented pass above stays (cached, and the eval rows' targets).
  if (augment)
    log(
      `augment: each epoch's ${train.size} training rows augmented (seed ${augment.seed ?? config.distill.seed}) and the teacher run on them`,
    );
  const epochData = augment
    ? augmentedEpochs({
        tf,
        teacher,
        train,
        settings: augment,
        seed: augment.seed ?? config.distill.seed,
        engine: backend.engine,
        backend: backend.name,
        stop: clock.stop,
      })
    : undefined;
  const training = await onBackend(tf, session.trainingBackend, () =>
    distill(tf, student, train, {
      settings: config.distill,
      teacherLogits: targets.teacherLogits,
      ...(epochData ? { epochData } : {}),
      signal: clock.stop,
      // With the kernel, the probe rows are read once and run in its memory (no weights copied back).
      probe: async (predict) =>
        top1AgreementAndKappa(
          targets.teacherEvalLogits.subarray(0, probeRows * teacher.outputWidth),
          predict && probeRows > 0
            ? predict((probeX ??= await evalSet.read(0, probeRows)), probeRows)
            : await predictLogits(tf, student, evalSet, probeRows),
          teacher.outputWidth,
        ),
      onRows: (done) => rows.update(done),
      onEpoch: (p) => {
        // A drawn bar is ended before the epoch's line, and drawn again below it.
        rows.finish();
        // Kappa beside agreement: a student that always answers the majority class agrees often and has kappa 0.
        log(
          `epoch ${p.epoch}/${p.epochs}  loss ${p.loss.toFixed(5)}  agreement ${p.agreement === undefined ? '-' : (100 * p.agreement).toFixed(1)}%` +
            `  kappa ${p.kappa === undefined || !Number.isFinite(p.kappa) ? '-' : formatMetric('agreement.kappa', p.kappa)}`,
        );
      },
      onStep: (chosen) => {
        path = chosen;
        log(
          `training: ${chosen.kind} step${chosen.kernelModule ? ` (${chosen.kernelModule} module${chosen.threads ? `, ${chosen.threads} thread${chosen.threads === 1 ? '' : 's'}` : ''})` : ''} on ${chosen.backend}${chosen.whyNotKernel ? ` (not the WebAssembly kernel: ${chosen.whyNotKernel})` : ''}; inference on ${backend.name}`,
        );
      },
    }),
  ).finally(() => rows.finish());
  return { training, path };
}
