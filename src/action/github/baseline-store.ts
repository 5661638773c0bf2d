import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { appendHistory, historyEntry, parseHistory, type HistoryEntry } from '../../report/history.js';
import { InputError } from '../../errors.js';
import { readModelArtifacts } from '../../models/artifacts.js';
import { parseReport } from '../../report/report-schema.js';
import type { Report } from '../../report/report.js';
import { describeStatus, type Api } from './api.js';

/**
 * The baseline store: a branch of the repository (default `distill-gate-data`) holding, per
 * config and per branch, the latest report, its student and a history of runs. Runs on the
 * default branch write it; PR runs read their base branch's. Everything goes through the
 * contents API, so the job needs `contents: write` to write and nothing but the token to read.
 */
export interface StoreLocation {
  /** The data branch. */
  branch: string;
  /** Which config's records (the comment key), and for which source branch. */
  key: string;
  forBranch: string;
}

export interface StoredBaseline {
  /** The stored report.json, downloaded; undefined when the stored run is not one to compare with (see notKept). */
  reportPath?: string;
  studentPath?: string;
  history: HistoryEntry[];
  /**
   * Why the stored report is not used as the baseline: it failed or is incomplete. Only a store
   * written before distill-gate kept complete, passing runs alone holds one; the layout keeps the
   * latest report and student only, and a history entry lacks the environment and the student a
   * baseline needs, so nothing older can stand in for it.
   */
  notKept?: string;
  /**
   * The store's files that were passed over because they are damaged or could not be read, each
   * naming the file, what is wrong and what is lost (the trend, or the paired timing with the
   * student). Only that file is lost: the report is still the baseline. Already said through the
   * facade's warnings (RetryOptions.onWarning).
   */
  damaged?: string[];
}

/** Why a run may not become a baseline (it failed, or it is incomplete); undefined for a complete pass. */
export function whyNotKept(report: Pick<Report, 'verdict' | 'status'>): string | undefined {
  const faults = [
    report.verdict === 'fail' ? 'failed' : '',
    report.status === 'incomplete' ? 'is incomplete' : '',
  ].filter(Boolean);
  return faults.length > 0 ? faults.join(' and ') : undefined;
}

const HISTORY_WRITE_ATTEMPTS = 5;

/** Folder of one config's records for one branch; only safe characters reach the path. */
export function storeFolder(location: Pick<StoreLocation, 'key' | 'forBranch'>): string {
  const safe = (text: string) => text.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^\.+/, '_');
  return `distill-gate/${safe(location.key)}/${safe(location.forBranch)}`;
}

function status(error: unknown): number | undefined {
  return (error as { status?: number })?.status;
}

/** A file's bytes and blob sha, or undefined when it (or the branch) does not exist. */
async function getFile(
  api: Api,
  location: StoreLocation,
  file: string,
): Promise<{ bytes: Buffer; sha: string } | undefined> {
  const { client, owner, repo } = api;
  const { branch } = location;
  try {
    const { data } = await api.call(`reading ${file} from ${branch}`, () =>
      client.rest.repos.getContent({ owner, repo, path: file, ref: branch }),
    );
    if (Array.isArray(data) || data.type !== 'file') return undefined;
    // Files over 1 MB come without content: fetch the blob itself.
    const content = data.content
      ? data.content
      : (
          await api.call(`reading the blob of ${file}`, () =>
            client.rest.git.getBlob({ owner, repo, file_sha: data.sha }),
          )
        ).data.content;
    return { bytes: Buffer.from(content, 'base64'), sha: data.sha };
  } catch (error) {
    if (status(error) === 404) return undefined;
    throw error;
  }
}

async function putFile(
  api: Api,
  location: StoreLocation,
  file: string,
  bytes: Buffer,
  message: string,
  sha: string | undefined,
): Promise<void> {
  const { client, owner, repo } = api;
  const { branch } = location;
  await api.call(`writing ${file} to ${branch}`, () =>
    client.rest.repos.createOrUpdateFileContents({
      owner,
      repo,
      path: file,
      branch,
      message,
      content: bytes.toString('base64'),
      ...(sha ? { sha } : {}),
    }),
  );
}

/**
 * Downloads the latest baseline for `forBranch` into `dir`; undefined when none was stored yet.
 * The store degrades file by file: a damaged or unreadable history loses the trend, a damaged or
 * incomplete student the paired timing, each named in `damaged` and a warning, and the report is
 * still the baseline. Only a report.json that cannot be read or is not a report means no baseline
 * (an error naming it).
 */
export async function readStoredBaseline(
  api: Api,
  location: StoreLocation,
  dir: string,
): Promise<StoredBaseline | undefined> {
  const folder = storeFolder(location);
  const where = (file: string) => `${location.branch}:${folder}/${file}`;
  const damaged: string[] = [];
  const passOver = (message: string) => {
    damaged.push(message);
    api.warn(`distill-gate: the baseline store's ${message}`);
  };
  const [report, history] = await Promise.all([
    getFile(api, location, `${folder}/report.json`),
    getFile(api, location, `${folder}/history.json`).catch((error: unknown) => ({ error })),
  ]);
  if (!report) return undefined;
  const stored = storedReport(report.bytes, where('report.json'));
  let runs: HistoryEntry[] = [];
  const trendLost = 'The trend leaves it out; the baseline report is still used.';
  if (history && 'error' in history)
    passOver(`${where('history.json')} could not be read (${describeStatus(history.error)}). ${trendLost}`);
  else if (history) {
    try {
      runs = parseHistory(history.bytes.toString('utf8'), where('history.json'));
    } catch (error) {
      passOver(`${(error as Error).message} ${trendLost} The next recorded run starts the history afresh.`);
    }
  }
  const unworthy = whyNotKept(stored);
  if (unworthy) {
    const which = [stored.commit ? `commit ${stored.commit.slice(0, 12)}` : '', stored.createdAt.slice(0, 10)]
      .filter(Boolean)
      .join(', ');
    return {
      history: runs,
      notKept: `its latest run (${which}) ${unworthy}`,
      ...(damaged.length > 0 ? { damaged } : {}),
    };
  }
  await mkdir(dir, { recursive: true });
  const reportPath = path.join(dir, 'report.json');
  const studentDir = path.join(dir, 'student');
  // The stored student.path names a file on the runner that recorded it, which on this runner may
  // be this run's own student: it names the downloaded student instead, present or not.
  // The file as stored, that one field aside (storedReport has parsed it already).
  const raw = JSON.parse(report.bytes.toString('utf8')) as { student: Record<string, unknown> };
  await writeFile(
    reportPath,
    `${JSON.stringify({ ...raw, student: { ...raw.student, path: path.join(studentDir, 'model.json') } }, null, 2)}\n`,
  );
  let studentPath: string | undefined;
  try {
    studentPath = await downloadStudent(api, location, folder, studentDir);
  } catch (error) {
    // Nothing of a damaged student stays where the baseline's student is looked for.
    await rm(studentDir, { recursive: true, force: true });
    passOver(
      `${(error as Error).message} The student is left out (no paired timing with it); the baseline report is still used.`,
    );
  }
  return { reportPath, studentPath, history: runs, ...(damaged.length > 0 ? { damaged } : {}) };
}

/**
 * The stored student into `studentDir`, checked as a model is before it is loaded (JSON, shard
 * paths inside the folder, shard sizes against the manifest); undefined when none was stored.
 * Throws an error naming the file at fault when it is damaged, incomplete or cannot be read.
 */
async function downloadStudent(
  api: Api,
  location: StoreLocation,
  folder: string,
  studentDir: string,
): Promise<string | undefined> {
  const where = (file: string) => `${location.branch}:${folder}/student/${file}`;
  const read = async (file: string) => {
    try {
      return await getFile(api, location, `${folder}/student/${file}`);
    } catch (error) {
      throw new InputError(where(file), `could not be read (${describeStatus(error)}).`);
    }
  };
  const modelJson = await read('model.json');
  if (!modelJson) return undefined;
  let manifest: unknown;
  try {
    manifest = (JSON.parse(modelJson.bytes.toString('utf8')) as { weightsManifest?: unknown })?.weightsManifest ?? [];
  } catch (error) {
    throw new InputError(where('model.json'), `is not valid JSON (${(error as Error).message}).`);
  }
  const groups = Array.isArray(manifest) ? manifest : [];
  const shards = groups.flatMap((group: { paths?: unknown }) =>
    Array.isArray(group?.paths) ? group.paths : [undefined],
  );
  if (
    !Array.isArray(manifest) ||
    shards.some((shard) => typeof shard !== 'string' || !/^[A-Za-z0-9._-]+$/.test(shard) || /^\.\.?$/.test(shard))
  )
    throw new InputError(
      where('model.json'),
      'has a weights manifest that is not a list of weight files in its own folder.',
    );
  const fetched = await Promise.all((shards as string[]).map(async (shard) => ({ shard, file: await read(shard) })));
  const files = fetched.map(({ shard, file }) => {
    if (!file) throw new InputError(where(shard), 'is missing (model.json lists it).');
    return { shard, bytes: file.bytes };
  });
  await mkdir(studentDir, { recursive: true });
  await Promise.all(files.map(({ shard, bytes }) => writeFile(path.join(studentDir, shard), bytes)));
  const studentPath = path.join(studentDir, 'model.json');
  await writeFile(studentPath, modelJson.bytes);
  try {
    await readModelArtifacts(studentPath);
  } catch (error) {
    // Its message names the local copy: name the stored file instead.
    throw new InputError(
      where('model.json'),
      `is not a usable model (${(error as Error).message.replaceAll(`${studentDir}${path.sep}`, '')}).`,
    );
  }
  return studentPath;
}

/** The stored report.json, validated like any report; errors name the branch and file. */
function storedReport(bytes: Buffer, source: string): Report {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    throw new InputError(
      source,
      `is not valid JSON (${(error as Error).message}); delete it, and the next complete, passing run records a new one.`,
    );
  }
  return parseReport(value, source, 'trusted');
}

/** Creates the data branch from `fromSha` when it does not exist yet. */
async function ensureBranch(api: Api, location: StoreLocation, fromSha: string): Promise<void> {
  const { client, owner, repo } = api;
  const { branch } = location;
  try {
    await api.call(`looking up branch ${branch}`, () =>
      client.rest.git.getRef({ owner, repo, ref: `heads/${branch}` }),
    );
  } catch (error) {
    if (status(error) !== 404) throw error;
    try {
      await api.call(`creating branch ${branch}`, () =>
        client.rest.git.createRef({ owner, repo, ref: `refs/heads/${branch}`, sha: fromSha }),
      );
    } catch (createError) {
      // Another run created it first.
      if (status(createError) !== 422) throw createError;
    }
  }
}

/**
 * Records a default-branch run: appends to the history (re-reading and re-appending when another
 * run wrote in between, so no entry is lost) and replaces the latest report and student.
 */
export async function storeRun(
  api: Api,
  location: StoreLocation,
  report: Report,
  studentDir: string | undefined,
  origin: { fromSha: string; event?: string; runUrl?: string },
): Promise<HistoryEntry[]> {
  await ensureBranch(api, location, origin.fromSha);
  const folder = storeFolder(location);
  const message = `distill-gate: ${report.verdict} for ${location.forBranch}${report.commit ? ` at ${report.commit.slice(0, 12)}` : ''}`;
  let history: HistoryEntry[] = [];
  let rebuilt: string | undefined;
  for (let attempt = 1; ; attempt++) {
    const current = await getFile(api, location, `${folder}/history.json`);
    // A damaged history does not block the record: it starts afresh with this run (its old
    // content stays in the branch's git history), and the warning says so.
    let earlier: HistoryEntry[] = [];
    rebuilt = undefined;
    try {
      earlier = current
        ? parseHistory(current.bytes.toString('utf8'), `${location.branch}:${folder}/history.json`)
        : [];
    } catch (error) {
      rebuilt = (error as Error).message;
    }
    history = appendHistory(earlier, historyEntry(report, origin.event));
    try {
      await putFile(
        api,
        location,
        `${folder}/history.json`,
        Buffer.from(`${JSON.stringify(history, null, 1)}\n`),
        message,
        current?.sha,
      );
      break;
    } catch (error) {
      // 409: the file changed since it was read; 422: it was created since. Read it again.
      if ((status(error) !== 409 && status(error) !== 422) || attempt >= HISTORY_WRITE_ATTEMPTS) throw error;
    }
  }
  if (rebuilt)
    api.warn(
      `distill-gate: the baseline store's ${rebuilt} Rebuilt it: the history starts afresh with this run (the runs it held stay in the git history of ${location.branch}).`,
    );
  // The stored report names the run that recorded it, so that a report compared with it can link that run.
  const stored: Report = origin.runUrl ? { ...report, runUrl: origin.runUrl } : report;
  await replaceFile(
    api,
    location,
    `${folder}/report.json`,
    Buffer.from(`${JSON.stringify(stored, null, 2)}\n`),
    message,
  );
  if (studentDir) {
    for (const name of await readdir(studentDir)) {
      await replaceFile(
        api,
        location,
        `${folder}/student/${name}`,
        await readFile(path.join(studentDir, name)),
        message,
      );
    }
  }
  return history;
}

/** Last writer wins for the latest report and student; the sha is read fresh for each write. */
async function replaceFile(
  api: Api,
  location: StoreLocation,
  file: string,
  bytes: Buffer,
  message: string,
): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const current = await getFile(api, location, file);
    try {
      await putFile(api, location, file, bytes, message, current?.sha);
      return;
    } catch (error) {
      if ((status(error) !== 409 && status(error) !== 422) || attempt >= HISTORY_WRITE_ATTEMPTS) throw error;
    }
  }
}
