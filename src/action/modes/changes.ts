import * as core from '@actions/core';
import { loadConfig } from '../../config/load.js';
import { fileExists } from '../../models/artifacts.js';
import { escapeMarkdown } from '../../report/escape.js';
import type { RunClock } from '../../run-control.js';
import {
  changedFilesFromGit,
  judgeChanges,
  relevantGlobs,
  skippedLine,
  unknownLine,
  type ChangeVerdict,
} from '../changes.js';
import { runGit } from '../git.js';
import { PULL_REQUEST_EVENTS } from '../github/index.js';
import type { Step } from '../inputs.js';
import type { ModeOutcome, Notice } from './outcome.js';

/**
 * mode changes: whether a pull request touched anything the gate looks at, for a workflow whose
 * distilling job (on a GPU runner) should only start when it did. Sets the output `changed`; when
 * nothing relevant changed, the commit status passes saying the gate was skipped; otherwise it
 * stays pending for the distilling job's verdict. The config is read when there is one (`auto`).
 */
export async function checkChanges(step: Step, clock: RunClock): Promise<ModeOutcome> {
  const config = (await fileExists(step.inputs.config)) ? await loadConfig(step.inputs.config) : undefined;
  const changes = (await changesInCheckout(step, config, clock)) ?? {
    relevant: 'unknown',
    why: 'this run is not for a pull request, so the gate runs',
  };
  if (changes.relevant === false) return { notice: skipped(changes) };
  const line =
    changes.relevant === true
      ? `${changes.files.length} relevant file${changes.files.length === 1 ? '' : 's'} changed since ${changes.base.slice(0, 12)}: the gate runs`
      : changes.why;
  const files = changes.relevant === true ? changes.files : [];
  return {
    notice: {
      verdict: 'pass',
      state: 'pending',
      line,
      details: fileList(files),
      comment: 'update',
    },
  };
}

/** The notice of a gate skipped because nothing it looks at changed. */
export function skipped(changes: Extract<ChangeVerdict, { relevant: false }>): Notice {
  return {
    verdict: 'pass',
    state: 'success',
    line: skippedLine(changes),
    details: `None of the ${changes.changedCount} file${changes.changedCount === 1 ? '' : 's'} the pull request changes is one the gate looks at (input \`paths\`), so nothing was distilled.`,
    comment: 'update',
  };
}

/** A short markdown list of file names from a PR (escaped), at most 20. */
export function fileList(files: string[]): string {
  if (files.length === 0) return '';
  const shown = files.slice(0, 20).map((file) => `- ${escapeMarkdown(file)}`);
  return [...shown, ...(files.length > 20 ? [`- and ${files.length - 20} more`] : [])].join('\n');
}

/**
 * What a pull request's checkout changed against its base commit, judged against the `paths`
 * input: undefined when the run is not a pull request's (it always distils). The running
 * workflow's own file counts too: a PR that changes how the gate runs is gated.
 */
export async function changesInCheckout(
  { inputs, context }: Step,
  config: Parameters<typeof relevantGlobs>[1],
  clock: RunClock,
): Promise<ChangeVerdict | undefined> {
  const pr = context.payload.pull_request;
  if (!pr || !PULL_REQUEST_EVENTS.includes(context.eventName)) return undefined;
  const baseSha = pr.base?.sha;
  let verdict: ChangeVerdict;
  if (!baseSha) verdict = { relevant: 'unknown', why: 'the event names no base commit, so the gate runs' };
  else {
    try {
      const options = { signal: clock.stop };
      const root = (await runGit(['rev-parse', '--show-toplevel'], inputs.workingDirectory, options)).trim();
      const globs = relevantGlobs(inputs.paths, config, root);
      // `auto` with no config to read names nothing: that must not read as "nothing relevant changed".
      if (globs.length === 0)
        throw new Error(
          `no relevant files are known: \`paths: auto\` needs the config, and there is none at ${inputs.config}`,
        );
      const changed = await changedFilesFromGit(root, baseSha, pr.head?.sha, runGit, options);
      verdict = judgeChanges(changed, [...globs, ...runningWorkflow()], baseSha);
    } catch (error) {
      verdict = { relevant: 'unknown', why: unknownLine(error) };
    }
  }
  announce(verdict);
  return verdict;
}

/** The running workflow's file, from GITHUB_WORKFLOW_REF (owner/repo/.github/workflows/x.yml@ref). */
function runningWorkflow(): string[] {
  const file = /^[^/]+\/[^/]+\/(.+?)@/.exec(process.env.GITHUB_WORKFLOW_REF ?? '')?.[1];
  return file ? [file] : [];
}

/** Logs the verdict on the changes and sets the outputs `changed` and `changed-files`. */
export function announce(verdict: ChangeVerdict, prefix = ''): void {
  core.info(`distill-gate: ${prefix}${describeChanges(verdict)}`);
  core.setOutput('changed', String(verdict.relevant !== false));
  core.setOutput('changed-files', verdict.relevant === true ? verdict.files.join('\n') : '');
}

function describeChanges(verdict: ChangeVerdict): string {
  if (verdict.relevant === 'unknown') return verdict.why;
  if (verdict.relevant === false) return skippedLine(verdict);
  const shown = verdict.files.slice(0, 5).join(', ');
  return `${verdict.files.length} of the ${verdict.changedCount} changed files are ones the gate looks at (${shown}${verdict.files.length > 5 ? ', ...' : ''})`;
}
