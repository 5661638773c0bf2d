import { readFileSync } from 'node:fs';
import path from 'node:path';

/**
 * The processes above the CLI whose end means the run was cancelled, though no signal reached it.
 *
 * The Actions runner cancels a step by signalling the step's own process only (`kill(pid)`, never
 * its group): SIGINT, SIGTERM 7.5 s later, then SIGKILL. For `run: npx distill-gate run` that
 * process is the step's bash, which holds the SIGINT until its child exits and dies at the
 * SIGTERM; npm (`npx`, `npm run`) forwards both signals to its `sh -c`, which neither passes them
 * on nor execs. Either way the CLI hears nothing: it would train on as an orphan while the job
 * ends without its report. So the CLI watches these processes, and the end of any of them ends the
 * run at once with the report of what exists (as the runner's SIGTERM would).
 *
 * Watched: under the Actions runner (GITHUB_ACTIONS=true), every process up to the runner's
 * worker, since the step's shell ending means the step was cancelled. Elsewhere, only when npm (or
 * npx, pnpm, yarn) started the CLI: the chain of wrappers from its parent up (npm's `sh -c`, npm),
 * which end only when they are killed. Not the shell or program that ran npm (`nohup npx
 * distill-gate run &` must outlive its terminal), nor a lone `sh -c`, which may have put the CLI in
 * the background and exited.
 */
export interface Launcher {
  pid: number;
  /** What it runs, for the reason in the report (`npm exec distill-gate run`, `bash -e ...`). */
  command: string;
  /** When it started (Linux: clock ticks since boot), so that a reused pid is not mistaken for it. */
  start?: string;
}

/** One process as the table shows it; undefined when there is no such process. */
export interface ProcessInfo {
  ppid: number;
  argv: string[];
  start?: string;
  /** Gone for good though still listed: a zombie waiting for its parent. */
  ended: boolean;
}

export type ProcessTable = (pid: number) => ProcessInfo | undefined;

/** The process table from Linux's /proc; undefined elsewhere (no /proc) and for a pid that is gone. */
export const procTable: ProcessTable = (pid) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid ... starttime(22nd field)": comm may hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    return { ppid: Number(fields[1]), argv, start: fields[19], ended: fields[0] === 'Z' || fields[0] === 'X' };
  } catch {
    return undefined;
  }
};

const SHELLS = new Set(['sh', 'bash', 'dash', 'zsh', 'ash', 'ksh', 'mksh']);
const PACKAGE_MANAGERS = /^(npm|npx|pnpm|pnpx|yarn|bun|bunx)$/;

/** npm and its kind: by name, by the title npm gives itself (`npm exec x`), or as node running their CLI script. */
function isPackageManager(argv: string[]): boolean {
  const name = path.basename(argv[0]?.split(' ')[0] ?? '');
  if (PACKAGE_MANAGERS.test(name)) return true;
  const script = path.basename(argv[1] ?? '');
  return /^node(js)?$/.test(name) && /^(npm-cli|npx-cli|pnpm|pnpx|yarn)(\.c?js)?$/.test(script);
}

/** A shell running one command string, as npm runs a bin or a script: `sh -c 'distill-gate run'`. */
function isShellCommand(argv: string[]): boolean {
  const name = path.basename(argv[0] ?? '').replace(/^-/, '');
  return SHELLS.has(name) && argv.slice(1).some((arg) => /^-[a-z]*c[a-z]*$/.test(arg));
}

/** The processes to watch, nearest first (see Launcher). */
export function findLaunchers(
  env: NodeJS.ProcessEnv,
  parent = process.ppid,
  table: ProcessTable = procTable,
): Launcher[] {
  const underActions = env.GITHUB_ACTIONS === 'true';
  const launchers: Launcher[] = [];
  const seen = new Set<number>();
  let npm = false;
  for (let pid = parent; pid > 1 && !seen.has(pid);) {
    seen.add(pid);
    const info = table(pid);
    if (!info || info.ended) break;
    if (info.argv.some((arg) => /(^|\/)Runner\.(Worker|Listener)$/.test(arg.split(' ')[0]))) break;
    const packageManager = isPackageManager(info.argv);
    if (!underActions && !packageManager && !isShellCommand(info.argv)) break;
    npm ||= packageManager;
    launchers.push({ pid, command: commandOf(info.argv), start: info.start });
    pid = info.ppid;
  }
  return underActions || npm ? launchers : [];
}

function commandOf(argv: string[]): string {
  const text = argv.join(' ').replace(/\s+/g, ' ').trim();
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** Whether the launcher still runs: its pid there, not a zombie, and (where known) started when it did. */
export function stillRuns(launcher: Launcher, table: ProcessTable = procTable): boolean {
  if (launcher.start !== undefined) {
    const info = table(launcher.pid);
    return info !== undefined && !info.ended && info.start === launcher.start;
  }
  try {
    process.kill(launcher.pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Calls `onEnd` once, with the first launcher found gone, checking every `intervalMs` (and the
 * parent's pid: a process whose parent ends is handed to another). The timer keeps nothing alive.
 * Returns the function that stops watching.
 */
export function watchLaunchers(
  launchers: Launcher[],
  onEnd: (launcher: Launcher) => void,
  options: { intervalMs?: number; table?: ProcessTable; ppid?: () => number } = {},
): () => void {
  if (launchers.length === 0) return () => {};
  const table = options.table ?? procTable;
  const ppid = options.ppid ?? (() => process.ppid);
  const parent = launchers[0].pid;
  const timer = setInterval(() => {
    const gone = ppid() !== parent ? launchers[0] : launchers.find((launcher) => !stillRuns(launcher, table));
    if (!gone) return;
    clearInterval(timer);
    onEnd(gone);
  }, options.intervalMs ?? 100);
  timer.unref();
  return () => clearInterval(timer);
}

/** Why the run ended, for its report: the launcher named, and why no signal came. */
export function launcherEndedReason(launcher: Launcher): string {
  return (
    `the process that started distill-gate ended (${launcher.command}, pid ${launcher.pid}) without passing on the signal that ended it, ` +
    "as when a CI job is cancelled: the runner signals only the step's shell"
  );
}
