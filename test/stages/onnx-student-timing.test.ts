/**
 * measure.runtime onnxruntime through a whole run: the student is timed as student/student.onnx
 * in onnxruntime-node (where it will run), and the report and its markdown say so; without
 * onnxruntime-node the run stops before training with the install command (exit 2).
 */
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { runPipeline } from '../../src/pipeline.js';
import { configErrorOf, exampleWorkspace, quickConfig } from '../helpers.js';
import { refusalBeforeTraining } from './refusal.js';
import { withoutOnnxRuntime } from '../onnx-runtime.js';

const QUICK_MEASURE = 'measure: { warmup: 1, rounds: 3, throughputBatch: 64 }';
/** quickConfig with `measure.runtime: onnxruntime` and export.format onnx (or `exportTop` in its place). */
const onnxTimedConfig = (exportTop = 'export: { format: onnx }') =>
  quickConfig({ top: exportTop }).replace(
    QUICK_MEASURE,
    'measure: { warmup: 1, rounds: 3, throughputBatch: 64, runtime: onnxruntime }',
  );

const cwd = process.cwd();
afterEach(() => process.chdir(cwd));

describe('the measure.runtime key', () => {
  it('takes tfjs or onnxruntime, and refuses anything else at file:line:column', () => {
    expect(configErrorOf(quickConfig().replace(QUICK_MEASURE, 'measure: { runtime: onnx }'))).toMatch(
      /^\/cfg\/distill-gate\.yml:\d+:\d+ measure\.runtime: must be one of "tfjs", "onnxruntime" \(got "onnx"\)/,
    );
  });

  it('refuses onnxruntime without export.format onnx at its line and column, saying to set it', () => {
    expect(configErrorOf(onnxTimedConfig(''))).toMatch(
      /^\/cfg\/distill-gate\.yml:\d+:\d+ measure\.runtime: onnxruntime times student\/student\.onnx, which only export\.format onnx writes: set `export: \{ format: onnx \}`/,
    );
    expect(configErrorOf(onnxTimedConfig('export: { format: tfjs }'))).toMatch(
      /measure\.runtime: .*set `export: \{ format: onnx \}`/,
    );
  });
});

describe.skipIf(withoutOnnxRuntime)('measure.runtime onnxruntime in a run', () => {
  it('times the student as student.onnx in onnxruntime-node and names that runtime in the report', async () => {
    const dir = await exampleWorkspace(onnxTimedConfig());
    const config = await loadConfig(path.join(dir, 'distill-gate.yml'));
    expect(config.measure.runtime).toBe('onnxruntime');
    const lines: string[] = [];
    const { report, markdown } = await runPipeline(config, {
      outDir: path.join(dir, 'out'),
      searchFrom: [dir],
      log: (line) => lines.push(line),
    });

    expect(report.verdict).toBe('pass');
    for (const metric of ['speed.teacherMs', 'speed.studentMs', 'speed.speedup', 'speed.studentThroughput']) {
      expect(report.metrics[metric], metric).toBeGreaterThan(0);
    }
    expect(report.student.runtime).toMatch(/^onnxruntime-node \d+\.\d+\.\d+ \((cpu|cuda)/);
    expect(report.teacher.runtime).toBeUndefined();
    expect(lines.some((line) => /^speed: student timed in onnxruntime-node .* \(measure\.runtime\)$/.test(line))).toBe(
      true,
    );
    expect(markdown).toMatch(
      /The teacher ran in TF\.js on \w+, the student in onnxruntime-node \S+ \\\(.*\\\) \(student\.onnx, measure\.runtime\)\./,
    );
    expect(markdown).toMatch(/; student timed in onnxruntime-node /);
    // student.onnx is still checked against TF.js, as export.format onnx does.
    expect(report.export?.onnx?.status).toBe('checked');
  });
});

describe('measure.runtime onnxruntime without onnxruntime-node', () => {
  it('stops before training with the install command', async () => {
    const dir = await exampleWorkspace(onnxTimedConfig());
    // The run looks for onnxruntime-node in the working directory and the config's folder: neither has it here.
    process.chdir(dir);
    expect(await refusalBeforeTraining(dir)).toMatch(
      /^measure\.runtime: onnxruntime times student\/student\.onnx in onnxruntime-node, which is not installed in .*Install it in the workspace: `ONNXRUNTIME_NODE_INSTALL=skip npm install --no-save onnxruntime-node@/,
    );
  });
});
