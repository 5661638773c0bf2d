/**
 * mode report with several legs (input reports): the trusted side of a fork's matrix. Each leg's
 * upload is re-judged with the trusted config of the leg it answers to, against that config's
 * stored baseline, and the legs are merged as mode merge merges them.
 */
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { Report } from '../../src/report/report.js';
import { quickConfig } from '../helpers.js';
import { sampleReport } from '../sample-report.js';
import * as toolkit from './toolkit.js';

vi.mock('@actions/core', () => import('./toolkit.js'));
vi.mock('@actions/github', async () => (await import('./toolkit.js')).github);
const facade = vi.hoisted(() => ({ current: undefined as ReturnType<typeof toolkit.fakeGitHub> | undefined }));
vi.mock('../../src/action/github/index.js', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../../src/action/github/index.js')>()),
  createGitHub: vi.fn(() => facade.current),
}));

const { run } = await import('../../src/action/run.js');

const TOKEN = 'ghs_unit_token';
const UNDER_WORKFLOW_RUN = {
  eventName: 'workflow_run',
  payload: { workflow_run: { head_sha: 'f0f0f0', pull_requests: [], conclusion: 'success' } },
};
const LEGS = 'distill-report-tiny=distill-gate-tiny.yml distill-report-small=distill-gate-small.yml';

/** A trusted job's workspace: the legs' configs checked out (by file name), and the uploads under reports/ by artifact name. */
async function workspace(uploads: Record<string, Report>, configs: Record<string, string> = {}): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-legs-'));
  for (const [file, text] of Object.entries(configs)) {
    await mkdir(path.dirname(path.join(dir, file)), { recursive: true });
    await writeFile(path.join(dir, file), text);
  }
  for (const [artifact, report] of Object.entries(uploads)) {
    await mkdir(path.join(dir, 'reports', artifact), { recursive: true });
    await writeFile(path.join(dir, 'reports', artifact, 'report.json'), JSON.stringify(report));
  }
  vi.stubEnv('GITHUB_WORKSPACE', dir);
  return dir;
}

const leg = (student: string, overrides: Partial<Report> = {}) =>
  sampleReport({ config: `/fork/distill-gate-${student}.yml`, ...overrides });
const withAgreement = (value: number) => ({ ...sampleReport().metrics, 'agreement.top1': value });
/** tiny's trusted gates look at size only, small's at agreement (0.9): a leg judged with the wrong one would pass. */
const CONFIGS = {
  'distill-gate-tiny.yml': quickConfig({ gates: '  size.ratio: "<= 0.1"' }),
  'distill-gate-small.yml': quickConfig({ gates: '  agreement.top1: ">= 0.9"' }),
};

beforeEach(() => {
  toolkit.reset();
  vi.unstubAllEnvs();
  facade.current = toolkit.fakeGitHub();
});

describe('mode report with several legs: its inputs', () => {
  it.each([
    [
      { reports: 'reports/*/report.json' },
      /^distill-gate: input expect: mode report with reports needs the legs that must arrive/,
    ],
    [
      { expect: 'a b' },
      /^distill-gate: input expect: names the legs of a matrix, which mode report checks only with input reports/,
    ],
    [{ reports: 'reports/*/report.json', expect: 'a=' }, /^distill-gate: input expect: "a=" is not LEG=CONFIG/],
    [
      { reports: 'reports/*/report.json', expect: 'a=x.yml a=y.yml' },
      /^distill-gate: input expect: names the leg "a" twice/,
    ],
    [
      { reports: 'reports/*/report.json', expect: 'distill-report-tiny=nowhere.yml' },
      /^distill-gate: input expect: nowhere\.yml, the trusted config of leg distill-report-tiny, is not at /,
    ],
  ])('%o fails the step naming the input', async (inputs, message) => {
    await workspace({ 'distill-report-tiny': leg('tiny') });
    toolkit.reset({ mode: 'report', ...inputs });
    await run();
    expect(toolkit.failures()).toEqual([expect.stringMatching(message)]);
  });

  it('LEG=CONFIG is refused in mode merge, which re-judges no leg with a trusted config', async () => {
    await workspace({ 'distill-report-tiny': leg('tiny') });
    toolkit.reset({
      mode: 'merge',
      reports: 'reports/*/report.json',
      expect: 'distill-report-tiny=distill-gate-tiny.yml',
    });
    await run();
    expect(toolkit.failures()).toEqual([
      expect.stringMatching(
        /^distill-gate: input expect: "distill-report-tiny=distill-gate-tiny\.yml" pairs a leg with a config, which only mode report does/,
      ),
    ]);
  });

  it.each([
    [
      'a leg config',
      { expect: 'distill-report-tiny=reports/distill-gate-tiny.yml' },
      'input expect (leg distill-report-tiny)',
    ],
    ['the config input', { expect: 'distill-report-tiny', config: 'reports/distill-gate-tiny.yml' }, 'input config'],
  ])(
    '%s inside the folder the uploads are downloaded to is refused: an upload could have put it there',
    async (_what, inputs, culprit) => {
      await workspace(
        { 'distill-report-tiny': leg('tiny') },
        { 'reports/distill-gate-tiny.yml': CONFIGS['distill-gate-tiny.yml'] },
      );
      toolkit.reset({ mode: 'report', reports: 'reports/*/report.json', ...inputs });
      await run();
      expect(toolkit.failures()).toEqual([expect.stringContaining(`distill-gate: ${culprit}: `)]);
      expect(toolkit.failures()[0]).toMatch(
        /where the uploaded reports are downloaded, so an upload could have put it there/,
      );
    },
  );
});

describe('mode report with several legs re-judges each with its trusted config', () => {
  it('passes when every expected leg passes its own gates, writing one merged report.md', async () => {
    const dir = await workspace({ 'distill-report-tiny': leg('tiny'), 'distill-report-small': leg('small') }, CONFIGS);
    toolkit.reset({ mode: 'report', reports: 'reports/*/report.json', expect: LEGS });
    await run();
    expect(toolkit.failures()).toEqual([]);
    expect(toolkit.outputs()).toMatchObject({
      verdict: 'pass',
      'report-path': path.join(dir, 'distill-report/report.md'),
      'student-path': '',
    });
    const markdown = await readFile(path.join(dir, 'distill-report/report.md'), 'utf8');
    expect(markdown.split('\n')[0]).toBe('## ✅ distill-gate: pass (2 runs)');
    expect(toolkit.infos()).toContain(
      `distill-gate: leg distill-report-tiny is re-judged with the gates of ${path.join(dir, 'distill-gate-tiny.yml')}`,
    );
  });

  it("fails a leg whose values fail its own config, though the other leg's config would pass them", async () => {
    await workspace(
      {
        'distill-report-tiny': leg('tiny', { metrics: withAgreement(0.8) }),
        'distill-report-small': leg('small', { metrics: withAgreement(0.8) }),
      },
      CONFIGS,
    );
    toolkit.reset({ mode: 'report', reports: 'reports/*/report.json', expect: LEGS });
    await run();
    // tiny's config gates no agreement: only small fails, and it is named by its leg.
    expect(toolkit.failures()).toEqual(['distill-gate: failing gates: distill-report-small: agreement.top1 (>= 0.9)']);
  });

  it('a leg without =CONFIG is judged with the config input; with expect a count, every leg is', async () => {
    await workspace(
      { 'distill-report-tiny': leg('tiny'), 'distill-report-small': leg('small', { metrics: withAgreement(0.8) }) },
      CONFIGS,
    );
    toolkit.reset({
      mode: 'report',
      reports: 'reports/*/report.json',
      expect: 'distill-report-tiny distill-report-small',
      config: 'distill-gate-small.yml',
    });
    await run();
    expect(toolkit.failures()).toEqual(['distill-gate: failing gates: distill-report-small: agreement.top1 (>= 0.9)']);
    toolkit.reset({ mode: 'report', reports: 'reports/*/report.json', expect: '2', config: 'distill-gate-small.yml' });
    await run();
    expect(toolkit.failures()).toEqual([
      'distill-gate: failing gates: distill-gate-small.yml: agreement.top1 (>= 0.9)',
    ]);
  });

  it('one report answering to two legs (its folder one, its claimed config the other) fails the merge', async () => {
    const claims = leg('x', { config: '/fork/distill-report-small' });
    await workspace({ 'distill-report-tiny': claims, 'distill-report-small': leg('small') }, CONFIGS);
    toolkit.reset({ mode: 'report', reports: 'reports/*/report.json', expect: LEGS });
    await run();
    expect(toolkit.outputs().verdict).toBe('fail');
    expect(toolkit.failures()).toEqual([expect.stringContaining('More than one report for distill-report-small')]);
  });

  it("reads each leg's baseline from the store under its own config, never the upload's", async () => {
    const configs = {
      'distill-gate-tiny.yml': quickConfig({ gates: '  agreement.top1: { maxDrop: 0.01 }' }),
      'distill-gate-small.yml': quickConfig({ gates: '  agreement.top1: { maxDrop: 0.01 }' }),
    };
    const dir = await workspace(
      { 'distill-report-tiny': leg('tiny', { gates: [] }), 'distill-report-small': leg('small', { gates: [] }) },
      configs,
    );
    const stored = async (key: string, agreement: number) => {
      const file = path.join(dir, `stored-${key}.json`);
      await writeFile(file, JSON.stringify(sampleReport({ metrics: withAgreement(agreement) })));
      return file;
    };
    const files = {
      'distill-gate-tiny.yml': await stored('tiny', 0.95),
      'distill-gate-small.yml': await stored('small', 0.99),
    };
    facade.current!.readStoredBaseline.mockImplementation(async (location) => ({
      reportPath: files[location.key as keyof typeof files],
      history: [],
    }));
    toolkit.reset(
      { mode: 'report', reports: 'reports/*/report.json', expect: LEGS, 'github-token': TOKEN },
      UNDER_WORKFLOW_RUN,
    );
    await run();
    expect(facade.current!.readStoredBaseline.mock.calls.map(([location]) => location.key).sort()).toEqual([
      'distill-gate-small.yml',
      'distill-gate-tiny.yml',
    ]);
    expect(toolkit.failures()).toEqual([
      'distill-gate: failing gates: distill-report-small: agreement.top1 (drop <= 0.01)',
    ]);
    expect(facade.current!.setCommitStatus).toHaveBeenLastCalledWith(
      'f0f0f0',
      'distill-gate',
      'failure',
      'fail: distill-report-small: agreement.top1 0.95 (drop <= 0.01)',
    );
  });

  it('under workflow_run, legs judged with no trusted config are named in the comment: the PR chose their thresholds', async () => {
    await workspace(
      { 'distill-report-tiny': leg('tiny'), 'distill-report-small': leg('small') },
      { 'distill-gate-small.yml': CONFIGS['distill-gate-small.yml'] },
    );
    toolkit.reset(
      {
        mode: 'report',
        reports: 'reports/*/report.json',
        expect: 'distill-report-tiny distill-report-small=distill-gate-small.yml',
        'github-token': TOKEN,
      },
      UNDER_WORKFLOW_RUN,
    );
    await run();
    expect(toolkit.warnings()).toContainEqual(
      expect.stringMatching(
        /^No trusted config for distill-report-tiny \(no LEG=CONFIG in expect, and none at .*distill-gate\.yml\)/,
      ),
    );
    expect(toolkit.summaryState.lines[0]).toContain(
      'their uploaded reports were re-judged with their own thresholds, which the pull request chose',
    );
    // paths: auto cannot name tiny's files without its config, so the gate is not skipped on the PR's file list.
    expect(toolkit.infos()).toContainEqual(
      expect.stringMatching(/no trusted config for `paths: auto` to name the relevant files, so the gate runs/),
    );
  });
});
