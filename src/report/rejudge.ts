import path from 'node:path';
import type { Config } from '../config/load.js';
import { InputError } from '../errors.js';
import { withDefaultGates } from '../gates/defaults.js';
import { parseGates, verdictOf, type GateCheck, type GateResult } from '../gates/gates.js';
import {
  intervalBound,
  isPairedSpeedCheck,
  judgeGates,
  type BaselineRun,
  type RegressionAcceptance,
  type SpeedEnvironment,
  type TimedSpeed,
} from '../gates/baseline.js';
import { addChanceWarning, failedOutright, withAcceptance } from '../gates/verdict.js';
import { intervalProblem, type MeasuredInterval } from '../measure/intervals.js';
import { measuredMetrics, metricSpec } from '../measure/metrics.js';
import { comparisonInterval, type SpeedComparison } from '../measure/paired-speed.js';
import { withOutcome } from './base.js';
import { rejudgeSweep } from './sweep.js';
import type { Report } from './report.js';

export interface RejudgeOptions {
  /** The trusted workflow's config: its gates replace the upload's. */
  trusted?: TrustedConfig;
  /** The baseline the trusted workflow read from its store: it replaces the upload's. */
  stored?: StoredBaseline;
  /** The PR's accept label, read live by the trusted workflow: failing relative gates become warnings. */
  acceptance?: RegressionAcceptance;
  /**
   * Why the run had no base teacher to compare with, when the trusted workflow knows it itself
   * (e.g. "a push has no base branch"): gates on `teacherDiff.*` the upload did not measure are
   * then skipped with this reason, as a run skips them. Without it they fail as not measured,
   * since the upload could have deleted the comparison to skip them.
   */
  noBaseTeacher?: string;
}

/** A baseline the trusted workflow read itself, from its baseline store: the report and where it was stored. */
export interface StoredBaseline {
  report: Report;
  path: string;
}

/** What re-judging takes from the trusted workflow's own config: its gates and how an inconclusive latency comparison counts. */
export type TrustedConfig = Pick<Config, 'gates' | 'measure' | 'file'> & Partial<Pick<Config, 'export'>>;

/**
 * Re-judges a report uploaded by a job that ran a pull request's code (mode report), believing
 * none of its conclusions: every gate's status is recomputed with the same judgeGates() a run uses,
 * from the uploaded values and baseline values and from the thresholds of `trusted` (the trusted
 * workflow's config) when given, else of the uploaded gates; the verdict is derived from those.
 * Re-judging only ever makes a report worse: an uploaded `fail` (a failing gate, a cancelled run,
 * a non-finite loss) stays `fail`. What it cannot do is vouch for the numbers themselves, which
 * the untrusted job measured. Pure; `file` names the upload in errors.
 */
export function rejudgeReport(
  uploaded: Report,
  file: string,
  { trusted, stored, acceptance, noBaseTeacher }: RejudgeOptions = {},
): Report {
  // The paired latency gate is re-decided from the interval the upload carries (speedComparison),
  // with the allowed ratio of the check being judged, never from the upload's own decision.
  // Absolute speed gates likewise, from the intervals the run measured (each must hold its median).
  const timed: TimedSpeed = {
    ...(uploaded.speedComparison ? { comparison: checkedComparison(uploaded.speedComparison, uploaded, file) } : {}),
    ...(uploaded.speedIntervals ? { intervals: checkedIntervals(uploaded, file) } : {}),
    inconclusive: trusted?.measure.inconclusive ?? 'pass',
  };
  // The default gate on the shipped student applies as in a run: for the export the trusted config
  // asks for (an upload that dropped its quantized metrics then fails it as not measured), or,
  // judged by its own thresholds, for the export the upload says it made.
  const quantize = trusted ? (trusted.export?.quantize ?? 'none') : (uploaded.export?.quantize ?? 'none');
  const checks: GateCheck[] = withDefaultGates(
    trusted
      ? trustedChecks(trusted)
      : uploaded.gates.map(({ metric, op, threshold, relative, level }) => ({
          metric,
          op,
          threshold,
          relative,
          level,
        })),
    { export: { quantize, format: trusted ? trusted.export?.format : uploaded.export?.format } },
    uploaded.metrics,
  );
  const baselineValues = uploadedBaselineValues(uploaded, file);
  // The trusted store's baseline, when there is one, replaces whatever baseline the upload carried
  // (or left out): an upload could drop its baseline to skip every relative gate, or edit it.
  const baseline = stored
    ? { metrics: stored.report.metrics, environment: stored.report.environment }
    : baselineRun(uploaded, baselineValues);
  const judged = judgeGates(checks, uploaded.metrics, uploaded.environment, baseline, timed);
  const rejudged = judged.gates.map((gate) =>
    withUploadedStatus(
      judgedInFull(
        stored ? gate : unjudgeableWithoutBaseline(gate, uploaded, baselineValues),
        uploaded,
        timed,
        noBaseTeacher,
      ),
      uploaded.gates,
    ),
  );
  const { gates, override } = withAcceptance(rejudged, acceptance);

  const claimed = uploaded.verdict;
  // Re-judging never turns a fail into a pass, with one exception: failing relative gates that the
  // PR's accept label (read live by the trusted job) turns into warnings. A run that failed
  // outright (cancelled, a non-finite loss) stays failed whatever its gates say.
  const verdict = claimed === 'fail' && (!acceptance || failedOutright(uploaded)) ? 'fail' : verdictOf(gates);
  const thresholdsFrom = trusted
    ? `the thresholds of the trusted ${path.basename(trusted.file)}`
    : 'its own thresholds';
  const reasons = [...uploaded.reasons];
  if (verdict !== claimed) {
    const failing = gates.filter((g) => g.status === 'fail').map((g) => `${g.metric} (${g.expected})`);
    reasons.push(
      `The uploaded report claimed ${claimed}; re-judged from its values with ${thresholdsFrom}: ${verdict} (failing: ${failing.join(', ')}).`,
    );
  } else if (claimed === 'fail' && verdictOf(gates) === 'pass' && uploaded.gates.some((g) => g.status === 'fail')) {
    reasons.push(
      `The uploaded report claimed fail; its gates re-judge as passing with ${thresholdsFrom}, but re-judging never turns a fail into a pass.`,
    );
  }
  if (!stored && !uploaded.baseline && gates.some((g) => g.status === 'skipped' && g.note === 'no baseline')) {
    reasons.push(
      'Relative gates were skipped: the upload names no baseline, and this job read none of its own (a baseline store, or a baseline input) to judge them against.',
    );
  }
  addChanceWarning(reasons, uploaded.metrics);
  if (uploaded.override && !acceptance) {
    reasons.push(
      `The upload's accepted regression (label "${uploaded.override.label}" by ${uploaded.override.by}) was not applied: an override is only taken from a pull request's labels by the run that reads them, never from an upload.`,
    );
  }
  return withOutcome(uploaded, {
    verdict,
    gates,
    // The sweep is information, but what it says of each candidate is re-judged all the same.
    ...(uploaded.sweep ? { sweep: rejudgeSweep(uploaded.sweep, checks, gates, baseline?.metrics) } : {}),
    reasons,
    override: override ?? null,
    baseline: stored
      ? {
          path: stored.path,
          createdAt: stored.report.createdAt,
          commit: stored.report.commit,
          ...(stored.report.runUrl ? { runUrl: stored.report.runUrl } : {}),
          environmentDiffers: judged.environmentDiffers,
        }
      : // A link from the upload is not followed: the baseline line names its commit and date only.
        uploaded.baseline
        ? { ...withoutRunUrl(uploaded.baseline), environmentDiffers: judged.environmentDiffers }
        : null,
  });
}

/**
 * The upload's speed intervals, refusing one that medianInterval could not have written (open where
 * its rounds bound it, a median outside it: see intervalProblem) or that does not hold the metric's
 * own median: an edited report. A forged open interval would make any gate on it inconclusive.
 */
function checkedIntervals(uploaded: Report, file: string): Record<string, MeasuredInterval> {
  const intervals = uploaded.speedIntervals ?? {};
  for (const [metric, interval] of Object.entries(intervals)) {
    const problem = intervalProblem(interval);
    if (problem) throw new InputError(`${file}: speedIntervals["${metric}"].${problem.field}`, problem.message);
    const value = uploaded.metrics[metric];
    if (value !== undefined && value !== interval.value) {
      throw new InputError(
        `${file}: speedIntervals["${metric}"]`,
        `[${interval.low}, ${interval.high}] around ${interval.value} does not hold the reported ${metric} (${value}); a run writes each median inside its interval, so this report was edited after its run.`,
      );
    }
  }
  return intervals;
}

/**
 * The upload's timing of the new student against the baseline's, refused when its interval is not
 * one a run writes, or its ratio and baseline latency are not the metrics the run reported.
 */
function checkedComparison(comparison: SpeedComparison, uploaded: Report, file: string): SpeedComparison {
  const problem = intervalProblem(comparisonInterval(comparison));
  if (problem)
    throw new InputError(
      `${file}: speedComparison.${problem.field === 'value' ? 'ratio' : problem.field}`,
      problem.message,
    );
  for (const [field, metric] of [
    ['ratio', 'speed.vsBaseline'],
    ['baselineMs', 'speed.baselineStudentMs'],
  ] as const) {
    const value = uploaded.metrics[metric];
    if (value !== undefined && value !== comparison[field]) {
      throw new InputError(
        `${file}: speedComparison.${field}`,
        `${comparison[field]} is not the reported ${metric} (${value}); a run writes both from one timing, so this report was edited after its run.`,
      );
    }
  }
  return comparison;
}

/**
 * Every gate judged, never skipped on the upload's word. A run skips a gate on a metric it did not
 * measure when the metric's family says why (no base teacher for `teacherDiff.*`); re-judging an
 * upload cannot confirm that reason, since the upload could have deleted the metric to skip the
 * gate, so the gate fails as not measured. And an absolute gate on a timed metric needs the
 * interval a run writes for each: one the upload left out fails rather than being judged on the
 * bare median, which would pass what the interval leaves undecided.
 */
function judgedInFull(
  gate: GateResult,
  uploaded: Report,
  timed: TimedSpeed,
  noBaseTeacher: string | undefined,
): GateResult {
  const failed = { pass: false, status: gate.level === 'warn' ? 'warn' : 'fail' } as const;
  if (gate.status === 'skipped' && !Number.isFinite(gate.value ?? NaN)) {
    if (noBaseTeacher !== undefined && metricSpec(gate.metric)?.stage === 'teacher diff')
      return { ...gate, note: `no base teacher to compare with: ${noBaseTeacher}` };
    return {
      ...gate,
      ...failed,
      note: `metric not measured: the upload has no ${gate.metric}${gate.note ? `; a run skips this gate with ${gate.note}, which re-judging an upload cannot confirm` : ''}`,
    };
  }
  const paired = timed.comparison !== undefined && isPairedSpeedCheck(gate);
  if (
    !paired &&
    intervalBound(gate) &&
    Number.isFinite(uploaded.metrics[gate.metric] ?? NaN) &&
    !timed.intervals?.[gate.metric]
  ) {
    return {
      ...gate,
      ...failed,
      note: `the upload carries no interval of ${gate.metric}, which every run writes for each timed metric, so this gate can't be judged`,
    };
  }
  return gate;
}

/**
 * The trusted config's checks, on any metric a run can measure: a gate on one the upload lacks
 * then fails as "metric not measured". A gate that does not parse names the config file.
 */
function trustedChecks(trusted: TrustedConfig): GateCheck[] {
  try {
    return parseGates(
      trusted.gates,
      measuredMetrics({
        classes: Infinity,
        topK: trusted.measure.topK,
        labels: true,
        baselineStudent: true,
        quantized: true,
        baseTeacher: true,
        onnx: true,
      }),
    );
  } catch (error) {
    if (error instanceof InputError)
      throw new InputError(`${trusted.file} ${error.culprit}`, error.message.slice(error.culprit.length + 2));
    throw error;
  }
}

/**
 * The baseline value of each metric as the uploaded gates carry it (report.json keeps no other
 * copy). Every gate on one metric was judged against the same baseline, so two that disagree mean
 * the upload was edited. Paired latency gates are left out: their baseline is the baseline
 * student timed in that run (speedComparison.baselineMs), not the stored report's value.
 */
function uploadedBaselineValues(uploaded: Report, file: string): Map<string, number | null> {
  const values = new Map<string, number | null>();
  uploaded.gates.forEach((gate, i) => {
    if (uploaded.speedComparison && isPairedSpeedCheck(gate)) return;
    const seen = values.get(gate.metric);
    if (seen !== undefined && seen !== gate.baseline) {
      throw new InputError(
        `${file}: gates[${i}].baseline`,
        `${gate.baseline} disagrees with ${seen}, the baseline of an earlier gate on ${gate.metric}; every gate on one metric is judged against one baseline, so this report was edited after its run.`,
      );
    }
    values.set(gate.metric, gate.baseline);
  });
  return values;
}

/**
 * The baseline as judgeGates() wants it. report.json records whether the baseline's environment
 * differed from the run's, not the baseline's environment itself; judgeGates() only compares the two,
 * so one that differs in name stands for it.
 */
function baselineRun(uploaded: Report, values: Map<string, number | null>): BaselineRun | undefined {
  if (!uploaded.baseline) return undefined;
  const here: SpeedEnvironment = uploaded.environment;
  const metrics = Object.fromEntries([...values].filter((entry): entry is [string, number] => entry[1] !== null));
  return {
    metrics,
    environment: uploaded.baseline.environmentDiffers ? { ...here, backend: `${here.backend}, elsewhere` } : here,
  };
}

/**
 * A relative gate of the trusted config on a metric the upload never gated has no baseline value
 * to be judged against although the run had a baseline: it fails (a warning at level warn)
 * instead of being skipped, since the upload left out what the gate needed.
 */
function unjudgeableWithoutBaseline(
  gate: GateResult,
  uploaded: Report,
  values: Map<string, number | null>,
): GateResult {
  if (gate.status !== 'skipped' || gate.note !== 'no baseline' || !uploaded.baseline || values.has(gate.metric))
    return gate;
  return {
    ...gate,
    pass: false,
    status: gate.level === 'warn' ? 'warn' : 'fail',
    note: "the upload had a baseline but carries no baseline value of this metric (its run did not gate it), so this gate can't be judged",
  };
}

/** Says so on a gate whose re-judged status differs from what the upload claimed for the same check. */
function withUploadedStatus(gate: GateResult, uploadedGates: GateResult[]): GateResult {
  const claimed = uploadedGates.find(
    (g) => g.metric === gate.metric && g.op === gate.op && g.relative === gate.relative,
  );
  if (!claimed || claimed.status === gate.status) return gate;
  return { ...gate, note: `${gate.note ? `${gate.note}; ` : ''}uploaded as ${claimed.status}` };
}

function withoutRunUrl<T extends { runUrl?: string }>(baseline: T): T {
  const rest = { ...baseline };
  delete rest.runUrl;
  return rest;
}
