import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { configGlobs, judgeChanges, relevantGlobs } from '../../src/action/changes.js';
import { statusTarget, verdictLine } from '../../src/action/commit-verdict.js';
import { statusDescription } from '../../src/action/github/index.js';
import { loadConfig } from '../../src/config/load.js';
import { EXAMPLE } from '../helpers.js';
import { failingSizeGate, sampleReport } from '../sample-report.js';

describe('what counts as a relevant change', () => {
  it('auto stands for the config, the teacher folder and the data files, relative to the repository', async () => {
    const config = await loadConfig(path.join(EXAMPLE, 'distill-gate.yml'));
    const root = path.dirname(EXAMPLE);
    expect(configGlobs(config, root)).toEqual([
      'example/distill-gate.yml',
      'example/models/teacher/**',
      'example/data/train_x.npy',
      'example/data/train_y.npy',
      'example/data/eval_x.npy',
      'example/data/eval_y.npy',
    ]);
    // A file outside the repository cannot change in a PR, and a glob list keeps each once.
    expect(configGlobs(config, path.join(EXAMPLE, 'data'))).not.toContain(expect.stringMatching(/^\.\./));
    expect(relevantGlobs(['auto', 'src/train/**', 'auto'], config, root)).toHaveLength(7);
    expect(relevantGlobs(['auto'], undefined, root)).toEqual([]);
  });

  it('judges changed files against globs, dotfiles included; none matching is a skip', () => {
    const globs = ['models/teacher/**', 'distill-gate.yml', '.github/workflows/distill-gate.yml'];
    expect(judgeChanges(['README.md', 'src/app.ts'], globs, 'b'.repeat(40))).toEqual({
      relevant: false,
      changedCount: 2,
      base: 'b'.repeat(40),
    });
    expect(
      judgeChanges(
        ['README.md', 'models/teacher/group1-shard1of1.bin', '.github/workflows/distill-gate.yml'],
        globs,
        'b',
      ),
    ).toMatchObject({
      relevant: true,
      files: ['models/teacher/group1-shard1of1.bin', '.github/workflows/distill-gate.yml'],
    });
    expect(judgeChanges(['models/teacherless.txt'], globs, 'b').relevant).toBe(false);
  });
});

describe('the commit status', () => {
  const repo = { owner: 'acme', repo: 'models' };
  const context = (eventName: string, payload: Record<string, unknown>) => ({
    eventName,
    payload,
    sha: 'merge',
    ref: '',
    repo,
    serverUrl: '',
    runId: 1,
  });
  const pr = (from: string) => ({
    pull_request: { number: 7, head: { sha: 'h'.repeat(40), repo: { full_name: from } } },
  });

  it("goes on the PR's head commit (not the merge commit), only from a trusted job", () => {
    const inputs = { statusName: 'distill-gate', mode: 'run' as const };
    expect(statusTarget(inputs, context('pull_request', pr('acme/models')))).toEqual({ sha: 'h'.repeat(40) });
    expect(statusTarget(inputs, context('pull_request', pr('Acme/Models')))).toEqual({ sha: 'h'.repeat(40) });
    expect(statusTarget(inputs, context('pull_request', pr('someone/models')))).toMatchObject({
      none: expect.stringMatching(/fork's pull request/),
    });
    expect(statusTarget(inputs, context('push', {}))).toMatchObject({ none: 'a push run has no pull request to gate' });
    expect(statusTarget({ ...inputs, statusName: '' }, context('pull_request', pr('acme/models')))).toEqual({
      none: 'input status-name is off',
    });
    const run = { workflow_run: { head_sha: 'w'.repeat(40) } };
    expect(statusTarget({ ...inputs, mode: 'report' }, context('workflow_run', run))).toEqual({ sha: 'w'.repeat(40) });
    // Mode run under workflow_run has no PR of its own to gate.
    expect(statusTarget(inputs, context('workflow_run', run))).toMatchObject({ none: expect.any(String) });
  });

  it('says the verdict in one plain line of at most 140 characters', () => {
    expect(verdictLine(sampleReport())).toBe('pass: 1 gate pass');
    expect(verdictLine(sampleReport({ verdict: 'fail', gates: [failingSizeGate] }))).toBe(
      'fail: size.ratio 0.05 (<= 0.01)',
    );
    expect(
      verdictLine(sampleReport({ verdict: 'fail', status: 'incomplete', reasons: ['Training stopped: SIGINT.'] })),
    ).toBe('incomplete: Training stopped: SIGINT.');
    // Bidi overrides and newlines from a name cannot disguise the line.
    const hostile = { ...failingSizeGate, metric: 'size.ratio\u202e\nssap' };
    expect(verdictLine(sampleReport({ verdict: 'fail', gates: [hostile] }))).not.toMatch(/[\u202e\n]/);
    const long = statusDescription(`fail: ${'x'.repeat(300)}`);
    expect(long).toHaveLength(140);
    expect(long.endsWith('…')).toBe(true);
  });
});
