// The shape of a loaded model as the pipeline sees it, whatever its format (Layers, Graph, ONNX),
// and how a teacher is read: types only, so that every reader of models can name them without
// importing the loaders.
import type { LayersModel, Tensor } from '@tensorflow/tfjs';
import type { ModelFormat } from './artifacts.js';
import type { TeacherRuntime } from './onnx-runtime.js';

export type OutputKind = 'logits' | 'probabilities';
/** The `teacherOutput` setting: what the chosen head outputs, or `auto` to read it off its last op. */
export type OutputSetting = 'auto' | OutputKind;

/** How to read a teacher: which output to distill and what it holds (the `teacherHead` and `teacherOutput` keys). */
export interface TeacherOptions {
  /**
   * The output to distill: for a GraphModel a signature key ("output_1"), node name ("Identity_1")
   * or tensor name ("Identity_1:0"); for a LayersModel an output layer's name. Required when the
   * model has several outputs.
   */
  head?: string;
  /** What the chosen head outputs (default auto: a Softmax/Sigmoid last op or activation means probabilities). */
  output?: OutputSetting;
  /** ONNX teachers: the input the data feeds, when the model has several (`teacherInput`). */
  input?: string;
  /** ONNX teachers: the layout of a rank-4 input (`teacherLayout`); auto reads it off the input's and the data's shapes. */
  layout?: LayoutSetting;
  /** ONNX teachers: a value for each other input, filling its whole tensor (`teacherInputFill`). */
  inputFill?: Record<string, number>;
}

/** The `teacherLayout` setting: NCHW (PyTorch) or NHWC (TF.js, the data) for a rank-4 ONNX input. */
export type LayoutSetting = 'auto' | 'nchw' | 'nhwc';

/** A forward pass on rows in a Float32Array, with no tensor: what `predict` returns, as an array. */
export interface RowPass {
  /** What runs it, for the log, the report and the soft-target cache key: "kernel simd128". */
  label: string;
  /**
   * What its bits depend on beyond the label, for the soft-target cache key only: the kernel
   * build's hash, so that a release whose kernel computes differently (F(4x4) where F(2x2) was)
   * never reuses the entries of another.
   */
  build?: string;
  /** `rows` rows of `x` ([rows, ...inputShape]) in; [rows, outputWidth] out, in inference mode. */
  predict(x: Float32Array, rows: number): Float32Array;
  /** Threads it runs on: with more than one, the pass needs no worker threads of its own. */
  threads: number;
}

/** What the pipeline needs of a model, whichever format it was loaded from. */
export interface LoadedModel {
  format: ModelFormat | 'onnx';
  /** Input shape without the batch dimension (null for a free dimension). */
  inputShape: (number | null)[];
  outputWidth: number;
  output: OutputKind;
  params: number;
  bytes: number;
  /** One forward pass on one batch, in inference mode. */
  predict(x: Tensor): Tensor;
  /**
   * Set when the forward pass runs outside TF.js (an ONNX teacher in onnxruntime, whose runs are
   * asynchronous): then it is the forward pass, and `predict` throws. Callers that can meet such a
   * teacher (the soft-target pass, timing) use this when it is there.
   */
  predictAsync?(x: Tensor): Promise<Tensor>;
  /**
   * Set when a pass over many rows runs on plain arrays outside TF.js (a Sequential teacher the
   * training kernel plans, distill/kernel-teacher.ts); `predict` and `predictAsync` stay TF.js's,
   * for timing the model as shipped.
   */
  rowPass?: RowPass;
  /** Set when the model runs outside TF.js: onnxruntime's version and execution provider. */
  runtime?: TeacherRuntime;
  /** Present for LayersModels, which the student always is. */
  layers?: LayersModel;
  /** sha256 of topology and weights, for content-addressed caches (set for models read from disk). */
  fingerprint?: string;
  /** Teachers: the output `predict` returns (a signature key, node or layer name). */
  head?: string;
  /** Teachers: the options they were loaded with, so a worker thread can load one the same way. */
  teacherOptions?: TeacherOptions;
  /** How the model was read, for the run's log: the head chosen, a width found by running it, a sigmoid read as two classes. */
  notes?: string[];
  /** Teachers: what the reader must know about the outputs (they look like probabilities read as logits); the run's report carries them. */
  warnings?: string[];
  /** Teachers whose head has one unit, widened to two classes: how that unit was read. */
  oneUnit?: OutputKind;
  dispose(): void;
}
