import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { parseConfig, type Config } from '../config/load.js';
import type { SplitSpec } from '../config/schema.js';
import { resolveBackend } from '../backend/resolve.js';
import { checkAgainstTeacher, loadSplit, type Dataset } from '../data/dataset.js';
import { ExitCode, InputError } from '../errors.js';
import { formatBytes, formatInteger } from '../format.js';
import { formatMetric } from '../measure/metric-format.js';
import { fileExists } from '../models/artifacts.js';
import type { LoadedModel } from '../models/loaded-model.js';
import { loadTeacher } from '../models/pair.js';
import { runPipeline } from '../pipeline.js';
import type { Report } from '../report/report.js';
import { parseBudgetMinutes, withRunClock } from '../run-control.js';
import { gatesFromMetrics, renderConfig, AGREEMENT_MARGIN, SIZE_HEADROOM, type ConfigDraft } from './init-config.js';
import { EVAL_FRACTION, splitData, type DataSplit } from './init-split.js';
import { addIgnoreLine, relative, refuseExisting, REPORT_DIR_LINE, repositoryRoot, workflowFor } from './init-files.js';
import type { CliIo } from './io.js';
import { proposeStudent, proposeTraining, STUDENT_RULE, teacherFirstWidth } from './propose-student.js';

// `distill-gate init`: from a teacher and a data file to a config, a workflow and a .gitignore
// line that pass `distill-gate run` at once. It reads the teacher with the pipeline's loader and
// the data with its reader, proposes a student (propose-student.ts), splits one data file into
// train and eval files (init-split.ts), runs the real pipeline once into a temporary folder, and
// sets the gates from what that run measured (init-config.ts). It refuses to overwrite a file
// without --force, and says so before it runs anything.

export const CONFIG_FILE = 'distill-gate.yml';
export const WORKFLOW_FILE = '.github/workflows/distill-gate.yml';
/** The calibration run's default time budget (minutes): a big teacher cannot keep init running for ever. */
export const DEFAULT_INIT_BUDGET_MINUTES = 10;
/** The seed the split and the training use (distill.seed's default). */
const SEED = 7;

/** The workflow each runner gets: the example workflows of this package. */
const WORKFLOWS = { hosted: 'pull-request-hosted.yml', gpu: 'pull-request.yml' } as const;
type Runner = keyof typeof WORKFLOWS;
const EXAMPLES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../examples/workflows');

interface InitFlags {
  teacher: string;
  data: string;
  labels?: string;
  labelColumn?: string;
  evalData?: string;
  evalLabels?: string;
  teacherHead?: string;
  runner: Runner;
  dir: string;
  budget: number;
  force?: boolean;
}

/** `init`: inspect a teacher and its data, propose a student, calibrate the gates on one run, write the files. */
export function addInit(program: Command, io: CliIo, done: (code: number) => void): void {
  program
    .command('init')
    .description(
      'look at a teacher and its data, propose a student, run it once and write distill-gate.yml (gates from what the run measured), the workflow and a .gitignore line',
    )
    .requiredOption(
      '-t, --teacher <file>',
      'the teacher: a TF.js model.json (LayersModel or GraphModel) or an ONNX file',
    )
    .requiredOption('-d, --data <file>', 'features: a .npy file [N, ...features], or a CSV file with a header row')
    .option('--labels <file>', 'labels of --data, a .npy file [N] of class indices (optional: distillation needs none)')
    .option('--label-column <name>', "a CSV --data's label column (every other column is a feature)")
    .option(
      '--eval-data <file>',
      `the eval split; without it, a seeded ${EVAL_FRACTION * 100}% of --data is written beside it as <name>.eval.* (the rest as <name>.train.*)`,
    )
    .option('--eval-labels <file>', 'labels of --eval-data (.npy)')
    .option('--teacher-head <name>', "the teacher's output to distill, when it has several (written as teacherHead)")
    .addOption(
      new Option(
        '--runner <kind>',
        'the workflow to write: hosted (GitHub-hosted, CPU) or gpu (self-hosted GPU runner)',
      )
        .choices(Object.keys(WORKFLOWS))
        .default('hosted'),
    )
    .option(
      '--dir <folder>',
      "where distill-gate.yml goes (the workflow and .gitignore go to the repository's root above it)",
      '.',
    )
    .option(
      '--budget <minutes>',
      'time budget of the calibration run; training stops in time to measure within it',
      parseInitBudget,
      DEFAULT_INIT_BUDGET_MINUTES,
    )
    .option('-f, --force', 'overwrite distill-gate.yml, the workflow and split files that exist')
    .addHelpText(
      'after',
      [
        '',
        'The student it proposes:',
        ...STUDENT_RULE.map((rule) => `  - ${rule}`),
        `With one data file, a seeded shuffle (seed ${SEED}) puts ${EVAL_FRACTION * 100}% of its rows in <name>.eval.* and the rest in <name>.train.*, beside it.`,
        'The gates it writes, from the calibration run:',
        `  - agreement.top1 min: measured less ${AGREEMENT_MARGIN * 100} points, rounded down to a whole point; maxDrop 0.01 against a baseline`,
        `  - size.ratio max: measured x ${SIZE_HEADROOM} (3 significant digits)`,
        '  - no absolute speed gate: CI machines vary',
        'It never overwrites a file without --force (exit 2 naming it, before anything runs).',
      ].join('\n'),
    )
    .action(async (flags: InitFlags) => {
      await init(flags, io);
      done(ExitCode.pass);
    });
}

function parseInitBudget(value: string): number {
  const minutes = parseBudgetMinutes(value);
  if (minutes === undefined)
    throw new InvalidArgumentError('give the calibration run a budget in minutes above 0 (e.g. 10 or 0.5).');
  return minutes;
}

/** The files init will write, found before anything runs. */
interface Targets {
  dir: string;
  /** The repository's root: the nearest folder at or above `dir` holding .git, else `dir`. */
  root: string;
  config: string;
  workflow: string;
  gitignore: string;
}

async function init(flags: InitFlags, io: CliIo): Promise<void> {
  const say = (line = '') => io.stdout(`${line}\n`);
  const log = (line: string) => io.stderr(`${line}\n`);
  const dir = path.resolve(flags.dir);
  const root = await repositoryRoot(dir);
  const targets: Targets = {
    dir,
    root,
    config: path.join(dir, CONFIG_FILE),
    workflow: path.join(root, WORKFLOW_FILE),
    gitignore: path.join(root, '.gitignore'),
  };
  const trainSpec = dataSpec(flags.data, flags.labels, flags.labelColumn, '--data');
  const evalSpec = flags.evalData
    ? dataSpec(flags.evalData, flags.evalLabels, flags.labelColumn, '--eval-data')
    : undefined;
  if (!flags.evalData && flags.evalLabels)
    throw new InputError('--eval-labels', 'goes with --eval-data; give both, or neither to split --data.');
  const teacherFile = path.resolve(flags.teacher);
  if (!(await fileExists(teacherFile)))
    throw new InputError('--teacher', `${flags.teacher} does not exist; give the teacher's model.json or ONNX file.`);
  const template = await readFile(path.join(EXAMPLES, WORKFLOWS[flags.runner]), 'utf8').catch((error: unknown) => {
    throw new Error(
      `the example workflow ${WORKFLOWS[flags.runner]} is missing from ${EXAMPLES} (${(error as NodeJS.ErrnoException).code}): a packaging bug`,
    );
  });
  await refuseExisting([targets.config, targets.workflow], flags.force);

  // The data, read as a run reads it, and split when there is one file.
  const train = await loadSplit(trainSpec, 'train');
  const evalSet = evalSpec ? await loadSplit(evalSpec, 'eval') : undefined;
  const split = evalSpec ? undefined : await splitData(trainSpec, train, SEED);
  if (split)
    await refuseExisting(
      split.files.map((file) => file.path),
      flags.force,
    );

  const draft = { teacher: relative(dir, teacherFile), teacherHead: flags.teacherHead };
  const trainRows = split?.trainRows ?? train.size;
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-init-'));
  try {
    const searchFrom = [process.cwd(), dir];
    const teacherInfo = await inspectTeacher(
      draft,
      trainSpec,
      evalSpec ?? trainSpec,
      targets.config,
      evalSet ? [train, evalSet] : [train],
      searchFrom,
      log,
    );
    say('distill-gate init');
    say();
    say(`Teacher  ${relative(process.cwd(), teacherFile)} (${formatName(teacherInfo.teacher)})`);
    say(`  input shape  [${teacherInfo.teacher.inputShape.map((d) => d ?? 'free').join(', ')}]`);
    say(`  classes      ${teacherInfo.teacher.outputWidth} (its output's width)`);
    say(`  parameters   ${formatInteger(teacherInfo.teacher.params)} (${formatBytes(teacherInfo.teacher.bytes)})`);
    say(
      `  output       ${teacherInfo.teacher.output}${teacherInfo.teacher.output === 'probabilities' ? ' (it ends in a softmax or sigmoid)' : ' (no softmax at its end)'}`,
    );
    for (const note of teacherInfo.teacher.notes ?? []) say(`  note         ${note}`);
    say();
    say(`Data     ${describeData(train)}`);
    if (evalSet) say(`  eval         ${describeData(evalSet)}`);
    if (split)
      say(
        `  split        seeded shuffle (seed ${SEED}): ${split.trainRows} train, ${split.evalRows} eval rows, written as ${split.files.map((f) => relative(process.cwd(), f.path)).join(', ')}`,
      );
    const student = proposeStudent(
      teacherInfo.teacher.inputShape.map((d, i) => d ?? train.sampleShape[i]),
      teacherInfo.teacher.outputWidth,
      teacherInfo.firstWidth,
    );
    const training = proposeTraining(trainRows);
    say();
    say(`Student  ${student.layers.map(describeLayer).join(' -> ')}`);
    say(`  why          ${student.why}`);
    say(
      `  training     ${training.epochs} epochs of batch ${training.batchSize} (ceil(20000 / ${trainRows} train rows), between 3 and 30)`,
    );
    teacherInfo.teacher.dispose();

    const configDraft: ConfigDraft = {
      ...draft,
      student,
      train: relativeSpec(dir, split?.train ?? trainSpec),
      eval: relativeSpec(dir, split?.eval ?? evalSpec ?? trainSpec),
      splitNote: split
        ? `Split from ${relative(dir, 'csv' in trainSpec ? trainSpec.csv : trainSpec.x)} by \`distill-gate init\`: a seeded shuffle (seed ${SEED}), ${EVAL_FRACTION * 100}% eval (${split.evalRows} rows), the rest train (${split.trainRows} rows).`
        : undefined,
      distill: {
        ...training,
        seed: SEED,
        why: `Training length by \`distill-gate init\`'s rule: about 20,000 samples seen (ceil(20000 / ${trainRows} train rows), between 3 and 30 epochs).`,
      },
      gates: [],
    };
    say();
    say(`Calibration run (budget ${flags.budget} min): the pipeline once, in a temporary folder`);
    const report = await calibrate(configDraft, targets.config, split, scratch, flags.budget, log);
    if (report.training.epochs < configDraft.distill.epochs) {
      say(
        `  training stopped after ${report.training.epochs} of ${configDraft.distill.epochs} epochs (${report.reasons.join('; ')}): the config trains ${report.training.epochs}, as measured`,
      );
      configDraft.distill = {
        ...configDraft.distill,
        epochs: report.training.epochs,
        why: `${configDraft.distill.why} Lowered to ${report.training.epochs}: init's calibration run (budget ${flags.budget} min) completed no more.`,
      };
    }
    for (const metric of ['agreement.top1', 'accuracy.student', 'size.ratio', 'speed.speedup'])
      if (Number.isFinite(report.metrics[metric]))
        say(`  ${metric.padEnd(17)}${formatMetric(metric, report.metrics[metric])}`);
    configDraft.gates = gatesFromMetrics(report.metrics);
    const text = renderConfig(configDraft);
    // What is written must load as any config does; a failure here is a bug in init, not the user's input.
    parseConfig(text, targets.config);

    say();
    say('Gates (from the calibration run)');
    for (const gate of configDraft.gates)
      say(
        `  ${gate.metric.padEnd(17)}${Object.entries(gate.bounds)
          .map(([bound, value]) => `${bound} ${value}`)
          .join(', ')}`,
      );
    say('  (no absolute speed gate: CI machines vary)');

    const written: string[] = [];
    for (const file of split?.files ?? []) {
      await writeFile(file.path, file.contents);
      written.push(file.path);
    }
    await mkdir(dir, { recursive: true });
    await writeFile(targets.config, text);
    written.push(targets.config);
    await mkdir(path.dirname(targets.workflow), { recursive: true });
    await writeFile(targets.workflow, workflowFor(template, relative(root, targets.config)));
    written.push(targets.workflow);
    if (await addIgnoreLine(targets.gitignore)) written.push(`${targets.gitignore} (+ ${REPORT_DIR_LINE})`);
    say();
    say('Wrote');
    for (const file of written) say(`  ${relative(process.cwd(), file)}`);
    say();
    say('Next');
    say(
      `  distill-gate run${path.resolve(CONFIG_FILE) === targets.config ? '' : ` --config ${relative(process.cwd(), targets.config)}`}   # passes its gates now`,
    );
    say(
      `  commit them${flags.runner === 'gpu' ? ' (the workflow runs on a self-hosted runner labelled [self-hosted, gpu])' : ''}; each pull request then gets the report and the status distill-gate`,
    );
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** The split spec for a data file: .npy features (and labels), or a CSV (with its label column). */
function dataSpec(file: string, labels: string | undefined, labelColumn: string | undefined, flag: string): SplitSpec {
  if (path.extname(file).toLowerCase() === '.csv') {
    if (labels)
      throw new InputError(flag, `${file} is a CSV: its labels are a column (--label-column), not a --labels file.`);
    return { csv: path.resolve(file), ...(labelColumn ? { label: labelColumn } : {}) };
  }
  if (labelColumn)
    throw new InputError(
      '--label-column',
      `applies to CSV data; ${file} is not a .csv file (give --labels for .npy labels).`,
    );
  return { x: path.resolve(file), ...(labels ? { y: path.resolve(labels) } : {}) };
}

/** Loads the teacher as a run does (the pipeline's loader, on the backend a run resolves) to say what it is. */
async function inspectTeacher(
  draft: { teacher: string; teacherHead?: string },
  train: SplitSpec,
  evalSpec: SplitSpec,
  configFile: string,
  datasets: [Dataset, ...Dataset[]],
  searchFrom: string[],
  log: (line: string) => void,
): Promise<{ teacher: LoadedModel; firstWidth: number | undefined }> {
  // A config of the teacher and data alone (the student is a stand-in), parsed as any config is.
  const config: Config = parseConfig(
    renderConfig({
      ...draft,
      student: { layers: [{ type: 'dense', units: 1 }], why: 'stand-in' },
      train: relativeSpec(path.dirname(configFile), train),
      eval: relativeSpec(path.dirname(configFile), evalSpec),
      distill: { epochs: 1, batchSize: 1, seed: SEED, why: 'stand-in' },
      gates: [],
    }),
    configFile,
  );
  const backend = await resolveBackend(config.backend, { searchFrom });
  log(`backend: using ${backend.name} (${backend.source})`);
  const [data] = datasets;
  const teacher = await loadTeacher(backend.tf, config, {
    data: { sampleShape: data.sampleShape, source: data.source },
    searchFrom,
  });
  try {
    // As a run checks them, but before a student is proposed for data the teacher cannot take.
    for (const split of datasets) checkAgainstTeacher(split, teacher.inputShape, teacher.outputWidth, config.teacher);
    return { teacher, firstWidth: await teacherFirstWidth(teacher, config.teacher) };
  } catch (error) {
    teacher.dispose();
    throw error;
  }
}

/**
 * Runs the pipeline once on the drafted config (no gates), into `scratch`, under a time budget;
 * with the split files staged there. Timing is cut short (no speed gate is written).
 */
async function calibrate(
  draft: ConfigDraft,
  configFile: string,
  split: DataSplit | undefined,
  scratch: string,
  budget: number,
  log: (line: string) => void,
): Promise<Report> {
  const parsed = parseConfig(renderConfig(draft), configFile);
  let data = parsed.data;
  if (split) {
    const staged = new Map<string, string>();
    for (const [i, file] of split.files.entries()) {
      const at = path.join(scratch, 'data', `${i}-${path.basename(file.path)}`);
      await mkdir(path.dirname(at), { recursive: true });
      await writeFile(at, file.contents);
      staged.set(file.path, at);
    }
    const stage = (spec: SplitSpec): SplitSpec =>
      'csv' in spec
        ? { ...spec, csv: staged.get(spec.csv) ?? spec.csv }
        : { x: staged.get(spec.x) ?? spec.x, ...(spec.y ? { y: staged.get(spec.y) ?? spec.y } : {}) };
    data = { ...data, train: stage(split.train), eval: stage(split.eval) };
  }
  const config: Config = { ...parsed, data, measure: { ...parsed.measure, warmup: 5, rounds: 5 } };
  const result = await withRunClock((clock) => runPipeline(config, { outDir: path.join(scratch, 'out'), clock, log }), {
    budgetMinutes: budget,
  });
  if (result.writeError) throw result.writeError;
  const { report } = result;
  if (!Number.isFinite(report.metrics['agreement.top1']) || report.training.epochs < 1)
    throw new InputError(
      '--budget',
      `the calibration run ended before it measured the student (${report.reasons.join('; ') || 'no agreement measured'}); give it a larger --budget.`,
    );
  return report;
}

function relativeSpec(dir: string, spec: SplitSpec): SplitSpec {
  return 'csv' in spec
    ? { ...spec, csv: relative(dir, spec.csv) }
    : { x: relative(dir, spec.x), ...(spec.y ? { y: relative(dir, spec.y) } : {}) };
}

function formatName(teacher: LoadedModel): string {
  if (teacher.format === 'onnx') return `ONNX${teacher.runtime ? `, ${teacher.runtime.label}` : ''}`;
  return teacher.format === 'graph-model' ? 'TF.js GraphModel' : 'TF.js LayersModel';
}

function describeData(data: Dataset): string {
  // A CSV's labels are a column of the same file ("<file> column \"label\"").
  const labels =
    data.labelSource === undefined
      ? 'no labels'
      : data.labelSource.startsWith(data.source)
        ? `labels in${data.labelSource.slice(data.source.length)}`
        : `labels ${relative(process.cwd(), data.labelSource)}`;
  return `${relative(process.cwd(), data.source)}: ${formatInteger(data.size)} rows of [${data.sampleShape.join(', ')}], ${labels}`;
}

function describeLayer(layer: { type: string; [key: string]: unknown }): string {
  const size = layer.units ?? layer.filters;
  return `${layer.type}${size !== undefined ? ` ${String(size)}` : ''}${typeof layer.activation === 'string' ? ` ${layer.activation}` : ''}`;
}
