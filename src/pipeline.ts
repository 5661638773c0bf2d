import os from 'node:os';
import type { io } from '@tensorflow/tfjs';
import path from 'node:path';
import { mkdir, writeFile } from 'node:fs/promises';
import { backendEnvironment, resolveBackend, type ResolvedBackend, type Tf } from './backend/resolve.js';
import { describeAdapter } from './backend/webgpu.js';
import type { Config } from './config/load.js';
import type { BackendName } from './config/schema.js';
import { checkAgainstTeacher, loadSplit, type Dataset } from './data/dataset.js';
import { distill, type TrainingPath } from './distill/train.js';
import { softTargets } from './distill/soft-targets.js';
import { kdTerms } from './distill/targets.js';
import { trainingStep } from './distill/training-step.js';
import { InputError } from './errors.js';
import { acceptRegressions, allowedRatio, isPairedSpeedCheck, judge, type RegressionAcceptance } from './gates/compare.js';
import type { HistoryEntry } from './report/history.js';
import type { GateCheck } from './gates/gates.js';
import { comparePairedSpeed, type SpeedComparison } from './measure/paired-speed.js';
import { fileExists, writeModelArtifacts } from './models/artifacts.js';
import { parseGates, verdictOf } from './gates/gates.js';
import { agreementMetrics, top1Agreement } from './measure/agreement.js';
import { measureSpeed, type SpeedMetrics } from './measure/speed.js';
import { measuredMetrics } from './measure/metrics.js';
import { firstLine, loadModel, wrapLayersModel, type LoadedModel } from './models/model.js';
import { predictLogits } from './models/predict.js';
import { buildStudent } from './models/student.js';
import { renderMarkdown } from './report/markdown.js';
import { readReport, SCHEMA_VERSION, type Environment, type Report } from './report/report.js';

export interface RunOptions {
  /** Where report.json, report.md and student/ go. */
  outDir: string;
  /** Overrides the config's backend (the CLI's --backend, the action's input). */
  backend?: BackendName;
  /** Overrides the config's baseline report. */
  baseline?: string;
  /**
   * The baseline's student (model.json), timed against the new one in this run for relative
   * latency gates. Defaults to student/model.json beside the baseline report, or its student.path.
   */
  baselineStudent?: string;
  /** Folders searched for the optional native TF.js packages. */
  searchFrom?: string[];
  /** Aborts training between batches (SIGTERM): the run measures what it has and fails, incomplete. */
  signal?: AbortSignal;
  /**
   * Wall-clock budget of the whole run in minutes. Training stops at 85% of it, so that measuring
   * and writing fit in the rest; the report is then `incomplete`, and the gates judge what was reached.
   */
  budgetMinutes?: number;
  log?: (line: string) => void;
  commit?: string;
  /** Set when the PR carries the accept-regression label. */
  acceptRegression?: RegressionAcceptance;
  /** Earlier runs from the baseline store, drawn as a trend in report.md. */
  history?: HistoryEntry[];
  /** Folder for the teacher's soft targets, content-addressed; overrides the config's cacheDir. */
  cacheDir?: string;
}

export interface RunResult {
  report: Report;
  markdown: string;
  reportPath: string;
  studentPath: string;
  /** Set when the report could not be written to disk; the report itself is intact in memory. */
  writeError?: InputError;
}

/** Share of the budget given to training; the rest is kept for measuring and writing. */
const TRAINING_SHARE_OF_BUDGET = 0.85;

/** Metrics every run measures (the names gates may use): the catalogue's, for these classes, topK and labels. */
export function metricNames(classes: number, topK: number, labels: boolean): string[] {
  return measuredMetrics({ classes, topK, labels });
}

/** config -> backend -> models -> data -> soft targets -> distill -> measure -> gates -> report. */
export async function runPipeline(config: Config, options: RunOptions): Promise<RunResult> {
  const log = options.log ?? (() => {});
  const budget = trainingBudget(options.budgetMinutes);
  const requested = options.backend ?? config.backend;
  const baselinePath = options.baseline ?? config.baseline;
  const baseline = baselinePath ? await readReport(baselinePath) : undefined;

  let backend = await resolveBackend(requested, { searchFrom: options.searchFrom ?? [process.cwd(), config.dir] });
  for (const note of backend.notes) log(`backend: skipped ${note}`);
  log(`backend: using ${backend.name} (${backend.source})`);

  const loading = { streamAboveBytes: config.data.streamAboveMB * 2 ** 20 };
  const [train, evalSet] = await Promise.all([loadSplit(config.data.train, 'train', loading), loadSplit(config.data.eval, 'eval', loading)]);
  for (const split of [train, evalSet]) if (split.streamed) log(`data: streaming ${split.source} in chunks of ${split.chunkRows} rows`);
  const { teacher, student } = await loadModels(backend.tf, config, train, evalSet);
  for (const note of teacher.notes ?? []) log(`teacher: ${note}`);
  // Inference (the teacher's pass, agreement, speed) stays on the chosen backend whatever path
  // training must take: a student whose step needs a gradient kernel the backend lacks trains on
  // the cpu backend of the same TF.js engine, and its weights move back for measuring.
  let trainingBackend: string = backend.name;
  const stepFailure = requested === 'auto' ? await trainingStepFailure(backend.tf, config, teacher, train) : undefined;
  if (stepFailure !== undefined) {
    const reason = `${backend.name}: a training step of this student needs kernels the backend lacks (${stepFailure})`;
    log(`backend: ${reason}; training on cpu, inference stays on ${backend.name}`);
    trainingBackend = 'cpu';
    backend = { ...backend, notes: [...backend.notes, `${reason}: trained on cpu`] };
  }
  const { tf } = backend;
  const labels = Boolean(train.y ?? evalSet.y);
  // Resolved before training, so that a backend that is not there fails the run in seconds.
  const speedBackend = config.measure.backend && config.measure.backend !== backend.name
    ? await resolveBackend(config.measure.backend, { searchFrom: options.searchFrom ?? [process.cwd(), config.dir] }).catch((error) => {
        teacher.dispose();
        student.dispose();
        throw error instanceof InputError ? new InputError('measure.backend', error.message) : error;
      })
    : undefined;

  try {
    const checks = parseGates(config.gates, metricNames(teacher.outputWidth, config.measure.topK, Boolean(evalSet.y)));
    const cacheDir = options.cacheDir ?? config.cacheDir;
    const teacherEvalLogits = (await softTargets(tf, teacher, evalSet, backend.name, cacheDir, config.teacher)).logits;
    // Distillation: teacher soft targets once, then the KD loop.
    const started = performance.now();
    const targets = await softTargets(tf, teacher, train, backend.name, cacheDir, config.teacher);
    if ((targets.workers ?? 1) > 1) log(`soft targets: computed in ${targets.workers} worker threads`);
    if (targets.source === 'cache') log(`soft targets: cache hit (${targets.cacheFile}), the teacher is skipped`);
    const teacherTrainLogits = targets.logits;
    const teacherSeconds = (performance.now() - started) / 1000;
    const probeRows = Math.min(evalSet.size, 256);
    let trainingPath: TrainingPath | undefined;
    const training = await onBackend(tf, trainingBackend, () => distill(tf, student, train, {
      settings: config.distill,
      teacherLogits: teacherTrainLogits,
      signal: options.signal && budget ? AbortSignal.any([options.signal, budget.signal]) : (options.signal ?? budget?.signal),
      probe: async () => top1Agreement(teacherEvalLogits.subarray(0, probeRows * teacher.outputWidth), await predictLogits(tf, student, evalSet, probeRows), teacher.outputWidth),
      onEpoch: (p) => log(`epoch ${p.epoch}/${p.epochs}  loss ${p.loss.toFixed(5)}  agreement ${p.agreement === undefined ? '-' : (100 * p.agreement).toFixed(1)}%`),
      onStep: (path) => {
        trainingPath = path;
        log(`training: ${path.kind} step on ${path.backend}${path.whyNotKernel ? ` (not the WebAssembly kernel: ${path.whyNotKernel})` : ''}; inference on ${backend.name}`);
      },
    }));
    const seconds = (performance.now() - started) / 1000;
    budget?.clear();

    // Measurement, on the eval split.
    const studentEvalLogits = await predictLogits(tf, student, evalSet);
    const metrics: Record<string, number> = {
      'size.teacherBytes': teacher.bytes,
      'size.studentBytes': student.bytes,
      'size.teacherParams': teacher.params,
      'size.studentParams': student.params,
      'size.ratio': student.bytes / teacher.bytes,
      ...(await timeSpeed(tf, speedBackend, teacher, student, evalSet, config, log)),
      ...agreementMetrics(teacherEvalLogits, studentEvalLogits, teacher.outputWidth, config.measure.topK, evalSet.y),
    };

    const pairedChecks = checks.filter(isPairedSpeedCheck);
    const baselineStudentPath = baseline && pairedChecks.length > 0 ? await findBaselineStudent(options.baselineStudent, baselinePath!, baseline) : undefined;
    const speedComparison = baselineStudentPath
      ? await timeAgainstBaseline(tf, student, baselineStudentPath, evalSet, pairedChecks, config, log)
      : undefined;
    if (speedComparison) {
      metrics['speed.baselineStudentMs'] = speedComparison.baselineMs;
      metrics['speed.vsBaseline'] = speedComparison.ratio;
    }
    const environment = describeEnvironment(backend);
    const judged = judge(checks, metrics, environment, baseline, speedComparison ? { comparison: speedComparison, inconclusive: config.measure.inconclusive } : undefined);
    const { environmentDiffers } = judged;
    const accepted = options.acceptRegression ? acceptRegressions(judged.gates, options.acceptRegression) : undefined;
    const gates = accepted?.gates ?? judged.gates;
    const reasons: string[] = [...training.notes];
    if (training.stoppedBecause) reasons.push(`Training stopped after ${training.epochsCompleted} of ${config.distill.epochs} epochs: ${training.stoppedBecause}.`);
    // A budget stop is judged by the gates on what was reached; a non-finite loss or a
    // cancellation (SIGTERM) fails the run whatever the gates say.
    const overBudget = budget?.signal.aborted === true && training.stopKind === 'abort' && options.signal?.aborted !== true;
    const failedOutright = training.stopKind === 'loss' || (training.stopKind === 'abort' && !overBudget);
    if (environmentDiffers) reasons.push('The baseline ran on a different backend, TF.js version, CPU or GPU: speed deltas against it are shown but not gated.');

    const studentPath = path.join(options.outDir, 'student');

    const report: Report = {
      schemaVersion: SCHEMA_VERSION,
      verdict: failedOutright ? 'fail' : verdictOf(gates),
      status: training.stoppedBecause ? 'incomplete' : 'complete',
      reasons,
      backend: backend.name,
      metrics,
      gates,
      training: {
        epochs: training.epochsCompleted,
        epochsPlanned: config.distill.epochs,
        loss: training.loss,
        seconds,
        teacherSeconds,
        softTargets: targets.source,
        trainSamples: train.size,
        evalSamples: evalSet.size,
        temperature: config.distill.temperature,
        alpha: config.distill.alpha,
        seed: config.distill.seed,
        labels,
        ...(trainingPath ? { step: trainingPath } : {}),
      },
      environment,
      teacher: { path: config.teacher, format: teacher.format, output: teacher.output, params: teacher.params, bytes: teacher.bytes },
      student: { path: path.join(studentPath, 'model.json'), params: student.params, bytes: student.bytes, from: 'model' in config.student ? config.student.model : 'layers' },
      baseline: baseline && baselinePath ? { path: baselinePath, createdAt: baseline.createdAt, commit: baseline.commit, environmentDiffers, student: baselineStudentPath } : null,
      speedComparison: speedComparison ?? null,
      override: accepted && accepted.overridden.length > 0 ? { label: options.acceptRegression!.label, by: options.acceptRegression!.by, gates: accepted.overridden } : null,
      metricsComputedOn: `logits from the ${backend.name} backend, compared on the host in float64`,
      ...(speedBackend ? { speedBackend: speedBackend.name } : {}),
      config: config.file,
      createdAt: new Date().toISOString(),
      ...(options.commit ? { commit: options.commit } : {}),
    };
    const markdown = renderMarkdown(report, { history: options.history });
    const reportPath = path.join(options.outDir, 'report.json');
    const writeError = await writeOutputs(tf, student, options.outDir, report, markdown).catch((error: NodeJS.ErrnoException) =>
      new InputError(options.outDir, `cannot write the report and student there (${error.code ?? error.message}); choose a writable output folder with free space. The report itself was still produced.`),
    );
    return { report, markdown, reportPath, studentPath: path.join(studentPath, 'model.json'), ...(writeError ? { writeError } : {}) };
  } finally {
    budget?.clear();
    teacher.dispose();
    student.dispose();
  }
}

async function findBaselineStudent(explicit: string | undefined, baselinePath: string, baseline: Report): Promise<string | undefined> {
  const candidates = explicit ? [explicit] : [path.join(path.dirname(baselinePath), 'student', 'model.json'), baseline.student?.path].filter((p): p is string => Boolean(p));
  for (const candidate of candidates) if (await fileExists(candidate)) return candidate;
  if (explicit) throw new InputError(explicit, 'the baseline student cannot be read; give the model.json of the baseline run\'s student.');
  return undefined;
}

/** Same process, same input, interleaved: the only latency comparison worth gating on. */
async function timeAgainstBaseline(tf: Tf, student: LoadedModel, baselineStudentPath: string, evalSet: Dataset, checks: GateCheck[], config: Config, log: (line: string) => void): Promise<SpeedComparison> {
  const baselineStudent = await loadModel(tf, baselineStudentPath, 'student');
  const input = tf.tensor(await evalSet.read(0, 1), [1, ...evalSet.sampleShape]);
  try {
    // The strictest bound decides how long to measure; each gate is then judged on the same interval.
    const probe = await comparePairedSpeed(student, baselineStudent, input, { allowedRatio: 1, block: 10, minRounds: 10, budgetMs: 0, warmup: config.measure.warmup });
    const allowed = Math.min(...checks.map((c) => allowedRatio(c, probe.baselineMs)));
    const comparison = await comparePairedSpeed(student, baselineStudent, input, { allowedRatio: allowed, budgetMs: config.measure.speedBudgetSeconds * 1000, warmup: 0 });
    log(`speed vs baseline student: ratio ${comparison.ratio.toFixed(3)} [${comparison.low.toFixed(3)}, ${comparison.high.toFixed(3)}] over ${comparison.rounds} rounds: ${comparison.verdict}`);
    return comparison;
  } finally {
    input.dispose();
    baselineStudent.dispose();
  }
}

/** report.json first (the record CI keys on), then report.md, then the student. */
async function writeOutputs(tf: Tf, student: LoadedModel, outDir: string, report: Report, markdown: string): Promise<undefined> {
  await mkdir(outDir, { recursive: true });
  await writeFile(path.join(outDir, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(path.join(outDir, 'report.md'), markdown);
  await student.layers!.save(tf.io.withSaveHandler(async (artifacts) => {
    await writeModelArtifacts(path.join(outDir, 'student'), artifacts);
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }));
  return undefined;
}

/**
 * Latency and throughput of teacher and student, on `measure.backend` where the config names one
 * (the backend the student is deployed on), else on the run's inference backend. A backend of
 * another TF.js engine (tfjs-node) gets its own copies of both models.
 */
async function timeSpeed(tf: Tf, other: ResolvedBackend | undefined, teacher: LoadedModel, student: LoadedModel, evalSet: Dataset, config: Config, log: (line: string) => void): Promise<SpeedMetrics> {
  if (!other) return measureSpeed(tf, teacher, student, evalSet, config.measure);
  log(`speed: timed on ${other.name} (measure.backend)`);
  if (other.tf === tf) return onBackend(tf, other.name, () => measureSpeed(tf, teacher, student, evalSet, config.measure));
  const artifacts = await new Promise<io.ModelArtifacts>((resolve, reject) => {
    student.layers!.save(tf.io.withSaveHandler(async (saved) => {
      resolve(saved);
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    })).catch(reject);
  });
  const [theirTeacher, theirStudent] = [
    await loadModel(other.tf, config.teacher, 'teacher', { head: config.teacherHead, output: config.teacherOutput }),
    wrapLayersModel(await other.tf.loadLayersModel(other.tf.io.fromMemory(artifacts)), student.bytes),
  ];
  try {
    return await measureSpeed(other.tf, theirTeacher, theirStudent, evalSet, config.measure);
  } finally {
    theirTeacher.dispose();
    theirStudent.dispose();
  }
}

/** Runs `work` with `name` as TF.js's current backend, then puts the previous one back. */
async function onBackend<T>(tf: Tf, name: string, work: () => Promise<T>): Promise<T> {
  const previous = tf.getBackend();
  if (name === previous) return work();
  await tf.setBackend(name);
  try {
    return await work();
  } finally {
    await tf.setBackend(previous);
  }
}

function trainingBudget(minutes: number | undefined): { signal: AbortSignal; clear: () => void } | undefined {
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

async function loadModels(tf: Tf, config: Config, train: Dataset, evalSet: Dataset): Promise<{ teacher: LoadedModel; student: LoadedModel }> {
  const teacher = await loadModel(tf, config.teacher, 'teacher', { head: config.teacherHead, output: config.teacherOutput });
  try {
    for (const split of [train, evalSet]) checkAgainstTeacher(split, teacher.inputShape, teacher.outputWidth, config.teacher);
    if (train.size < config.distill.batchSize) {
      throw new InputError(`${train.source} (distill.batchSize)`, `the train split has ${train.size} samples, fewer than one batch of ${config.distill.batchSize}; lower distill.batchSize to at most ${train.size} or add data.`);
    }
    const student = await buildStudent(tf, config.student, teacher.inputShape, config.distill.seed);
    try {
      checkStudent(student, teacher, train, config);
    } catch (error) {
      student.dispose();
      throw error;
    }
    return { teacher, student };
  } catch (error) {
    teacher.dispose();
    throw error;
  }
}

function checkStudent(student: LoadedModel, teacher: LoadedModel, train: Dataset, config: Config): void {
  const where = 'model' in config.student ? config.student.model : 'student.layers';
  if (student.outputWidth !== teacher.outputWidth) {
    throw new InputError(where, `the student has ${student.outputWidth} outputs but the teacher (${config.teacher}) has ${teacher.outputWidth}; the last layer needs units: ${teacher.outputWidth}.`);
  }
  const fits = student.inputShape.length === train.sampleShape.length && student.inputShape.every((d, i) => d === null || d === train.sampleShape[i]);
  if (!fits) {
    throw new InputError(where, `the student takes input [${student.inputShape.join(', ')}] but samples have shape [${train.sampleShape.join(', ')}].`);
  }
}

/**
 * One training step on a tiny batch with a throwaway copy of the student: a backend that lacks a
 * gradient kernel fails here, in a second, instead of an hour into a run.
 */
async function trainingStepFailure(tf: Tf, config: Config, teacher: LoadedModel, train: Dataset): Promise<string | undefined> {
  const probe = await buildStudent(tf, config.student, teacher.inputShape, config.distill.seed);
  const rows = Math.min(2, train.size);
  const sample = await train.read(0, rows);
  // The very step training runs (kernel, dense or autodiff), so what is checked is what it needs;
  // a learning rate of 0 leaves the probe's weights as they were.
  const step = trainingStep(tf, probe, { learningRate: 0, terms: kdTerms(config.distill, train.y !== undefined), sampleShape: train.sampleShape, maxRows: rows });
  try {
    const loss = step.run(sample, new Float32Array(rows * probe.outputWidth), rows);
    if (typeof loss !== 'number') loss.dispose();
    return undefined;
  } catch (error) {
    return firstLine(error);
  } finally {
    step.dispose();
    probe.dispose();
  }
}

function describeEnvironment(backend: ResolvedBackend): Environment {
  const cpus = os.cpus();
  return {
    ...backendEnvironment(backend),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpu: cpus[0]?.model?.trim() ?? 'unknown',
    cpus: cpus.length,
    gpu: backend.adapter ? describeAdapter(backend.adapter) : backend.name === 'tensorflow-gpu' ? 'CUDA device (tfjs-node-gpu)' : null,
    backendNotes: backend.notes,
  };
}
