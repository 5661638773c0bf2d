// One worker of the teacher's soft-target pass: loads the teacher on its own TF.js backend and
// returns the logits of the rows it was given (see teacher-workers.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { initialiseBundled, type BundledBackend } from '../backend/bundled.js';
import { inMemoryDataset } from '../data/dataset.js';
import { loadModel } from '../models/model.js';
import { type OutputKind, type TeacherOptions } from '../models/loaded-model.js';
import { predictLogits } from '../models/predict.js';

export interface TeacherJob {
  backend: BundledBackend;
  modelJson: string;
  /** The options the main thread loaded the teacher with (its head, teacherOutput). */
  options: TeacherOptions;
  output: OutputKind;
  sampleShape: number[];
  /** Rows per predict call: the main thread's choice, so every batch is the one it would run. */
  batch: number;
  rows: Float32Array;
}

if (!parentPort)
  throw new Error(
    'teacher-worker.ts has no parentPort: it runs only as a worker thread that teacher-workers.ts starts',
  );
const job = workerData as TeacherJob;
const tf = await initialiseBundled(job.backend);
const teacher = await loadModel(tf, job.modelJson, 'teacher', job.options);
teacher.output = job.output;
const dataset = inMemoryDataset('worker', job.rows, job.sampleShape);
const logits = await predictLogits(tf, teacher, dataset, dataset.size, job.batch);
teacher.dispose();
parentPort.postMessage(logits, [logits.buffer as ArrayBuffer]);
