/**
 * export.format: onnx through a whole run: student/student.onnx beside model.json, checked in
 * onnxruntime-node against the TF.js student, the difference in report.json, report.md and a
 * default gate; without onnxruntime-node the file is still written and the check says why not.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveBackend } from '../../src/backend/resolve.js';
import { loadConfig } from '../../src/config/load.js';
import { loadSplit } from '../../src/data/dataset.js';
import { loadModel } from '../../src/models/model.js';
import { DEFAULT_ONNX_MAX_ABS_DIFF, maxAbsDifference } from '../../src/models/onnx-student.js';
import { runPipeline } from '../../src/pipeline.js';
import { exampleWorkspace, quickConfig } from '../helpers.js';
import { refusalBeforeTraining } from './refusal.js';
import { onnxRuntime, withoutOnnxRuntime } from '../onnx-runtime.js';

/** A student with a batch norm to fold; the example's eval split has 64 features a row. */
const STUDENT = [
  '  layers:',
  '    - { type: dense, units: 32 }',
  '    - { type: batchNormalization }',
  '    - { type: activation, activation: relu }',
  '    - { type: dropout, rate: 0.1 }',
  '    - { type: dense, units: 10 }',
].join('\n');

const cwd = process.cwd();
afterEach(() => process.chdir(cwd));

describe.skipIf(withoutOnnxRuntime)('export.format onnx in a run', () => {
  it('writes student.onnx beside model.json, checks it against TF.js, and reports and gates the difference', async () => {
    const dir = await exampleWorkspace(
      quickConfig({ top: 'export: { format: onnx, output: probabilities }', student: STUDENT }),
    );
    const config = await loadConfig(path.join(dir, 'distill-gate.yml'));
    const outDir = path.join(dir, 'out');
    const lines: string[] = [];
    const { report, markdown } = await runPipeline(config, {
      outDir,
      searchFrom: [dir],
      log: (line) => lines.push(line),
    });

    const evalSet = await loadSplit(config.data.eval, 'eval');
    const rows = Math.min(evalSet.size, 256);
    expect(report.export).toMatchObject({ quantize: 'none', output: 'probabilities', format: 'onnx' });
    expect(report.export?.onnx).toMatchObject({
      file: 'student.onnx',
      opset: 13,
      output: 'probabilities',
      status: 'checked',
      rows,
    });
    const diff = report.metrics['export.onnxMaxAbsDiff'];
    expect(diff).toBe(report.export?.onnx?.maxAbsDiff);
    expect(diff).toBeLessThanOrEqual(DEFAULT_ONNX_MAX_ABS_DIFF);
    // The default gate, with why it is there.
    const gate = report.gates.find((g) => g.metric === 'export.onnxMaxAbsDiff');
    expect(gate).toMatchObject({ op: '<=', threshold: DEFAULT_ONNX_MAX_ABS_DIFF, status: 'pass' });
    expect(gate?.note).toMatch(/default gate \(export\.format onnx\)/);
    expect(
      lines.some((line) =>
        /^onnx student: student\.onnx in onnxruntime-node .* on \d+ eval rows: max abs difference/.test(line),
      ),
    ).toBe(true);
    expect(markdown).toContain('`student/student.onnx` (ONNX opset 13');
    expect(markdown).toMatch(/on \d+ eval rows beside the TF\.js student: the largest difference of their outputs is/);
    const written = JSON.parse(await readFile(path.join(outDir, 'report.json'), 'utf8'));
    expect(written.export.onnx.status).toBe('checked');

    // The file on disk is the one checked: it answers as student/model.json does, loaded by stock TF.js.
    expect(existsSync(path.join(outDir, 'student', 'model.json'))).toBe(true);
    const bytes = await readFile(path.join(outDir, 'student', 'student.onnx'));
    const session = await onnxRuntime!.ort.InferenceSession.create(new Uint8Array(bytes));
    const x = await evalSet.read(0, 32);
    const out = await session.run({ input: new onnxRuntime!.ort.Tensor('float32', x, [32, 64]) });
    await session.release();
    const { tf } = await resolveBackend('cpu');
    const shipped = await loadModel(tf, path.join(outDir, 'student', 'model.json'), 'student');
    const y = tf.tidy(() => shipped.predict(tf.tensor(x, [32, 64])));
    const expected = (await y.data()) as Float32Array;
    y.dispose();
    shipped.dispose();
    expect(Object.keys(out)).toEqual(['probabilities']);
    expect(maxAbsDifference(expected, out.probabilities.data as Float32Array)).toBeLessThanOrEqual(
      DEFAULT_ONNX_MAX_ABS_DIFF,
    );
  });

  it('a gate on export.onnxMaxAbsDiff replaces the default one', async () => {
    const gates = '  agreement.top1: ">= 0.5"\n  export.onnxMaxAbsDiff: "<= 0"';
    const dir = await exampleWorkspace(quickConfig({ top: 'export: { format: onnx }', gates }));
    const config = await loadConfig(path.join(dir, 'distill-gate.yml'));
    const { report } = await runPipeline(config, { outDir: path.join(dir, 'out'), searchFrom: [dir] });
    const onnxGates = report.gates.filter((g) => g.metric === 'export.onnxMaxAbsDiff');
    expect(onnxGates).toHaveLength(1);
    expect(onnxGates[0]).toMatchObject({ threshold: 0 });
    // Two float32 runtimes rarely agree to the last bit on every output; whichever it is, the gate judged it.
    expect(onnxGates[0].status).toBe(report.metrics['export.onnxMaxAbsDiff'] === 0 ? 'pass' : 'fail');
  });
});

describe('export.format onnx without onnxruntime-node', () => {
  it('still writes student.onnx, says the check was skipped and why, and adds no gate', async () => {
    const dir = await exampleWorkspace(quickConfig({ top: 'export: { format: onnx }' }));
    const config = await loadConfig(path.join(dir, 'distill-gate.yml'));
    const outDir = path.join(dir, 'out');
    // The run looks for onnxruntime-node in the working directory and the config's folder: neither has it here.
    process.chdir(dir);
    const { report, markdown } = await runPipeline(config, { outDir, searchFrom: [dir] });
    expect(report.export?.onnx).toMatchObject({ status: 'skipped', file: 'student.onnx' });
    expect(report.export?.onnx?.note).toMatch(
      /onnxruntime-node is not installed in .*: student\.onnx was written but not run\. Install it to check it/,
    );
    expect(report.metrics['export.onnxMaxAbsDiff']).toBeUndefined();
    expect(report.gates.some((g) => g.metric === 'export.onnxMaxAbsDiff')).toBe(false);
    expect(markdown).toMatch(
      /`student\/student\.onnx` .* was written but not checked: onnxruntime-node is not installed/,
    );
    expect(existsSync(path.join(outDir, 'student', 'student.onnx'))).toBe(true);
    expect(existsSync(path.join(outDir, 'student', 'model.json'))).toBe(true);
  });

  it('refuses a student the ONNX export cannot write before training, at its line and column', async () => {
    const student =
      '  layers:\n    - { type: reshape, targetShape: [8, 8] }\n    - { type: layerNormalization }\n    - { type: flatten }\n    - { type: dense, units: 10 }';
    const dir = await exampleWorkspace(quickConfig({ top: 'export: { format: onnx }', student }));
    expect(await refusalBeforeTraining(dir)).toMatch(
      /distill-gate\.yml:6:7 student\.layers\[1\] \(layerNormalization\): export\.format onnx cannot write this layer: the ONNX export writes dense, conv2d/,
    );
  });
});
