/**
 * The accept-regression label as mode run reads it: from the PR as it is now, not from the event
 * payload that a re-run replays. The pipeline is replaced so that what it is asked to accept is
 * what these tests check.
 */
import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { RunOptions } from '../../../src/pipeline.js';
import { exampleWorkspace, quickConfig } from '../../helpers.js';
import { sampleReport } from '../../sample-report.js';
import * as toolkit from '../toolkit.js';

vi.mock('@actions/core', () => import('../toolkit.js'));
vi.mock('@actions/github', async () => (await import('../toolkit.js')).github);
const facade = vi.hoisted(() => ({ current: undefined as ReturnType<typeof toolkit.fakeGitHub> | undefined }));
vi.mock('../../../src/action/github/index.js', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../../../src/action/github/index.js')>()),
  createGitHub: vi.fn(() => facade.current),
}));
const pipeline = vi.hoisted(() => ({ options: [] as RunOptions[] }));
vi.mock('../../../src/pipeline.js', () => ({
  runPipeline: vi.fn(async (_config: unknown, options: RunOptions) => {
    pipeline.options.push(options);
    return { report: sampleReport(), markdown: '## report', reportPath: '/tmp/report.json', studentPath: '' };
  }),
}));

const { run } = await import('../../../src/action/run.js');

const ACCEPT = 'distill-gate:accept-regression';
const workspace = await exampleWorkspace(quickConfig());

/** One mode-run step on PR 7, whose `pull_request_labelled`-style payload carries `payloadLabels`. */
async function runOnPullRequest(payloadLabels: string[]): Promise<RunOptions['acceptRegression']> {
  toolkit.reset(
    {
      'github-token': 'ghs_token',
      'working-directory': workspace,
      config: 'distill-gate.yml',
      'baseline-branch': 'false',
    },
    {
      eventName: 'pull_request',
      payload: { pull_request: { number: 7, base: { ref: 'main' }, labels: payloadLabels.map((name) => ({ name })) } },
    },
  );
  pipeline.options = [];
  await run();
  expect(toolkit.failures()).toEqual([]);
  expect(pipeline.options).toHaveLength(1);
  return pipeline.options[0].acceptRegression;
}

beforeEach(() => {
  facade.current = toolkit.fakeGitHub();
});

describe('the accept-regression label, read live', () => {
  it('a re-run sees the label put on after its event, whose payload lacks it', async () => {
    facade.current!.pullRequestLabels.mockResolvedValue(['bug', ACCEPT]);
    expect(await runOnPullRequest(['bug'])).toEqual({ label: ACCEPT, by: '@alice' });
    expect(facade.current!.pullRequestLabels).toHaveBeenCalledWith(7);
    expect(facade.current!.labelledBy).toHaveBeenCalledWith(7, ACCEPT);
    expect(toolkit.infos()).toContain(
      `distill-gate: label "${ACCEPT}" was put on PR #7 after this run's event; the PR's labels now decide`,
    );
    expect(toolkit.warnings()).toEqual([]);
  });

  it('a label taken off since the event no longer accepts the regression', async () => {
    facade.current!.pullRequestLabels.mockResolvedValue(['bug']);
    expect(await runOnPullRequest([ACCEPT])).toBeUndefined();
    expect(facade.current!.labelledBy).not.toHaveBeenCalled();
    expect(toolkit.infos()).toContain(
      `distill-gate: label "${ACCEPT}" was taken off PR #7 after this run's event; the PR's labels now decide`,
    );
  });

  it('compares names exactly: a look-alike label accepts nothing', async () => {
    facade.current!.pullRequestLabels.mockResolvedValue([ACCEPT.toUpperCase(), `${ACCEPT} `, `${ACCEPT}\u200b`]);
    expect(await runOnPullRequest([])).toBeUndefined();
  });

  it("falls back to the payload's labels, with a warning saying so, when the API cannot tell", async () => {
    const forbidden = Object.assign(new Error('Resource not accessible by integration'), {
      status: 403,
      response: { headers: {} },
    });
    facade.current!.pullRequestLabels.mockRejectedValue(forbidden);
    expect(await runOnPullRequest([ACCEPT])).toEqual({ label: ACCEPT, by: '@alice' });
    expect(toolkit.warnings()).toEqual([
      'Reading the labels of PR #7 failed: HTTP 403 (Resource not accessible by integration). The token may not read this: give the job ' +
        `\`permissions: pull-requests: read\`. The labels of this run's event decide instead (they include "${ACCEPT}"); a re-run does not refresh them.`,
    ]);

    toolkit.warning.mockClear();
    expect(await runOnPullRequest(['bug'])).toBeUndefined();
    expect(toolkit.warnings()[0]).toContain(`The labels of this run's event decide instead (they lack "${ACCEPT}")`);
  });

  it('a push asks GitHub for no labels', async () => {
    toolkit.reset(
      {
        'github-token': 'ghs_token',
        'working-directory': workspace,
        config: 'distill-gate.yml',
        'baseline-branch': 'false',
      },
      { eventName: 'push' },
    );
    pipeline.options = [];
    await run();
    expect(pipeline.options[0].acceptRegression).toBeUndefined();
    expect(facade.current!.pullRequestLabels).not.toHaveBeenCalled();
  });
});
