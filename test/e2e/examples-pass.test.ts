import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { loadConfig } from '../../src/config/load.js';
import type { Report } from '../../src/report/report.js';
import { captureIo, EXAMPLE } from '../helpers.js';
import { withoutOnnxRuntime } from '../onnx-runtime.js';

// Issue #23: every config under fixtures/example/ passes as shipped (its epochs, its gates): one
// run each. A config whose teacher is ONNX needs onnxruntime-node, and is skipped where it is not
// installed (test/onnx-runtime.ts says why, and fails instead under DISTILL_GATE_REQUIRE_ONNXRUNTIME=1).

const configs = readdirSync(EXAMPLE)
  .filter((file) => /\.(ya?ml|json)$/.test(file))
  .sort();

describe('the bundled examples, as shipped', () => {
  it('are there', () => {
    expect(configs).toEqual(expect.arrayContaining(['distill-gate.yml', 'distill-gate-onnx.yml']));
  });

  for (const file of configs) {
    const config = path.join(EXAMPLE, file);
    const onnx = /^teacher:\s*['"]?[^\s'"]+\.onnx\b/im.test(readFileSync(config, 'utf8'));
    it.skipIf(onnx && withoutOnnxRuntime)(`fixtures/example/${file} passes`, async () => {
      const loaded = await loadConfig(config);
      expect(Object.keys(loaded.gates).length, 'an example gates something').toBeGreaterThan(0);
      const out = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-example-'));
      const capture = captureIo();
      const code = await main(['run', '--config', config, '--out', out, '--quiet'], capture.io);
      const report = JSON.parse(await readFile(path.join(out, 'report.json'), 'utf8')) as Report;
      const failing = report.gates
        .filter((gate) => gate.status !== 'pass')
        .map((gate) => `${gate.metric} ${gate.status}: ${gate.note ?? gate.value}`);
      expect(failing).toEqual([]);
      expect([report.verdict, code]).toEqual(['pass', 0]);
      expect(report.training.epochs).toBe(loaded.distill.epochs);
    });
  }
});
