/**
 * The bad-input corpus: each case breaks one thing in a scratch copy of the bundled example and
 * states the message distill-gate must answer with (exit 2, naming the culprit and what is valid).
 * Binary and large inputs are generated here rather than committed.
 */
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { encodeNpy } from '../../src/data/npy.js';
import { GRAPH_MODELS } from '../../fixtures/graph-models.js';
import { quickConfig } from '../helpers.js';

export interface CorpusCase {
  area: 'config' | 'models' | 'data' | 'gates';
  name: string;
  /** Breaks the workspace (which starts as a valid quick config over the example). */
  setup: (dir: string) => Promise<void>;
  message: RegExp;
}

const config = (dir: string, text: string) => writeFile(path.join(dir, 'distill-gate.yml'), text);
const withDistill = (distill: string) => (dir: string) => config(dir, quickConfig({ distill }));
const withGates = (gates: string) => (dir: string) => config(dir, quickConfig({ gates }));
const withStudent = (student: string) => (dir: string) => config(dir, quickConfig({ student }));
const teacherJson = (dir: string) => path.join(dir, 'models/teacher/model.json');
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a model.json edited freely by each case
const editTeacher = (edit: (json: Record<string, any>) => void) => async (dir: string) => {
  const json = JSON.parse(await readFile(teacherJson(dir), 'utf8'));
  edit(json);
  await writeFile(teacherJson(dir), JSON.stringify(json));
};
const npyHeaderEdit = (file: string, from: string, to: string) => async (dir: string) => {
  const target = path.join(dir, 'data', file);
  const text = (await readFile(target)).toString('latin1');
  await writeFile(target, Buffer.from(text.replace(from, to.padEnd(from.length)), 'latin1'));
};
const csvData = (train: string, label?: string) => async (dir: string) => {
  await writeFile(path.join(dir, 'data/train.csv'), train);
  await config(
    dir,
    quickConfig({
      data: `  train: { csv: data/train.csv${label ? `, label: ${label}` : ''} }\n  eval:  { x: data/eval_x.npy, y: data/eval_y.npy }`,
    }),
  );
};
/** A valid CSV header and rows for the 64-feature example, with `row` replaced where given. */
const csvRows = (rows: number, broken?: { at: number; line: string }) => {
  const header = [...Array.from({ length: 64 }, (_, i) => `f${i}`), 'label'].join(',');
  const lines = Array.from({ length: rows }, (_, r) =>
    broken?.at === r ? broken.line : [...Array(64).fill('0.5'), String(r % 10)].join(','),
  );
  return `${header}\n${lines.join('\n')}\n`;
};

export const CASES: CorpusCase[] = [
  // config
  {
    area: 'config',
    name: 'YAML syntax error',
    setup: (d) => config(d, 'teacher: [models/teacher/model.json\nstudent: {'),
    message: /distill-gate\.yml:\d+:\d+: invalid YAML/,
  },
  {
    area: 'config',
    name: 'config file missing',
    setup: async (d) => {
      await writeFile(path.join(d, 'other.yml'), '');
      await (await import('node:fs/promises')).rm(path.join(d, 'distill-gate.yml'));
    },
    message: /distill-gate\.yml: cannot read the config file \(ENOENT\)/,
  },
  {
    area: 'config',
    name: 'empty config',
    setup: (d) => config(d, ''),
    message: /must be a mapping with at least teacher, student, data/,
  },
  {
    area: 'config',
    name: 'unknown top-level key',
    setup: (d) => config(d, `${quickConfig()}distil: { epochs: 1 }\n`),
    message: /distil: unknown key\. Did you mean "distill"\?/,
  },
  {
    area: 'config',
    name: 'unknown distill key',
    setup: withDistill('{ epoch: 3 }'),
    message: /distill\.epoch: unknown key\. Did you mean "epochs"\?/,
  },
  {
    area: 'config',
    name: 'duplicate key',
    setup: (d) => config(d, `${quickConfig()}teacher: x.json\n`),
    message: /invalid YAML: Map keys must be unique/,
  },
  {
    area: 'config',
    name: 'epochs of a wrong type',
    setup: withDistill('{ epochs: many }'),
    message: /distill\.epochs: expected number, got "many"/,
  },
  {
    area: 'config',
    name: 'zero epochs',
    setup: withDistill('{ epochs: 0 }'),
    message: /distill\.epochs: must be > 0 \(got 0\)/,
  },
  {
    area: 'config',
    name: 'negative epochs',
    setup: withDistill('{ epochs: -3 }'),
    message: /distill\.epochs: must be > 0 \(got -3\)/,
  },
  {
    area: 'config',
    name: 'fractional epochs',
    setup: withDistill('{ epochs: 2.5 }'),
    message: /distill\.epochs: expected int/,
  },
  {
    area: 'config',
    name: 'zero batch size',
    setup: withDistill('{ batchSize: 0 }'),
    message: /distill\.batchSize: must be > 0 \(got 0\)/,
  },
  {
    area: 'config',
    name: 'negative batch size',
    setup: withDistill('{ batchSize: -64 }'),
    message: /distill\.batchSize: must be > 0 \(got -64\)/,
  },
  {
    area: 'config',
    name: 'zero threads',
    setup: withDistill('{ threads: 0 }'),
    message: /distill\.threads: must be auto or a whole number of threads from 1 to 256 \(got 0\)/,
  },
  {
    area: 'config',
    name: 'threads as a word other than auto',
    setup: withDistill('{ threads: all }'),
    message: /distill\.threads: must be auto or a whole number of threads from 1 to 256 \(got "all"\)/,
  },
  {
    area: 'config',
    name: 'zero temperature',
    setup: withDistill('{ temperature: 0 }'),
    message: /distill\.temperature: must be > 0 \(got 0\)/,
  },
  {
    area: 'config',
    name: 'negative temperature',
    setup: withDistill('{ temperature: -1 }'),
    message: /distill\.temperature: must be > 0 \(got -1\)/,
  },
  {
    area: 'config',
    name: 'alpha above 1',
    setup: withDistill('{ alpha: 1.5 }'),
    message: /distill\.alpha: must be <= 1 \(got 1\.5\)/,
  },
  {
    area: 'config',
    name: 'alpha below 0',
    setup: withDistill('{ alpha: -0.2 }'),
    message: /distill\.alpha: must be >= 0 \(got -0\.2\)/,
  },
  {
    area: 'config',
    name: 'zero learning rate',
    setup: withDistill('{ learningRate: 0 }'),
    message: /distill\.learningRate: must be > 0/,
  },
  {
    area: 'config',
    name: 'unknown backend',
    setup: (d) => config(d, `${quickConfig()}backend: cuda\n`),
    message: /backend: must be one of "auto", "tensorflow-gpu", "webgpu", "tensorflow", "wasm", "cpu" \(got "cuda"\)/,
  },
  {
    area: 'config',
    name: 'unknown student layer type',
    setup: withStudent('  layers:\n    - { type: dense2, units: 10 }'),
    message: /student\.layers\.0\.type: must be one of .* \(got "dense2"\)\. Did you mean "dense"\?/,
  },
  {
    area: 'config',
    name: 'student with neither layers nor model',
    setup: withStudent('  layer: []'),
    message: /student\.layer: unknown key\. Did you mean "layers"\?/,
  },
  {
    area: 'config',
    name: 'empty student layer list',
    setup: withStudent('  layers: []'),
    message: /student\.layers: must be >= 1 items/,
  },
  {
    area: 'config',
    name: 'invalid student layer arguments',
    setup: withStudent('  layers:\n    - { type: dense, units: -4 }'),
    message: /student\.layers\[0\] \(dense\): /,
  },
  {
    area: 'config',
    name: 'teacher missing from config',
    setup: (d) => config(d, quickConfig().replace('teacher: models/teacher/model.json', '')),
    message: /teacher: is required/,
  },
  {
    area: 'config',
    name: 'eval set missing',
    setup: (d) => config(d, quickConfig({ data: '  train: { x: data/train_x.npy, y: data/train_y.npy }' })),
    message: /data\.eval: is required/,
  },
  // gates
  {
    area: 'gates',
    name: 'gate on an unknown metric',
    setup: withGates('  agreement.top3: ">= 0.9"'),
    message:
      /gates\.agreement\.top3: no metric is named "agreement\.top3"\. Did you mean "agreement\.top1"\? Metrics this run measures: /,
  },
  {
    area: 'gates',
    name: 'threshold that does not parse',
    setup: withGates('  kl: "small"'),
    message: /gates\.kl: threshold "small" does not parse; write an operator and a number/,
  },
  {
    area: 'gates',
    name: 'reversed operator',
    setup: withGates('  kl: "=< 0.1"'),
    message: /gates\.kl: threshold "=< 0\.1" does not parse/,
  },
  {
    area: 'gates',
    name: 'bare number threshold',
    setup: withGates('  kl: 0.1'),
    message: /gates\.kl: a bare number \(0\.1\) is ambiguous; write a comparison such as ">= 0\.1"/,
  },
  {
    area: 'gates',
    name: 'gate object without a bound',
    setup: withGates('  kl: { level: warn }'),
    message: /gates\.kl: names no bound; give at least one of min, max, maxDrop, maxIncrease/,
  },
  {
    area: 'gates',
    name: 'relative bound that does not parse',
    setup: withGates('  kl: { maxIncrease: "a lot" }'),
    message: /gates\.kl\.maxIncrease: "a lot" does not parse; give a non-negative number .* or a percentage/,
  },
  {
    area: 'gates',
    name: 'unknown gate level',
    setup: withGates('  kl: { max: 1, level: fatal }'),
    message: /gates\.kl\.level: must be one of "error", "warn" \(got "fatal"\)/,
  },
  {
    area: 'gates',
    name: 'accuracy gate without eval labels',
    setup: (d) =>
      config(
        d,
        quickConfig({
          data: '  train: { x: data/train_x.npy, y: data/train_y.npy }\n  eval:  { x: data/eval_x.npy }',
          gates: '  accuracy.student: ">= 0.9"',
        }),
      ),
    message: /gates\.accuracy\.student: no metric is named "accuracy\.student"/,
  },
  // models
  {
    area: 'models',
    name: 'teacher file missing',
    setup: (d) => config(d, quickConfig().replace('models/teacher/model.json', 'models/none/model.json')),
    message: /models\/none\/model\.json: cannot read the model file \(ENOENT\)\. Expected a TF\.js model\.json/,
  },
  {
    area: 'models',
    name: 'model.json that is not JSON',
    setup: (d) => writeFile(teacherJson(d), '{"modelTopology": '),
    message: /model\.json: is not valid JSON .* Expected a TF\.js model\.json/,
  },
  {
    area: 'models',
    name: 'model.json without topology',
    setup: (d) => writeFile(teacherJson(d), '{"weightsManifest": []}'),
    message: /model\.json: has no "modelTopology": expected a TF\.js model\.json/,
  },
  {
    area: 'models',
    name: 'layer class TF.js does not know',
    setup: editTeacher((j) => {
      j.modelTopology.config.layers[1].class_name = 'FancyDense';
    }),
    message:
      /model\.json: TF\.js could not build the teacher from it: .*FancyDense.*Check that every layer class is one TF\.js knows/,
  },
  {
    area: 'models',
    name: 'weight manifest lists a missing shard',
    setup: editTeacher((j) => {
      j.weightsManifest[0].paths = ['missing.bin'];
    }),
    message: /missing\.bin: weight shard listed in model\.json cannot be read \(ENOENT\)/,
  },
  {
    area: 'models',
    name: 'short weight shard',
    setup: async (d) => {
      const shard = path.join(d, 'models/teacher/group1-shard1of1.bin');
      await writeFile(shard, (await readFile(shard)).subarray(0, 4096));
    },
    message:
      /group1-shard1of1\.bin: weight shards of group 0 hold 4096 bytes but the manifest's \d+ weights need \d+ \(a truncated or mismatched shard\?\)/,
  },
  {
    area: 'models',
    name: 'shard path leaving the model folder',
    setup: editTeacher((j) => {
      j.weightsManifest[0].paths = ['../../data/train_x.npy'];
    }),
    message: /weightsManifest\[0\]: shard path "\.\.\/\.\.\/data\/train_x\.npy" leaves the model's folder/,
  },
  {
    area: 'models',
    name: 'unsupported weight dtype',
    setup: editTeacher((j) => {
      j.weightsManifest[0].weights[0].dtype = 'complex128';
    }),
    message: /weightsManifest\[0\]: unsupported weight dtype "complex128"/,
  },
  {
    area: 'models',
    name: 'GraphModel given as student',
    setup: async (d) => {
      await mkdir(path.join(d, 'graph'), { recursive: true });
      await writeFile(
        path.join(d, 'graph/model.json'),
        JSON.stringify({ format: 'graph-model', modelTopology: { node: [] }, weightsManifest: [] }),
      );
      await config(d, quickConfig({ student: '  model: graph/model.json' }));
    },
    message: /graph\/model\.json: is a GraphModel, which cannot be trained: .*must be a LayersModel/,
  },
  {
    area: 'models',
    name: 'multi-output GraphModel teacher without teacherHead',
    setup: async (d) => {
      await cp(path.join(GRAPH_MODELS, 'two-head'), path.join(d, 'models/two-head'), { recursive: true });
      await config(d, quickConfig().replace('models/teacher/model.json', 'models/two-head/model.json'));
    },
    message:
      /two-head\/model\.json: has 2 outputs: output_0 \(Identity:0, 3 wide\), output_1 \(Identity_1:0, 1 wide\)\. Set teacherHead to the one to distill/,
  },
  {
    area: 'models',
    name: 'teacherHead naming no output of the teacher',
    setup: (d) => config(d, quickConfig({ top: 'teacherHead: logits' })),
    message:
      /teacherHead "logits": is not an output of .*models\/teacher\/model\.json; its outputs: dense_Dense5 \([^)]*10 wide\)/,
  },
  {
    area: 'models',
    name: 'student output width differs from the teacher',
    setup: withStudent('  layers:\n    - { type: dense, units: 7 }'),
    message: /student\.layers: the student has 7 outputs but the teacher .* has 10; the last layer needs units: 10/,
  },
  {
    area: 'models',
    name: 'teacher input shape differs from the data',
    setup: async (d) => {
      await writeFile(path.join(d, 'data/train_x.npy'), encodeNpy(new Float32Array(1200 * 8), [1200, 8]));
    },
    message: /train_x\.npy: samples have shape \[8\] but the teacher .* takes \[64\]/,
  },
  // data
  {
    area: 'data',
    name: '.npy with an unsupported dtype',
    setup: npyHeaderEdit('train_x.npy', "'<f4'", "'<c8'"),
    message: /train_x\.npy: has dtype "<c8", which distill-gate does not read; supported: float32/,
  },
  {
    area: 'data',
    name: '.npy in Fortran order',
    setup: npyHeaderEdit('train_x.npy', "'fortran_order': False", "'fortran_order': True"),
    message: /train_x\.npy: is stored in Fortran order; save it in C order/,
  },
  {
    area: 'data',
    name: '.npy with a truncated body',
    setup: async (d) => {
      const f = path.join(d, 'data/eval_x.npy');
      await writeFile(f, (await readFile(f)).subarray(0, 5000));
    },
    message: /eval_x\.npy: is truncated: shape \[400, 64\] of f4 needs 102400 bytes of data/,
  },
  {
    area: 'data',
    name: '.npy with a wrong magic',
    setup: (d) => writeFile(path.join(d, 'data/train_x.npy'), 'x,y\n1,2\n'),
    message: /train_x\.npy: is not a \.npy file \(wrong magic bytes; expected a file written by numpy\.save\)/,
  },
  {
    area: 'data',
    name: '.npy data file missing',
    setup: (d) => config(d, quickConfig({ data: '  train: { x: data/nope.npy }\n  eval: { x: data/eval_x.npy }' })),
    message: /data\/nope\.npy: cannot read the data file \(ENOENT\)/,
  },
  {
    area: 'data',
    name: 'eval file missing',
    setup: (d) =>
      config(d, quickConfig({ data: '  train: { x: data/train_x.npy }\n  eval: { x: data/missing_eval.npy }' })),
    message: /missing_eval\.npy: cannot read the data file \(ENOENT\)/,
  },
  {
    area: 'data',
    name: 'CSV with ragged rows',
    setup: csvData(csvRows(80, { at: 3, line: '1,2,3' }), 'label'),
    message: /train\.csv: is not valid CSV: .*every row needs as many cells as the header/,
  },
  {
    area: 'data',
    name: 'CSV with a non-numeric cell',
    setup: csvData(csvRows(80, { at: 5, line: [...Array(63).fill('0.5'), 'abc', '1'].join(',') }), 'label'),
    message: /train\.csv:7: column "f63" holds "abc", which is not a number/,
  },
  {
    area: 'data',
    name: 'CSV without its label column',
    setup: csvData(csvRows(80), 'target'),
    message: /train\.csv: has no label column "target"; its columns are: f0, f1/,
  },
  {
    area: 'data',
    name: 'empty CSV',
    setup: csvData('', 'label'),
    message: /train\.csv: is empty; expected a header row and one row per sample/,
  },
  {
    area: 'data',
    name: 'Inf in a CSV',
    setup: csvData(csvRows(80, { at: 9, line: [...Array(63).fill('0.5'), 'Infinity', '1'].join(',') }), 'label'),
    message: /train\.csv row 11: holds Infinity at feature 63/,
  },
  {
    area: 'data',
    name: 'NaN in the features',
    setup: async (d) => {
      const x = new Float32Array(400 * 64);
      x[5 * 64 + 3] = NaN;
      await writeFile(path.join(d, 'data/eval_x.npy'), encodeNpy(x, [400, 64]));
    },
    message: /eval_x\.npy row 5: holds NaN at feature 3; every feature must be a finite number/,
  },
  {
    area: 'data',
    name: 'labels out of range',
    setup: async (d) => {
      const y = new Int32Array(1200).fill(1);
      y[17] = 10;
      await writeFile(path.join(d, 'data/train_y.npy'), encodeNpy(y, [1200]));
    },
    message: /train_y\.npy row 17: label 10 is out of range: the teacher has 10 outputs, so labels must be in \[0, 9\]/,
  },
  {
    area: 'data',
    name: 'negative label',
    setup: async (d) => {
      const y = new Int32Array(400);
      y[3] = -1;
      await writeFile(path.join(d, 'data/eval_y.npy'), encodeNpy(y, [400]));
    },
    message: /eval_y\.npy row 3: label -1 is not a class index/,
  },
  {
    area: 'data',
    name: 'non-integer labels',
    setup: async (d) => {
      const y = new Float32Array(1200);
      y[2] = 0.5;
      await writeFile(path.join(d, 'data/train_y.npy'), encodeNpy(y, [1200]));
    },
    message: /train_y\.npy row 2: label 0\.5 is not a class index \(a non-negative integer\)/,
  },
  {
    area: 'data',
    name: 'labels for another number of rows',
    setup: (d) => writeFile(path.join(d, 'data/train_y.npy'), encodeNpy(new Int32Array(1000), [1000])),
    message: /train_y\.npy: has shape \[1000\]; labels need shape \[1200\]/,
  },
  {
    area: 'data',
    name: 'data set smaller than one batch',
    setup: withDistill('{ batchSize: 5000 }'),
    message:
      /train_x\.npy \(distill\.batchSize\): the train split has 1200 samples, fewer than one batch of 5000; lower distill\.batchSize to at most 1200/,
  },
  {
    area: 'data',
    name: 'empty data set',
    setup: (d) => writeFile(path.join(d, 'data/eval_x.npy'), encodeNpy(new Float32Array(0), [0, 64])),
    message: /eval_x\.npy: the eval split is empty; it needs at least one sample/,
  },
  {
    area: 'data',
    name: 'baseline that is not a report',
    setup: async (d) => {
      await writeFile(path.join(d, 'base.json'), '{"metrics": {}}');
      await config(d, quickConfig({ top: 'baseline: base.json' }));
    },
    message: /base\.json: has no schemaVersion; expected a report\.json written by distill-gate/,
  },
];
