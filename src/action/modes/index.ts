import type { RunClock } from '../../run-control.js';
import type { Mode, Step } from '../inputs.js';
import { checkChanges } from './changes.js';
import { mergeMode } from './merge.js';
import type { ModeOutcome } from './outcome.js';
import { reportLegsMode } from './report-legs.js';
import { reportMode } from './report.js';
import { runMode } from './run.js';

export type { ModeOutcome, Notice } from './outcome.js';

/** The action's modes, one room each: what a step with that `mode` input does before publishing. */
export const modes: Record<Mode, (step: Step, clock: RunClock) => Promise<ModeOutcome>> = {
  run: runMode,
  // Several legs' uploads (input reports) are merged; one upload is re-judged alone.
  report: (step, clock) => (step.inputs.reports.length > 0 ? reportLegsMode(step, clock) : reportMode(step, clock)),
  merge: async (step, clock) => ({ result: await mergeMode(step, clock) }),
  changes: checkChanges,
};

/** What the commit status says while a mode works, before its verdict. */
export const PENDING_LINE: Record<Mode, string> = {
  run: 'distilling and measuring the student',
  report: "re-judging the pull request's uploaded report",
  merge: 'merging the reports of the matrix',
  changes: 'reading what the pull request changed',
};
