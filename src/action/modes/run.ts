import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as core from '@actions/core';
import { loadConfig, withOverrides } from '../../config/load.js';
import { runPipeline } from '../../pipeline.js';
import type { RunResult } from '../../report/report.js';
import type { RunClock } from '../../run-control.js';
import { regressionAcceptance } from '../acceptance.js';
import { baseTeacherForRun } from '../base-teacher.js';
import type { Step } from '../inputs.js';
import { planStore, readBaseline, recordRun } from '../store.js';
import { changesInCheckout, skipped } from './changes.js';
import type { ModeOutcome } from './outcome.js';

/** mode run: the same pipeline as `distill-gate run`, with the baseline store around it. */
export async function runMode(step: Step, clock: RunClock): Promise<ModeOutcome> {
  const { inputs, context, github } = step;
  // The config first: one that cannot be read fails the step before any GitHub call.
  const loaded = await loadConfig(inputs.config);
  const changes = await changesInCheckout(step, loaded, clock);
  if (changes?.relevant === false) return { notice: skipped(changes) };
  // Files the run writes for itself (the stored baseline, the base teacher) go to the runner's
  // temp folder, which the runner cleans, and are removed when the run ends.
  const workDir = await mkdtemp(path.join(process.env.RUNNER_TEMP ?? os.tmpdir(), 'distill-gate-'));
  let result: RunResult | undefined;
  try {
    const store = github ? await planStore(github, inputs, context, clock.stop) : undefined;
    const stored =
      github && store && !inputs.baseline ? await readBaseline(github, store, workDir, clock.stop) : undefined;
    const config = withOverrides(loaded, {
      backend: inputs.backend === 'auto' ? undefined : inputs.backend,
      baseline: inputs.baseline ?? stored?.reportPath,
      cacheDir: inputs.cacheDir,
    });
    const acceptRegression = await regressionAcceptance(step, clock);
    const baseTeacher = await baseTeacherForRun(inputs.baseTeacher, {
      baseSha: context.payload.pull_request?.base?.sha,
      teacherPath: config.teacher,
      log: (line) => core.info(line),
      workDir,
      signal: clock.stop,
    });
    core.startGroup('distill-gate: distillation');
    try {
      result = await runPipeline(config, {
        outDir: inputs.outputDir,
        baselineStudent: inputs.baseline ? undefined : stored?.studentPath,
        history: stored?.history,
        acceptRegression,
        clock,
        searchFrom: [inputs.workingDirectory, process.env.GITHUB_WORKSPACE ?? inputs.workingDirectory],
        log: (line) => core.info(line),
        commit: context.sha,
        requireGpu: inputs.requireGpu,
        baseTeacher,
      });
    } finally {
      core.endGroup();
    }
    const done = result;
    return { result: done, ...(github && store ? { afterPublish: () => recordRun(github, store, done) } : {}) };
  } finally {
    // A run cut short may leave stages reading these files: the process exits after publishing anyway.
    if (!result?.cutShort) await rm(workDir, { recursive: true, force: true });
  }
}
