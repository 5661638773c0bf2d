import { readFile } from 'node:fs/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveBackend, type Tf } from '../../src/backend/resolve.js';
import { parseConfig } from '../../src/config/load.js';
import { inMemoryDataset } from '../../src/data/dataset.js';
import { readOnnxSummary } from '../../src/models/onnx-proto.js';
import { loadOnnxTeacher, onnxWeights, outputOp } from '../../src/models/onnx.js';
import { loadTeacherAndStudent } from '../../src/models/pair.js';
import { predictLogits } from '../../src/models/predict.js';
import {
  CONSTANT_WEIGHTS_ONNX,
  HIDDEN_SIGMOID_ONNX,
  HIDDEN_SOFTMAX_ONNX,
  SIGMOID_IN_IF_ONNX,
  SMALL_HEAD,
} from '../../fixtures/onnx-models.js';
import { randomArray } from '../helpers.js';
import { REPO, withoutOnnxRuntime } from '../onnx-runtime.js';

let tf: Tf;
beforeAll(async () => {
  ({ tf } = await resolveBackend('cpu'));
});

const rows = inMemoryDataset('rows.npy', randomArray(4 * 40, 11, 2), [4]);
const context = { data: { sampleShape: [4], source: 'rows.npy' }, searchFrom: [REPO] };
const config = (teacher: string, units: number, extra = '') =>
  parseConfig(
    `teacher: ${teacher}\nstudent: { layers: [ { type: dense, units: ${units} } ] }\ndata: { train: { x: a.npy }, eval: { x: b.npy } }\ndistill: { batchSize: 8 }\n${extra}`,
    '/cfg/c.yml',
  );

/** z = x W + b of the one-unit head, row by row. */
const oneUnitZ = (x: Float32Array) =>
  Array.from(
    { length: x.length / 4 },
    (_, r) =>
      SMALL_HEAD.one.bias[0] + [0, 1, 2, 3].reduce((sum, i) => sum + x[r * 4 + i] * SMALL_HEAD.one.kernel[i], 0),
  );

describe('a sigmoid inside an If (Equal -> If, as a voice-activity detector has it)', () => {
  it('is seen in the branches: the head reads as a probability', async () => {
    const summary = readOnnxSummary(await readFile(SIGMOID_IN_IF_ONNX), SIGMOID_IN_IF_ONNX);
    expect(outputOp(summary, 'prob')).toBe('sigmoid');
  });

  it.skipIf(withoutOnnxRuntime)(
    'is distilled as [1 - p, p], not as logits [0, p] that make every row class 1',
    async () => {
      const teacher = await loadOnnxTeacher(tf, SIGMOID_IN_IF_ONNX, { output: 'auto' }, context);
      try {
        expect(teacher.output).toBe('probabilities');
        expect(teacher.notes?.join('\n')).toMatch(/has one unit, read as a probability p \(it ends in a sigmoid\)/);
        const logits = await predictLogits(tf, teacher, rows);
        const x = await rows.read(0, rows.size);
        const z = oneUnitZ(x);
        for (let r = 0; r < rows.size; r++) {
          const p = 1 / (1 + Math.exp(-z[r]));
          expect(Math.exp(logits[2 * r + 1])).toBeCloseTo(p, 5);
          expect(Math.exp(logits[2 * r])).toBeCloseTo(1 - p, 5);
        }
        // Both classes are answered: the rows with z < 0 are class 0.
        const classOne = z.filter((v) => v > 0).length;
        expect(classOne).toBeGreaterThan(0);
        expect(classOne).toBeLessThan(rows.size);
      } finally {
        teacher.dispose();
      }
    },
  );
});

describe('weights stored as Constant nodes (paddle2onnx)', () => {
  it('count as the teacher parameters and bytes', async () => {
    const summary = readOnnxSummary(await readFile(CONSTANT_WEIGHTS_ONNX), CONSTANT_WEIGHTS_ONNX);
    expect(summary.initializers).toEqual([]);
    expect(onnxWeights(summary)).toEqual({ params: 15, bytes: 60 });
    // Tensors inside subgraphs count too: the If fixture's Constant (one int64) and its initializers.
    const ifSummary = readOnnxSummary(await readFile(SIGMOID_IN_IF_ONNX), SIGMOID_IN_IF_ONNX);
    expect(onnxWeights(ifSummary)).toEqual({ params: 5, bytes: 5 * 4 + 8 });
  });

  it.skipIf(withoutOnnxRuntime)('give the loaded teacher a size, so that size.ratio is measured', async () => {
    const teacher = await loadOnnxTeacher(tf, CONSTANT_WEIGHTS_ONNX, {}, context);
    try {
      expect(teacher.params).toBe(15);
      expect(teacher.bytes).toBe(60);
    } finally {
      teacher.dispose();
    }
  });
});

describe.skipIf(withoutOnnxRuntime)("the teacher's first batch, where its ops say nothing", () => {
  it('takes a one-unit head whose values all lie in [0, 1] as a probability, and says so', async () => {
    const { teacher, student } = await loadTeacherAndStudent(tf, config(HIDDEN_SIGMOID_ONNX, 2), rows, rows, {
      searchFrom: [REPO],
    });
    try {
      expect(teacher.output).toBe('probabilities');
      expect(teacher.oneUnit).toBe('probabilities');
      expect(teacher.notes?.filter((n) => n.includes('has one unit'))).toHaveLength(1);
      expect(teacher.warnings?.join('\n')).toMatch(
        /all lie in \[0, 1\].*read as a probability p.*set teacherOutput: logits/,
      );
      const logits = await predictLogits(tf, teacher, rows);
      const z = oneUnitZ(await rows.read(0, rows.size));
      expect(Math.exp(logits[1])).toBeCloseTo(1 / (1 + Math.exp(-z[0])), 5);
    } finally {
      teacher.dispose();
      student.dispose();
    }
  });

  it('keeps an explicit teacherOutput: logits', async () => {
    const { teacher, student } = await loadTeacherAndStudent(
      tf,
      config(HIDDEN_SIGMOID_ONNX, 2, 'teacherOutput: logits\n'),
      rows,
      rows,
      { searchFrom: [REPO] },
    );
    expect(teacher.output).toBe('logits');
    expect(teacher.warnings).toBeUndefined();
    teacher.dispose();
    student.dispose();
  });

  it('warns, naming teacherOutput, when a wider head read as logits has rows that sum to 1', async () => {
    const { teacher, student } = await loadTeacherAndStudent(tf, config(HIDDEN_SOFTMAX_ONNX, 3), rows, rows, {
      searchFrom: [REPO],
    });
    try {
      expect(teacher.output).toBe('logits');
      expect(teacher.warnings).toHaveLength(1);
      expect(teacher.warnings![0]).toMatch(
        /was read as logits .*every value on the first 32 training rows lies in \[0, 1\] and each row sums to 1.*set teacherOutput: probabilities/,
      );
    } finally {
      teacher.dispose();
      student.dispose();
    }
  });

  it('gives a head of real logits no warning', async () => {
    const { teacher, student } = await loadTeacherAndStudent(tf, config(CONSTANT_WEIGHTS_ONNX, 3), rows, rows, {
      searchFrom: [REPO],
    });
    expect(teacher.warnings).toBeUndefined();
    teacher.dispose();
    student.dispose();
  });

  it('tells a units: 1 student why the teacher has 2 outputs', async () => {
    await expect(
      loadTeacherAndStudent(tf, config(SIGMOID_IN_IF_ONNX, 1), rows, rows, { searchFrom: [REPO] }),
    ).rejects.toThrow(
      /the student has 1 outputs but the teacher \(.*\) has 2 \(its head prob has one unit, read as a probability p, which distill-gate distills as two classes, \[1 - p, p\].*\); the last layer needs units: 2\./,
    );
  });
});
