/**
 * The required check for a fork's matrix: the fork's legs ran with a read-only token and uploaded a
 * report.json each (matrix-fork-untrusted.yml); the trusted workflow_run job (matrix-fork-report.yml,
 * mode report with input reports) re-judges every leg with its own trusted config, merges them and
 * sets one commit status on the PR's head commit. A forged leg, a missing leg or an extra one never
 * turns it green. The action runs in-process (the source, not dist/) against the loopback GitHub.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Report } from '../../src/report/report.js';
import { exampleWorkspace, quickConfig } from '../helpers.js';
import { sampleReport } from '../sample-report.js';
import { HEAD, inProcessAction } from './in-process-action.js';

const { api, act, reset, oneFinalStatus } = await inProcessAction(
  'workflow_run',
  'distill-gate-matrix-fork-',
  'ghs_matrix_fork',
);

const workflowRun = (conclusion = 'success') => ({
  workflow_run: {
    head_sha: HEAD,
    pull_requests: [],
    conclusion,
    event: 'pull_request',
    head_repository: { full_name: 'someone/models' },
  },
  repository: { full_name: 'acme/models', default_branch: 'main' },
});

/** matrix-fork-report.yml's step: every leg's artifact under reports/, each leg with the default branch's config. */
const inputs = {
  mode: 'report',
  reports: 'reports/*/report.json',
  expect: 'distill-report-tiny=distill-gate-tiny.yml\ndistill-report-small=distill-gate-small.yml',
};

/**
 * The trusted job's workspace: the default branch's two configs (tiny gates size, small gates
 * agreement at 0.9), and what the fork's legs uploaded, by artifact name.
 */
async function trustedJob(uploads: Record<string, Report>, changed = ['models/teacher/group1-shard1of1.bin']) {
  const dir = await exampleWorkspace(quickConfig());
  await writeFile(path.join(dir, 'distill-gate-tiny.yml'), quickConfig({ gates: '  size.ratio: "<= 0.1"' }));
  await writeFile(path.join(dir, 'distill-gate-small.yml'), quickConfig({ gates: '  agreement.top1: ">= 0.9"' }));
  for (const [artifact, report] of Object.entries(uploads)) {
    await mkdir(path.join(dir, 'reports', artifact), { recursive: true });
    await writeFile(path.join(dir, 'reports', artifact, 'report.json'), JSON.stringify(report));
  }
  api.pullFiles.set(7, { files: changed, baseSha: 'b'.repeat(40) });
  return dir;
}

/** A leg's honest report: its config, and the sample's metrics (size.ratio 0.05, agreement 0.95), which pass both configs. */
const leg = (student: 'tiny' | 'small', overrides: Partial<Report> = {}) =>
  sampleReport({ config: `/fork/distill-gate-${student}.yml`, ...overrides });

/** The trusted job's run on the workflow_run event `payload`, with the matrix's inputs. */
const actOnRun = (payload: Record<string, unknown>, workspace: string) =>
  act('workflow_run', payload, inputs, workspace);

describe("a fork's matrix, merged by the trusted workflow_run job", () => {
  it('both legs honest and passing their trusted gates: one success, one comment with both legs', async () => {
    reset();
    const dir = await trustedJob({ 'distill-report-tiny': leg('tiny'), 'distill-report-small': leg('small') });
    const result = await actOnRun(workflowRun(), dir);
    expect(result.exitCode).toBe(0);
    expect(oneFinalStatus()).toMatchObject({ state: 'success', description: 'pass: 2 gates pass' });
    expect(result.printed).toContain(
      `leg distill-report-small is re-judged with the gates of ${path.join(dir, 'distill-gate-small.yml')}`,
    );
    expect(api.comments).toHaveLength(1);
    expect(api.comments[0].body).toContain('distill-gate: pass (2 runs)');
    expect(result.outputs['report-path']).toBe(path.join(dir, 'distill-report/report.md'));
  });

  it('a leg forged as pass with a metric its trusted config fails: failure, naming the leg and the gate', async () => {
    reset();
    const forged = leg('small', {
      verdict: 'pass',
      gates: [],
      metrics: { ...sampleReport().metrics, 'agreement.top1': 0.8 },
    });
    const dir = await trustedJob({ 'distill-report-tiny': leg('tiny'), 'distill-report-small': forged });
    const result = await actOnRun(workflowRun(), dir);
    expect(result.exitCode).toBe(1);
    expect(oneFinalStatus()).toMatchObject({
      state: 'failure',
      description: 'fail: distill-report-small: agreement.top1 0.8 (>= 0.9)',
    });
    expect(api.comments[0].body).toContain(
      'The uploaded report claimed pass; re-judged from its values with the thresholds of the trusted distill-gate-small.yml: fail',
    );
  });

  it("a leg re-judged with the other leg's laxer gates is not possible: each expected leg gets its own config, whatever the upload claims", async () => {
    reset();
    // The small leg's report says it ran tiny's config (whose gates ignore agreement); it lies in small's folder.
    const claimsTiny = leg('tiny', {
      gates: [],
      metrics: { ...sampleReport().metrics, 'agreement.top1': 0.8 },
      environment: { ...sampleReport().environment, cpu: 'other' },
    });
    const dir = await trustedJob({ 'distill-report-tiny': leg('tiny'), 'distill-report-small': claimsTiny });
    await actOnRun(workflowRun(), dir);
    // Shown by the leg's name, judged by the leg's config: the claimed config name counts for nothing.
    expect(oneFinalStatus()).toMatchObject({
      state: 'failure',
      description: 'fail: distill-report-small: agreement.top1 0.8 (>= 0.9)',
    });
  });

  it('a leg that uploaded nothing (the fork deleted it): failure, naming the leg', async () => {
    reset();
    const dir = await trustedJob({ 'distill-report-tiny': leg('tiny') });
    const result = await actOnRun(workflowRun(), dir);
    expect(result.exitCode).toBe(1);
    expect(oneFinalStatus()).toMatchObject({
      state: 'failure',
      description: expect.stringMatching(/^fail: Missing: distill-report-small/),
    });
  });

  it('a leg no one expects (an extra artifact matching the pattern): failure', async () => {
    reset();
    const dir = await trustedJob({
      'distill-report-tiny': leg('tiny'),
      'distill-report-small': leg('small'),
      'distill-report-extra': leg('tiny', { environment: { ...sampleReport().environment, cpu: 'another' } }),
    });
    await actOnRun(workflowRun(), dir);
    expect(oneFinalStatus()).toMatchObject({
      state: 'failure',
      description: expect.stringMatching(/^fail: Not expected: distill-gate-tiny\.yml \(in distill-report-extra\)/),
    });
  });

  it('no leg uploaded anything (the run crashed, or its workflow was edited): failure, naming how the run ended', async () => {
    reset();
    const dir = await trustedJob({});
    const result = await actOnRun(workflowRun('failure'), dir);
    expect(result.exitCode).toBe(1);
    expect(oneFinalStatus()).toMatchObject({
      state: 'failure',
      description: expect.stringMatching(
        /^no report\.json was uploaded by the pull request's run \(it ended: failure\)/,
      ),
    });
    expect(api.comments[0].body).toContain('distill-report-tiny, distill-report-small');
  });

  it("nothing either leg's config names changed: success as skipped, whatever was uploaded; a change to one leg's config alone is gated", async () => {
    reset();
    const uploads = { 'distill-report-tiny': leg('tiny', { verdict: 'fail' }) };
    const unrelated = await trustedJob(uploads, ['README.md']);
    await actOnRun(workflowRun(), unrelated);
    expect(oneFinalStatus()).toMatchObject({ state: 'success', description: expect.stringMatching(/gate skipped$/) });
    reset();
    const smallOnly = await trustedJob(uploads, ['distill-gate-small.yml']);
    await actOnRun(workflowRun(), smallOnly);
    expect(oneFinalStatus().state).toBe('failure');
  });
});
