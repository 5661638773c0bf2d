import type { Tf } from '../backend/resolve.js';
import type { Config } from '../config/load.js';
import { checkAgainstTeacher, type Dataset } from '../data/dataset.js';
import { InputError } from '../errors.js';
import { loadModel, type LoadedModel, type TeacherOptions } from './model.js';
import { checkOnnxFeed, isOnnxFile, isOnnxTeacher, loadOnnxTeacher, type OnnxLoadContext } from './onnx.js';
import { buildStudent } from './student.js';

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
    if (set) throw new InputError(set[0], `applies to ONNX teachers, and ${config.teacher} is a TF.js model.json; remove ${set[0]}.`);
    return loadModel(tf, config.teacher, 'teacher', options);
  }
  if (!onnx) throw new Error("loading an ONNX teacher needs the data's sample shape and the folders to look for onnxruntime-node in (a bug in distill-gate)");
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
  const teacher = await loadTeacher(tf, config, { data: { sampleShape: train.sampleShape, source: train.source }, searchFrom });
  try {
    for (const split of [train, evalSet]) checkAgainstTeacher(split, teacher.inputShape, teacher.outputWidth, config.teacher);
    // Integer inputs (token ids) take whole numbers: checked on every row before any runs.
    if (isOnnxTeacher(teacher)) for (const split of [train, evalSet]) await checkOnnxFeed(teacher, split);
    if (train.size < config.distill.batchSize) {
      throw new InputError(
        `${train.source} (distill.batchSize)`,
        `the train split has ${train.size} samples, fewer than one batch of ${config.distill.batchSize}; lower distill.batchSize to at most ${train.size} or add data.`,
      );
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
    throw new InputError(
      where,
      `the student has ${student.outputWidth} outputs but the teacher (${config.teacher}) has ${teacher.outputWidth}; the last layer needs units: ${teacher.outputWidth}.`,
    );
  }
  const fits = student.inputShape.length === train.sampleShape.length && student.inputShape.every((d, i) => d === null || d === train.sampleShape[i]);
  if (!fits) {
    throw new InputError(where, `the student takes input [${student.inputShape.join(', ')}] but samples have shape [${train.sampleShape.join(', ')}].`);
  }
}
