import type { Tensor } from '@tensorflow/tfjs';
import type { LoadedModel } from '../models/loaded-model.js';
import {
  decide,
  MAX_LOOKS,
  medianInterval,
  MIN_BOUNDED_ROUNDS,
  type Bound,
  type MeasuredInterval,
} from './intervals.js';

// Timing for speed intervals: two models timed interleaved round by round, and one loop that
// times several such pairs, first their fixed rounds, then more rounds in doubling blocks for the
// pairs whose gates are still undecided, until every bound is decided, the pair has had its
// MAX_LOOKS, or the speed budget is spent.

/** Milliseconds on a monotonic clock; tests pass a fake one that their fake models advance. */
export type Clock = () => number;
const wallClock: Clock = () => performance.now();

/** A model to time: TF.js models predict; a teacher in its own runtime (ONNX) runs through predictAsync. */
export type Timed = Pick<LoadedModel, 'predict' | 'predictAsync'>;

/** Wall time of one forward pass including the read-back, which forces asynchronous backends to finish. */
export async function timeOnce(model: Timed, input: Tensor, clock: Clock = wallClock): Promise<number> {
  const start = clock();
  const output = model.predictAsync ? await model.predictAsync(input) : model.predict(input);
  await output.data();
  const elapsed = clock() - start;
  output.dispose();
  return elapsed;
}

/**
 * Two models timed on the same input round by round, alternating which goes first, so that drift
 * within a round lands on both alike. Rounds accumulate across calls, so a caller can keep
 * measuring in blocks.
 */
export class InterleavedTimer {
  /** Per-round times of the first and the second model, in ms. */
  readonly first: number[] = [];
  readonly second: number[] = [];

  constructor(
    private readonly a: Timed,
    private readonly b: Timed,
    private readonly input: Tensor,
    private readonly clock: Clock = wallClock,
  ) {}

  get rounds(): number {
    return this.first.length;
  }

  /**
   * Untimed calls of both models; `stop` ends them early, after the first call of each (which pays
   * one-time set-up). With `settle`, cheap calls go on past `calls`: see WarmupSettle.
   */
  async warmUp(calls: number, stop: () => boolean = never, settle?: WarmupSettle): Promise<void> {
    const start = this.clock();
    const enough = (done: number) =>
      done >= calls && (!settle || calls === 0 || done >= settle.calls || this.clock() - start >= settle.ms);
    for (let i = 0; !enough(i) && (i === 0 || !stop()); i++) {
      await timeOnce(this.a, this.input, this.clock);
      await timeOnce(this.b, this.input, this.clock);
    }
  }

  /** Up to `rounds` more rounds; `stop` is asked before each, and between rounds timers and signals get their turn. `onRound` is told after each (progress). */
  async time(rounds: number, stop: () => boolean = never, onRound?: () => void): Promise<void> {
    for (let round = 0; round < rounds && !stop(); round++) {
      if (this.first.length % 2 === 0) {
        this.first.push(await timeOnce(this.a, this.input, this.clock));
        this.second.push(await timeOnce(this.b, this.input, this.clock));
      } else {
        this.second.push(await timeOnce(this.b, this.input, this.clock));
        this.first.push(await timeOnce(this.a, this.input, this.clock));
      }
      onRound?.();
      // Outside the timed calls: lets an abort (SIGINT) land between rounds instead of after the phase.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
}

const never = () => false;

/**
 * How far a warm-up goes past its `warmup` calls when each call is cheap: until each model has had
 * `calls` calls, or the warm-up has lasted `ms`, whichever comes first. A batch-1 TF.js predict
 * runs several times slower for its first few hundred calls (V8 optimizes, deoptimizes and
 * optimizes again the layers' JavaScript): 100 calls left a small student at ~0.4 ms where it
 * settles at ~0.05 ms. When the teacher is a TF.js model too, its calls warm the same code and the
 * student looked fast; an ONNX teacher (onnxruntime) warms none of it, and the student was timed
 * mid-warm-up (issue #23). A slow model reaches `ms` within its `warmup` calls and gets no more.
 */
export interface WarmupSettle {
  calls: number;
  ms: number;
}

/** The settle of batch-1 latency pairs (measureSpeed, the paired comparison with the baseline's student). */
export const LATENCY_SETTLE: WarmupSettle = { calls: 1000, ms: 1000 };

/** A gate's bound on a timed metric, e.g. speed.speedup >= 1.5. */
export interface MetricBound extends Bound {
  metric: string;
}

/** How one round of a pair gives a metric: from the first and the second model's time in ms. */
export type PerRound = (firstMs: number, secondMs: number) => number;

/** How much of a pair to time before any gate is judged: warm-up calls, then rounds. */
export interface PairSchedule {
  /** Untimed calls of each model before the first round. */
  warmup: number;
  /** Rounds always timed first (`measure.rounds`), unless the run is cancelled or out of time. */
  rounds: number;
  /**
   * Rounds kept even when the run is cancelled or out of time: by default MIN_BOUNDED_ROUNDS, so
   * that intervals are bounded; fewer for large batches, each of which can take seconds.
   */
  minRounds?: number;
  /** Warm-up past `warmup` calls while calls are cheap (batch-1 latency); none by default. */
  settle?: WarmupSettle;
}

/**
 * Metrics timed with an interval: a pair of models timed round by round, the metrics each round
 * gives (a latency, a throughput, a ratio of the two), and the gates' bounds on them. A metric's
 * value is the median of its per-round values, judged on the confidence interval of that median.
 */
export class TimedMetrics implements PairSchedule {
  readonly warmup: number;
  readonly rounds: number;
  readonly minRounds: number;
  readonly settle?: WarmupSettle;

  constructor(
    readonly timer: InterleavedTimer,
    private readonly perRound: Readonly<Record<string, PerRound>>,
    schedule: PairSchedule,
    /** Bounds on these metrics (others are ignored); a function, as a bound may depend on what was timed (a baseline's latency). */
    private readonly bounds: (timing: TimedMetrics) => readonly MetricBound[] = () => [],
  ) {
    ({
      warmup: this.warmup,
      rounds: this.rounds,
      minRounds: this.minRounds = MIN_BOUNDED_ROUNDS,
      settle: this.settle,
    } = schedule);
  }

  /** The metrics these rounds give. */
  get metrics(): string[] {
    return Object.keys(this.perRound);
  }

  interval(metric: string): MeasuredInterval {
    const perRound = this.perRound[metric];
    return medianInterval(this.timer.first.map((first, i) => perRound(first, this.timer.second[i])));
  }

  intervals(): Record<string, MeasuredInterval> {
    return Object.fromEntries(this.metrics.map((metric) => [metric, this.interval(metric)]));
  }

  /**
   * The widest relative half-width of these metrics' intervals, (high - low) / 2 / |median|:
   * the precision the rounds so far bought (0.05: within ±5%). Infinity while unbounded.
   */
  precision(): number {
    if (this.timer.rounds < MIN_BOUNDED_ROUNDS) return Infinity;
    return Math.max(...this.metrics.map((metric) => relativeHalfWidth(this.interval(metric))));
  }

  /** Whether the interval of a bounded metric still straddles its bound, so that more rounds are worth their time. */
  undecided(): boolean {
    return this.bounds(this).some(
      (bound) => bound.metric in this.perRound && decide(this.interval(bound.metric), bound) === 'inconclusive',
    );
  }
}

/** The relative half-width of an interval around its median (Infinity when unbounded or at 0). */
export function relativeHalfWidth({ value, low, high }: Pick<MeasuredInterval, 'value' | 'low' | 'high'>): number {
  const half = (high - low) / 2;
  return Number.isFinite(half) && value !== 0 ? Math.abs(half / value) : Infinity;
}

/**
 * The speed phase's own time budget: past `after`, the fixed rounds of a pair stop as soon as its
 * metrics are known within ±`precision`, and at `until` whatever they are (each pair keeping its
 * `minRounds`). So a slow teacher is not timed to the same number of rounds as a fast student
 * when the time would cost more than distilling did.
 */
export interface SpeedShare {
  /** Before this, the fixed rounds run as configured: a fast phase is never cut. */
  after: number;
  /** No fixed round starts after this (the time share of the run). */
  until: number;
  /** Relative half-width of every metric's interval at which the fixed rounds have bought enough. */
  precision: number;
}

/** Share of the run's time before measuring that the speed phase may take. */
export const SPEED_SHARE_OF_RUN = 0.25;
/** The speed phase's time never cut by the share: below this, timing is cheap whatever the run. */
export const SPEED_FLOOR_SECONDS = 10;
/** The precision (relative half-width of every speed interval) at which fixed rounds may stop once past the floor. */
export const SPEED_PRECISION = 0.02;

/** When timing ends; times are on `clock`. */
export interface SpeedLimits {
  /** The phase's time share and precision target, when it has one. */
  share?: SpeedShare;
  /** Told after every timed round (progress). */
  onRound?: () => void;
  /** No round beyond the fixed ones starts after this: the speed budget. */
  extendUntil: number;
  /** No round at all starts after this, the fixed rounds included: the run's own time is up. */
  stopAt: number;
  /** A cancel: timing stops before the next round, keeping what it has. */
  signal?: AbortSignal;
  clock: Clock;
}

export interface LimitOptions {
  /** How long the speed phase may take from now, the fixed rounds included: the run's time left. */
  speedBudgetMs?: number;
  /**
   * Seconds the run took before measuring: the fixed rounds then stop at SPEED_SHARE_OF_RUN of
   * it (never before SPEED_FLOOR_SECONDS), or earlier once past the floor at SPEED_PRECISION.
   */
  runSeconds?: number;
  onRound?: () => void;
  signal?: AbortSignal;
  clock?: Clock;
}

/**
 * The limits of a speed phase starting now: extra rounds for `measure.speedBudgetSeconds`, or the
 * run's time left when that is shorter; the run's time left also cuts the fixed rounds short.
 */
export function speedLimits(
  speedBudgetSeconds: number,
  { speedBudgetMs = Infinity, signal, clock = wallClock, runSeconds, onRound }: LimitOptions = {},
): SpeedLimits {
  const start = clock();
  const share =
    runSeconds === undefined
      ? undefined
      : {
          after: start + SPEED_FLOOR_SECONDS * 1000,
          until: start + Math.max(SPEED_FLOOR_SECONDS, SPEED_SHARE_OF_RUN * runSeconds) * 1000,
          precision: SPEED_PRECISION,
        };
  return {
    extendUntil: start + Math.min(speedBudgetSeconds * 1000, speedBudgetMs),
    stopAt: start + speedBudgetMs,
    signal,
    clock,
    share,
    onRound,
  };
}

/**
 * Times every pair's warm-up and fixed rounds, then, while a pair leaves a gate undecided, doubles
 * its rounds and looks again, up to MAX_LOOKS looks (see CONFIDENCE for why so few). Pairs still
 * pending share what is left of the budget evenly, and a block stops at its share's end, so the
 * budget is never exceeded by more than one round. A cancel or the run's end stops timing before
 * the next round, each pair keeping at least its `minRounds`; a gate still undecided then is
 * judged inconclusive.
 */
export async function timeUntilDecided(
  pairs: readonly TimedMetrics[],
  { extendUntil, stopAt, signal, clock, share, onRound }: SpeedLimits,
): Promise<void> {
  const cut = () => signal?.aborted === true || clock() >= stopAt;
  // Past the floor, the fixed rounds stop at the share's end, or once precise enough.
  const enough = (pair: TimedMetrics) => {
    if (!share) return false;
    const now = clock();
    return now >= share.until || (now >= share.after && pair.precision() <= share.precision);
  };
  for (const pair of pairs) {
    await pair.timer.warmUp(pair.warmup, () => cut() || (share !== undefined && clock() >= share.until), pair.settle);
    await pair.timer.time(pair.rounds, () => pair.timer.rounds >= pair.minRounds && (cut() || enough(pair)), onRound);
  }
  // A look on an unbounded interval (too few rounds) cannot decide anything, so it is not counted.
  const looks = pairs.map((pair) => ({ pair, count: pair.timer.rounds >= MIN_BOUNDED_ROUNDS ? 1 : 0 }));
  for (;;) {
    const pending = looks.filter(({ pair, count }) => count < MAX_LOOKS && pair.undecided());
    for (const [i, look] of pending.entries()) {
      const { pair } = look;
      const now = clock();
      if (cut() || now >= extendUntil) return;
      const shareEnds = now + (extendUntil - now) / (pending.length - i);
      await pair.timer.time(
        Math.max(pair.timer.rounds, MIN_BOUNDED_ROUNDS),
        () => cut() || clock() >= shareEnds,
        onRound,
      );
      if (pair.timer.rounds >= MIN_BOUNDED_ROUNDS) look.count += 1;
    }
    if (pending.length === 0) return;
  }
}
