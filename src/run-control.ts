/**
 * What the two shells (the CLI's `run` and the action's mode run) share around a pipeline run:
 * the time budget read from text, and one clock that every stage reads to end in time.
 *
 * The runner cancels a job (or ends it at `timeout-minutes`) with SIGINT, then SIGTERM 7.5 s
 * later, then SIGKILL 2.5 s after that; a terminal's Ctrl-C is SIGINT too. So:
 * - the first signal asks the run to *hurry*: the teacher's pass and training stop at the next
 *   batch, measuring shrinks to a few seconds, and the report is written inside the 7.5 s;
 * - a second signal (the runner's SIGTERM) *forces* the run: the report of whatever exists is
 *   written at once, because 2.5 s later the process is killed.
 * A time budget works the same way, on the clock: teacher pass and training stop at
 * TRAINING_SHARE_OF_BUDGET of it, measuring fits itself into what is left, and at the budget's end
 * the run is forced.
 */

/** The signals that cancel a run. */
export const CANCEL_SIGNALS = ['SIGINT', 'SIGTERM'] as const;
export type CancelSignal = (typeof CANCEL_SIGNALS)[number];

/** Time between the runner's SIGINT and its SIGTERM. */
export const RUNNER_GRACE_MS = 7500;
/** What measuring may take after a cancel: the rest of the grace is for saving and publishing. */
export const MEASURE_AFTER_CANCEL_MS = 2500;
/** Share of the budget for the teacher's pass and training; measuring and writing get the rest. */
export const TRAINING_SHARE_OF_BUDGET = 0.85;
/** Kept free at the end of a budget for writing and publishing the report. */
export const WRITE_RESERVE_MS = 5000;

/**
 * The run's clock, read by every stage. `stop` ends the teacher's pass and training at the next
 * batch; `hurry` (a cancel) shortens measuring to the minimum; `force` means the report of what
 * exists must be written now. Reasons are Errors whose message goes into the report.
 */
export interface RunClock {
  readonly stop: AbortSignal;
  readonly hurry: AbortSignal;
  readonly force: AbortSignal;
  /** Milliseconds measuring may still take (Infinity when nothing bounds it). */
  measureMs(): number;
}

/** A clock that never stops: runs with no budget and no signals (tests, library use). */
export function unlimitedClock(): RunClock {
  const never = new AbortController().signal;
  return { stop: never, hurry: never, force: never, measureMs: () => Infinity };
}

/** Where cancel signals arrive: the process, or an emitter a test drives. */
export interface SignalSource {
  on(event: CancelSignal, listener: (signal: CancelSignal) => void): unknown;
  off(event: CancelSignal, listener: (signal: CancelSignal) => void): unknown;
}

export interface ClockOptions {
  /** Wall-clock budget of the whole run, from now. */
  budgetMinutes?: number;
  /** The abort reason's text for a signal; it ends up in the report's reasons. */
  reason?: (signal: CancelSignal) => string;
  /** Defaults to the process. */
  signals?: SignalSource;
  now?: () => number;
  /**
   * Told what each signal does, from the handler that acts on it, so the line and the action
   * can never disagree about which signal came first.
   */
  announce?: (line: string) => void;
}

/**
 * Runs `work` with a RunClock driven by SIGINT/SIGTERM and the budget. The listeners stay for the
 * whole run (a listener-less SIGINT would kill Node with no report) and are removed when `work`
 * settles, as are the budget's timers.
 */
export async function withRunClock<T>(work: (clock: RunClock) => Promise<T>, options: ClockOptions = {}): Promise<T> {
  const source: SignalSource = options.signals ?? process;
  const reason = options.reason ?? ((signal) => `received ${signal}`);
  const now = options.now ?? (() => performance.now());
  const started = now();
  const stop = new AbortController();
  const hurry = new AbortController();
  const force = new AbortController();
  let cancelledAt: number | undefined;
  const onSignal = (signal: CancelSignal) => {
    options.announce?.(
      cancelledAt === undefined
        ? `cancel: received ${signal}: stopping the teacher's pass and training, then measuring what fits and writing the report (a second signal writes it at once)`
        : `cancel: received ${signal} again: writing the report of what exists now`,
    );
    if (cancelledAt === undefined) {
      cancelledAt = now();
      const why = new Error(reason(signal));
      hurry.abort(why);
      if (!stop.signal.aborted) stop.abort(why);
    } else if (!force.signal.aborted) {
      force.abort(
        new Error(`${reason(signal)} again, while the run was finishing: the report holds what existed then`),
      );
    }
  };
  for (const signal of CANCEL_SIGNALS) source.on(signal, onSignal);
  const budgetMs = options.budgetMinutes === undefined ? undefined : options.budgetMinutes * 60_000;
  const timers: NodeJS.Timeout[] = [];
  if (budgetMs !== undefined) {
    const minutes = options.budgetMinutes;
    timers.push(
      setTimeout(() => {
        if (!stop.signal.aborted)
          stop.abort(
            new Error(
              `the time budget of ${minutes} min was nearly spent (the teacher's pass and training get ${TRAINING_SHARE_OF_BUDGET * 100}% of it)`,
            ),
          );
      }, budgetMs * TRAINING_SHARE_OF_BUDGET),
      setTimeout(
        () =>
          force.abort(
            new Error(
              `the time budget of ${minutes} min ran out before the run finished: the report holds what existed then`,
            ),
          ),
        budgetMs,
      ),
    );
    // A run that ends early must not be kept alive by its budget.
    for (const timer of timers) timer.unref();
  }
  const clock: RunClock = {
    stop: stop.signal,
    hurry: hurry.signal,
    force: force.signal,
    measureMs: () => {
      const elapsed = now();
      const afterCancel = cancelledAt === undefined ? Infinity : cancelledAt + MEASURE_AFTER_CANCEL_MS - elapsed;
      const inBudget = budgetMs === undefined ? Infinity : started + budgetMs - WRITE_RESERVE_MS - elapsed;
      return Math.max(0, Math.min(afterCancel, inBudget));
    },
  };
  try {
    return await work(clock);
  } finally {
    for (const signal of CANCEL_SIGNALS) source.off(signal, onSignal);
    for (const timer of timers) clearTimeout(timer);
  }
}

/** The message of an abort reason (an Error or text). */
export function abortReason(signal: AbortSignal, fallback = 'the run was stopped'): string {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason.message : typeof reason === 'string' ? reason : fallback;
}

/**
 * On CPU backends (wasm, cpu) every await in a batch loop resolves as a microtask, which would
 * starve the event loop: no timer (the time budget) and no signal handler (SIGINT, SIGTERM) could
 * ever run. The returned function yields a macrotask turn at most every 50 ms.
 */
export function eventLoopPauser(): () => Promise<void> {
  let last = performance.now();
  return async () => {
    if (performance.now() - last <= 50) return;
    await new Promise((resolve) => setImmediate(resolve));
    last = performance.now();
  };
}

/**
 * The longest budget: Node's timers hold at most 2^31-1 ms (24.8 days) and fire at once beyond
 * it, which would cut a run short the moment it starts. No CI job runs that long.
 */
export const MAX_BUDGET_MINUTES = 35_000;

/**
 * A time budget given as text (the CLI's --budget, the action's `budget` input): plain decimal
 * minutes (`45`, `1.5`, `.5`) above 0 and at most MAX_BUDGET_MINUTES, or undefined when the text
 * is not such a number. Number() alone would read `0x10` as 16, `1e3` as 1000 and `` as 0: a
 * typo must be refused, not run as another budget. Each shell words its own refusal.
 */
export function parseBudgetMinutes(text: string): number | undefined {
  const plain = text.trim();
  if (!/^(\d+(\.\d*)?|\.\d+)$/.test(plain)) return undefined;
  const minutes = Number(plain);
  return minutes > 0 && minutes <= MAX_BUDGET_MINUTES ? minutes : undefined;
}

/**
 * Waits for `work` until the run is stopped (`signal`: a cancel or the budget) or `timeoutMs` has
 * passed, whichever comes first; then rejects saying which, and `work` is abandoned (the process
 * exits once the report is published). For calls that cannot take a signal themselves: every
 * call the job makes that can hang runs under the clock, so a hang ends in a report, never in the
 * runner's SIGKILL with nothing written.
 */
export async function underClock<T>(
  work: Promise<T>,
  signal: AbortSignal,
  timeoutMs: number,
  doing: string,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort = () => {};
  const stopped = new Promise<never>((_, reject) => {
    const stop = (why: string) => reject(new Error(`${doing} ${why}`));
    if (signal.aborted) return stop(`was stopped: ${abortReason(signal)}`);
    signal.addEventListener('abort', (onAbort = () => stop(`was stopped: ${abortReason(signal)}`)), { once: true });
    timer = setTimeout(() => stop(`took longer than ${Math.round(timeoutMs / 1000)} s`), timeoutMs);
  });
  try {
    return await Promise.race([work, stopped]);
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', onAbort);
  }
}
