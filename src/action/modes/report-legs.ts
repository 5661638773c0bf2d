import path from 'node:path';
import * as core from '@actions/core';
import { loadConfig, type Config } from '../../config/load.js';
import { InputError } from '../../errors.js';
import { fileExists } from '../../models/artifacts.js';
import {
  mergedAsReport,
  mergeReports,
  readReports,
  reportFiles,
  writeMergedMarkdown,
  type ExpectedLegs,
} from '../../report/merge.js';
import type { StoredBaseline } from '../../report/rejudge.js';
import type { RunClock } from '../../run-control.js';
import { regressionAcceptance } from '../acceptance.js';
import type { Step } from '../inputs.js';
import { skipped } from './changes.js';
import type { ModeOutcome } from './outcome.js';
import {
  changesOfPullRequest,
  missingUpload,
  refuseInsideUpload,
  storedBaselineOfBase,
  trustedBaseline,
  trustedConfig,
} from './report.js';

/** What re-judges one leg's upload: the trusted config (none: the upload's own thresholds) and the trusted baseline. */
interface LegJudge {
  trusted?: Config;
  stored?: StoredBaseline;
}

/**
 * mode report with several legs (input `reports`): the fork-safe counterpart of mode merge. A
 * fork's matrix ran with a read-only token and uploaded one report.json per leg; this trusted
 * workflow_run job re-judges each upload with the trusted config of the leg it answers to
 * (`expect: LEG=CONFIG`, else the `config` input) and that config's baseline from the store,
 * never with the upload's thresholds, verdict or baseline, merges them as mode merge does (one
 * comment, one verdict: mergeReports) and sets the one commit status. An expected leg that
 * uploaded nothing, a report no leg expects, or one that answers to two legs fails the merge.
 * Whether the gate applies at all is decided from the files GitHub lists for the PR, against
 * every leg's config, as in mode report.
 */
export async function reportLegsMode(step: Step, clock: RunClock): Promise<ModeOutcome> {
  const { inputs, context } = step;
  const expected = inputs.expect;
  if (!expected)
    throw new InputError(
      'input expect',
      "mode report with reports needs the legs that must arrive (e.g. expect: distill-report-tiny=distill-gate-tiny.yml distill-report-small=distill-gate-small.yml): a fork's run can drop a leg, and the merge of the others would pass.",
    );
  const own = await ownConfigs(inputs, expected);
  const legNames = expected.names ?? [undefined];
  // The `config` input judges the legs without a config of their own; read only when one needs it.
  const needsFallback = legNames.some((leg) => leg === undefined || !own.has(leg));
  const fallback = needsFallback ? await trustedConfig(inputs) : undefined;
  const configOf = (leg: string | undefined) => (leg !== undefined ? own.get(leg)?.config : undefined) ?? fallback;
  const underWorkflowRun = context.eventName === 'workflow_run';
  const pr = underWorkflowRun ? step.pr?.number : undefined;
  const changes = pr !== undefined ? await changesOfPullRequest(step, pr, legNames.map(configOf), clock) : undefined;
  if (changes?.relevant === false) return { notice: skipped(changes) };
  if (underWorkflowRun && (await reportFiles(inputs.reports, inputs.workingDirectory)).length === 0)
    return {
      notice: missingUpload(
        step,
        changes,
        `${inputs.reports.join(' ')}, one report.json for each of ${legsLine(expected)}`,
      ),
    };
  const reports = await readReports(inputs.reports, inputs.workingDirectory, expected);

  // The baseline of a leg with a config of its own is the store's record of that config (the key
  // main.yml records it under); the others share the `baseline` input or the store's record under
  // comment-key, as mode report with one leg does.
  const judges = new Map<string | undefined, LegJudge>();
  judges.set(undefined, { trusted: fallback, stored: needsFallback ? await trustedBaseline(step, clock) : undefined });
  for (const [leg, { config, key }] of own) {
    judges.set(leg, { trusted: config, stored: await storedBaselineOfBase(step, key, clock) });
    core.info(`distill-gate: leg ${leg} is re-judged with the gates of ${config.file}`);
  }
  const acceptance = underWorkflowRun ? await regressionAcceptance(step, clock) : undefined;
  const notes = underWorkflowRun ? untrustedThresholds(inputs, expected, own, fallback) : [];
  for (const note of notes) core.warning(note);
  const merged = mergeReports(reports, expected, {
    acceptance,
    notes,
    judgeLeg: (leg) => judges.get(leg) ?? judges.get(undefined) ?? {},
  });
  const reportPath = await writeMergedMarkdown(inputs.outputDir, merged.markdown);
  // The PR to comment on is found from this event's head commit, never from a commit an upload names.
  const report = { ...mergedAsReport(merged), commit: context.payload.workflow_run?.head_sha };
  return { result: { report, markdown: merged.markdown, reportPath, studentPath: '' } };
}

/**
 * The trusted configs that `expect: LEG=CONFIG` names, loaded, by leg, each with its baseline
 * store key (the path as written). Each is a file the workflow named on purpose, so it must exist
 * in this checkout (and outside the uploads' folder).
 */
async function ownConfigs(
  inputs: Step['inputs'],
  expected: ExpectedLegs,
): Promise<Map<string, { config: Config; key: string }>> {
  const loaded = new Map<string, Config>();
  const legs = new Map<string, { config: Config; key: string }>();
  for (const [leg, written] of Object.entries(expected.configs ?? {})) {
    const file = path.resolve(inputs.workingDirectory, written);
    if (!(await fileExists(file)))
      throw new InputError(
        'input expect',
        `${written}, the trusted config of leg ${leg}, is not at ${file}: check out the default branch's config of each leg (e.g. sparse-checkout) before this step.`,
      );
    refuseInsideUpload(inputs, file, `input expect (leg ${leg})`);
    const config = loaded.get(file) ?? (await loadConfig(file));
    loaded.set(file, config);
    legs.set(leg, { config, key: written });
  }
  return legs;
}

/**
 * Under workflow_run, the legs a trusted config does not judge (no `=CONFIG`, and no file at the
 * `config` input): their own thresholds, which the pull request chose, decided. A reviewer must see
 * that in the comment, not find it in the log.
 */
function untrustedThresholds(
  inputs: Step['inputs'],
  expected: ExpectedLegs,
  own: Map<string, unknown>,
  fallback: Config | undefined,
): string[] {
  if (fallback) return [];
  const legs = expected.names ? expected.names.filter((leg) => !own.has(leg)) : [`all ${expected.count} legs`];
  if (legs.length === 0) return [];
  return [
    `No trusted config for ${legs.join(', ')} (no LEG=CONFIG in expect, and none at ${inputs.config}): their uploaded reports were re-judged with their own thresholds, which the pull request chose. Check out the default branch's configs and name each leg's in expect.`,
  ];
}

/** The expected legs, for a line of text. */
function legsLine(expected: ExpectedLegs): string {
  return expected.names ? expected.names.join(', ') : `${expected.count} legs`;
}
