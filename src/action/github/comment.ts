import { describeStatus, type Api } from './api.js';

/** GitHub refuses issue comments longer than this many characters. */
export const COMMENT_LIMIT = 65_536;

/** Keys come from config paths or an input: only characters that cannot end the HTML comment. */
export function commentMarker(key: string): string {
  return `<!-- distill-gate:${key.replace(/[^A-Za-z0-9._/:-]/g, '_').replace(/-{2,}/g, '-')} -->`;
}

/** Shortens a body over GitHub's limit at a line break and says where the full report is. */
export function fitComment(body: string, limit = COMMENT_LIMIT): { body: string; truncated: boolean } {
  if (body.length <= limit) return { body, truncated: false };
  const note =
    "\n\n> **Report shortened** to fit GitHub's comment limit: the full report is in this run's job summary and in `report.md`.\n";
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
  /**
   * What the log was told besides (through the facade's warnings): comments carrying this key's
   * marker that another account wrote, left alone; a create that landed although GitHub's answer
   * failed; an account that could not be asked for and was assumed.
   */
  notes: string[];
}

/** The account the token acts as: a user's login, or a GitHub App's "<slug>[bot]" (GITHUB_TOKEN: "github-actions[bot]"). */
export interface TokenIdentity {
  login: string;
  bot: boolean;
  /** Set when GitHub could not be asked and the workflow token's bot was assumed: why. */
  assumed?: string;
}

interface Author {
  login?: string;
  type?: string;
}

const BOT_SUFFIX = /\[bot\]$/i;
const WORKFLOW_BOT = 'github-actions[bot]';

/** One answer per facade: every comment and issue of the step asks the same question. */
const identities = new WeakMap<Api, Promise<TokenIdentity>>();

/**
 * Who the token is. GraphQL's `viewer` answers for every kind of token (a user's, GITHUB_TOKEN
 * and a GitHub App's installation token, as "<slug>[bot]"); REST `GET /user` answers a user's
 * token only (an installation token gets 403), so it is the fallback where GraphQL cannot be
 * reached. When neither answers, the workflow's own GITHUB_TOKEN bot is assumed, which at worst
 * means a second comment, never one taken over.
 */
export function tokenIdentity(api: Api): Promise<TokenIdentity> {
  let identity = identities.get(api);
  if (!identity) {
    identity = askIdentity(api);
    identities.set(api, identity);
  }
  return identity;
}

async function askIdentity(api: Api): Promise<TokenIdentity> {
  const named = (login: unknown) =>
    typeof login === 'string' && login ? { login, bot: BOT_SUFFIX.test(login) } : undefined;
  const failures: string[] = [];
  try {
    const answer = await api.call('asking GitHub which account the token is', () =>
      api.client.graphql<{ viewer?: { login?: string } }>('query { viewer { login } }'),
    );
    const identity = named(answer?.viewer?.login);
    if (identity) return identity;
    failures.push('GraphQL named no viewer');
  } catch (error) {
    failures.push(`GraphQL: ${describeStatus(error)}`);
  }
  try {
    const { data } = await api.call('asking GitHub which user the token is', () =>
      api.client.rest.users.getAuthenticated(),
    );
    const identity = named(data?.login);
    if (identity) return { ...identity, bot: identity.bot || data.type === 'Bot' };
    failures.push('GET /user named no login');
  } catch (error) {
    failures.push(`GET /user: ${describeStatus(error)}`);
  }
  return { login: WORKFLOW_BOT, bot: true, assumed: failures.join('; ') };
}

/**
 * Whether `author` is the token's own account. REST names a GitHub App's bot "<slug>[bot]" with
 * type "Bot" (GraphQL's `author` drops the suffix), and a user with the same name as an app's slug
 * is another account: the name is compared without the suffix, and bot with bot only.
 */
export function writtenBy(author: Author | null | undefined, me: Pick<TokenIdentity, 'login' | 'bot'>): boolean {
  if (!author?.login) return false;
  const bare = (login: string) => login.replace(BOT_SUFFIX, '').toLowerCase();
  const isBot = author.type === 'Bot' || BOT_SUFFIX.test(author.login);
  return bare(author.login) === bare(me.login) && isBot === me.bot;
}

interface ListedComment {
  id: number;
  body?: string;
  html_url?: string;
  user?: Author | null;
}

/**
 * Creates or updates the one comment carrying this key's marker and written by the token's own
 * account. Every page of comments is read, so a long discussion never hides the old comment and
 * produces a second copy. A comment with the marker that someone else wrote (a fork's author can
 * plant one saying "pass" before the trusted job runs) is neither edited nor taken as the
 * report: it is left as it is, ours is created beside it, and the log says so. A create that
 * GitHub answers with an error after all (a 502 from its proxy) is looked for before it is tried
 * again, so that a retry never posts a second copy.
 */
export async function upsertStickyComment(
  api: Api,
  issueNumber: number,
  key: string,
  markdown: string,
  serverUrl = process.env.GITHUB_SERVER_URL || 'https://github.com',
): Promise<StickyComment> {
  const comment = await writeStickyComment(api, issueNumber, key, markdown, serverUrl, true);
  if (!comment) throw new Error('writing the report comment with create on gave no comment');
  return comment;
}

/** Updates the comment of this key that the token's account wrote; undefined, posting nothing, where there is none. */
export function updateStickyComment(
  api: Api,
  issueNumber: number,
  key: string,
  markdown: string,
  serverUrl = process.env.GITHUB_SERVER_URL || 'https://github.com',
): Promise<StickyComment | undefined> {
  return writeStickyComment(api, issueNumber, key, markdown, serverUrl, false);
}

async function writeStickyComment(
  api: Api,
  issueNumber: number,
  key: string,
  markdown: string,
  serverUrl: string,
  create: boolean,
): Promise<StickyComment | undefined> {
  const marker = commentMarker(key);
  const { body, truncated } = fitComment(`${marker}\n${markdown}`);
  const { client, owner, repo } = api;
  const notes: string[] = [];
  const note = (message: string) => {
    notes.push(message);
    api.warn(message);
  };
  /** The PR's own link stands in where GitHub's answer lacks the comment's. */
  const urlOf = (comment: { html_url?: unknown } | undefined, id: number | undefined) =>
    typeof comment?.html_url === 'string' && comment.html_url
      ? comment.html_url
      : `${serverUrl.replace(/\/+$/, '')}/${owner}/${repo}/pull/${issueNumber}${id ? `#issuecomment-${id}` : ''}`;
  let reported = false;
  /** Our comment with the marker, if any; marker comments by other accounts are reported once. */
  const findOurs = async (what: string): Promise<ListedComment | undefined> => {
    const comments: ListedComment[] = await api.call(what, () =>
      client.paginate(client.rest.issues.listComments, { owner, repo, issue_number: issueNumber, per_page: 100 }),
    );
    const marked = comments.filter((c) => c.body?.startsWith(marker));
    if (marked.length === 0) return undefined;
    const me = await tokenIdentity(api);
    if (me.assumed && !reported)
      note(
        `distill-gate: GitHub did not say which account the token is (${me.assumed}); taking it for ${me.login}, the workflow token's.`,
      );
    const others = marked.filter((c) => !writtenBy(c.user, me));
    if (others.length > 0 && !reported) {
      const who = others.map((c) => `${urlOf(c, c.id)} by @${c.user?.login ?? 'unknown'}`).join(', ');
      note(
        `distill-gate: ignored ${others.length === 1 ? 'a comment' : `${others.length} comments`} on PR #${issueNumber} that carr${others.length === 1 ? 'ies' : 'y'} this report's marker but ${others.length === 1 ? 'was' : 'were'} not written by the token's account (@${me.login}): ${who}. Left unchanged; this run's report is its own comment.`,
      );
    }
    reported = true;
    return marked.find((c) => writtenBy(c.user, me));
  };
  const update = async (comment: ListedComment, created: boolean): Promise<StickyComment> => {
    const { data } = await api.call('updating the report comment', () =>
      client.rest.issues.updateComment({ owner, repo, comment_id: comment.id, body }),
    );
    const id = typeof data?.id === 'number' ? data.id : comment.id;
    return { url: urlOf(data ?? comment, id), id, created, truncated, notes };
  };

  const existing = await findOurs('listing PR comments');
  if (existing) return update(existing, false);
  if (!create) return undefined;
  let attempt = 0;
  let landed: ListedComment | undefined;
  const data = await api.call('creating the report comment', async () => {
    // A failed answer does not mean a failed create: look before posting again.
    if (attempt++ > 0 && (landed = await findOurs('checking whether the report comment was posted'))) return undefined;
    return (await client.rest.issues.createComment({ owner, repo, issue_number: issueNumber, body })).data;
  });
  if (landed) {
    note(
      `distill-gate: the report comment was posted although GitHub's answer failed (${urlOf(landed, landed.id)}); not posting it twice.`,
    );
    // Another run of this key may have posted in between: this run's report replaces it.
    if (landed.body !== body) return update(landed, true);
    return { url: urlOf(landed, landed.id), id: landed.id, created: true, truncated, notes };
  }
  // Undefined only when a retry found the comment posted, handled above.
  if (!data) throw new Error("creating the report comment: GitHub's answer has no comment and none was found posted");
  return { url: urlOf(data, data.id), id: data.id, created: true, truncated, notes };
}
