import type { GitHubClient, RetryOptions } from './api.js';
import { withRetry } from './api.js';
import { commentMarker, fitComment } from './comment.js';

export interface TrackingTarget {
  owner: string;
  repo: string;
  key: string;
  label: string;
  runUrl: string;
}

/**
 * Scheduled runs have no pull request to comment on: when their gates fail, one labelled issue is
 * opened (or updated), and closed again by the first run whose gates pass.
 */
export async function syncTrackingIssue(client: GitHubClient, target: TrackingTarget, verdict: 'pass' | 'fail', markdown: string, retry: RetryOptions = {}) {
  const { owner, repo, label } = target;
  const marker = commentMarker(`issue:${target.key}`);
  const open = await withRetry('listing tracking issues', () => client.paginate(client.rest.issues.listForRepo, { owner, repo, labels: label, state: 'open', per_page: 100 }), retry);
  const existing = open.find((issue) => !issue.pull_request && issue.body?.startsWith(marker));
  if (verdict === 'pass') {
    if (!existing) return { action: 'none' as const };
    await withRetry('commenting on the tracking issue', () => client.rest.issues.createComment({ owner, repo, issue_number: existing.number, body: `Gates pass again in ${target.runUrl}; closing.` }), retry);
    await withRetry('closing the tracking issue', () => client.rest.issues.update({ owner, repo, issue_number: existing.number, state: 'closed', state_reason: 'completed' }), retry);
    return { action: 'closed' as const, url: existing.html_url };
  }
  const { body } = fitComment(`${marker}\nThe scheduled distill-gate run ${target.runUrl} failed its gates.\n\n${markdown}`);
  if (existing) {
    const { data } = await withRetry('updating the tracking issue', () => client.rest.issues.update({ owner, repo, issue_number: existing.number, body }), retry);
    return { action: 'updated' as const, url: data.html_url };
  }
  const { data } = await withRetry('opening the tracking issue', () => client.rest.issues.create({ owner, repo, title: `distill-gate: gates failing (${target.key})`, body, labels: [label] }), retry);
  return { action: 'opened' as const, url: data.html_url };
}
