import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { COMMANDS_HELP_FOOTER, NO_COMMAND_HINT, packageVersion } from './help.js';
import { loadConfig, withOverrides } from '../config/load.js';
import { BACKENDS, type BackendName } from '../config/schema.js';
import { ExitCode, InputError, isInputError } from '../errors.js';
import { runPipeline, type RunResult } from '../pipeline.js';
import { readReport } from '../report/read.js';
import { historyTable, readHistory } from '../report/history.js';
import { mergeReports, parseExpected, readReports, writeMergedMarkdown } from '../report/merge.js';
import path from 'node:path';
import { compareReports } from '../report/compare.js';
import { doctor } from '../backend/doctor.js';
import { MAX_BUDGET_MINUTES, parseBudgetMinutes, withRunClock } from '../run-control.js';
import { fileExists } from '../models/artifacts.js';
import { endedAlso, RunCancelled, unlessForced } from './cancel.js';
import { findLaunchers, launcherEndedReason, watchLaunchers } from './launchers.js';
import { addInit } from './init.js';
import type { CliIo } from './io.js';

const defaultIo: CliIo = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

export interface CliOptions {
  /**
   * Watch the processes that started the CLI (npm's `sh -c`, npm, and under the Actions runner
   * the step's shell) and end a run with its report when one of them ends: the runner's signals
   * reach only the step's own process (see launchers.ts). The bin turns it on; tests that call
   * main in-process leave it off.
   */
  watchLaunchers?: boolean;
}

function parseMinutes(value: string): number {
  const minutes = parseBudgetMinutes(value);
  if (minutes === undefined)
    throw new InvalidArgumentError(
      `give the budget in plain decimal minutes, above 0 and at most ${MAX_BUDGET_MINUTES} (e.g. 30 or 0.5).`,
    );
  return minutes;
}

/** `history -n`: a whole number of runs from 1, written plainly (not `abc`, `-5`, `0x10` or `2.5`). */
function parseRuns(value: string): number {
  const runs = /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(runs) || runs < 1)
    throw new InvalidArgumentError('give a whole number of runs from 1 (e.g. 10).');
  return runs;
}

/** Runs the CLI and resolves to its exit code; never calls process.exit (tests call it). */
export async function main(argv: string[], io: CliIo = defaultIo, options: CliOptions = {}): Promise<number> {
  let exitCode: number = ExitCode.pass;
  const program = new Command('distill-gate')
    .description('Distil a teacher into a student with TensorFlow.js, measure both, and gate the result.')
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .showHelpAfterError('(run distill-gate --help for usage)')
    .version(packageVersion(), '-V, --version', 'print the version of distill-gate')
    .addHelpText('after', COMMANDS_HELP_FOOTER);

  for (const add of [addInit, addRun, addCompare, addMerge, addHistory, addDoctor])
    add(program, io, (code) => (exitCode = code), options);

  try {
    // Without a command, commander prints the help on stderr (exit 2): say why first.
    if (argv.length === 0) io.stderr(NO_COMMAND_HINT);
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.exitCode === 0 ? ExitCode.pass : ExitCode.badInput;
    }
    if (isInputError(error)) {
      io.stderr(`distill-gate: error: ${error.message}\n`);
      return ExitCode.badInput;
    }
    if (error instanceof RunCancelled) {
      io.stderr(`distill-gate: cancelled: ${error.message}\n`);
      return ExitCode.gateFailed;
    }
    io.stderr(
      `distill-gate: internal error (a bug in distill-gate, please report it with this output):\n${error instanceof Error ? error.stack : String(error)}\n`,
    );
    return ExitCode.internal;
  }
}

/** `run`: distil, measure, judge and write; exit 0 on pass, 1 on a failing gate. */
function addRun(program: Command, io: CliIo, done: (code: number) => void, cli: CliOptions): void {
  program
    .command('run')
    .description('distil, measure, check gates and write report.json, report.md and student/')
    .option('-c, --config <file>', 'YAML or JSON config; paths in it are relative to its folder', 'distill-gate.yml')
    .option('-o, --out <dir>', 'folder for report.json, report.md and the trained student', 'distill-report')
    .addOption(
      new Option(
        '-b, --backend <name>',
        'TF.js backend, overrides the config (auto: tensorflow-gpu, webgpu on a hardware adapter, tensorflow, wasm, cpu)',
      ).choices(BACKENDS),
    )
    .option('--baseline <report.json>', "an earlier run's report.json for relative gates (maxDrop, maxIncrease)")
    .option(
      '--cache-dir <dir>',
      "cache the teacher's soft targets here, keyed by teacher, data and backend; a hit skips the teacher",
    )
    .option(
      '--base-teacher <model.json>',
      "the base branch's teacher (model.json or ONNX), compared with this one on the eval split (teacherDiff.*)",
    )
    .option(
      '--budget <minutes>',
      "time budget of the whole run: the teacher's pass and training stop in time to measure and report within it (status incomplete)",
      parseMinutes,
    )
    .option(
      '--require-gpu',
      'fail (incomplete, before the teacher runs) when no GPU backend loads, instead of running on CPU',
    )
    .option('-q, --quiet', 'no progress on stderr and no report on stdout')
    .action(async (options: RunFlags) => {
      const log = options.quiet ? () => {} : (line: string) => io.stderr(`${line}\n`);
      // A bar that redraws itself on a terminal; a log (CI, a file) gets periodic lines instead.
      const bar = !options.quiet && process.stderr.isTTY ? (text: string) => io.stderr(text) : undefined;
      const result = await runUnderClock(options, { log, bar }, cli);
      if (!options.quiet || result.writeError) io.stdout(result.markdown);
      // The report was printed above, so nothing is lost when the disk refused it.
      if (result.writeError) throw result.writeError;
      log(`report: ${result.reportPath}\nstudent: ${result.studentPath}\nverdict: ${result.report.verdict}`);
      done(result.report.verdict === 'pass' ? ExitCode.pass : ExitCode.gateFailed);
    });
}

interface RunFlags {
  config: string;
  out: string;
  backend?: BackendName;
  baseline?: string;
  cacheDir?: string;
  baseTeacher?: string;
  budget?: number;
  quiet?: boolean;
  requireGpu?: boolean;
}

/**
 * `run`'s work under the run clock. Ctrl-C or a cancelled CI job (SIGINT, SIGTERM) stops
 * training, still measures and writes the report; a second signal, or the budget's end, writes the
 * report of what exists at once. The handlers are in place before anything is read: a cancel while
 * the config or the data load still ends in a report, or, before there is a config, in a clean
 * exit saying why. With `watchLaunchers`, the end of the process that started the CLI (the step's
 * shell, npm: the runner's SIGTERM, which never reached us) ends the run at once, as a second
 * signal does.
 */
async function runUnderClock(
  options: RunFlags,
  { log, bar }: { log: (line: string) => void; bar?: (text: string) => void },
  cli: CliOptions,
): Promise<RunResult> {
  const launcherEnded = new AbortController();
  const unwatch = watchLaunchers(cli.watchLaunchers ? findLaunchers(process.env) : [], (launcher) => {
    log(`cancel: ${launcherEndedReason(launcher)}; writing the report of what exists now`);
    launcherEnded.abort(new Error(launcherEndedReason(launcher)));
  });
  try {
    return await withRunClock(
      async (runClock) => {
        const clock = endedAlso(runClock, launcherEnded.signal);
        const loaded = await unlessForced(
          loadConfig(options.config),
          clock.force,
          `reading the config ${options.config}`,
        );
        const config = withOverrides(loaded, {
          backend: options.backend,
          baseline: options.baseline,
          cacheDir: options.cacheDir,
        });
        // A path given by hand that is not there is a typo: exit 2 naming the flag, not a skipped comparison.
        if (options.baseTeacher && !(await fileExists(options.baseTeacher)))
          throw new InputError(
            '--base-teacher',
            `${options.baseTeacher} does not exist; give the base branch's teacher model.json (or ONNX file).`,
          );
        const baseTeacher = options.baseTeacher
          ? { path: path.resolve(options.baseTeacher), source: `--base-teacher ${options.baseTeacher}` }
          : undefined;
        return runPipeline(config, {
          outDir: options.out,
          clock,
          log,
          progressBar: bar,
          baseTeacher,
          requireGpu: options.requireGpu,
        });
      },
      { budgetMinutes: options.budget, announce: log },
    );
  } finally {
    unwatch();
  }
}

/** `compare`: re-judge a report against a baseline report, nothing run. */
function addCompare(program: Command, io: CliIo, done: (code: number) => void): void {
  program
    .command('compare')
    .description('compare two report.json files (new against baseline) without running anything')
    .argument('<new>', 'report.json of the run to judge')
    .argument('<baseline>', 'report.json of the baseline run')
    .option('-c, --config <file>', 'take the gates from this config instead of the new report')
    .action(async (newFile: string, baselineFile: string, options: { config?: string }) => {
      const [current, baseline] = await Promise.all([readReport(newFile), readReport(baselineFile)]);
      const config = options.config ? await loadConfig(options.config) : undefined;
      const comparison = compareReports(current, baseline, baselineFile, config);
      io.stdout(comparison.markdown);
      done(comparison.verdict === 'pass' ? ExitCode.pass : ExitCode.gateFailed);
    });
}

/** `merge`: one report and verdict for the reports of a matrix of jobs. */
function addMerge(program: Command, io: CliIo, done: (code: number) => void): void {
  program
    .command('merge')
    .description('merge the report.json files of a matrix of jobs into one report and verdict')
    .argument('<reports...>', 'report.json paths or patterns, e.g. "reports/*/report.json"')
    .option('-o, --out <dir>', 'also write report.md (the merged report) there')
    .option(
      '--expect <legs>',
      "the reports that must arrive: a number, or the legs' names (space-separated; a run name or a report's folder); fewer, more or others fail the merge",
    )
    .action(async (patterns: string[], options: { out?: string; expect?: string }) => {
      const expected = options.expect === undefined ? undefined : parseExpected(options.expect, '--expect');
      if (options.expect !== undefined && !expected)
        throw new InputError('--expect', "is empty; give a number of reports (e.g. 2) or the legs' names.");
      if (!expected)
        io.stderr('distill-gate: note: without --expect, a matrix leg that wrote no report.json goes unnoticed.\n');
      const merged = mergeReports(await readReports(patterns, process.cwd(), expected), expected);
      io.stdout(merged.markdown);
      if (options.out) await writeMergedMarkdown(options.out, merged.markdown);
      done(merged.verdict === 'pass' ? ExitCode.pass : ExitCode.gateFailed);
    });
}

/** `history`: the last runs of a baseline store. */
function addHistory(program: Command, io: CliIo): void {
  program
    .command('history')
    .description('print the last runs of a baseline store history file as a table')
    .argument('<history.json>', 'e.g. from `git show distill-gate-data:distill-gate/<config>/<branch>/history.json`')
    .option('-n, --last <runs>', 'how many of the latest runs', parseRuns, 30)
    .action(async (file: string, options: { last: number }) => {
      io.stdout(historyTable(await readHistory(file), options.last));
    });
}

/** `doctor`: which backends load here. */
function addDoctor(program: Command, io: CliIo): void {
  program
    .command('doctor')
    .description('say which TF.js backends load here, and what to install for the others')
    .action(async () => {
      io.stdout(await doctor());
    });
}
