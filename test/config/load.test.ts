import { describe, expect, it } from 'vitest';
import { configErrorOf as errorOf } from '../helpers.js';
import { parseConfig, loadConfig } from '../../src/config/load.js';
import path from 'node:path';
import { EXAMPLE } from '../helpers.js';

const base = `teacher: t/model.json
student: { layers: [ { type: dense, units: 3 } ] }
data: { train: { x: a.npy }, eval: { x: b.npy, y: c.npy } }
`;

describe('config', () => {
  it('loads the README example exactly as written, with paths relative to the config', async () => {
    const config = await loadConfig(path.join(EXAMPLE, 'distill-gate.yml'));
    expect(config.teacher).toBe(path.join(EXAMPLE, 'models/teacher/model.json'));
    expect(config.distill).toEqual({
      temperature: 4,
      alpha: 0.9,
      epochs: 30,
      batchSize: 64,
      learningRate: 0.001,
      seed: 7,
    });
    expect(config.gates['agreement.top1']).toBe('>= 0.93');
    expect(config.backend).toBe('auto');
    expect(config.measure.rounds).toBeGreaterThan(0);
  });

  it('accepts JSON and fills defaults', () => {
    const config = parseConfig(
      JSON.stringify({
        teacher: 't.json',
        student: { model: 's.json' },
        data: { train: { csv: 'a.csv', label: 'y' }, eval: { csv: 'b.csv' } },
      }),
      '/cfg/c.json',
    );
    expect(config.student).toEqual({ model: '/cfg/s.json' });
    expect(config.distill.temperature).toBe(4);
    expect(config.data.train).toEqual({ csv: '/cfg/a.csv', label: 'y' });
  });

  it.each([
    ['YAML syntax with line and column', 'teacher: [a\nstudent: x', /distill-gate\.yml:\d+:\d+: invalid YAML/],
    [
      'unknown key with a suggestion',
      `${base}distil: { epochs: 1 }`,
      /:4:1 distil: unknown key\. Did you mean "distill"\?/,
    ],
    ['zero epochs', `${base}distill: { epochs: 0 }`, /distill\.epochs: must be > 0 \(got 0\)/],
    ['negative batch size', `${base}distill: { batchSize: -4 }`, /distill\.batchSize: must be > 0 \(got -4\)/],
    ['zero temperature', `${base}distill: { temperature: 0 }`, /distill\.temperature: must be > 0/],
    ['alpha above 1', `${base}distill: { alpha: 1.5 }`, /distill\.alpha: must be <= 1 \(got 1\.5\)/],
    ['alpha below 0', `${base}distill: { alpha: -0.1 }`, /distill\.alpha: must be >= 0/],
    ['a wrong type', `${base}distill: { temperature: "4" }`, /distill\.temperature: expected number, got "4"/],
    [
      'an unknown layer type',
      base.replace('type: dense', 'type: dens'),
      /student\.layers\.0\.type: must be one of .*Did you mean "dense"\?/,
    ],
    [
      'a student with neither layers nor model',
      base.replace('layers:', 'layer:'),
      /student\.layer: unknown key\. Did you mean "layers"\?/,
    ],
    ['a missing eval split', base.replace(', eval: { x: b.npy, y: c.npy }', ''), /data\.eval: is required/],
    ['an unknown backend', `${base}backend: gpu`, /backend: must be one of "auto"/],
    ['a list instead of a mapping', '- a\n- b', /must be a mapping/],
    [
      'an empty teacherHead',
      `${base}teacherHead: ""`,
      /:4:14 teacherHead: must name one of the teacher's outputs \(a signature key, node name or output layer name\) \(got ""\)/,
    ],
    ['a teacherHead of a wrong type', `${base}teacherHead: [a, b]`, /teacherHead: expected string/],
    [
      'a misspelt teacherHead',
      `${base}teacherHeads: Identity_1`,
      /teacherHeads: unknown key\. Did you mean "teacherHead"\?/,
    ],
  ])('refuses %s', (_name, text, pattern) => {
    expect(errorOf(text)).toMatch(pattern);
  });

  it('takes teacherHead as given, and leaves it unset by default', () => {
    expect(parseConfig(`${base}teacherHead: "Identity_1:0"\n`, '/cfg/distill-gate.yml').teacherHead).toBe(
      'Identity_1:0',
    );
    expect(parseConfig(base, '/cfg/distill-gate.yml').teacherHead).toBeUndefined();
  });

  it('names a missing config file', async () => {
    await expect(loadConfig('/nonexistent/distill-gate.yml')).rejects.toThrow(
      /nonexistent\/distill-gate\.yml: cannot read the config file \(ENOENT\)/,
    );
  });
});

describe('gate thresholds outside what the metric can take', () => {
  const gates = (lines: string) => `${base}gates:\n${lines}\n`;

  it.each([
    [
      'a size ratio below 0',
      '  size.ratio: "<= -3"',
      '/cfg/distill-gate.yml:5:15 gates.size.ratio: "<= -3" lies outside the values size.ratio can take (a number from 0), so this bound would never pass.',
    ],
    [
      'an agreement written as a percentage',
      '  agreement.top1: ">= 7.5"',
      '/cfg/distill-gate.yml:5:19 gates.agreement.top1: ">= 7.5" lies outside the values agreement.top1 can take (a fraction from 0 to 1), so this bound would never pass. Write ">= 0.075" or ">= 7.5%" for 7.5%, not 7.5.',
    ],
    [
      'a percentage bound that would always pass',
      '  calibration.studentEce: { max: 5 }',
      '/cfg/distill-gate.yml:5:34 gates.calibration.studentEce.max: max: 5 lies outside the values calibration.studentEce can take (a fraction from 0 to 1), so this bound would always pass. Write "<= 0.05" or "<= 5%" for 5%, not 5.',
    ],
    [
      'a kappa above 1',
      '  agreement.kappa: { min: 2 }',
      /:5:27 gates\.agreement\.kappa\.min: min: 2 lies outside the values agreement\.kappa can take \(a number from -1 to 1\)/,
    ],
    [
      'a latency no run can go under',
      '  speed.studentMs: "< 0"',
      /:5:20 gates\.speed\.studentMs: "< 0": no value of speed\.studentMs satisfies it \(speed\.studentMs is a number above 0\)/,
    ],
    [
      'an absolute drop larger than the whole range',
      '  agreement.top1: { maxDrop: 2 }',
      /:5:30 gates\.agreement\.top1\.maxDrop: an absolute maxDrop of 2 allows more than agreement\.top1 can ever move .* For 2 percentage points write 0\.02, or "2%"/,
    ],
    ['a threshold that does not parse', '  kl: "=< 0.1"', /:5:7 gates\.kl: threshold "=< 0\.1" does not parse/],
  ])('refuses %s at its line and column', (_name, lines, expected) => {
    const message = errorOf(gates(lines));
    if (typeof expected === 'string') expect(message).toBe(expected);
    else expect(message).toMatch(expected);
  });

  it('accepts thresholds at the ends of the range, relative changes of any size, and leaves unknown metrics to the run', () => {
    const config = parseConfig(
      gates(
        [
          '  agreement.top1: { min: 0, maxDrop: 1 }',
          '  agreement.kappa: ">= -1"',
          '  size.ratio: "<= 3"',
          '  speed.studentMs: { maxIncrease: "500%" }',
          '  agreement.top: ">= 93"',
        ].join('\n'),
      ),
      '/cfg/distill-gate.yml',
    );
    expect(Object.keys(config.gates)).toEqual([
      'agreement.top1',
      'agreement.kappa',
      'size.ratio',
      'speed.studentMs',
      'agreement.top',
    ]);
  });
});
