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
      config: `${WORKSPACE}/.github/distill-gate.yml`,
      report: `${WORKSPACE}/distill-report/report.json`,
      token: '',
      comment: true,
      failOnGate: true,
      backend: 'auto',
      outputDir: `${WORKSPACE}/distill-report`,
      workingDirectory: WORKSPACE,
      commentKey: '.github/distill-gate.yml',
      baseline: undefined,
      issueOnFailure: false,
      issueLabel: 'distill-gate',
      budgetMinutes: undefined,
      baselineBranch: 'distill-gate-data',
      acceptLabel: 'distill-gate:accept-regression',
      cacheDir: undefined,
    });
  });

  it('resolves every path against working-directory, and the report against output-dir', () => {
    toolkit.reset({ 'working-directory': 'ml', config: 'gate.yml', 'output-dir': 'out', baseline: 'base/report.json', 'cache-dir': '/cache' });
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
    expect([inputs.comment, inputs.failOnGate, inputs.issueOnFailure, inputs.budgetMinutes]).toEqual([false, false, true, 0.5]);
    expect(inputs.reports).toEqual(['a/report.json', 'b/report.json', 'c/*/report.json']);
    toolkit.reset({ expect: '2' });
    expect(readInputs().expect).toEqual({ count: 2 });
    toolkit.reset({ expect: 'distill-report-tiny\ndistill-report-small' });
    expect(readInputs().expect).toEqual({ count: 2, names: ['distill-report-tiny', 'distill-report-small'] });
    expect(inputs.baselineBranch).toBe('');
  });

  it.each([
    [{ budget: '-3' }, 'input budget: "-3" is not a number of minutes above 0 (e.g. 45).'],
    [{ budget: 'soon' }, 'input budget: "soon" is not a number of minutes above 0 (e.g. 45).'],
    [{ 'fail-on-gate': 'sometimes' }, 'input fail-on-gate: "sometimes" is not a boolean; use true or false.'],
    [{ mode: 'train' }, 'input mode: "train" is not a mode; use run, report or merge.'],
    [{ expect: '-1' }, 'input expect: "-1" is not a number of reports; give a whole number from 1 (e.g. 2), or the legs\' names.'],
  ])('refuses %j', (inputs, message) => {
    toolkit.reset(inputs);
    expect(() => readInputs()).toThrow(message);
  });
});
