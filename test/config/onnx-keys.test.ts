import { describe, expect, it } from 'vitest';
import { configErrorOf as errorOf } from '../helpers.js';
import { parseConfig } from '../../src/config/load.js';

// The keys that read an ONNX teacher: teacherLayout, teacherInput, teacherInputFill.

const base = `teacher: models/teacher.onnx
student: { layers: [ { type: dense, units: 3 } ] }
data: { train: { x: a.npy }, eval: { x: b.npy } }
`;

describe('ONNX teacher keys', () => {
  it('default to reading the layout off the shapes, and take an input name and fills', () => {
    expect(parseConfig(base, '/cfg/distill-gate.yml')).toMatchObject({
      teacher: '/cfg/models/teacher.onnx',
      teacherLayout: 'auto',
    });
    const config = parseConfig(
      `${base}teacherLayout: nchw\nteacherInput: pixel_values\nteacherInputFill: { attention_mask: 1, token_type_ids: 0 }\n`,
      '/cfg/distill-gate.yml',
    );
    expect(config).toMatchObject({
      teacherLayout: 'nchw',
      teacherInput: 'pixel_values',
      teacherInputFill: { attention_mask: 1, token_type_ids: 0 },
    });
  });

  it('refuse a layout other than auto, nchw or nhwc, an empty input name, a fill that is not a number, and a misspelt key, at file:line:column', () => {
    expect(errorOf(`${base}teacherLayout: NCHW\n`)).toMatch(
      /^\/cfg\/distill-gate\.yml:4:16 teacherLayout: must be one of "auto", "nchw", "nhwc" \(got "NCHW"\)\. Did you mean "nchw"\?/,
    );
    expect(errorOf(`${base}teacherInput: ""\n`)).toMatch(
      /^\/cfg\/distill-gate\.yml:4:15 teacherInput: must name one of the ONNX teacher's inputs/,
    );
    expect(errorOf(`${base}teacherInputFill: { mask: ones }\n`)).toMatch(
      /^\/cfg\/distill-gate\.yml:4:27 teacherInputFill\.mask: expected number, got "ones"/,
    );
    expect(errorOf(`${base}teacherLayuot: nchw\n`)).toMatch(
      /teacherLayuot: unknown key\. Did you mean "teacherLayout"\?/,
    );
  });
});
