import { abortReason, type RunClock } from '../run-control.js';

/**
 * A run that ended before it could write a report: cancelled while its config was still being
 * read, so there is no config to report on. The CLI exits 1 with the reason, without a stack.
 */
export class RunCancelled extends Error {}

/** One signal that aborts when any of `signals` does, with that one's reason. */
function anyOf(signals: AbortSignal[]): AbortSignal {
  const first = signals.find((signal) => signal.aborted);
  if (first) return AbortSignal.abort(first.reason);
  const controller = new AbortController();
  for (const signal of signals) signal.addEventListener('abort', () => controller.abort(signal.reason), { once: true });
  return controller.signal;
}

/**
 * The run's clock, also ended by `ended` (the CLI's launcher gone, see launchers.ts): that stops,
 * hurries and forces the run at once, as the runner's SIGTERM would, since its step is already over.
 */
export function endedAlso(clock: RunClock, ended: AbortSignal): RunClock {
  return {
    stop: anyOf([clock.stop, ended]),
    hurry: anyOf([clock.hurry, ended]),
    force: anyOf([clock.force, ended]),
    measureMs: () => (ended.aborted ? 0 : clock.measureMs()),
  };
}

/**
 * `work`, unless the run is forced to end first (a second signal, the budget's end): then a
 * RunCancelled saying what was being done. For what comes before the pipeline (reading the
 * config), which has nothing to report yet.
 */
export async function unlessForced<T>(work: Promise<T>, force: AbortSignal, doing: string): Promise<T> {
  let onAbort = () => {};
  const forced = new Promise<never>((_, reject) => {
    // The clock's words for a forced end speak of a report; there is none yet.
    const why = () => abortReason(force).replace(/: the report holds what existed then$/, '');
    onAbort = () => reject(new RunCancelled(`while ${doing} (${why()}): nothing was run and no report was written`));
    if (force.aborted) onAbort();
    else force.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([work, forced]);
  } finally {
    force.removeEventListener('abort', onAbort);
  }
}
