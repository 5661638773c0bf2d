import { describeChoice, onBackend, resolveBackend, type ResolvedBackend } from '../backend/resolve.js';
import type { Config } from '../config/load.js';
import type { Dataset } from '../data/dataset.js';
import { loadSplits } from '../data/splits.js';
import { checkAugment } from '../distill/augment.js';
import { probeTrainingStep } from '../distill/training-step.js';
import { locatedCulprit } from '../config/locate.js';
import { InputError } from '../errors.js';
import { chooseKernelModule } from '../distill/kernel-module.js';
import { parseGates, type GateCheck } from '../gates/gates.js';
import { measuredMetrics } from '../measure/metrics.js';
import { studentLayers } from '../models/model.js';
import { type LoadedModel } from '../models/loaded-model.js';
import { refuseUnexportable, requireStudentRuntime } from '../models/onnx-student.js';
import { attachKernelPass } from '../distill/kernel-teacher.js';
import { checkStudent, loadTeacherAndStudent } from '../models/pair.js';
import { buildStudent } from '../models/student.js';
import { expandStudents, type SweepCandidateSpec } from '../config/students.js';
import type { Tf } from '../backend/resolve.js';
import type { Report } from '../report/report.js';
import { readReport } from '../report/read.js';

/** A candidate of the sweep, built and checked before any training; `model` is dropped once it is measured. */
export interface Candidate {
  spec: SweepCandidateSpec;
  model?: LoadedModel;
}

/**
 * Every candidate of `students:`, built (seeded as the student is) and checked against the teacher
 * and the data in the prepare stage, so that a candidate that cannot work fails the run in seconds,
 * naming its entry, before the teacher's pass.
 */
export async function buildCandidates(
  tf: Tf,
  config: Config,
  teacher: LoadedModel,
  train: Dataset,
): Promise<Candidate[]> {
  const candidates: Candidate[] = [];
  try {
    for (const spec of expandStudents(config.students)) {
      const model = await buildStudent(tf, spec.source, teacher.inputShape, config.distill.seed, spec.key);
      candidates.push({ spec, model });
      checkStudent(model, teacher, train, spec.source, spec.key, config.teacher);
    }
    return candidates;
  } catch (error) {
    disposeCandidates(candidates);
    throw error;
  }
}

export function disposeCandidates(candidates: Candidate[]): void {
  for (const candidate of candidates) {
    candidate.model?.dispose();
    candidate.model = undefined;
  }
}

/** Everything a run works on, loaded once; `dispose` frees the models' tensors. */
export interface Session {
  /** The inference backend: the teacher's pass, agreement, speed. */
  backend: ResolvedBackend;
  /** Where the student trains (a TF.js registry name): the inference backend, or cpu when that lacks a gradient kernel the step needs. */
  trainingBackend: string;
  /** `measure.backend`, resolved, when it names a backend other than the inference one. */
  speedBackend?: ResolvedBackend;
  teacher: LoadedModel;
  student: LoadedModel;
  train: Dataset;
  evalSet: Dataset;
  /** The gates, checked against the metrics this run will produce. */
  checks: GateCheck[];
  /** The sweep's candidates (config `students:`), built and checked; empty without a sweep. */
  candidates: Candidate[];
  baseline?: { path: string; report: Report };
  dispose(): void;
}

export interface PrepareOptions {
  /** Folders searched for the optional native packages. */
  searchFrom: string[];
  log: (line: string) => void;
}

/** Stage 1: backend, data, models, gates and baseline, everything that can fail on bad input, before any training. */
export async function prepare(config: Config, { searchFrom, log }: PrepareOptions): Promise<Session> {
  const baseline = config.baseline ? { path: config.baseline, report: await readReport(config.baseline) } : undefined;
  // A bad DISTILL_GATE_KERNEL fails here, not when training begins after the teacher's pass.
  chooseKernelModule();
  let backend = await resolveBackend(config.backend, { searchFrom });
  log(describeChoice(backend));

  const loading = {
    streamAboveBytes: config.data.streamAboveMB * 2 ** 20,
    tf: backend.tf,
    cacheDir: config.cacheDir,
    configFile: config.file,
    log,
  };
  const { train, evalSet } = await loadSplits(config.data, loading);
  if (config.distill.augment) checkAugment(train.sampleShape, `${config.file} distill.augment`);
  for (const split of [train, evalSet])
    if (split.streamed) log(`data: streaming ${split.source} in chunks of ${split.chunkRows} rows`);
  const { teacher, student } = await loadTeacherAndStudent(backend.tf, config, train, evalSet, { searchFrom });
  let candidates: Candidate[] = [];
  const dispose = () => {
    teacher.dispose();
    student.dispose();
    disposeCandidates(candidates);
  };
  try {
    candidates = await buildCandidates(backend.tf, config, teacher, train);
    for (const note of teacher.notes ?? []) log(`teacher: ${note}`);
    const pass = attachKernelPass(backend.tf, teacher, backend.name, { threads: config.distill.threads });
    if ('attached' in pass) log(`teacher: its passes run ${pass.attached}`);
    else if (teacher.layers && !teacher.runtime)
      log(`teacher: its passes run on TF.js ${backend.name} (${pass.notAttached})`);
    // export.format onnx (and measure.runtime onnxruntime, which times student.onnx): a layer the
    // ONNX export cannot write fails the run now, not after training; so does a missing onnxruntime.
    const timedInOnnx = config.measure.runtime === 'onnxruntime';
    if (config.export.format === 'onnx' || timedInOnnx) refuseUnexportable(studentLayers(student), config.student);
    if (timedInOnnx) await requireStudentRuntime([process.cwd(), config.dir]);
    // Inference stays on the chosen backend whatever path training must take: a student whose
    // step needs a gradient kernel the backend lacks trains on the cpu backend of the same engine.
    let trainingBackend = backend.engine;
    const stepFailure =
      config.backend === 'auto' ? await probeTrainingStep(backend.tf, config, teacher.inputShape, train) : undefined;
    if (stepFailure !== undefined) {
      const reason = `${backend.name}: a training step of this student needs kernels the backend lacks (${stepFailure})`;
      // The cpu backend has every gradient TF.js has; what fails there too, TF.js cannot train
      // at all (a dilated convolution's gradient, say): the student's config is at fault.
      // Asked of the autodiff step on cpu, so that a kernel bug is not blamed on the config.
      const cpuFailure = await onBackend(backend.tf, 'cpu', () =>
        probeTrainingStep(backend.tf, config, teacher.inputShape, train, 'autodiff'),
      );
      if (cpuFailure !== undefined) {
        const where =
          'model' in config.student
            ? config.student.model
            : locatedCulprit(config.student, 'student.layers', ['layers']);
        throw new InputError(
          where,
          `TF.js cannot train this student on any backend (${cpuFailure}); change the layer it names.`,
        );
      }
      log(`backend: ${reason}; training on cpu, inference stays on ${backend.name}`);
      trainingBackend = 'cpu';
      backend = { ...backend, notes: [...backend.notes, `${reason}: trained on cpu`] };
    }
    // Resolved before training, so that a backend that is not there fails the run in seconds.
    const speedBackend =
      config.measure.backend && config.measure.backend !== backend.name
        ? await resolveBackend(config.measure.backend, { searchFrom }).catch((error: unknown) => {
            throw error instanceof InputError ? new InputError('measure.backend', error.message) : error;
          })
        : undefined;
    // Resolving selects the speed backend; TF.js has one current backend per engine, and the
    // teacher's pass and agreement belong on the inference backend.
    if (speedBackend) await backend.tf.setBackend(backend.engine);
    const checks = parseGates(
      config.gates,
      measuredMetrics({
        classes: teacher.outputWidth,
        topK: config.measure.topK,
        labels: Boolean(evalSet.y),
        quantized: config.export.quantize !== 'none',
        baseTeacher: true,
        onnx: config.export.format === 'onnx',
      }),
    );
    return {
      backend,
      trainingBackend,
      speedBackend,
      teacher,
      student,
      train,
      evalSet,
      checks,
      candidates,
      baseline,
      dispose,
    };
  } catch (error) {
    dispose();
    throw error;
  }
}
