// One worker of the teacher's soft-target pass: loads the teacher on its own TF.js backend and
// returns the logits of the rows it was given (see teacher-workers.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { initialiseBundled, type BundledBackend } from '../backend/bundled.js';
import { inMemoryDataset } from '../data/dataset.js';
import { loadModel, type OutputKind } from '../models/model.js';
import { predictLogits } from '../models/predict.js';

export interface TeacherJob {
  backend: BundledBackend;
  modelJson: string;
  output: OutputKind;
  sampleShape: number[];
  rows: Float32Array;
}

const job = workerData as TeacherJob;
const tf = await initialiseBundled(job.backend);
const teacher = await loadModel(tf, job.modelJson, 'teacher');
teacher.output = job.output;
const logits = await predictLogits(tf, teacher, inMemoryDataset('worker', job.rows, job.sampleShape));
teacher.dispose();
parentPort!.postMessage(logits, [logits.buffer as ArrayBuffer]);
