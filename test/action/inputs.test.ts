import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import * as toolkit from './toolkit.js';

vi.mock('@actions/core', () => import('./toolkit.js'));

const { readInputs } = await import('../../src/action/inputs.js');

const WORKSPACE = '/home/runner/work/models';
beforeEach(() => {
  toolkit.reset();
  vi.stubEnv('GITHUB_WORKSPACE', WORKSPACE);
});

describe('readInputs', () => {
  it('fills the defaults of action.yml, with paths under the workspace', () => {
    expect(readInputs()).toEqual({
      mode: 'run',
      reports: [],
      expect: undefined,
      config: `${WORKSPACE}/distill-gate.yml`,
      report: `${WORKSPACE}/distill-report/report.json`,
      token: '',
      comment: true,
      failOnGate: true,
      backend: 'auto',
      outputDir: `${WORKSPACE}/distill-report`,
      workingDirectory: WORKSPACE,
      commentKey: 'distill-gate.yml',
      baseline: undefined,
      issueOnFailure: false,
      issueLabel: 'distill-gate',
      budgetMinutes: undefined,
      baselineBranch: 'distill-gate-data',
      acceptLabel: 'distill-gate:accept-regression',
      cacheDir: undefined,
      requireGpu: false,
      statusName: 'distill-gate',
      paths: ['auto'],
    });
  });

  describe('the config at its default place, the repository root', () => {
    const repository = async (files: string[]) => {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-inputs-'));
      for (const file of files) {
        await mkdir(path.dirname(path.join(dir, file)), { recursive: true });
        await writeFile(path.join(dir, file), 'teacher: models/teacher/model.json\n');
      }
      vi.stubEnv('GITHUB_WORKSPACE', dir);
      return dir;
    };

    it('is distill-gate.yml at the root, also where .github/distill-gate.yml exists beside it', async () => {
      const dir = await repository(['distill-gate.yml', '.github/distill-gate.yml']);
      const inputs = readInputs();
      expect([inputs.config, inputs.commentKey]).toEqual([path.join(dir, 'distill-gate.yml'), 'distill-gate.yml']);
      expect(toolkit.warnings()).toEqual([]);
    });

    it('falls back to the old default, .github/distill-gate.yml, with a warning and its comment key unchanged', async () => {
      const dir = await repository(['.github/distill-gate.yml']);
      const inputs = readInputs();
      expect([inputs.config, inputs.commentKey]).toEqual([
        path.join(dir, '.github/distill-gate.yml'),
        '.github/distill-gate.yml',
      ]);
      expect(toolkit.warnings()).toEqual([
        expect.stringMatching(/no distill-gate\.yml in .*, so \.github\/distill-gate\.yml is read/),
      ]);
    });

    it('keeps a config the workflow names, and a missing default, as given', async () => {
      const dir = await repository(['.github/distill-gate.yml']);
      toolkit.reset({ config: 'gates/student.yml' });
      expect(readInputs().config).toBe(path.join(dir, 'gates/student.yml'));
      await repository([]);
      toolkit.reset();
      expect(readInputs().commentKey).toBe('distill-gate.yml');
      expect(toolkit.warnings()).toEqual([]);
    });

    it('mode merge keeps the old comment key without a warning about a config it does not read', async () => {
      await repository(['.github/distill-gate.yml']);
      toolkit.reset({ mode: 'merge' });
      expect(readInputs().commentKey).toBe('.github/distill-gate.yml');
      expect(toolkit.warnings()).toEqual([]);
    });
  });

  it('require-gpu: read as a boolean, and refused beside a backend that is not a GPU one', () => {
    toolkit.reset({ 'require-gpu': 'true' });
    expect(readInputs().requireGpu).toBe(true);
    toolkit.reset({ 'require-gpu': 'true', backend: 'webgpu' });
    expect(readInputs().requireGpu).toBe(true);
    toolkit.reset({ 'require-gpu': 'true', backend: 'wasm' });
    expect(() => readInputs()).toThrow(
      'input require-gpu: true needs a GPU backend, but input backend is wasm; use auto, tensorflow-gpu or webgpu, or drop require-gpu.',
    );
  });

  it('resolves every path against working-directory, and the report against output-dir', () => {
    toolkit.reset({
      'working-directory': 'ml',
      config: 'gate.yml',
      'output-dir': 'out',
      baseline: 'base/report.json',
      'cache-dir': '/cache',
    });
    const inputs = readInputs();
    expect(inputs.workingDirectory).toBe(path.join(WORKSPACE, 'ml'));
    expect([inputs.config, inputs.outputDir, inputs.report, inputs.baseline, inputs.cacheDir]).toEqual([
      `${WORKSPACE}/ml/gate.yml`,
      `${WORKSPACE}/ml/out`,
      `${WORKSPACE}/ml/out/report.json`,
      `${WORKSPACE}/ml/base/report.json`,
      '/cache',
    ]);
    // The comment key is the config as written, so it does not change with the runner's paths.
    expect(inputs.commentKey).toBe('gate.yml');
  });

  it('reads booleans, budgets, report lists and a store turned off', () => {
    toolkit.reset({
      comment: 'No',
      'fail-on-gate': 'off',
      'issue-on-failure': 'YES',
      budget: '0.5',
      reports: 'a/report.json b/report.json\nc/*/report.json',
      'baseline-branch': 'OFF',
    });
    const inputs = readInputs();
    expect([inputs.comment, inputs.failOnGate, inputs.issueOnFailure, inputs.budgetMinutes]).toEqual([
      false,
      false,
      true,
      0.5,
    ]);
    expect(inputs.reports).toEqual(['a/report.json', 'b/report.json', 'c/*/report.json']);
    toolkit.reset({ expect: '2' });
    expect(readInputs().expect).toEqual({ count: 2 });
    toolkit.reset({ expect: 'distill-report-tiny\ndistill-report-small' });
    expect(readInputs().expect).toEqual({ count: 2, names: ['distill-report-tiny', 'distill-report-small'] });
    expect(inputs.baselineBranch).toBe('');
  });

  it('reads the status name (false turns it off) and the paths, one glob per line or space', () => {
    toolkit.reset({ 'status-name': 'distill-gate / tiny', paths: 'auto models/**\nsrc/train/**' });
    expect([readInputs().statusName, readInputs().paths]).toEqual([
      'distill-gate / tiny',
      ['auto', 'models/**', 'src/train/**'],
    ]);
    toolkit.reset({ 'status-name': 'false' });
    expect(readInputs().statusName).toBe('');
  });

  it.each([
    [{ budget: '-3' }, 'input budget: "-3" is not a number of minutes above 0 and at most 35000 (e.g. 45).'],
    [{ budget: 'soon' }, 'input budget: "soon" is not a number of minutes above 0 and at most 35000 (e.g. 45).'],
    [{ budget: '40000' }, 'input budget: "40000" is not a number of minutes above 0 and at most 35000 (e.g. 45).'],
    [{ 'fail-on-gate': 'sometimes' }, 'input fail-on-gate: "sometimes" is not a boolean; use true or false.'],
    [{ mode: 'train' }, 'input mode: "train" is not a mode; use run, report, merge or changes.'],
    [
      { paths: 'models/**\n!models/old/**' },
      'input paths: "!models/old/**" is a negated glob; list the files that count (e.g. auto, models/**, src/train/**) instead.',
    ],
    [
      { expect: '-1' },
      'input expect: "-1" is not a number of reports; give a whole number from 1 (e.g. 2), or the legs\' names.',
    ],
  ])('refuses %j', (inputs, message) => {
    toolkit.reset(inputs);
    expect(() => readInputs()).toThrow(message);
  });
});
