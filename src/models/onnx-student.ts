import type { LayersModel, Tensor } from '@tensorflow/tfjs';
import type { Tf } from '../backend/resolve.js';
import type { Dataset } from '../data/dataset.js';
import { locatedCulprit } from '../config/locate.js';
import { InputError } from '../errors.js';
import type { StageMetrics } from '../measure/metrics.js';
import { studentLayers } from './model.js';
import { type LoadedModel, type OutputKind } from './loaded-model.js';
import type { StudentSource } from './student.js';
import {
  availableCores,
  findOnnxRuntime,
  INSTALL_ONNXRUNTIME_CPU,
  INSTALL_ONNXRUNTIME_CUDA,
  openSession,
  type OnnxRuntime,
  type OrtSession,
} from './onnx-runtime.js';
import { ONNX_STUDENT_OPSET, studentToOnnx } from './onnx-student-convert.js';
import { OnnxExportError } from './onnx-student-layers.js';
import { inferenceBatch } from './predict.js';

/**
 * The ONNX student in the run (`export.format: onnx`): refused before training when its layers
 * cannot be written, written beside model.json, checked in onnxruntime-node against the TF.js
 * student on eval rows, and timed there under `measure.runtime: onnxruntime`. The conversion
 * itself, layers to an ONNX graph, is onnx-student-convert.ts.
 */

/** The file beside model.json in student/. */
export const ONNX_STUDENT_FILE = 'student.onnx';

/**
 * Rows of the eval split the check runs through both runtimes: evenly spaced over the split. An
 * export bug (a kernel in the wrong order, a padding off by one, a fold gone wrong) changes every
 * row's outputs, so a few rows would show it; 256 cover the range of the inputs and take well
 * under a second for a student small enough to distill.
 */
export const ONNX_CHECK_ROWS = 256;

/**
 * The default gate of an ONNX export (`export.format: onnx`): `export.onnxMaxAbsDiff <= 1e-4`, the
 * largest difference between student.onnx in onnxruntime and the TF.js student on the eval rows
 * checked, in the units of the output (logits, or probabilities where the file outputs them). Both
 * compute the same float32 function in another order of summation (im2col or direct convolution,
 * fused or not): over the few hundred to few thousand terms of a small student's dot products
 * that differs by ~1e-6 for logits of magnitude ~10, so 1e-4 leaves two orders of margin, while
 * any export bug (a kernel transposed, a padding off by one, a batch norm folded wrong, NCHW read
 * as NHWC) moves the outputs by 1e-2 to 1. Students with logits in the thousands should set their
 * own gate (a relative error would be the measure there).
 */
export const DEFAULT_ONNX_MAX_ABS_DIFF = 1e-4;

export type OnnxOutput = 'logits' | 'probabilities';

/** What the ONNX student outputs: probabilities when the TF.js export's would (its own softmax, or one appended for `export.output`). */
export function onnxOutputKind(planOutput: OutputKind, studentOutput: OutputKind): OnnxOutput {
  return planOutput === 'probabilities' || studentOutput === 'probabilities' ? 'probabilities' : 'logits';
}

/** Why `model` cannot be written as ONNX, or undefined when it can: the run asks before training, so that it fails in seconds. */
export function onnxExportProblem(model: LayersModel): OnnxExportError | undefined {
  try {
    studentToOnnx(model, { appendSoftmax: false });
    return undefined;
  } catch (error) {
    if (error instanceof OnnxExportError) return error;
    throw error;
  }
}

/**
 * Refuses, before any training, a student that `export.format: onnx` cannot write: the error names
 * the layer where the config's stack has it (`file:line:column student.layers[3] (layerNormalization)`),
 * or the student's model.json.
 */
export function refuseUnexportable(student: LayersModel, source: StudentSource): void {
  const problem = onnxExportProblem(student);
  if (!problem) return;
  const culprit =
    'layers' in source && problem.index !== undefined && problem.index < source.layers.length
      ? locatedCulprit(
          source,
          `student.layers[${problem.index}] (${source.layers[problem.index].type})`,
          ['layers', problem.index],
          ['layers'],
        )
      : 'model' in source
        ? source.model
        : `student ${problem.layer}`;
  throw new InputError(
    culprit,
    `export.format onnx cannot write this layer: ${problem.reason}. Use export.format tfjs, or a student of the layers the ONNX export writes (docs/onnx.md).`,
  );
}

/** The check of student.onnx in the run: report.json's `export.onnx`. */
export interface OnnxStudentCheck {
  /** student.onnx, in student/. */
  file: string;
  opset: number;
  /** The input's layout: NHWC as the data comes (rank-4 students), or the student's own shape. */
  inputLayout: 'nhwc' | 'as the data';
  output: OnnxOutput;
  /** `checked`: run in onnxruntime-node and compared; `skipped`: onnxruntime-node is not installed; `failed`: onnxruntime could not run the file. */
  status: 'checked' | 'skipped' | 'failed';
  /** Eval rows run through both, evenly spaced over the split. */
  rows?: number;
  /** The largest |ONNX − TF.js| over those rows and every output: the `export.onnxMaxAbsDiff` metric. */
  maxAbsDiff?: number;
  /** The onnxruntime it ran in, e.g. "onnxruntime-node 1.30.0 (cpu)". */
  runtime?: string;
  /** Why it was skipped or failed. */
  note?: string;
}

/** checkOnnxStudent's answer: a check that ran has its rows, its difference and its runtime. */
export type OnnxStudentCheckResult =
  | (OnnxStudentCheck & Required<Pick<OnnxStudentCheck, 'rows' | 'maxAbsDiff' | 'runtime'>> & { status: 'checked' })
  | (OnnxStudentCheck & { status: 'skipped' | 'failed' });

/**
 * Runs student.onnx (its bytes) in onnxruntime-node on the CPU provider, and the TF.js student
 * on the run's backend, over ONNX_CHECK_ROWS eval rows, and returns the largest absolute
 * difference of their outputs (logits, or probabilities where the file outputs them). Without
 * onnxruntime-node the check is `skipped` and says why; a file onnxruntime cannot load or run is
 * `failed`, with its message (a bug in the export). Tensors are freed batch by batch.
 */
export async function checkOnnxStudent(
  tf: Tf,
  student: LayersModel,
  bytes: Uint8Array,
  evalSet: Dataset,
  runtime: OnnxRuntime | undefined,
  { output, appendSoftmax, searchedIn }: { output: OnnxOutput; appendSoftmax: boolean; searchedIn: string[] },
): Promise<OnnxStudentCheckResult> {
  const base = {
    file: ONNX_STUDENT_FILE,
    opset: ONNX_STUDENT_OPSET,
    inputLayout: evalSet.sampleShape.length === 3 ? ('nhwc' as const) : ('as the data' as const),
    output,
  };
  if (!runtime) {
    return {
      ...base,
      status: 'skipped',
      note: `onnxruntime-node is not installed in ${searchedIn.join(' or ')}: student.onnx was written but not run. Install it to check it: \`${INSTALL_ONNXRUNTIME_CPU}\``,
    };
  }
  const label = `onnxruntime-node ${runtime.version} (cpu)`;
  let session: OrtSession;
  try {
    // The CPU provider, whatever is installed: it checks what the file computes, in float32 (a
    // GPU provider may use TF32 and differ by more than the export does).
    session = await runtime.ort.InferenceSession.create(bytes, {
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'all',
      intraOpNumThreads: availableCores(),
      logSeverityLevel: 3,
    });
  } catch (error) {
    return {
      ...base,
      status: 'failed',
      runtime: label,
      note: `onnxruntime cannot load student.onnx (${firstLine(error)}); this is a bug in distill-gate's ONNX export, please report it`,
    };
  }
  try {
    const rows = sampleRows(evalSet.size, ONNX_CHECK_ROWS);
    const batch = inferenceBatch(evalSet.sampleShape, tf.getBackend());
    let maxAbsDiff = 0;
    for (let start = 0; start < rows.length; start += batch) {
      const picked = rows.slice(start, start + batch);
      const x = await readRows(evalSet, picked);
      const shape = [picked.length, ...evalSet.sampleShape];
      const theirs = await session.run({ [session.inputNames[0]]: new runtime.ort.Tensor('float32', x, shape) });
      const onnx = theirs[session.outputNames[0]].data as Float32Array;
      const y = tf.tidy(() => {
        const out = student.predict(tf.tensor(x, shape)) as Tensor;
        return appendSoftmax ? tf.softmax(out) : out;
      });
      const reference = (await y.data()) as Float32Array;
      y.dispose();
      if (reference.length !== onnx.length) {
        return {
          ...base,
          status: 'failed',
          runtime: label,
          note: `student.onnx gives ${onnx.length / picked.length} outputs a row and TF.js ${reference.length / picked.length}; this is a bug in distill-gate's ONNX export, please report it`,
        };
      }
      maxAbsDiff = Math.max(maxAbsDiff, maxAbsDifference(reference, onnx));
    }
    return { ...base, status: 'checked', rows: rows.length, maxAbsDiff, runtime: label };
  } catch (error) {
    return {
      ...base,
      status: 'failed',
      runtime: label,
      note: `onnxruntime cannot run student.onnx (${firstLine(error)}); this is a bug in distill-gate's ONNX export, please report it`,
    };
  } finally {
    await session.release();
  }
}

/** student.onnx's bytes for the run's student and export plan: what student/ holds and the check runs. */
export function onnxStudentBytes(student: LoadedModel, plan: { output: OutputKind }): Uint8Array {
  return studentToOnnx(studentLayers(student), { appendSoftmax: appendsSoftmax(plan, student) });
}

/** As exportArtifacts decides for model.json: a softmax only when the plan wants probabilities and the student gives logits. */
function appendsSoftmax(plan: { output: OutputKind }, student: Pick<LoadedModel, 'output'>): boolean {
  return plan.output === 'probabilities' && student.output === 'logits';
}

/**
 * The measuring stage's part for `export.format: onnx`: student.onnx built from the trained
 * student and checked against it (`checkOnnxStudent`), logged, and its metric: the max abs
 * difference when checked, NaN when onnxruntime could not run the file (the default gate then
 * fails as not measured), none when onnxruntime-node is not installed (nothing to gate).
 */
export async function measureOnnxStudent(
  tf: Tf,
  student: LoadedModel,
  evalSet: Dataset,
  plan: { output: OutputKind },
  searchFrom: string[],
  log: (line: string) => void,
): Promise<{ metrics: Partial<StageMetrics<'export'>>; check: OnnxStudentCheck }> {
  const options = {
    output: onnxOutputKind(plan.output, student.output),
    appendSoftmax: appendsSoftmax(plan, student),
    searchedIn: searchFrom,
  };
  let runtime: OnnxRuntime | undefined;
  let broken: string | undefined;
  try {
    runtime = await findOnnxRuntime(searchFrom);
  } catch (error) {
    broken = `onnxruntime-node is installed but does not load (${firstLine(error)}): student.onnx was written but not run`;
  }
  const checked = await checkOnnxStudent(
    tf,
    studentLayers(student),
    onnxStudentBytes(student, plan),
    evalSet,
    runtime,
    options,
  );
  const check = broken ? { ...checked, note: broken } : checked;
  if (check.status === 'checked') {
    log(
      `onnx student: ${check.file} in ${check.runtime} against TF.js on ${check.rows} eval rows: max abs difference ${check.maxAbsDiff.toExponential(2)} (${check.output})`,
    );
    return { metrics: { 'export.onnxMaxAbsDiff': check.maxAbsDiff }, check };
  }
  log(`onnx student: ${check.status === 'skipped' ? 'not checked' : 'check failed'}: ${check.note}`);
  return { metrics: check.status === 'failed' ? { 'export.onnxMaxAbsDiff': NaN } : {}, check };
}

/**
 * The student as student.onnx in onnxruntime-node, as a LoadedModel whose `predictAsync` the
 * timing loop calls as it does an ONNX teacher's (for `measure.runtime: onnxruntime`, which times
 * the student where it will run): the session opens as a teacher's does (`openSession`: CUDA where
 * installed and loading, else the CPU provider), and its outputs are the file's (probabilities
 * where `plan` appends a softmax). A timing loop feeds one tensor many times: its host copy is
 * made once. `dispose` releases the session.
 */
export async function onnxStudentModel(
  tf: Tf,
  runtime: OnnxRuntime,
  student: LoadedModel,
  plan: { output: OutputKind },
): Promise<LoadedModel> {
  const { session, runtime: ran } = await openSession(runtime, onnxStudentBytes(student, plan));
  const hostInputs = new WeakMap<Tensor, Float32Array>();
  const predictAsync = async (x: Tensor): Promise<Tensor> => {
    let values = hostInputs.get(x);
    if (!values) {
      values = (await x.data()) as Float32Array;
      hostInputs.set(x, values);
    }
    const out = await session.run({ [session.inputNames[0]]: new runtime.ort.Tensor('float32', values, x.shape) });
    const y = out[session.outputNames[0]];
    return tf.tensor(y.data as Float32Array, [...y.dims]);
  };
  return {
    ...student,
    layers: undefined,
    output: onnxOutputKind(plan.output, student.output),
    predict: () => {
      throw new Error('the ONNX student runs in onnxruntime: call predictAsync');
    },
    predictAsync,
    runtime: ran,
    dispose: () => void session.release(),
  };
}

/**
 * onnxruntime-node for `measure.runtime: onnxruntime`, which cannot time the student without it:
 * missing or not loading, the run stops with the install command (exit 2, as an ONNX teacher's).
 */
export async function requireStudentRuntime(searchFrom: string[]): Promise<OnnxRuntime> {
  const runtime = await findOnnxRuntime(searchFrom).catch((error: unknown) => {
    throw new InputError(
      'measure.runtime',
      `onnxruntime-node does not load here (${firstLine(error)}): the student cannot be timed in onnxruntime.`,
    );
  });
  if (!runtime) {
    throw new InputError(
      'measure.runtime',
      `onnxruntime times student/student.onnx in onnxruntime-node, which is not installed in ${searchFrom.join(' or ')}. ` +
        `Install it in the workspace: \`${INSTALL_ONNXRUNTIME_CPU}\` (CPU), or on a GPU runner \`${INSTALL_ONNXRUNTIME_CUDA}\`; or drop measure.runtime.`,
    );
  }
  return runtime;
}

/** `count` row indices evenly spaced over `size` rows (all of them when there are fewer). */
export function sampleRows(size: number, count: number): number[] {
  const n = Math.min(size, count);
  return Array.from({ length: n }, (_, i) => Math.floor((i * size) / n));
}

async function readRows(dataset: Dataset, rows: number[]): Promise<Float32Array> {
  const width = dataset.sampleShape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(rows.length * width);
  for (const [i, row] of rows.entries()) out.set((await dataset.read(row, 1)).subarray(0, width), i * width);
  return out;
}

/**
 * The largest |a − b|: the same non-finite value on both sides (NaN and NaN, Infinity and
 * Infinity) is no difference, a non-finite value on one side only is an infinite one.
 */
export function maxAbsDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const y = b[i];
    if (Number.isFinite(x) && Number.isFinite(y)) max = Math.max(max, Math.abs(x - y));
    else if (!(Object.is(x, y) || (Number.isNaN(x) && Number.isNaN(y)))) max = Infinity;
  }
  return max;
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0];
}
