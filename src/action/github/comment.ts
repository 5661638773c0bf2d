import type { Api } from './api.js';

/** GitHub refuses issue comments longer than this many characters. */
export const COMMENT_LIMIT = 65_536;

/** Keys come from config paths or an input: only characters that cannot end the HTML comment. */
export function commentMarker(key: string): string {
  return `<!-- distill-gate:${key.replace(/[^A-Za-z0-9._/:-]/g, '_').replace(/-{2,}/g, '-')} -->`;
}

/** Shortens a body over GitHub's limit at a line break and says where the full report is. */
export function fitComment(body: string, limit = COMMENT_LIMIT): { body: string; truncated: boolean } {
  if (body.length <= limit) return { body, truncated: false };
  const note = "\n\n> **Report shortened** to fit GitHub's comment limit: the full report is in this run's job summary and in `report.md`.\n";
  const fence = '\n```';
  const room = limit - note.length - fence.length;
  let cut = body.lastIndexOf('\n', room);
  if (cut <= 0) cut = room;
  let head = body.slice(0, cut);
  // An unclosed code fence would swallow the note.
  if ((head.match(/^```/gm) ?? []).length % 2 === 1) head += fence;
  return { body: `${head}${note}`, truncated: true };
}

export interface StickyComment {
  url: string;
  id: number;
  created: boolean;
  truncated: boolean;
}

/**
 * Creates or updates the one comment carrying this key's marker. Every page of comments is read,
 * so a long discussion never hides the old comment and produces a second copy.
 */
export async function upsertStickyComment(api: Api, issueNumber: number, key: string, markdown: string): Promise<StickyComment> {
  const marker = commentMarker(key);
  const { body, truncated } = fitComment(`${marker}\n${markdown}`);
  const { client, owner, repo } = api;
  const comments = await api.call('listing PR comments', () =>
    client.paginate(client.rest.issues.listComments, { owner, repo, issue_number: issueNumber, per_page: 100 }),
  );
  const existing = comments.find((c) => c.body?.startsWith(marker));
  if (existing) {
    const { data } = await api.call('updating the report comment', () => client.rest.issues.updateComment({ owner, repo, comment_id: existing.id, body }));
    return { url: data.html_url, id: data.id, created: false, truncated };
  }
  const { data } = await api.call('creating the report comment', () => client.rest.issues.createComment({ owner, repo, issue_number: issueNumber, body }));
  return { url: data.html_url, id: data.id, created: true, truncated };
}
