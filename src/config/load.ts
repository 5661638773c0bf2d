import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { convertPathToPattern } from 'tinyglobby';
import { LineCounter, parseDocument, isMap, isNode, isScalar } from 'yaml';
import type { z } from 'zod';
import { InputError, didYouMean } from '../errors.js';
import { GateSpecError, parseGate } from '../gates/gates.js';
import { metricSpec } from '../measure/metrics.js';
import { attachLocator, type Locator } from './locate.js';
import { checkStudents } from './students.js';
import { configSchema, KNOWN_KEYS, type BackendName, type RawConfig, type DataSplitSpec } from './schema.js';

/** What a shell may override in a config: the CLI's --backend, --baseline, --cache-dir and the action's inputs. */
export interface ConfigOverrides {
  backend?: BackendName;
  /** An earlier run's report.json for relative gates, instead of the config's `baseline`. */
  baseline?: string;
  cacheDir?: string;
}

/**
 * The one place shell overrides meet the config: an override that is set wins, an unset one
 * leaves the config's value. The stages read the result only, never the flags.
 */
export function withOverrides(config: Config, overrides: ConfigOverrides): Config {
  const set = Object.fromEntries(Object.entries(overrides).filter(([, value]) => value !== undefined));
  return { ...config, ...set };
}

/** A validated config whose file paths are absolute (resolved against the config's folder). */
export interface Config extends RawConfig {
  /** Absolute path of the config file, for messages. */
  file: string;
  dir: string;
}

export async function loadConfig(file: string): Promise<Config> {
  const absolute = path.resolve(file);
  let text: string;
  try {
    text = await readFile(absolute, 'utf8');
  } catch (error) {
    throw new InputError(
      file,
      `cannot read the config file (${(error as NodeJS.ErrnoException).code ?? error}). Pass --config with the path of a YAML or JSON config.`,
    );
  }
  return parseConfig(text, absolute);
}

/** Parses YAML or JSON text (JSON is YAML 1.2) and validates it; errors carry file:line:col. */
export function parseConfig(text: string, file: string): Config {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const where = (offset: number | undefined) => {
    if (offset === undefined) return file;
    const { line, col } = lineCounter.linePos(offset);
    return `${file}:${line}:${col}`;
  };
  if (doc.errors.length > 0) {
    const first = doc.errors[0];
    throw new InputError(where(first.pos[0]), `invalid YAML: ${first.message.split('\n')[0]}`);
  }
  const value: unknown = doc.toJS();
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new InputError(
      file,
      'the config must be a mapping with at least teacher, student, data (see docs/configuration.md).',
    );
  }
  const parsed = configSchema.safeParse(value, { reportInput: true });
  if (!parsed.success) {
    const issue = mostSpecificIssue(parsed.error.issues);
    const keyPath = issue.path.map(String);
    const offset =
      issue.code === 'unrecognized_keys' ? keyOffset(doc, keyPath, issue.keys[0]) : valueOffset(doc, keyPath);
    const key =
      issue.code === 'unrecognized_keys' ? [...keyPath, issue.keys[0]].join('.') : keyPath.join('.') || '(top level)';
    throw new InputError(`${where(offset)} ${key}`, describeIssue(issue, keyPath));
  }
  checkGateThresholds(parsed.data.gates, doc, where);
  // measure.runtime onnxruntime times student/student.onnx, which only export.format onnx writes.
  if (parsed.data.measure.runtime === 'onnxruntime' && parsed.data.export.format !== 'onnx') {
    throw new InputError(
      `${where(valueOffset(doc, ['measure', 'runtime']))} measure.runtime`,
      'onnxruntime times student/student.onnx, which only export.format onnx writes: set `export: { format: onnx }` (or drop measure.runtime to time the TF.js student).',
    );
  }
  if (parsed.data.students)
    checkStudents(parsed.data.students, (keyPath) => where(valueOffset(doc, keyPath.map(String))));
  checkImageData(parsed.data.data, doc, where);
  const dir = path.dirname(file);
  const config: Config = { ...resolvePaths(parsed.data, dir), file, dir };
  // The gates are checked again against what the run measures, and the student's layers by TF.js:
  // their errors, raised far from here, still name file:line:column.
  const locate =
    (prefix: string[]): Locator =>
    (keyPath, at = 'value') => {
      const full = [...prefix, ...keyPath.map(String)];
      return where(at === 'key' ? keyOffset(doc, full.slice(0, -1), full.at(-1)) : valueOffset(doc, full));
    };
  attachLocator(config.gates, locate(['gates']));
  if ('layers' in config.student) attachLocator(config.student, locate(['student']));
  config.students?.forEach((entry, i) => attachLocator(entry, locate(['students', String(i)])));
  return config;
}

/**
 * Parses each gate on a metric of the catalogue, so that a threshold that does not parse, or that
 * lies outside the metric's values (`agreement.top1: ">= 93"`), is refused here, at its line and
 * column. A gate on a metric this run does not measure is left to the run, which knows which it does.
 */
function checkGateThresholds(
  gates: RawConfig['gates'],
  doc: YamlDocument,
  where: (offset: number | undefined) => string,
): void {
  for (const [metric, spec] of Object.entries(gates)) {
    if (!metricSpec(metric)) continue;
    try {
      parseGate(metric, spec);
    } catch (error) {
      if (!(error instanceof GateSpecError)) throw error;
      const offset = valueOffset(doc, ['gates', metric, ...(error.key ? [error.key] : [])]);
      throw new InputError(`${where(offset)} ${error.culprit}`, error.reason);
    }
  }
}

/**
 * `classes` and `normalize` describe image folders: set without one they are a mistake, and a
 * per-channel list must have one value per channel of every image split.
 */
function checkImageData(
  data: RawConfig['data'],
  doc: YamlDocument,
  where: (offset: number | undefined) => string,
): void {
  const imageSplits = (['train', 'eval'] as const).filter((name) => 'images' in data[name]);
  for (const key of ['classes', 'normalize'] as const) {
    if (data[key] !== undefined && imageSplits.length === 0) {
      throw new InputError(
        `${where(valueOffset(doc, ['data', key]))} data.${key}`,
        'applies to image folders only (`images:` in data.train or data.eval); remove it.',
      );
    }
  }
  for (const key of ['mean', 'std'] as const) {
    const values = data.normalize?.[key];
    if (!Array.isArray(values) || values.length === 1) continue;
    for (const name of imageSplits) {
      const channels = (data[name] as { channels: number }).channels;
      if (values.length !== channels) {
        throw new InputError(
          `${where(valueOffset(doc, ['data', 'normalize', key]))} data.normalize.${key}`,
          `has ${values.length} values but data.${name}.channels is ${channels}: give one value per channel, or a single number for all.`,
        );
      }
    }
  }
}

type Issue = z.core.$ZodIssue;
type YamlDocument = ReturnType<typeof parseDocument>;

function valueOffset(doc: YamlDocument, keyPath: string[]): number | undefined {
  const node = doc.getIn(keyPath, true);
  return isNode(node) ? node.range?.[0] : undefined;
}

/** Where an unknown key itself stands (not its value), so the column points at the typo; undefined for no key (an empty path). */
function keyOffset(doc: YamlDocument, parentPath: string[], key: string | undefined): number | undefined {
  const parent = parentPath.length ? doc.getIn(parentPath, true) : doc.contents;
  if (!isMap(parent)) return undefined;
  const pair = parent.items.find((item) => isScalar(item.key) && String(item.key.value) === key);
  return isNode(pair?.key) ? pair.key.range?.[0] : undefined;
}

/** Union failures nest one issue list per branch: report the branch that got furthest. */
function mostSpecificIssue(issues: readonly Issue[]): Issue {
  // An unknown key usually explains a missing one beside it (a typo), so it is reported first.
  const issue = issues.find((i) => i.code === 'unrecognized_keys') ?? issues[0];
  if (issue.code !== 'invalid_union' || issue.errors.length === 0) return issue;
  const branches = issue.errors
    .filter((branch) => branch.length > 0)
    .map((branch) => branch.map((nested) => ({ ...nested, path: [...issue.path, ...nested.path] })));
  // A branch whose first complaint is an unknown key usually means "wrong branch": prefer one
  // that accepted the keys and failed deeper, then the one with the fewest complaints.
  const unknownInEvery = branches.map((b) => b.find((i) => i.code === 'unrecognized_keys'));
  if (unknownInEvery.every((i) => i !== undefined)) return unknownInEvery[0];
  branches.sort((a, b) => score(a) - score(b));
  return branches.length > 0 ? mostSpecificIssue(branches[0]) : issue;
}

function score(branch: Issue[]): number {
  const unknownKeys = branch.some((i) => i.code === 'unrecognized_keys') ? 100 : 0;
  const missing = branch.filter((i) => i.code === 'invalid_type' && i.input === undefined).length * 10;
  return unknownKeys + missing + branch.length - Math.max(...branch.map((i) => i.path.length));
}

function describeIssue(issue: Issue, keyPath: string[]): string {
  const parent = keyPath.join('.');
  switch (issue.code) {
    case 'unrecognized_keys': {
      // A list's entries (students.0) accept the keys of the list's mapping (students).
      const known = KNOWN_KEYS[parent] ?? KNOWN_KEYS[parent.replace(/\.\d+$/, '')] ?? [];
      const hint = didYouMean(issue.keys[0], known);
      return `unknown key.${hint}${known.length ? ` Known keys here: ${known.join(', ')}.` : ''}`;
    }
    case 'invalid_type':
      if (issue.input === undefined) return `is required (expected ${issue.expected}).`;
      return `expected ${issue.expected}, got ${describeValue(issue.input)}.`;
    case 'too_small':
      return `must be ${issue.inclusive === false ? '>' : '>='} ${String(issue.minimum)}${issue.origin === 'array' ? ' items' : ''} (got ${describeValue(issue.input)}).`;
    case 'too_big':
      return `must be ${issue.inclusive === false ? '<' : '<='} ${String(issue.maximum)} (got ${describeValue(issue.input)}).`;
    case 'invalid_value':
      return `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')} (got ${describeValue(issue.input)}).${typeof issue.input === 'string' ? didYouMean(issue.input, issue.values.map(String)) : ''}`;
    default:
      return `${issue.message}${issue.input !== undefined ? ` (got ${describeValue(issue.input)})` : ''}.`;
  }
}

function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (Array.isArray(value)) return 'a list';
  if (value === null) return 'null';
  if (typeof value === 'object') return 'a mapping';
  return String(value);
}

function resolvePaths(config: RawConfig, dir: string): RawConfig {
  const at = (p: string) => path.resolve(dir, p);
  // A glob is resolved as a pattern: the config's folder escaped, so that its (...) or [...] are not read as glob syntax.
  const pattern = (p: string) => (path.isAbsolute(p) ? p : `${convertPathToPattern(dir)}/${p.replace(/^\.\//, '')}`);
  const split = (s: DataSplitSpec): DataSplitSpec =>
    'csv' in s
      ? { ...s, csv: at(s.csv) }
      : 'images' in s
        ? { ...s, images: pattern(s.images) }
        : { x: at(s.x), ...(s.y ? { y: at(s.y) } : {}) };
  return {
    ...config,
    teacher: at(config.teacher),
    student: 'model' in config.student ? { model: at(config.student.model) } : config.student,
    ...(config.students
      ? { students: config.students.map((s) => ('model' in s ? { ...s, model: at(s.model) } : s)) }
      : {}),
    data: { ...config.data, train: split(config.data.train), eval: split(config.data.eval) },
    ...(config.baseline ? { baseline: at(config.baseline) } : {}),
    ...(config.cacheDir ? { cacheDir: at(config.cacheDir) } : {}),
  };
}
