/**
 * What the two shells (the CLI's `run` and the action's mode run) share around a pipeline run:
 * the time budget read from text, and one abort signal raised by the runner's cancel.
 *
 * The runner cancels with SIGINT, then SIGTERM 7.5 s later, then SIGKILL; a terminal's Ctrl-C is
 * SIGINT too. Either signal aborts the run, which stops training, still measures and writes the report.
 */

/** The signals that cancel a run. */
export const CANCEL_SIGNALS = ['SIGINT', 'SIGTERM'] as const;
export type CancelSignal = (typeof CANCEL_SIGNALS)[number];

/** Where cancel signals arrive: the process, or an emitter a test drives. */
export interface SignalSource {
  once(event: CancelSignal, listener: (signal: CancelSignal) => void): unknown;
  off(event: CancelSignal, listener: (signal: CancelSignal) => void): unknown;
}

export interface CancellableOptions {
  /** The abort reason's text for a signal; it ends up in the report's reasons. */
  reason?: (signal: CancelSignal) => string;
  /** Defaults to the process. */
  signals?: SignalSource;
}

/**
 * Runs `work` with an AbortSignal that SIGINT or SIGTERM aborts. The listeners are removed when
 * `work` settles, so later signals get Node's default handling again.
 */
export async function cancellable<T>(work: (signal: AbortSignal) => Promise<T>, options: CancellableOptions = {}): Promise<T> {
  const source: SignalSource = options.signals ?? process;
  const reason = options.reason ?? ((signal) => `received ${signal}`);
  const controller = new AbortController();
  const stop = (signal: CancelSignal) => controller.abort(new Error(reason(signal)));
  for (const signal of CANCEL_SIGNALS) source.once(signal, stop);
  try {
    return await work(controller.signal);
  } finally {
    for (const signal of CANCEL_SIGNALS) source.off(signal, stop);
  }
}

/**
 * A time budget given as text (the CLI's --budget, the action's `budget` input): minutes above 0,
 * or undefined when the text is not such a number. Each shell words its own refusal.
 */
export function parseBudgetMinutes(text: string): number | undefined {
  const minutes = Number(text);
  return Number.isFinite(minutes) && minutes > 0 ? minutes : undefined;
}
