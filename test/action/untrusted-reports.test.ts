import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { Report } from '../../src/report/report.js';
import { quickConfig } from '../helpers.js';
import { failingSizeGate, fullSampleReport, sampleReport } from '../sample-report.js';
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

/** A trusted job's workspace: the artifact downloaded into upload/, and optionally the trusted config checked out. */
async function workspace(report: Report | Record<string, unknown>, trustedConfig?: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-untrusted-'));
  await mkdir(path.join(dir, 'upload'), { recursive: true });
  await writeFile(path.join(dir, 'upload/report.json'), JSON.stringify(report));
  if (trustedConfig) {
    await writeFile(path.join(dir, 'distill-gate.yml'), trustedConfig);
  }
  vi.stubEnv('GITHUB_WORKSPACE', dir);
  return dir;
}

/** What a forger uploads: a pass beside a gate that fails, and a path to a file it would like echoed. */
const forged = () =>
  sampleReport({
    gates: [{ ...failingSizeGate, pass: true, status: 'pass' }],
    student: { path: '/etc/passwd', params: 1, bytes: 1, from: 'layers' },
  });

beforeEach(() => {
  toolkit.reset();
  vi.unstubAllEnvs();
  facade.current = toolkit.fakeGitHub();
});

describe('mode report re-judges what an untrusted job uploaded', () => {
  it('a forged pass beside a failing gate is posted as a fail, exits non-zero, and echoes no path from the upload', async () => {
    const dir = await workspace(forged());
    toolkit.reset({ mode: 'report', report: 'upload/report.json' });
    await run();
    expect(toolkit.failures()).toEqual(['distill-gate: failing gates: size.ratio (<= 0.01)']);
    expect(toolkit.outputs()).toMatchObject({
      verdict: 'fail',
      'student-path': '',
      'report-path': path.join(dir, 'upload/report.json'),
    });
    expect(JSON.stringify(toolkit.outputs())).not.toContain('/etc/passwd');
    expect(toolkit.summaryState.lines[0]).toContain('## ❌ distill-gate: fail');
    expect(toolkit.summaryState.lines[0]).toContain(
      'The uploaded report claimed pass; re-judged from its values with its own thresholds: fail',
    );
    expect(toolkit.infos()).toContain(
      `distill-gate: no config at ${path.join(dir, 'distill-gate.yml')} in this checkout; re-judging the uploaded gates with their own thresholds`,
    );
  });

  it("under workflow_run, a missing trusted config is said in the report: the PR's own thresholds decided", async () => {
    await workspace(sampleReport());
    toolkit.reset(
      { mode: 'report', report: 'upload/report.json' },
      { eventName: 'workflow_run', payload: { workflow_run: { head_sha: 'f0f0f0' } } },
    );
    await run();
    expect(toolkit.warnings()).toContainEqual(
      expect.stringMatching(
        /^No trusted config at .*: the uploaded report was re-judged with its own thresholds, which the pull request chose/,
      ),
    );
    expect(toolkit.summaryState.lines[0]).toContain('re-judged with its own thresholds, which the pull request chose');
  });

  it("judges with the trusted checkout's config when it has one, whatever thresholds the upload wrote", async () => {
    const dir = await workspace(sampleReport(), quickConfig({ gates: '  agreement.top1: ">= 0.99"' }));
    toolkit.reset({ mode: 'report', report: 'upload/report.json' });
    await run();
    expect(toolkit.infos()).toContain(
      `distill-gate: re-judging the uploaded report with the gates of ${path.join(dir, 'distill-gate.yml')}`,
    );
    expect(toolkit.failures()).toEqual(['distill-gate: failing gates: agreement.top1 (>= 0.99)']);
  });

  it('refuses a config that lies in the folder of the upload, which could have come with it', async () => {
    const dir = await workspace(sampleReport());
    await writeFile(path.join(dir, 'upload/distill-gate.yml'), quickConfig({ gates: '' }));
    toolkit.reset({ mode: 'report', report: 'upload/report.json', config: 'upload/distill-gate.yml' });
    await run();
    expect(toolkit.failures()).toEqual([
      expect.stringMatching(
        /^distill-gate: input config: .*upload\/distill-gate\.yml lies in .*upload, the folder of the uploaded report/,
      ),
    ]);
    expect(toolkit.setOutput).not.toHaveBeenCalled();
  });

  it('a trusted teacherDiff gate on an upload that deleted teacherDiff fails as not measured, not skipped', async () => {
    const upload: Record<string, unknown> = {
      ...fullSampleReport({ verdict: 'pass', status: 'complete', reasons: [], override: null, gates: [] }),
    };
    delete upload.teacherDiff;
    const metrics = { ...(upload.metrics as Record<string, number>) };
    for (const name of ['teacherDiff.agreement', 'teacherDiff.kl', 'teacherDiff.studentVsBase']) delete metrics[name];
    await workspace({ ...upload, metrics }, quickConfig({ gates: '  teacherDiff.agreement: ">= 0.9"' }));
    toolkit.reset({ mode: 'report', report: 'upload/report.json' });
    await run();
    expect(toolkit.outputs().verdict).toBe('fail');
    expect(toolkit.failures()).toEqual(['distill-gate: failing gates: teacherDiff.agreement (>= 0.9)']);
  });

  it('refuses an upload whose speed interval is open over hundreds of rounds, naming its JSON path', async () => {
    await workspace(
      sampleReport({
        gates: [
          {
            ...sampleReport().gates[0],
            metric: 'speed.speedup',
            threshold: 5,
            value: 4,
            pass: null,
            status: 'inconclusive',
            expected: '>= 5',
          },
        ],
        speedIntervals: {
          'speed.speedup': { value: 4, low: -Infinity, high: Infinity, rounds: 400, confidence: 0.999 },
        },
      }),
    );
    toolkit.reset({ mode: 'report', report: 'upload/report.json' });
    await run();
    expect(toolkit.failures()).toEqual([
      expect.stringMatching(
        /upload\/report\.json: speedIntervals\["speed\.speedup"\]\.low: .* is open, but 400 rounds always bound/,
      ),
    ]);
  });

  it('refuses an upload that is not a report, naming the JSON path', async () => {
    await workspace({ ...sampleReport(), verdict: 'pass', gates: [{ ...failingSizeGate, status: 'passed' }] });
    toolkit.reset({ mode: 'report', report: 'upload/report.json' });
    await run();
    expect(toolkit.failures()).toEqual([
      expect.stringMatching(
        /upload\/report\.json: gates\[0\]\.status: Invalid option.*so the uploaded report is refused\.$/,
      ),
    ]);
  });

  it("comments on the PR of the event's head commit, never on one the upload names", async () => {
    await workspace(sampleReport({ commit: 'c0ffee' }));
    toolkit.reset(
      { mode: 'report', report: 'upload/report.json', 'github-token': TOKEN },
      { eventName: 'workflow_run', payload: { workflow_run: { pull_requests: [] } } },
    );
    await run();
    expect(facade.current!.findPullRequestBySha).not.toHaveBeenCalled();
    expect(facade.current!.upsertStickyComment).not.toHaveBeenCalled();
  });
});

describe('mode merge expects its legs', () => {
  it('fails a leg whose verdict says pass beside a failing gate of its own', async () => {
    const dir = await workspace(sampleReport());
    await mkdir(path.join(dir, 'reports/distill-report-tiny'), { recursive: true });
    await writeFile(
      path.join(dir, 'reports/distill-report-tiny/report.json'),
      JSON.stringify(sampleReport({ verdict: 'pass', gates: [{ ...failingSizeGate, pass: true, status: 'pass' }] })),
    );
    toolkit.reset({ mode: 'merge', reports: 'reports/*/report.json', expect: '1' });
    await run();
    expect(toolkit.outputs().verdict).toBe('fail');
  });

  it('fails naming the missing leg when a crashed leg uploaded nothing, and warns when expect is not set', async () => {
    const dir = await workspace(sampleReport());
    await mkdir(path.join(dir, 'reports/distill-report-tiny'), { recursive: true });
    await writeFile(path.join(dir, 'reports/distill-report-tiny/report.json'), JSON.stringify(sampleReport()));
    toolkit.reset({
      mode: 'merge',
      reports: 'reports/*/report.json',
      expect: 'distill-report-tiny distill-report-small',
    });
    await run();
    expect(toolkit.outputs().verdict).toBe('fail');
    expect(toolkit.failures()).toEqual([
      'distill-gate: Missing: distill-report-small (1 of 2 expected reports arrived): a leg that crashed or was cancelled uploads no report.json.',
    ]);

    toolkit.reset({ mode: 'merge', reports: 'reports/*/report.json' });
    await run();
    expect(toolkit.outputs().verdict).toBe('pass');
    expect(toolkit.warnings()).toContain(
      'distill-gate: input expect is not set, so a matrix leg that uploaded no report.json would go unnoticed; set expect to the number (or names) of the legs.',
    );
  });
});

describe('mode report judges relative gates against its own baseline store', () => {
  it("reads the base branch's stored baseline itself: an upload without one cannot skip a relative gate", async () => {
    const dir = await workspace(
      sampleReport({ baseline: null, gates: [] }),
      quickConfig({ gates: '  agreement.top1: { maxDrop: 0.01 }' }),
    );
    const storedFile = path.join(dir, 'stored-report.json');
    await writeFile(
      storedFile,
      JSON.stringify(
        sampleReport({ metrics: { ...sampleReport().metrics, 'agreement.top1': 0.99 }, commit: 'base123' }),
      ),
    );
    facade.current!.readStoredBaseline.mockResolvedValue({ reportPath: storedFile, history: [] });
    toolkit.reset(
      { mode: 'report', report: 'upload/report.json', 'github-token': TOKEN },
      { eventName: 'workflow_run', payload: { workflow_run: { head_sha: 'f0f0f0', pull_requests: [] } } },
    );
    await run();
    expect(facade.current!.readStoredBaseline).toHaveBeenCalledWith(
      expect.objectContaining({ forBranch: 'main' }),
      expect.any(String),
    );
    expect(toolkit.failures()).toEqual(['distill-gate: failing gates: agreement.top1 (drop <= 0.01)']);
    expect(toolkit.summaryState.lines[0]).toContain('base123');
  });

  it("applies the PR's accept label, read live by this job, to the upload's failing relative gates", async () => {
    const dir = await workspace(
      sampleReport({ baseline: null, gates: [] }),
      quickConfig({ gates: '  agreement.top1: { maxDrop: 0.01 }' }),
    );
    const storedFile = path.join(dir, 'stored-report.json');
    await writeFile(
      storedFile,
      JSON.stringify(sampleReport({ metrics: { ...sampleReport().metrics, 'agreement.top1': 0.99 } })),
    );
    facade.current!.readStoredBaseline.mockResolvedValue({ reportPath: storedFile, history: [] });
    facade.current!.pullRequestLabels.mockResolvedValue(['distill-gate:accept-regression']);
    toolkit.reset(
      { mode: 'report', report: 'upload/report.json', 'github-token': TOKEN },
      { eventName: 'workflow_run', payload: { workflow_run: { head_sha: 'f0f0f0', pull_requests: [] } } },
    );
    await run();
    expect(facade.current!.pullRequestLabels).toHaveBeenCalledWith(12);
    expect(toolkit.failures()).toEqual([]);
    expect(toolkit.warnings()).toContain('agreement.top1 = 0.95, expected drop <= 0.01 (baseline 0.99)');
    expect(toolkit.summaryState.lines[0]).toContain('@\u200balice');
  });
});
