import { describe, expect, it } from 'vitest';
import { buildReport, type RunRecord } from '../../src/report/build.js';
import { buildCutShortReport } from '../../src/report/cut-short.js';
import { renderMarkdown } from '../../src/report/markdown.js';
import { parseReport } from '../../src/report/report-schema.js';
import { sampleEnvironment, sampleReport } from '../sample-report.js';

// An ONNX teacher runs (and is timed) in onnxruntime-node, the student in TF.js: report.json and
// the markdown name the teacher's runtime and execution provider beside the student's backend.

const ORT = 'onnxruntime-node 1.30.0 (cpu, 2 threads)';

const environment = sampleEnvironment;

function record(teacher: RunRecord['session']['teacher']): RunRecord {
  return {
    config: {
      teacher: '/repo/models/teacher.onnx',
      student: { layers: [{ type: 'dense', units: 10 }] },
      distill: { temperature: 4, alpha: 0.9, epochs: 1, batchSize: 64, learningRate: 0.001, seed: 7 },
      file: '/repo/distill-gate.yml',
    },
    session: {
      backend: { name: 'wasm' },
      teacher,
      student: { params: 650, bytes: 2600 },
      train: { size: 100 },
      evalSet: { size: 50 },
    },
    distillation: {
      training: { epochsCompleted: 1, loss: [0.5] },
      seconds: 1,
      teacherSeconds: 0.5,
      softTargets: 'computed',
    },
    measurement: { metrics: {}, environment },
    judgement: { verdict: 'pass', status: 'complete', gates: [], reasons: [], environmentDiffers: false },
    studentDir: '/out/student',
    createdAt: '2026-11-25T12:00:00.000Z',
  };
}

describe("the teacher's runtime in the report", () => {
  it('report.json names the runtime of an ONNX teacher, and none for a TF.js teacher', () => {
    const onnx = buildReport(
      record({ format: 'onnx', output: 'probabilities', params: 10, bytes: 40, runtime: { label: ORT } }),
    );
    expect(onnx.teacher).toEqual({
      path: '/repo/models/teacher.onnx',
      format: 'onnx',
      output: 'probabilities',
      params: 10,
      bytes: 40,
      runtime: ORT,
    });
    expect(
      buildReport(record({ format: 'layers-model', output: 'logits', params: 10, bytes: 40 })).teacher,
    ).not.toHaveProperty('runtime');
    // A run cut short after loading names it too.
    const cut = buildCutShortReport({
      config: record({ format: 'onnx', output: 'logits', params: 1, bytes: 4 }).config,
      reason: 'cancelled',
      phase: 'measuring',
      models: {
        teacher: { format: 'onnx', output: 'logits', params: 1, bytes: 4, runtime: { label: ORT } },
        student: { params: 1, bytes: 4 },
      },
      metrics: {},
      gates: [],
      createdAt: '2026-11-25T12:00:00.000Z',
    });
    expect(cut.teacher.runtime).toBe(ORT);
  });

  it('reads back from report.json (a baseline, compare, merge)', () => {
    const report = sampleReport({
      teacher: { path: 'teacher.onnx', format: 'onnx', output: 'logits', params: 1, bytes: 4, runtime: ORT },
    });
    expect(parseReport(JSON.parse(JSON.stringify(report)), 'report.json', 'trusted').teacher.runtime).toBe(ORT);
  });

  it("the markdown's speed section says where each side ran, and the footer names the teacher's runtime", () => {
    const markdown = renderMarkdown(
      sampleReport({
        teacher: { path: 'teacher.onnx', format: 'onnx', output: 'logits', params: 1, bytes: 4, runtime: ORT },
      }),
    );
    // Parentheses are escaped, as everything from report.json is in markdown.
    const escaped = 'onnxruntime-node 1.30.0 \\(cpu, 2 threads\\)';
    expect(markdown).toContain(`The teacher ran in ${escaped}, the student in TF.js on wasm.`);
    expect(markdown).toMatch(
      /<sub>Backend wasm .*; teacher in onnxruntime-node 1\.30\.0 \\\(cpu, 2 threads\\\); distillation/,
    );
    const tfjs = renderMarkdown(sampleReport());
    expect(tfjs).not.toContain('The teacher ran in');
    expect(tfjs).not.toContain('teacher in ');
  });
});
