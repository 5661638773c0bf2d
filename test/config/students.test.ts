import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { expandStudents } from '../../src/config/students.js';
import { placeOf } from '../../src/config/locate.js';
import { configErrorOf } from '../helpers.js';

const base = [
  'teacher: t/model.json',
  'student: { layers: [{ type: dense, units: 10 }] }',
  'data: { train: { x: x.npy }, eval: { x: e.npy } }',
].join('\n');

describe('config students:', () => {
  it('parses named stacks, model.json candidates and families, each family expanded per width', () => {
    const config = parseConfig(
      [
        base,
        'students:',
        '  - name: "w{width}"',
        '    layers:',
        '      - { type: dense, units: "{width}", activation: relu }',
        '      - { type: dense, units: 10 }',
        '    widths: [8, 32]',
        '  - { name: tiny, layers: [{ type: dense, units: 10 }] }',
        '  - { name: pretrained, model: models/small/model.json }',
      ].join('\n'),
      '/cfg/distill-gate.yml',
    );
    const candidates = expandStudents(config.students);
    expect(candidates.map((c) => [c.name, c.key])).toEqual([
      ['w8', 'students[0] (width 8)'],
      ['w32', 'students[0] (width 32)'],
      ['tiny', 'students[1]'],
      ['pretrained', 'students[2]'],
    ]);
    expect(candidates[1].source).toEqual({
      layers: [
        { type: 'dense', units: 32, activation: 'relu' },
        { type: 'dense', units: 10 },
      ],
    });
    // A model path is resolved against the config's folder, as student.model is.
    expect(candidates[3].source).toEqual({ model: '/cfg/models/small/model.json' });
    // A family member keeps its entry's place in the file, for TF.js's errors about a layer.
    expect(placeOf(candidates[1].source, ['layers', 0])).toBe('/cfg/distill-gate.yml:7:9');
    // The config entry itself is untouched: the placeholder stays for the next width.
    const entry = config.students?.[0];
    expect(entry && 'layers' in entry ? entry.layers[0].units : undefined).toBe('{width}');
  });

  it('is optional: no students, no candidates', () => {
    expect(expandStudents(parseConfig(base, '/cfg/distill-gate.yml').students)).toEqual([]);
  });

  it('puts the placeholder in nested values too (a kernel size list)', () => {
    const config = parseConfig(
      [
        base,
        'students:',
        '  - { name: "k{width}", layers: [{ type: conv2d, filters: 4, kernelSize: ["{width}", "{width}"] }], widths: [3] }',
      ].join('\n'),
      '/cfg/distill-gate.yml',
    );
    expect(expandStudents(config.students)[0].source).toEqual({
      layers: [{ type: 'conv2d', filters: 4, kernelSize: [3, 3] }],
    });
  });

  it('refuses an empty list, an empty name and empty widths, naming the field', () => {
    expect(configErrorOf(`${base}\nstudents: []`)).toMatch(/:4:11 students: must be >= 1 items/);
    expect(configErrorOf(`${base}\nstudents: [{ name: "", layers: [{ type: dense, units: 10 }] }]`)).toMatch(
      /students\.0\.name: must be >= 1/,
    );
    expect(
      configErrorOf(
        `${base}\nstudents: [{ name: "w{width}", layers: [{ type: dense, units: "{width}" }], widths: [] }]`,
      ),
    ).toMatch(/students\.0\.widths: must be >= 1 items/);
    expect(configErrorOf(`${base}\nstudents: [{ name: "w{width}", model: m.json }]`)).toMatch(
      /students\[0\]\.name: \{width\} in a name needs a family/,
    );
    expect(
      configErrorOf(
        `${base}\nstudents: [{ name: "w{width}", layers: [{ type: dense, units: "{width}" }], widths: [8, 8] }]`,
      ),
    ).toMatch(/students\[0\]\.widths: lists 8 twice/);
  });
});
