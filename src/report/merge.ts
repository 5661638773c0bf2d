import path from 'node:path';
import { markdownTable } from 'markdown-table';
import { glob } from 'tinyglobby';
import { InputError } from '../errors.js';
import { escapeMarkdown as esc } from './escape.js';
import { HEADLINE_METRICS, worstOf } from '../measure/metrics.js';
import { formatCompact } from '../measure/metric-format.js';
import { renderMarkdown } from './markdown.js';
import type { RegressionAcceptance } from '../gates/baseline.js';
import { rejudgeReport, type RejudgeOptions } from './rejudge.js';
import { readUntrustedReport } from './read.js';
import type { Report } from './report.js';
import { withOutcome } from './base.js';
import { buildSweep, sweptMetrics, type Sweep, type SweepCandidate } from './sweep.js';
import { sweepSection } from './sweep-markdown.js';
import { outputFolder, writeOutputFile } from '../stages/write.js';

export interface MergedReport {
  verdict: 'pass' | 'fail';
  markdown: string;
  /** The re-judged reports, each with the name it is shown by (see MergeOptions.judgeLeg). */
  reports: Array<{ file: string; report: Report; name: string }>;
  /** Why the merge fails beyond its runs' verdicts: legs expected but missing, reports not expected. */
  reasons: string[];
  /** What a reader must know that does not change the verdict (MergeOptions.notes). */
  notes: string[];
}

/**
 * The reports a merge waits for: how many, and, when the legs are named, which. A crashed or
 * cancelled matrix leg uploads nothing, so without this a merge of the others would pass.
 */
export interface ExpectedLegs {
  count: number;
  /** Leg names: each matches a report whose run name (see nameOf) or folder is that name. */
  names?: string[];
  /**
   * The trusted config of a leg, by leg name, as written (`LEG=CONFIG`): mode report re-judges
   * that leg's upload with it. Only where parseExpected was asked to allow them.
   */
  configs?: Record<string, string>;
}

/**
 * Reads `--expect` / the action's `expect` input: one whole number (how many reports), or leg
 * names separated by spaces or newlines (which ones; a missing one is then named). Empty: no
 * expectation. With `configs` (mode report), a name may be `LEG=CONFIG`: that leg's trusted config.
 */
export function parseExpected(text: string, culprit: string, { configs = false } = {}): ExpectedLegs | undefined {
  const words = text.split(/\s+/).filter(Boolean);
  if (words.length === 0) return undefined;
  if (words.length === 1 && /^[-+]?\d*\.?\d+$/.test(words[0])) {
    const count = Number(words[0]);
    if (!Number.isInteger(count) || count < 1)
      throw new InputError(
        culprit,
        `"${words[0]}" is not a number of reports; give a whole number from 1 (e.g. 2), or the legs' names.`,
      );
    return { count };
  }
  const paired = words.filter((word) => word.includes('='));
  if (paired.length > 0 && !configs)
    throw new InputError(
      culprit,
      `"${paired[0]}" pairs a leg with a config, which only mode report does (it re-judges each leg's upload with the trusted config named); name the legs alone here.`,
    );
  const legs = words.map((word) => {
    const at = word.indexOf('=');
    const { name, config } =
      at < 0 ? { name: word, config: undefined } : { name: word.slice(0, at), config: word.slice(at + 1) };
    if (!name || config === '')
      throw new InputError(
        culprit,
        `"${word}" is not LEG=CONFIG: give the leg's name, then = and its trusted config (e.g. distill-report-tiny=distill-gate-tiny.yml).`,
      );
    return { name, config };
  });
  const names = legs.map((leg) => leg.name);
  const repeated = names.find((name, i) => names.indexOf(name) !== i);
  if (repeated) throw new InputError(culprit, `names the leg "${repeated}" twice; name each leg once.`);
  const withConfig = legs.filter((leg): leg is { name: string; config: string } => leg.config !== undefined);
  return {
    count: names.length,
    names,
    ...(withConfig.length > 0 ? { configs: Object.fromEntries(withConfig.map((leg) => [leg.name, leg.config])) } : {}),
  };
}

/** The files the patterns match, absolute and sorted; none is an empty list. */
export async function reportFiles(patterns: string[], cwd = process.cwd()): Promise<string[]> {
  return (await glob(patterns, { cwd, absolute: true, onlyFiles: true })).sort();
}

/**
 * Expands the patterns (e.g. `reports/*\/report.json`) and reads every report, refusing none found.
 * Each leg's report was written by a job of its own (one that may have run a pull request's code),
 * so each is validated as an upload is (readUntrustedReport); mergeReports re-judges them.
 */
export async function readReports(
  patterns: string[],
  cwd = process.cwd(),
  expected?: ExpectedLegs,
): Promise<Array<{ file: string; report: Report }>> {
  const files = await reportFiles(patterns, cwd);
  if (files.length === 0) {
    const waitedFor = expected
      ? ` (${expected.count} expected${expected.names ? `: ${expected.names.join(', ')}` : ''}: every leg is missing, or the pattern is wrong)`
      : '';
    throw new InputError(
      patterns.join(' '),
      `matches no report.json files${waitedFor}; give the paths or patterns of the reports to merge (e.g. reports/*/report.json).`,
    );
  }
  return Promise.all(files.map(async (file) => ({ file, report: await readUntrustedReport(file) })));
}

export interface MergeOptions {
  /**
   * The PR's accept label, read live by the merging job: failing relative gates of every leg become
   * warnings. A leg's own override is a claim of the job that wrote it, and is not applied.
   */
  acceptance?: RegressionAcceptance;
  /** Why the legs had no base teacher, when the merging job knows it (see RejudgeOptions.noBaseTeacher). */
  noBaseTeacher?: string;
  /**
   * What re-judges each report (mode report): the trusted config and baseline of the expected leg
   * it answers to (see legOf; undefined where it answers to none). Without it, each leg is
   * re-judged with its own thresholds and baseline. With it, a report is shown by the name of that
   * leg (the trusted job's), not by the config name the upload claims.
   */
  judgeLeg?: (leg: string | undefined) => Pick<RejudgeOptions, 'trusted' | 'stored'>;
  /** Notes shown above the table that do not change the verdict, e.g. legs re-judged without a trusted config. */
  notes?: string[];
}

/**
 * One comment and one verdict for a matrix of jobs (one student or config each): a summary row
 * per report (and per missing leg), then each full report folded. Each leg is re-judged as an
 * upload is (rejudgeReport, with its own thresholds): its `verdict` is a claim, so a leg that says
 * pass beside a failing gate fails. The merged run fails when any leg failed, and, given
 * `expected`, when a leg is missing, counted twice, or not expected.
 */
export function mergeReports(
  read: Array<{ file: string; report: Report }>,
  expected?: ExpectedLegs,
  options: MergeOptions = {},
): MergedReport {
  const { acceptance, noBaseTeacher, judgeLeg, notes = [] } = options;
  const reports = read.map((leg) => {
    const expectedLeg = legOf(leg, expected);
    return {
      file: leg.file,
      report: rejudgeReport(leg.report, leg.file, { acceptance, noBaseTeacher, ...judgeLeg?.(expectedLeg) }),
      name: (judgeLeg && expectedLeg) || nameOf(leg.file, leg.report),
    };
  });
  const legs = expected ? checkLegs(reports, expected) : { missing: [], reasons: duplicateReasons(legGroups(reports)) };
  const verdict = legs.reasons.length > 0 || reports.some(({ report }) => report.verdict === 'fail') ? 'fail' : 'pass';
  const rows = reports.map(({ name, report }) => {
    const m = report.metrics;
    const failing = report.gates.filter((g) => g.status === 'fail').map((g) => `${g.metric} (${g.expected})`);
    return [
      esc(name),
      report.verdict === 'pass' ? '✅ pass' : '❌ fail',
      ...HEADLINE_METRICS.map((spec) => formatCompact(spec.name, m[spec.name])),
      failing.length ? failing.join(', ') : '—',
    ];
  });
  const missingRows = legs.missing.map((name) => [
    esc(name),
    '❌ missing',
    ...HEADLINE_METRICS.map(() => '—'),
    'no report.json arrived',
  ]);
  const runs =
    expected && expected.count !== reports.length
      ? `${reports.length} of ${expected.count} runs`
      : `${reports.length} runs`;
  const lines = [
    `## ${verdict === 'pass' ? '✅' : '❌'} distill-gate: ${verdict} (${runs})`,
    '',
    ...[...legs.reasons, ...notes].flatMap((reason) => [`> **Note:** ${esc(reason)}`, '']),
    markdownTable(
      [['Run', 'Verdict', ...HEADLINE_METRICS.map((spec) => spec.label), 'Failing gates'], ...rows, ...missingRows],
      {
        align: ['l', 'l', ...HEADLINE_METRICS.map(() => 'r' as const), 'l'],
      },
    ),
    '',
  ];
  const front = mergedSweep(reports);
  if (front) lines.push(...sweepSection(front, { heading: '### Sweep: the legs side by side' }));
  for (const { name, report } of reports) {
    const body = renderMarkdown(report)
      .replace(/^## /, '### ')
      .replace(/^### (?=[A-Z])/gm, '#### ');
    lines.push('<details>', `<summary>${esc(name)}: ${report.verdict}</summary>`, '', body, '</details>', '');
  }
  return { verdict, markdown: `${lines.join('\n')}\n`, reports, reasons: legs.reasons, notes };
}

/**
 * The legs of a matrix as the candidates of one sweep (one student each, say): each leg's student
 * named by the leg, and every candidate of a leg's own sweep named `leg/candidate`, with the front
 * of size against agreement over all of them (size and agreement are the machine's-independent
 * figures; latencies of legs on different runners are shown but not compared). Whether each passes
 * every gate comes from its leg's re-judged gates. Legs that all ran the same student (a matrix of
 * runners) add only their own sweeps' candidates. Undefined with fewer than two candidates.
 */
export function mergedSweep(reports: Array<{ file: string; report: Report; name?: string }>): Sweep | undefined {
  // Legs that ran one student (a matrix of runners or backends) are not candidates of a sweep.
  const students = new Set(
    reports.map(({ report: { student } }) => JSON.stringify([student.from, student.params, student.bytes])),
  );
  const legsDiffer = students.size >= 2;
  const candidates = reports.flatMap(({ file, report, name }): Array<Omit<SweepCandidate, 'onFront'>> => {
    // The trusted leg name where the merge gave one (never the name an upload claims).
    const leg = name ?? nameOf(file, report);
    const failing = report.gates.filter((g) => g.status === 'fail').map((g) => `${g.metric} (${g.expected})`);
    const own: Omit<SweepCandidate, 'onFront'> =
      report.status === 'complete'
        ? {
            name: leg,
            from: report.student.from,
            status: 'measured',
            metrics: sweptMetrics(report.metrics),
            passesGates: failing.length === 0,
            ...(failing.length > 0 ? { failingGates: failing } : {}),
          }
        : {
            name: leg,
            from: report.student.from,
            status: 'not run',
            reason: report.reasons[0] ?? 'its run is incomplete',
            metrics: {},
            passesGates: null,
          };
    const swept = (report.sweep?.candidates ?? [])
      .filter((c) => !c.configured)
      .map(({ onFront: _, ...c }) => ({ ...c, name: `${leg}/${c.name}` }));
    return legsDiffer ? [own, ...swept] : swept;
  });
  return candidates.length >= 2 ? buildSweep(candidates) : undefined;
}

/**
 * Which expected legs have no report, and why the set of reports is not the one expected: a leg
 * whose report arrived more than once (copies of one run, see legGroups) counts once; with names,
 * a name no report answers to is missing and a report no name matches is unexpected (as is a
 * second leg for one name); with a count, too few or too many legs.
 */
function checkLegs(
  reports: Array<{ file: string; report: Report }>,
  expected: ExpectedLegs,
): { missing: string[]; reasons: string[] } {
  const groups = legGroups(reports);
  const reasons = duplicateReasons(groups);
  const arrived = groups.map((group) => nameOf(group[0].file, group[0].report));
  const listed = (names: string[]) => names.join(', ') || 'none';
  const copied = reasons.length > 0;
  if (!expected.names) {
    if (groups.length < expected.count)
      reasons.push(
        copied
          ? `Only ${groups.length} of ${expected.count} expected legs arrived (${listed(arrived)}): ${expected.count - groups.length} missing, though ${reports.length} reports arrived; a leg that crashed or was cancelled uploads none. Name the legs in expect to see which are missing.`
          : `Only ${reports.length} of ${expected.count} expected reports arrived (${listed(arrived)}): a leg that crashed or was cancelled uploads none. Name the legs in expect to see which are missing.`,
      );
    else if (groups.length > expected.count)
      reasons.push(
        `${groups.length} ${copied ? 'legs' : 'reports'} arrived where ${expected.count} were expected (${listed(arrived)}): a stale or duplicate report.json matches the pattern.`,
      );
    return { missing: [], reasons };
  }
  const names = expected.names; // narrowed above, which the callbacks below would not see
  const missing = expected.names.filter((name) => !reports.some((r) => matches(name, r)));
  // Named with their folder too: the folder is where the trusted job put the artifact, the run name what the report claims.
  const unexpected = reports
    .filter((r) => !names.some((name) => matches(name, r)))
    .map(({ file, report }) =>
      nameOf(file, report) === folderOf(file) ? folderOf(file) : `${nameOf(file, report)} (in ${folderOf(file)})`,
    );
  const twice = expected.names.filter(
    (name) => groups.filter((group) => group.some((r) => matches(name, r))).length > 1,
  );
  if (missing.length > 0)
    reasons.push(
      `Missing: ${listed(missing)} (${groups.length} of ${expected.count} expected reports arrived): a leg that crashed or was cancelled uploads no report.json.`,
    );
  // Copies of one leg in the folders of two names answer to both: one of those legs is missing.
  const unaccounted = expected.count - missing.length - Math.min(groups.length, expected.count);
  if (unaccounted > 0) {
    const shared = expected.names.filter((name) => !missing.includes(name));
    reasons.push(
      `Missing: ${unaccounted} of ${listed(shared)} (${groups.length} of ${expected.count} expected legs arrived): their reports are copies of fewer legs.`,
    );
  }
  if (unexpected.length > 0)
    reasons.push(`Not expected: ${listed(unexpected)}; expect names ${listed(expected.names)}.`);
  if (twice.length > 0)
    reasons.push(`More than one report for ${listed(twice)}: a stale or duplicate report.json matches the pattern.`);
  return { missing, reasons };
}

/** Whether a report answers to a leg's name: its run name (see nameOf) or the folder it lies in. */
function matches(name: string, { file, report }: { file: string; report: Report }): boolean {
  return nameOf(file, report) === name || path.basename(path.dirname(file)) === name;
}

/**
 * The expected leg a report answers to, the first named that it matches; undefined where the legs
 * are only counted or it matches none (it is then not expected, which fails the merge). A report
 * that answers to two names fails it too: checkLegs finds one of them missing or reported twice.
 */
function legOf(leg: { file: string; report: Report }, expected: ExpectedLegs | undefined): string | undefined {
  return expected?.names?.find((name) => matches(name, leg));
}

/**
 * The reports grouped by the leg that wrote them: one config (its path), one commit and one
 * environment (backend, TF.js, platform, CPU, GPU) are one leg, whatever folder its report lies
 * in. Legs of a matrix differ in one of these (a config each, or a runner or backend each); two
 * reports that share all of them are one leg's, downloaded twice or left over from an earlier run.
 */
function legGroups(reports: Array<{ file: string; report: Report }>): Array<Array<{ file: string; report: Report }>> {
  const groups = new Map<string, Array<{ file: string; report: Report }>>();
  for (const leg of reports) {
    const { config, commit, environment: e } = leg.report;
    const key = JSON.stringify([config, commit ?? null, e.backend, e.tfjsVersion, e.platform, e.cpu, e.gpu]);
    groups.set(key, [...(groups.get(key) ?? []), leg]);
  }
  return [...groups.values()];
}

/** One reason per leg whose report arrived more than once, naming it and the folders its copies lie in. */
function duplicateReasons(groups: Array<Array<{ file: string; report: Report }>>): string[] {
  return groups
    .filter((group) => group.length > 1)
    .map(
      (group) =>
        `${nameOf(group[0].file, group[0].report)} arrived ${group.length} times (in ${group.map(({ file }) => path.basename(path.dirname(file))).join(', ')}): the same config, commit and environment are one leg, which counts once.`,
    );
}

/** A run's name: its config file, or the folder its report sits in when configs share a name. */
function nameOf(file: string, report: Report): string {
  const config = report.config ? path.basename(report.config) : '';
  return config && config !== 'distill-gate.yml' ? config : folderOf(file);
}

/** The folder a report lies in (the artifact's name, when downloaded by pattern). */
function folderOf(file: string): string {
  return path.basename(path.dirname(file));
}

/**
 * The merged runs as one Report for the action's outputs and annotations: the merged verdict,
 * every run's gates and reasons (named by run), and the headline metrics' worst values (the lowest
 * where higher is better, e.g. agreement and speed-up; the highest otherwise, e.g. size ratio).
 */
export function mergedAsReport(merged: MergedReport): Report {
  return withOutcome(merged.reports[0].report, {
    verdict: merged.verdict,
    reasons: [
      ...merged.reasons,
      ...merged.notes,
      ...merged.reports.flatMap(({ name, report }) => report.reasons.map((r) => `${name}: ${r}`)),
    ],
    gates: merged.reports.flatMap(({ name, report }) =>
      report.gates.map((g) => ({ ...g, metric: `${name}: ${g.metric}` })),
    ),
    metrics: Object.fromEntries(
      HEADLINE_METRICS.map(({ name }) => [
        name,
        worstOf(
          name,
          merged.reports.map(({ report }) => report.metrics[name]),
        ),
      ]),
    ),
  });
}

/**
 * Writes the merged report.md into `outDir` (`merge --out`, the action's merge-mode output-dir),
 * making the folder when missing. A file where the folder should be, or report.md as a symbolic
 * link, is an InputError naming the path; any other failure names the folder and its cause.
 * Returns the file written.
 */
export async function writeMergedMarkdown(outDir: string, markdown: string): Promise<string> {
  const file = path.join(outDir, 'report.md');
  try {
    await outputFolder(outDir);
    await writeOutputFile(file, markdown);
    return file;
  } catch (error) {
    if (error instanceof InputError) throw error;
    throw new InputError(
      outDir,
      `cannot write the merged report.md there (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); choose a writable folder.`,
    );
  }
}
