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
    expect(config.distill).toEqual({ temperature: 4, alpha: 0.9, epochs: 30, batchSize: 64, learningRate: 0.001, seed: 7 });
    expect(config.gates['agreement.top1']).toBe('>= 0.93');
    expect(config.backend).toBe('auto');
    expect(config.measure.rounds).toBeGreaterThan(0);
  });

  it('accepts JSON and fills defaults', () => {
    const config = parseConfig(
      JSON.stringify({ teacher: 't.json', student: { model: 's.json' }, data: { train: { csv: 'a.csv', label: 'y' }, eval: { csv: 'b.csv' } } }),
      '/cfg/c.json',
    );
    expect(config.student).toEqual({ model: '/cfg/s.json' });
    expect(config.distill.temperature).toBe(4);
    expect(config.data.train).toEqual({ csv: '/cfg/a.csv', label: 'y' });
  });

  it.each([
    ['YAML syntax with line and column', 'teacher: [a\nstudent: x', /distill-gate\.yml:\d+:\d+: invalid YAML/],
    ['unknown key with a suggestion', `${base}distil: { epochs: 1 }`, /:4:1 distil: unknown key\. Did you mean "distill"\?/],
    ['zero epochs', `${base}distill: { epochs: 0 }`, /distill\.epochs: must be > 0 \(got 0\)/],
    ['negative batch size', `${base}distill: { batchSize: -4 }`, /distill\.batchSize: must be > 0 \(got -4\)/],
    ['zero temperature', `${base}distill: { temperature: 0 }`, /distill\.temperature: must be > 0/],
    ['alpha above 1', `${base}distill: { alpha: 1.5 }`, /distill\.alpha: must be <= 1 \(got 1\.5\)/],
    ['alpha below 0', `${base}distill: { alpha: -0.1 }`, /distill\.alpha: must be >= 0/],
    ['a wrong type', `${base}distill: { temperature: "4" }`, /distill\.temperature: expected number, got "4"/],
    ['an unknown layer type', base.replace('type: dense', 'type: dens'), /student\.layers\.0\.type: must be one of .*Did you mean "dense"\?/],
    ['a student with neither layers nor model', base.replace('layers:', 'layer:'), /student\.layer: unknown key\. Did you mean "layers"\?/],
    ['a missing eval split', base.replace(', eval: { x: b.npy, y: c.npy }', ''), /data\.eval: is required/],
    ['an unknown backend', `${base}backend: gpu`, /backend: must be one of "auto"/],
    ['a list instead of a mapping', '- a\n- b', /must be a mapping/],
    [
      'an empty teacherHead',
      `${base}teacherHead: ""`,
      /:4:14 teacherHead: must name one of the teacher's outputs \(a signature key, node name or output layer name\) \(got ""\)/,
    ],
    ['a teacherHead of a wrong type', `${base}teacherHead: [a, b]`, /teacherHead: expected string/],
    ['a misspelt teacherHead', `${base}teacherHeads: Identity_1`, /teacherHeads: unknown key\. Did you mean "teacherHead"\?/],
  ])('refuses %s', (_name, text, pattern) => {
    expect(errorOf(text)).toMatch(pattern);
  });

  it('takes teacherHead as given, and leaves it unset by default', () => {
    expect(parseConfig(`${base}teacherHead: "Identity_1:0"\n`, '/cfg/distill-gate.yml').teacherHead).toBe('Identity_1:0');
    expect(parseConfig(base, '/cfg/distill-gate.yml').teacherHead).toBeUndefined();
  });

  it('names a missing config file', async () => {
    await expect(loadConfig('/nonexistent/distill-gate.yml')).rejects.toThrow(/nonexistent\/distill-gate\.yml: cannot read the config file \(ENOENT\)/);
  });
});
