// One worker of the teacher's soft-target pass: loads the teacher on its own TF.js backend and
// returns the logits of the rows it was given (see teacher-workers.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { initialiseBundled, type BundledBackend } from '../backend/bundled.js';
import { inMemoryDataset } from '../data/dataset.js';
import { loadModel } from '../models/model.js';
import { type OutputKind, type TeacherOptions } from '../models/loaded-model.js';
import { predictLogits } from '../models/predict.js';
import { attachKernelPass } from './kernel-teacher.js';

export interface TeacherJob {
  backend: BundledBackend;
  modelJson: string;
  /** The options the main thread loaded the teacher with (its head, teacherOutput). */
  options: TeacherOptions;
  output: OutputKind;
  sampleShape: number[];
  /** Rows per predict call: the main thread's choice, so every batch is the one it would run. */
  batch: number;
  /** The main thread's teacher runs in the training kernel: so does this one (the same build). */
  kernelPass: boolean;
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
if (job.kernelPass) {
  // The main thread's pass ran in the kernel and its cache key says so: this range must too.
  const pass = attachKernelPass(tf, teacher, job.backend, { threads: 1 });
  if ('notAttached' in pass)
    throw new Error(`teacher worker: the kernel pass the main thread used is refused here (${pass.notAttached})`);
}
const dataset = inMemoryDataset('worker', job.rows, job.sampleShape);
const logits = await predictLogits(tf, teacher, dataset, dataset.size, job.batch);
teacher.dispose();
parentPort.postMessage(logits, [logits.buffer as ArrayBuffer]);
