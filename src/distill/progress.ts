/**
 * Progress of a long phase (the teacher's pass, training, measuring): rows or rounds done, the
 * rate, and an estimate of the time left. Nothing is shown for a phase that ends within
 * FIRST_AFTER_MS; after that, a line every LINE_EVERY_MS through the run's log (CI logs), or a
 * bar redrawn in place where the shell gives one (`bar`: a terminal). A quiet run's log writes
 * nothing, so neither does its progress.
 */

/** Milliseconds on a monotonic clock; tests pass a fake one. */
export type Clock = () => number;

/** A phase shorter than this shows no progress at all. */
export const FIRST_AFTER_MS = 3000;
/** Between two progress lines in a log. */
export const LINE_EVERY_MS = 10_000;
/** Between two redraws of a terminal's bar. */
export const BAR_EVERY_MS = 250;

export interface ProgressSink {
  /** The run's log: one line each time. */
  log: (line: string) => void;
  /** Where a bar is drawn in place ("\r" and the bar, no newline), when the output is a terminal. */
  bar?: (text: string) => void;
  clock?: Clock;
}

export interface Progress {
  /** `done` units of the total are finished. */
  update(done: number): void;
  /** The phase has ended: a drawn bar is finished with a newline. */
  finish(): void;
}

/** A progress that shows nothing (no sink: library use, tests). */
export const NO_PROGRESS: Progress = { update: () => {}, finish: () => {} };

/**
 * Progress of `what` over `total` `unit`s (e.g. "teacher's pass (train split)", 2000, "rows").
 * The first report comes once the phase has lasted FIRST_AFTER_MS.
 */
export function phaseProgress(what: string, total: number, unit: string, sink?: ProgressSink): Progress {
  if (!sink) return NO_PROGRESS;
  const clock = sink.clock ?? (() => performance.now());
  const started = clock();
  let shownAt: number | undefined;
  // The terminal a bar was drawn on, for finish's newline; undefined until one is drawn.
  let drawnOn: ProgressSink['bar'];
  const every = sink.bar ? BAR_EVERY_MS : LINE_EVERY_MS;
  return {
    update(done) {
      const now = clock();
      if (now - started < FIRST_AFTER_MS || (shownAt !== undefined && now - shownAt < every && done < total)) return;
      shownAt = now;
      const text = describeProgress(what, done, total, unit, (now - started) / 1000);
      if (sink.bar) {
        sink.bar(`\r${bar(done, total)} ${text}\u001b[K`);
        drawnOn = sink.bar;
      } else sink.log(text);
    },
    finish() {
      drawnOn?.('\n');
      drawnOn = undefined;
    },
  };
}

/** "teacher's pass: 1,024/2,000 rows (51%), 12.3 rows/s, about 1 min 20 s left". */
export function describeProgress(
  what: string,
  done: number,
  total: number,
  unit: string,
  elapsedSeconds: number,
): string {
  const rate = elapsedSeconds > 0 ? done / elapsedSeconds : 0;
  const left = rate > 0 ? (total - done) / rate : undefined;
  const share = total > 0 ? Math.floor((100 * done) / total) : 100;
  const count = (n: number) => Math.round(n).toLocaleString('en-US');
  return (
    `${what}: ${count(done)}/${count(total)} ${unit} (${share}%), ${rate >= 10 ? rate.toFixed(0) : rate.toPrecision(2)} ${unit}/s, ` +
    (done >= total
      ? `done in ${duration(elapsedSeconds)}`
      : left === undefined
        ? 'time left unknown yet'
        : `about ${duration(left)} left`)
  );
}

/** 7 s, 2 min 05 s, 1 h 03 min. */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

function bar(done: number, total: number, width = 24): string {
  const filled = total > 0 ? Math.min(width, Math.round((width * done) / total)) : width;
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
}
