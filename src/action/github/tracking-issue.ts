import type { Api } from './api.js';
import { commentMarker, fitComment, tokenIdentity, writtenBy } from './comment.js';

export interface TrackingTarget {
  key: string;
  label: string;
  runUrl: string;
}

export type TrackingResult = { action: 'none' } | { action: 'closed' | 'updated' | 'opened'; url: string };

/**
 * Scheduled runs have no pull request to comment on: when their gates fail, one labelled issue is
 * opened (or updated), and closed again by the first run whose gates pass.
 */
export async function syncTrackingIssue(
  api: Api,
  target: TrackingTarget,
  verdict: 'pass' | 'fail',
  markdown: string,
): Promise<TrackingResult> {
  const { client, owner, repo } = api;
  const { label } = target;
  const marker = commentMarker(`issue:${target.key}`);
  const open = await api.call('listing tracking issues', () =>
    client.paginate(client.rest.issues.listForRepo, { owner, repo, labels: label, state: 'open', per_page: 100 }),
  );
  // Only an issue the token's own account opened is ours to update or close, as with the PR comment.
  const marked = open.filter((issue) => !issue.pull_request && issue.body?.startsWith(marker));
  const me = marked.length > 0 ? await tokenIdentity(api) : undefined;
  const existing = me && marked.find((issue) => writtenBy(issue.user, me));
  const others = me ? marked.filter((issue) => !writtenBy(issue.user, me)) : [];
  if (me && others.length > 0)
    api.warn(
      `distill-gate: ignored ${others.map((issue) => `${issue.html_url} by @${issue.user?.login ?? 'unknown'}`).join(', ')}: labelled ${label} with this key's marker, but not opened by the token's account (@${me.login}). Left unchanged.`,
    );
  if (verdict === 'pass') {
    if (!existing) return { action: 'none' };
    await api.call('commenting on the tracking issue', () =>
      client.rest.issues.createComment({
        owner,
        repo,
        issue_number: existing.number,
        body: `Gates pass again in ${target.runUrl}; closing.`,
      }),
    );
    await api.call('closing the tracking issue', () =>
      client.rest.issues.update({
        owner,
        repo,
        issue_number: existing.number,
        state: 'closed',
        state_reason: 'completed',
      }),
    );
    return { action: 'closed', url: existing.html_url };
  }
  const { body } = fitComment(
    `${marker}\nThe scheduled distill-gate run ${target.runUrl} failed its gates.\n\n${markdown}`,
  );
  if (existing) {
    const { data } = await api.call('updating the tracking issue', () =>
      client.rest.issues.update({ owner, repo, issue_number: existing.number, body }),
    );
    return { action: 'updated', url: data.html_url };
  }
  const { data } = await api.call('opening the tracking issue', () =>
    client.rest.issues.create({
      owner,
      repo,
      title: `distill-gate: gates failing (${target.key})`,
      body,
      labels: [label],
    }),
  );
  return { action: 'opened', url: data.html_url };
}
