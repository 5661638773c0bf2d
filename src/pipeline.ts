import path from 'node:path';
import type { Config } from './config/load.js';
import { GPU_BACKENDS } from './config/schema.js';
import type { RegressionAcceptance } from './gates/baseline.js';
import { buildReport, samplesRecord, trainingRecord } from './report/build.js';
import type { HistoryEntry } from './report/history.js';
import { renderMarkdown, type PhaseSeconds } from './report/markdown.js';
import type { RunResult } from './report/report.js';
import { describeEnvironment } from './backend/resolve.js';
import { evaluateGates } from './gates/gates.js';
import { sizeMetrics } from './measure/size.js';
import { buildCutShortReport } from './report/cut-short.js';
import { firstLine } from './models/model.js';
import { isInputError, isOutOfMemory } from './errors.js';
import { abortReason, unlimitedClock, type RunClock } from './run-control.js';
import { distillStudent, type Distillation } from './stages/distill.js';
import { judgeRun } from './stages/judge.js';
import { measureStudent } from './stages/measure.js';
import type { BaseTeacher } from './stages/measure/teacher-diff.js';
import { prepare, type Session } from './stages/prepare.js';
import { writeOutputs } from './stages/write.js';
import { configuredCandidate, runSweep } from './stages/sweep.js';
import { buildSweep, type Sweep, type SweepCandidate } from './report/sweep.js';
import type { GateResult } from './gates/gates.js';

export type { RunResult } from './report/report.js';

/**
 * What a run needs beyond its config: where to write, and the runtime around it. Settings that
 * a shell overrides (backend, baseline, cache folder) are merged into the config first, once
 * (`withOverrides` in config/load.ts).
 */
export interface RunOptions {
  /** Where report.json, report.md and student/ go. */
  outDir: string;
  /**
   * The baseline's student (model.json), timed against the new one in this run for relative
   * latency gates. Defaults to student/model.json beside the baseline report, or its student.path.
   */
  baselineStudent?: string;
  /** Folders searched for the optional native TF.js packages. */
  searchFrom?: string[];
  /**
   * The run's clock (`withRunClock` in run-control.ts): cancellation and the time budget. A stop
   * ends the teacher's pass and training between batches; the run then measures what it can in
   * the time left and reports `incomplete`. A forced end writes the report of what exists at once.
   */
  clock?: RunClock;
  log?: (line: string) => void;
  commit?: string;
  /** Set when the PR carries the accept-regression label. */
  acceptRegression?: RegressionAcceptance;
  /** Earlier runs from the baseline store, drawn as a trend in report.md. */
  history?: HistoryEntry[];
  /** The base branch's teacher (or why there is none), compared with this one on the eval split. */
  baseTeacher?: BaseTeacher;
  /**
   * End the run as soon as the backend is known when it is not a GPU one: on a GPU runner whose
   * GPU packages failed to install, `auto` falls back to the CPU, which must not pass unnoticed.
   */
  requireGpu?: boolean;
  /**
   * Where a progress bar is drawn in place (a terminal's stderr). Without it, a phase that lasts
   * more than a few seconds writes a progress line to `log` every 10 s (CI logs); a quiet run's
   * log writes nothing, and so neither does its progress.
   */
  progressBar?: (text: string) => void;
}

/** prepare -> distill -> measure -> judge -> buildReport, then the files. */
export async function runPipeline(config: Config, options: RunOptions): Promise<RunResult> {
  const clock = options.clock ?? unlimitedClock();
  const progress: RunProgress = { phase: 'preparing', phases: {} };
  const stages = runStages(config, options, clock, progress);
  // A forced end (a second signal, the budget's end) cannot wait for a stage to return: the
  // report of what exists is written now, and the stages left running are abandoned. Only a run
  // already writing its own report is let finish: two writers would interleave the files.
  const forced = new Promise<RunResult>((resolve, reject) => {
    const cutShort = () =>
      (progress.phase === 'writing the report'
        ? stages
        : writeCutShort(config, options, progress, abortReason(clock.force))
      ).then(resolve, reject);
    if (clock.force.aborted) void cutShort();
    else clock.force.addEventListener('abort', () => void cutShort(), { once: true });
  });
  // Stages that settle after a forced end give way to its report, which is the one on disk.
  const finished = stages.then(
    (result) => (clock.force.aborted ? forced : result),
    (error: unknown) => {
      if (clock.force.aborted) return forced;
      // Input the user can fix is theirs to fix (exit 2, as before). Anything else that ends a
      // phase (out of memory above all) ends in the cut-short report naming the phase and the
      // cause: a run always ends with a report.
      if (isInputError(error)) throw error;
      options.log?.(`error: the run failed while ${progress.phase}: ${failureCause(error)}`);
      return writeCutShort(config, options, progress, failureCause(error));
    },
  );
  return Promise.race([finished, forced]);
}

/** What the stages have left so far, for a run forced to end before they finish. */
interface RunProgress {
  phase:
    | 'preparing'
    | "running the teacher's pass"
    | 'distilling'
    | 'measuring'
    | 'sweeping the candidates'
    | 'writing the report';
  session?: Session;
  distillation?: Distillation;
  /** The sweep's candidates so far (the configured student first), those not reached as not run. */
  sweep?: Array<Omit<SweepCandidate, 'onFront'>>;
  /** Each finished phase's wall time, for the report's footer. */
  phases: PhaseSeconds;
}

/** Why a phase failed, in one line for the report: out of memory said as such, with what to lower. */
function failureCause(error: unknown): string {
  const message = firstLine(error);
  return isOutOfMemory(error)
    ? `it ran out of memory (${message}); lower distill.batchSize or measure.throughputBatch, use a smaller eval split, or give the runner more memory`
    : `it failed (${message}); this is a bug in distill-gate, please report it`;
}

async function runStages(
  config: Config,
  options: RunOptions,
  clock: RunClock,
  progress: RunProgress,
): Promise<RunResult> {
  const started = performance.now();
  const log = options.log ?? (() => {});
  let phaseStarted = performance.now();
  const seconds = () => (performance.now() - phaseStarted) / 1000;
  const session = await prepare(config, { searchFrom: options.searchFrom ?? [process.cwd(), config.dir], log });
  progress.phases.load = seconds();
  try {
    progress.session = session;
    if (options.requireGpu && !GPU_BACKENDS.includes(session.backend.name))
      return await writeCutShort(config, options, progress, noGpu(session));
    progress.phase = "running the teacher's pass";
    const distillation = await distillStudent(session, config, {
      clock,
      log,
      progress: { log, bar: options.progressBar },
      onTraining: () => {
        progress.phase = 'distilling';
      },
    });
    progress.distillation = distillation;
    progress.phases['teacher pass'] = distillation.teacherSeconds;
    progress.phases.distillation = distillation.seconds - distillation.teacherSeconds;
    progress.phase = 'measuring';
    phaseStarted = performance.now();
    const measurement = await measureStudent(session, config, distillation, {
      baselineStudent: options.baselineStudent,
      // After a cancel or near the budget's end, measuring shrinks to fit the time left.
      speedBudgetMs: clock.measureMs(),
      signal: clock.hurry,
      baseTeacher: options.baseTeacher,
      runSeconds: (performance.now() - started) / 1000,
      progress: { log, bar: options.progressBar },
      log,
    });
    progress.phases.measuring = seconds();
    phaseStarted = performance.now();
    // A cancel during training is in how training stopped; one after it is the judge's to know.
    const cancelledWhileMeasuring =
      clock.hurry.aborted && distillation.training.stopKind !== 'abort' ? abortReason(clock.hurry) : undefined;
    const judgement = judgeRun(session, config, distillation, measurement, {
      acceptance: options.acceptRegression,
      cancelledWhileMeasuring,
    });
    const sweep =
      session.candidates.length > 0
        ? await sweepCandidates(
            session,
            config,
            distillation,
            measurement.metrics,
            judgement.gates,
            clock,
            progress,
            options,
          )
        : undefined;
    phaseStarted = performance.now();
    const studentDir = path.join(options.outDir, 'student');
    const report = buildReport({
      config,
      session,
      distillation,
      measurement,
      judgement,
      studentDir,
      commit: options.commit,
      createdAt: new Date().toISOString(),
      phases: progress.phases,
      sweep,
    });
    // The report phase as far as the footer can know it: judging, building and rendering.
    progress.phases.report = seconds();
    const markdown = renderMarkdown(report, { history: options.history, phases: progress.phases });
    const result = {
      report,
      markdown,
      reportPath: path.join(options.outDir, 'report.json'),
      studentPath: path.join(studentDir, 'model.json'),
    };
    // A forced end has written its own report; this one must not overwrite it.
    if (clock.force.aborted) return result;
    progress.phase = 'writing the report';
    const writeError = await writeOutputs(
      session.backend.tf,
      session.student,
      options.outDir,
      report,
      markdown,
      measurement.export,
    );
    return { ...result, ...(writeError ? { writeError } : {}) };
  } finally {
    session.dispose();
  }
}

/**
 * The sweep (config `students:`), after the configured student is measured and judged: each
 * candidate from the same soft targets, within what is left of the run's time. Information only.
 */
async function sweepCandidates(
  session: Session,
  config: Config,
  distillation: Distillation,
  metrics: Record<string, number>,
  gates: GateResult[],
  clock: RunClock,
  progress: RunProgress,
  options: RunOptions,
): Promise<Sweep> {
  const log = options.log ?? (() => {});
  const configured = configuredCandidate(config, metrics, gates);
  progress.phase = 'sweeping the candidates';
  const candidates = await runSweep(session, config, distillation, {
    clock,
    log,
    progress: { log, bar: options.progressBar },
    onCandidate: (sofar) => (progress.sweep = [configured, ...sofar]),
  });
  const timedOn = session.backend.name;
  const sweep = buildSweep([configured, ...candidates], timedOn);
  const best =
    sweep.front.length > 0
      ? `front: ${sweep.front.map((name) => JSON.stringify(name)).join(', ')}`
      : 'no candidate measured';
  log(
    `sweep: ${candidates.filter((c) => c.status === 'measured').length} of ${candidates.length} candidates measured; ${best}`,
  );
  return sweep;
}

/** Why a run that had to have a GPU backend ended: the backend it got, and why each GPU backend was passed over. */
function noGpu({ backend }: Session): string {
  const skipped = backend.notes.filter((note) => GPU_BACKENDS.some((gpu) => note.startsWith(`${gpu}:`)));
  return (
    `require-gpu is set, but the run resolved ${backend.name} (${backend.source}), not a GPU backend (${GPU_BACKENDS.join(' or ')})` +
    (skipped.length ? `. Passed over: ${skipped.join('; ')}` : '') +
    '. Check the GPU install steps of the job (a failed install is hidden by continue-on-error), or run `distill-gate doctor` on the runner'
  );
}

/** The report of whatever the stages left, written at once: report.json and report.md, no student. */
async function writeCutShort(
  config: Config,
  options: RunOptions,
  progress: RunProgress,
  reason: string,
): Promise<RunResult> {
  const { session, distillation } = progress;
  const metrics: Record<string, number> = session ? sizeMetrics(session.teacher, session.student) : {};
  const report = buildCutShortReport({
    config,
    reason,
    phase: progress.phase,
    environment: session ? describeEnvironment(session.speedBackend ?? session.backend) : undefined,
    models: session ? { teacher: session.teacher, student: session.student } : undefined,
    metrics,
    gates: session ? evaluateGates(session.checks, metrics) : [],
    training: distillation && trainingRecord(distillation),
    samples: session ? samplesRecord(session.train, session.evalSet) : undefined,
    commit: options.commit,
    createdAt: new Date().toISOString(),
    phases: progress.phases,
    ...(progress.sweep ? { sweep: buildSweep(progress.sweep, session?.backend.name) } : {}),
  });
  const markdown = renderMarkdown(report, { history: options.history, phases: progress.phases });
  const writeError = await writeOutputs(undefined, undefined, options.outDir, report, markdown);
  return {
    report,
    markdown,
    reportPath: path.join(options.outDir, 'report.json'),
    studentPath: '',
    cutShort: true,
    ...(writeError ? { writeError } : {}),
  };
}
