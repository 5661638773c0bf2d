import { z } from 'zod';

export const BACKENDS = ['auto', 'tensorflow-gpu', 'webgpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];
/** The backends that run on a GPU: what the action's require-gpu input asks the run to have resolved. */
export const GPU_BACKENDS: readonly BackendName[] = ['tensorflow-gpu', 'webgpu'];

/** Layer types a student stack may use; each maps to the `tf.layers` factory of the same name. */
export const STUDENT_LAYER_TYPES = [
  'dense',
  'conv2d',
  'depthwiseConv2d',
  'separableConv2d',
  'maxPooling2d',
  'averagePooling2d',
  'globalAveragePooling2d',
  'globalMaxPooling2d',
  'flatten',
  'reshape',
  'dropout',
  'batchNormalization',
  'layerNormalization',
  'activation',
] as const;

const positiveInt = z.number().int().positive();
const path = z.string().min(1);

const layerSpec = z
  .object({ type: z.enum(STUDENT_LAYER_TYPES) })
  // Every other key is passed to the tf.layers factory, which validates it (errors are wrapped
  // with the layer's index), so the schema does not duplicate TF.js's argument lists.
  .catchall(z.unknown());

const student = z.union([z.strictObject({ layers: z.array(layerSpec).min(1) }), z.strictObject({ model: path })]);

/**
 * A candidate of the sweep (`students:`): a name and a student as `student:` takes it, or a family
 * of them: `widths` and a stack whose values `"{width}"` take each width in turn (names too).
 * Placeholders, names and widths are checked by config/students.ts, where errors can be located.
 */
const candidateName = z.string().min(1).max(64);
const candidate = z.union([
  z.strictObject({
    name: candidateName,
    layers: z.array(layerSpec).min(1),
    widths: z.array(positiveInt).min(1).max(64).optional(),
  }),
  z.strictObject({ name: candidateName, model: path }),
]);

const npySplit = z.strictObject({ x: path, y: path.optional() });
const csvSplit = z.strictObject({ csv: path, label: z.string().min(1).optional() });
/** A class-per-folder tree of PNG/JPEG files: the label is each file's parent folder. */
const imageSplit = z.strictObject({
  images: path,
  /** [height, width] every image is resized to (bilinear, half-pixel centres). */
  size: z.tuple([positiveInt, positiveInt]),
  channels: z.literal([1, 3, 4]).default(3),
});
const fileSplit = z.union([npySplit, csvSplit]);
const split = z.union([...fileSplit.options, imageSplit]);
/** Per channel, or one value for every channel. */
const perChannel = z.union([z.number(), z.array(z.number()).min(1)]);
/** How image pixels (0..255) become the teacher's input: (pixel * scale - mean) / std, per channel. */
const normalize = z.strictObject({
  scale: z
    .number()
    .positive()
    .default(1 / 255),
  mean: perChannel.default(0),
  std: z.union([z.number().positive(), z.array(z.number().positive()).min(1)]).default(1),
});

/** Seeded augmentation of image-shaped training rows, drawn anew each epoch; the teacher answers the augmented rows. */
const augment = z.strictObject({
  /** Mirror left-right with probability 1/2. */
  flip: z.boolean().default(false),
  /** Shift by up to `padding` pixels each way, filling with 0 (a random crop of the zero-padded image). */
  crop: z.strictObject({ padding: positiveInt }).optional(),
  /** Add one value drawn from [-brightness, brightness] to every sample of the image. */
  brightness: z.number().nonnegative().default(0),
  /** Scale each channel's deviation from its mean by a factor drawn from [1 - contrast, 1 + contrast]. */
  contrast: z.number().min(0).max(1).default(0),
  /** By default distill.seed. */
  seed: z.number().int().nonnegative().optional(),
});

const distill = z.strictObject({
  temperature: z.number().positive().default(4),
  alpha: z.number().min(0).max(1).default(0.9),
  epochs: positiveInt.default(30),
  batchSize: positiveInt.default(64),
  learningRate: z.number().positive().default(0.001),
  seed: z.number().int().nonnegative().default(7),
  augment: augment.optional(),
  /**
   * Threads the WebAssembly kernel's training step runs on (a data-parallel step; the same bits
   * on every run for a given count): `auto` takes the machine's cores, capped so that each thread
   * has at least 16 rows of a batch; other training steps run on one. A teacher's pass in the
   * kernel (kernel-teacher.ts) splits its rows over as many. Unset means auto.
   */
  threads: z
    .custom<'auto' | number>(
      (value) => value === 'auto' || (Number.isInteger(value) && (value as number) >= 1 && (value as number) <= 256),
      { error: 'must be auto or a whole number of threads from 1 to 256' },
    )
    .optional(),
});

const measure = z.strictObject({
  // Batch-1 calls run several times slower until V8 and the backend have warmed up (~hundreds of calls).
  warmup: z.number().int().nonnegative().default(100),
  rounds: positiveInt.default(50),
  throughputBatch: positiveInt.default(256),
  topK: positiveInt.default(5),
  /** Longest time spent timing a speed gate's rounds (absolute bounds, and the new student against the baseline's) before calling it inconclusive. */
  speedBudgetSeconds: z.number().positive().default(20),
  /** How a speed gate whose interval stayed across its threshold (inconclusive) counts. */
  inconclusive: z.enum(['pass', 'fail']).default('pass'),
  /** The backend teacher and student are timed on (the one you deploy on); by default the run's. */
  backend: z.enum(BACKENDS).exclude(['auto']).optional(),
  /**
   * Where the student is timed: `tfjs` (the default, also when unset) or `onnxruntime`, which times
   * student/student.onnx in onnxruntime-node (where it will run); it needs `export.format: onnx`.
   */
  runtime: z.enum(['tfjs', 'onnxruntime']).optional(),
});

/**
 * The default gate of a quantized export (`export.quantize` other than none) whose config gates
 * no `quantized.*` metric: `quantized.agreement.top1` may fall at most this far (5 points) below
 * the float32 student's `agreement.top1`. A shipped student that outputs NaN, or that quantization
 * broke, fails the run instead of passing beside a folded section.
 */
export const DEFAULT_QUANTIZED_AGREEMENT_DROP = 0.05;

/** How the student is written to student/: the weights that ship and what its output holds. */
const exportSettings = z.strictObject({
  /** `none` keeps float32; `float16` and `uint8` (affine per tensor) are tensorflowjs_converter's weight quantizations, which stock TF.js dequantizes on load. */
  quantize: z.enum(['none', 'float16', 'uint8']).default('none'),
  /** `auto` answers as the teacher does (a final softmax when the teacher outputs probabilities); `logits` or `probabilities` force it. */
  output: z.enum(['auto', 'logits', 'probabilities']).default('auto'),
  /**
   * `tfjs` (the default, also when unset) writes student/model.json; `onnx` also writes
   * student/student.onnx (opset 13, float32, NHWC input), checked in the run against TF.js in
   * onnxruntime-node (`export.onnxMaxAbsDiff`).
   */
  format: z.enum(['tfjs', 'onnx']).optional(),
});

const gateObject = z.strictObject({
  // A number, or a percentage ("93%") on a metric that is a fraction (gates.ts parses both).
  min: z.union([z.number(), z.string()]).optional(),
  max: z.union([z.number(), z.string()]).optional(),
  maxDrop: z.union([z.number(), z.string()]).optional(),
  maxIncrease: z.union([z.number(), z.string()]).optional(),
  level: z.enum(['error', 'warn']).default('error'),
});
export const gateSpec = z.union([z.string(), z.number(), gateObject]);
export type GateSpec = z.input<typeof gateSpec>;

export const configSchema = z.strictObject({
  teacher: path,
  teacherOutput: z.enum(['auto', 'logits', 'probabilities']).default('auto'),
  /** Which output of a multi-output teacher to distill: a signature key, node or tensor name, or an output layer's name. */
  teacherHead: z
    .string()
    .refine((name) => name.length > 0, {
      message: "must name one of the teacher's outputs (a signature key, node name or output layer name)",
    })
    .optional(),
  /** ONNX teachers with several inputs: the one the data feeds. */
  teacherInput: z
    .string()
    .refine((name) => name.length > 0, { message: "must name one of the ONNX teacher's inputs" })
    .optional(),
  /** ONNX teachers with several inputs: one value filling each other input (an attention mask of 1s, say). */
  teacherInputFill: z.record(z.string(), z.number()).optional(),
  /** ONNX teachers: the layout of a rank-4 input; auto reads it off the input's and the data's shapes (NCHW where they say so). */
  teacherLayout: z.enum(['auto', 'nchw', 'nhwc']).default('auto'),
  student,
  /** Candidate students trained from the same soft targets and measured beside `student` (the sweep); information only, never gated. */
  students: z.array(candidate).min(1).max(64).optional(),
  data: z.strictObject({
    train: split,
    eval: split,
    /** Splits larger than this (MiB; .npy and images as float32, CSV at half its size) are read from disk a chunk at a time. */
    streamAboveMB: z.number().nonnegative().default(256),
    /** Image folders: the class of each label folder, in the order of the teacher's outputs; `sorted` numbers them alphabetically. */
    classes: z.union([z.array(z.string().min(1)).min(1), z.literal('sorted')]).optional(),
    normalize: normalize.optional(),
  }),
  distill: distill.prefault({}),
  measure: measure.prefault({}),
  export: exportSettings.prefault({}),
  gates: z.record(z.string(), gateSpec).default({}),
  backend: z.enum(BACKENDS).default('auto'),
  baseline: path.optional(),
  /** Folder for cached teacher soft targets (keep it with actions/cache). */
  cacheDir: path.optional(),
});

export type RawConfig = z.infer<typeof configSchema>;
export type LayerSpec = z.infer<typeof layerSpec>;
export type CandidateSpec = z.infer<typeof candidate>;
/** A split held in a data file (.npy or CSV). */
export type SplitSpec = z.infer<typeof fileSplit>;
/** A split as the config may give it: a data file or an image folder. */
export type DataSplitSpec = z.infer<typeof split>;
export type ImageSplitSpec = z.infer<typeof imageSplit>;
export type NormalizeSettings = z.infer<typeof normalize>;
export type DistillSettings = z.infer<typeof distill>;
export type AugmentSettings = z.infer<typeof augment>;
export type MeasureSettings = z.infer<typeof measure>;
export type ExportSettings = z.infer<typeof exportSettings>;

/** Keys each object accepts, for "did you mean" hints on unknown keys. */
export const KNOWN_KEYS: Record<string, readonly string[]> = {
  '': Object.keys(configSchema.shape),
  distill: Object.keys(distill.shape),
  'distill.augment': Object.keys(augment.shape),
  'distill.augment.crop': ['padding'],
  measure: Object.keys(measure.shape),
  export: Object.keys(exportSettings.shape),
  data: ['train', 'eval', 'streamAboveMB', 'classes', 'normalize'],
  'data.train': ['x', 'y', 'csv', 'label', 'images', 'size', 'channels'],
  'data.eval': ['x', 'y', 'csv', 'label', 'images', 'size', 'channels'],
  'data.normalize': Object.keys(normalize.shape),
  student: ['layers', 'model'],
  students: ['name', 'layers', 'model', 'widths'],
};
