import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { configErrorOf, quickConfig } from '../helpers.js';

describe('the export keys', () => {
  it("default to float32 weights and the teacher's output kind", () => {
    expect(parseConfig(quickConfig(), '/cfg/distill-gate.yml').export).toEqual({ quantize: 'none', output: 'auto' });
    expect(
      parseConfig(quickConfig({ top: 'export: { quantize: float16, output: logits }' }), '/cfg/distill-gate.yml')
        .export,
    ).toEqual({
      quantize: 'float16',
      output: 'logits',
    });
  });

  it('name a wrong value or an unknown key at file:line:column, with the nearest known one', () => {
    expect(configErrorOf(quickConfig({ top: 'export: { quantize: unit8 }' }))).toMatch(
      /^\/cfg\/distill-gate\.yml:2:21 export\.quantize: must be one of "none", "float16", "uint8" \(got "unit8"\)\. Did you mean "uint8"\?/,
    );
    expect(configErrorOf(quickConfig({ top: 'export: { quantise: uint8 }' }))).toMatch(
      /export\.quantise: unknown key\. Did you mean "quantize"\? Known keys here: quantize, output, format\./,
    );
    expect(configErrorOf(quickConfig({ top: 'export: { output: softmax }' }))).toMatch(
      /export\.output: must be one of "auto", "logits", "probabilities"/,
    );
  });

  it('take format tfjs (the default, also when unset) or onnx, and refuse anything else at file:line:column', () => {
    expect(parseConfig(quickConfig({ top: 'export: { format: onnx }' }), '/cfg/distill-gate.yml').export).toEqual({
      quantize: 'none',
      output: 'auto',
      format: 'onnx',
    });
    expect(parseConfig(quickConfig({ top: 'export: { format: tfjs }' }), '/cfg/distill-gate.yml').export.format).toBe(
      'tfjs',
    );
    expect(configErrorOf(quickConfig({ top: 'export: { format: onxx }' }))).toMatch(
      /^\/cfg\/distill-gate\.yml:2:19 export\.format: must be one of "tfjs", "onnx" \(got "onxx"\)\. Did you mean "onnx"\?/,
    );
    expect(configErrorOf(quickConfig({ top: 'export:\n  format: [onnx]' }))).toMatch(
      /^\/cfg\/distill-gate\.yml:3:11 export\.format: must be one of "tfjs", "onnx" \(got a list\)/,
    );
    expect(configErrorOf(quickConfig({ top: 'export: { fromat: onnx }' }))).toMatch(
      /export\.fromat: unknown key\. Did you mean "format"\?/,
    );
  });
});
