import type { RunResult } from '../../report/report.js';
import type { CommitState } from '../github/index.js';

/**
 * What a mode ends in: a report to publish (its markdown and where they lie) and what to do once
 * it is published, or a notice where there is no report to judge (the gate skipped, an upload
 * missing). Recording a baseline comes after publishing because it is slow network work that a
 * cancel must never stand in front of.
 */
export type ModeOutcome = { result: RunResult; afterPublish?: () => Promise<void> } | { notice: Notice };

/** A verdict with no report behind it: the gate was skipped, or there was nothing to judge. */
export interface Notice {
  verdict: 'pass' | 'fail';
  /** The commit status it sets: pending when a later job gives the verdict (mode changes). */
  state: CommitState;
  /** One line: the status's description and the summary's headline. */
  line: string;
  /** More for the summary and the comment (markdown, already escaped). */
  details: string;
  /** create: the comment is posted (a missing upload must be seen); update: only an existing one is brought up to date (a skip is not worth a new comment). */
  comment: 'create' | 'update';
}
