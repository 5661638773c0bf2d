/** Bad-input cases of the sweep's `students:` key, part of the corpus (cases.ts). */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { quickConfig } from '../helpers.js';
import type { CorpusCase } from './cases.js';

/** The quick config with `students:` set to `yaml` (a YAML list, indented by two). */
const withStudents = (yaml: string) => (dir: string) =>
  writeFile(path.join(dir, 'distill-gate.yml'), quickConfig({ top: `students:\n${yaml}` }));

const stack = (units: string) => `[{ type: dense, units: ${units}, activation: relu }, { type: dense, units: 10 }]`;

export const SWEEP_CASES: CorpusCase[] = [
  {
    area: 'config',
    name: 'students: an entry without a name',
    setup: withStudents(`  - { layers: ${stack('8')} }`),
    message: /distill-gate\.yml students\.0\.name: is required \(expected string\)/,
  },
  {
    area: 'config',
    name: 'students: a misspelt key in an entry',
    setup: withStudents(`  - { name: w8, layers: ${stack('8')}, width: [8] }`),
    message: /students\.0\.width: unknown key\. Did you mean "widths"\? Known keys here: name, layers, model, widths/,
  },
  {
    area: 'config',
    name: 'students: widths with no placeholder in the layers',
    setup: withStudents(`  - { name: "w{width}", layers: ${stack('8')}, widths: [8, 16] }`),
    message: /:3:\d+ students\[0\]\.widths: widths makes a family, but no layer value is "\{width\}"/,
  },
  {
    area: 'config',
    name: 'students: a placeholder with no widths',
    setup: withStudents(`  - { name: w, layers: ${stack('"{width}"')} }`),
    message: /students\[0\]\.layers\.0\.units: "\{width\}" needs widths beside the layers/,
  },
  {
    area: 'config',
    name: 'students: a family whose name has no placeholder',
    setup: withStudents(`  - { name: wide, layers: ${stack('"{width}"')}, widths: [8, 16] }`),
    message: /students\[0\]\.name: a family's name must hold \{width\}/,
  },
  {
    area: 'config',
    name: 'students: a placeholder inside other text',
    setup: withStudents(`  - { name: "w{width}", layers: ${stack('"{width}*2"')}, widths: [8] }`),
    message: /students\[0\]\.layers\.0\.units: "\{width\}\*2" is not a value: write the placeholder as the whole value/,
  },
  {
    area: 'config',
    name: 'students: two candidates of one name',
    setup: withStudents(
      `  - { name: w8, layers: ${stack('8')} }\n  - { name: "w{width}", layers: ${stack('"{width}"')}, widths: [4, 8] }`,
    ),
    message: /:4:\d+ students\[1\]\.widths: the name "w8" is taken by students\[0\]/,
  },
  {
    area: 'config',
    name: 'students: a candidate named as the configured student',
    setup: withStudents(`  - { name: student, layers: ${stack('8')} }`),
    message: /students\[0\]\.name: the name "student" is taken by the configured student \(student:\)/,
  },
  {
    area: 'config',
    name: 'students: a width that is not a whole number',
    setup: withStudents(`  - { name: "w{width}", layers: ${stack('"{width}"')}, widths: [8, 1.5] }`),
    message: /students\.0\.widths\.1: expected int/,
  },
  {
    area: 'models',
    name: "students: a candidate whose outputs differ from the teacher's",
    setup: withStudents(`  - { name: seven, layers: [{ type: dense, units: 7 }] }`),
    message:
      /distill-gate\.yml:3:\d+ students\[0\]\.layers: the student has 7 outputs but the teacher .* has 10; the last layer needs units: 10/,
  },
  {
    area: 'models',
    name: 'students: a layer TF.js refuses in a family member',
    setup: withStudents(
      `  - { name: "w{width}", layers: [{ type: dense, units: "{width}", activation: nope }, { type: dense, units: 10 }], widths: [4] }`,
    ),
    message: /students\[0\] \(width 4\)\.layers\[0\] \(dense\): /,
  },
];
