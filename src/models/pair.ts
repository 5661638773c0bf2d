import type { Tf } from '../backend/resolve.js';
import type { Config } from '../config/load.js';
import { checkAgainstTeacher, type Dataset } from '../data/dataset.js';
import { locatedCulprit } from '../config/locate.js';
import { InputError } from '../errors.js';
import { loadModel } from './model.js';
import { type LoadedModel, type TeacherOptions } from './loaded-model.js';
import { checkOnnxFeed, isOnnxFile, isOnnxTeacher, loadOnnxTeacher, type OnnxLoadContext } from './onnx.js';
import { inferenceBatch } from './predict.js';
import { buildStudent, type StudentSource } from './student.js';

/**
 * The configured teacher: its file, the head to distill and what that head outputs. A TF.js
 * model.json loads into TF.js; an ONNX file (told apart by content) into onnxruntime-node, which
 * needs `onnx`: the data it will be fed and the folders to find the package in.
 */
export async function loadTeacher(tf: Tf, config: Config, onnx?: OnnxLoadContext): Promise<LoadedModel> {
  const options: TeacherOptions = { head: config.teacherHead, output: config.teacherOutput };
  if (!(await isOnnxFile(config.teacher))) {
    // Keys that only an ONNX teacher reads would be ignored silently: say so instead.
    const onnxOnly = {
      teacherInput: config.teacherInput,
      teacherInputFill: config.teacherInputFill,
      teacherLayout: config.teacherLayout === 'auto' ? undefined : config.teacherLayout,
    };
    const set = Object.entries(onnxOnly).find(([, value]) => value !== undefined);
    if (set)
      throw new InputError(
        set[0],
        `applies to ONNX teachers, and ${config.teacher} is a TF.js model.json; remove ${set[0]}.`,
      );
    return loadModel(tf, config.teacher, 'teacher', options);
  }
  if (!onnx)
    throw new Error(
      "loading an ONNX teacher needs the data's sample shape and the folders to look for onnxruntime-node in (a bug in distill-gate)",
    );
  return loadOnnxTeacher(
    tf,
    config.teacher,
    { ...options, input: config.teacherInput, layout: config.teacherLayout, inputFill: config.teacherInputFill },
    onnx,
  );
}

/** The teacher and a fresh student, checked against each other and against the data; exit 2 naming the culprit otherwise. */
export async function loadTeacherAndStudent(
  tf: Tf,
  config: Config,
  train: Dataset,
  evalSet: Dataset,
  { searchFrom = [process.cwd(), config.dir] }: { searchFrom?: string[] } = {},
): Promise<{ teacher: LoadedModel; student: LoadedModel }> {
  const onnx = { data: { sampleShape: train.sampleShape, source: train.source }, searchFrom };
  let teacher = await loadTeacher(tf, config, onnx);
  try {
    for (const split of [train, evalSet])
      checkAgainstTeacher(split, teacher.inputShape, teacher.outputWidth, config.teacher);
    // Integer inputs (token ids) take whole numbers: checked on every row before any runs.
    if (isOnnxTeacher(teacher)) for (const split of [train, evalSet]) await checkOnnxFeed(teacher, split);
    const reading = await readFirstBatch(tf, teacher, train, config);
    if (reading === 'one unit in [0, 1]') {
      // Loaded again as a probability, so that worker threads and the soft-target cache (whose
      // key names the output kind) read it the same way.
      teacher.dispose();
      teacher = await loadTeacher(tf, { ...config, teacherOutput: 'probabilities' }, onnx);
      const head = teacher.head ?? 'output';
      const note =
        `head ${head} has one unit whose values on the first ${firstRows(train, tf.getBackend())} training rows all lie in [0, 1] though the loader saw no sigmoid at its end ` +
        `(one inside a subgraph or behind another op): read as a probability p, distilled as two classes [1 - p, p]; set teacherOutput: logits if it is a logit`;
      teacher.notes = [...(teacher.notes ?? []).filter((n) => !n.includes('has one unit')), note];
      teacher.warnings = [`The teacher's ${note}.`];
    } else if (reading) {
      (teacher.warnings ??= []).push(reading);
      (teacher.notes ??= []).push(reading);
    }
    if (train.size < config.distill.batchSize) {
      throw new InputError(
        `${train.source} (distill.batchSize)`,
        `the train split has ${train.size} samples, fewer than one batch of ${config.distill.batchSize}; lower distill.batchSize to at most ${train.size} or add data.`,
      );
    }
    const student = await buildStudent(tf, config.student, teacher.inputShape, config.distill.seed);
    try {
      checkStudent(student, teacher, train, config.student, 'student', config.teacher);
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

/** Rows of the first batch the teacher's outputs are checked on. */
export const FIRST_BATCH_ROWS = 32;

const firstRows = (train: Dataset, backend: string) =>
  Math.max(1, Math.min(FIRST_BATCH_ROWS, train.size, inferenceBatch(train.sampleShape, backend)));

/**
 * The teacher's head on the first training rows, for what its ops did not say (a sigmoid inside
 * an ONNX If branch, a softmax behind a Mul): with `teacherOutput: auto`, a one-unit head read as
 * a logit whose values all lie in [0, 1] is a probability ('one unit in [0, 1]'); a wider head
 * read as logits whose values all lie in [0, 1], or whose rows each sum to 1, gets the warning
 * returned. Undefined when nothing is amiss or the setting is explicit.
 */
export async function readFirstBatch(
  tf: Tf,
  teacher: LoadedModel,
  train: Dataset,
  config: Pick<Config, 'teacherOutput'>,
): Promise<string | undefined> {
  if ((config.teacherOutput ?? 'auto') !== 'auto' || teacher.output !== 'logits' || train.size === 0) return undefined;
  const rows = firstRows(train, tf.getBackend());
  const x = tf.tensor(await train.read(0, rows), [rows, ...train.sampleShape]);
  let values: Float32Array;
  try {
    const y = teacher.predictAsync ? await teacher.predictAsync(x) : teacher.predict(x);
    values = (await y.data()) as Float32Array;
    y.dispose();
  } finally {
    x.dispose();
  }
  const width = teacher.outputWidth;
  const inUnit = (v: number) => v >= 0 && v <= 1;
  if (teacher.oneUnit === 'logits') {
    // Widened as [0, z]: the unit's values are every second one.
    const units = values.filter((_, i) => i % 2 === 1);
    return units.every(inUnit) ? 'one unit in [0, 1]' : undefined;
  }
  const head = teacher.head ? `head ${teacher.head}` : 'head';
  if (values.every(inUnit)) {
    const sumsToOne = Array.from({ length: rows }, (_, r) =>
      values.subarray(r * width, (r + 1) * width).reduce((a, b) => a + b, 0),
    ).every((sum) => Math.abs(sum - 1) <= 1e-3);
    return (
      `The teacher's ${head} was read as logits (teacherOutput: auto saw no softmax or sigmoid at its end), but every value on the first ${rows} training rows lies in [0, 1]` +
      `${sumsToOne ? ' and each row sums to 1' : ''}: they look like probabilities. If they are, set teacherOutput: probabilities` +
      `${sumsToOne ? '' : ' (or, for a multi-label sigmoid head, leave it: distilled as the logits of one softmax)'}; read as logits, the soft targets are nearly uniform.`
    );
  }
  return undefined;
}

/**
 * The student against the teacher and the data: its outputs, its input. `source` is how the config
 * gave it and `key` its place there (`student`, or a sweep candidate's `students[2]`), for errors.
 */
export function checkStudent(
  student: LoadedModel,
  teacher: LoadedModel,
  train: Dataset,
  source: StudentSource,
  key: string,
  teacherFile: string,
): void {
  // A student given by layers: the last layer's units (or the first layer, for the input) in the config.
  const layers = 'layers' in source ? source.layers.length : 0;
  const where = (keyPath: Array<string | number>, ...fallbacks: Array<Array<string | number>>) =>
    'model' in source ? source.model : locatedCulprit(source, `${key}.layers`, keyPath, ...fallbacks);
  if (student.outputWidth !== teacher.outputWidth) {
    // A one-unit teacher is distilled as two classes: a units: 1 student must say why 2.
    const why =
      teacher.oneUnit && student.outputWidth === 1
        ? ` (its head ${teacher.head ?? ''} has one unit, read as ${teacher.oneUnit === 'probabilities' ? 'a probability p' : 'a logit z'}, which distill-gate distills as two classes, ${teacher.oneUnit === 'probabilities' ? '[1 - p, p]' : 'logits [0, z]'}, so that the KD loss is a softmax over two)`.replace(
            'head  has',
            'head has',
          )
        : '';
    throw new InputError(
      where(['layers', layers - 1, 'units'], ['layers', layers - 1]),
      `the student has ${student.outputWidth} outputs but the teacher (${teacherFile}) has ${teacher.outputWidth}${why}; the last layer needs units: ${teacher.outputWidth}.`,
    );
  }
  const fits =
    student.inputShape.length === train.sampleShape.length &&
    student.inputShape.every((d, i) => d === null || d === train.sampleShape[i]);
  if (!fits) {
    throw new InputError(
      where(['layers', 0]),
      `the student takes input [${student.inputShape.join(', ')}] but samples have shape [${train.sampleShape.join(', ')}].`,
    );
  }
}
