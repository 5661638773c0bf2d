import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** Who wrote a comment or issue, as GitHub's REST API names them (a GitHub App's bot: "<slug>[bot]", type "Bot"). */
export interface Account {
  login: string;
  type: 'User' | 'Bot';
}
interface Comment {
  id: number;
  body: string;
  html_url: string;
  issue_number: number;
  user?: Account;
}
interface Issue {
  number: number;
  title: string;
  body: string;
  state: string;
  labels: Array<{ name: string }>;
  html_url: string;
  user?: Account;
}
interface Fault {
  method: string;
  path: RegExp;
  /** 'drop' closes the connection without an answer: the client sees a network error, not a status. */
  status: number | 'drop' | 'hang';
  times: number;
  headers?: Record<string, string>;
  /** The request is carried out first, and only its answer is replaced (a 502 from a proxy after GitHub acted). */
  served?: boolean;
}

/**
 * A small in-memory stand-in for the GitHub REST API on loopback: just the endpoints the action
 * calls, paginated like GitHub, with faults that can be injected per route.
 */
export class FakeGitHub {
  comments: Comment[] = [];
  issues: Issue[] = [];
  pulls: Array<{ number: number; state: string; head: { sha: string } }> = [];
  /** branch -> path -> file; the contents API over it checks shas like GitHub does. */
  files = new Map<string, Map<string, { content: string; sha: string }>>();
  refs = new Set<string>();
  labelEvents: Array<{ event: string; label: { name: string }; actor: { login: string } }> = [];
  /** The labels on each PR or issue now (GET /issues/{n}/labels), apart from the event payloads' copies. */
  labelsOn = new Map<number, string[]>();
  /** Commit statuses in the order they were set: sha, context (the status name), state, description, target_url. */
  statuses: Array<{ sha: string; context: string; state: string; description: string; target_url: string }> = [];
  /** The files each PR changes (GET /pulls/{n}/files), and its base commit (GET /pulls/{n}). */
  pullFiles = new Map<number, { files: string[]; baseSha: string }>();
  defaultBranch = 'main';
  private shaCounter = 0;
  requests: Array<{ method: string; path: string; authorization?: string }> = [];
  /** false mimics a fork PR, whose head commit GitHub does not associate with the PR. */
  commitsListTheirPulls = true;
  /** Token -> the account it acts as (comments and issues record it as their `user`; GraphQL's viewer and GET /user answer it). */
  identities = new Map<string, Account>();
  /** Any other token acts as the workflow's GITHUB_TOKEN does. */
  defaultIdentity: Account = { login: 'github-actions[bot]', type: 'Bot' };
  /** false: POST /graphql answers 404, as where GraphQL cannot be reached. */
  graphqlAnswers = true;
  /** false: comment answers leave html_url out. */
  commentUrls = true;
  private faults: Fault[] = [];
  private nextId = 1000;
  private server = http.createServer((req, res) => void this.handle(req, res));
  url = '';

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  stop(): Promise<void> {
    // Requests left hanging on purpose would hold close() forever.
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  clearFaults(): void {
    this.faults = [];
  }

  /** The next `times` requests matching method and path answer `status`. */
  fail(method: string, path: RegExp, status: number, times = 1, headers?: Record<string, string>): void {
    this.faults.push({ method, path, status, times, headers });
  }

  /** The next `times` requests matching method and path get their connection closed, unanswered. */
  drop(method: string, path: RegExp, times = 1): void {
    this.faults.push({ method, path, status: 'drop', times });
  }

  /** The next `times` requests matching method and path are carried out, then answered `status` (the client cannot tell they were). */
  failAfterServing(method: string, path: RegExp, status: number, times = 1): void {
    this.faults.push({ method, path, status, times, served: true });
  }

  /** The next `times` requests matching method and path are never answered: a GitHub (or proxy) that hangs. */
  hang(method: string, path: RegExp, times = 1): void {
    this.faults.push({ method, path, status: 'hang', times });
  }

  /** A comment someone else wrote on `issue` (say a fork's author planting a marker). */
  plantComment(issue: number, body: string, user: Account): Comment {
    const comment = {
      id: this.nextId++,
      body,
      issue_number: issue,
      html_url: `https://github.test/pr/${issue}#c${this.nextId}`,
      user,
    };
    this.comments.push(comment);
    return comment;
  }

  /** The account a request's token acts as. */
  identityOf(authorization: string | undefined): Account {
    const token = (authorization ?? '').replace(/^(token|bearer)\s+/i, '');
    return this.identities.get(token) ?? this.defaultIdentity;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    const method = req.method ?? 'GET';
    this.requests.push({ method, path: url.pathname, authorization: req.headers.authorization });
    let raw = '';
    for await (const chunk of req) raw += chunk;
    const body = raw ? JSON.parse(raw) : {};
    /** A fault that lets the request be carried out and replaces only its answer. */
    let replaced: Fault | undefined;
    const send = (status: number, data: unknown, headers: Record<string, string> = {}) => {
      if (replaced)
        [status, data, headers] = [
          replaced.status as number,
          { message: `injected ${replaced.status}` },
          replaced.headers ?? {},
        ];
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(data));
    };
    // Like GitHub, a list answers one page and links the next one.
    const page = <T>(all: T[]) => {
      const perPage = Number(url.searchParams.get('per_page') ?? 30);
      const number = Number(url.searchParams.get('page') ?? 1);
      const headers: Record<string, string> = {};
      if (number < Math.ceil(all.length / perPage)) {
        const next = new URL(url);
        next.searchParams.set('page', String(number + 1));
        headers.link = `<${next.href}>; rel="next"`;
      }
      return send(200, all.slice((number - 1) * perPage, number * perPage), headers);
    };
    const fault = this.faults.find((f) => f.times > 0 && f.method === method && f.path.test(url.pathname));
    if (fault) {
      fault.times--;
      if (fault.status === 'drop') return void req.socket.destroy();
      if (fault.status === 'hang') return;
      if (fault.served) replaced = fault;
      else return send(fault.status, { message: `injected ${fault.status}` }, fault.headers);
    }
    const caller = this.identityOf(req.headers.authorization);
    const withUrl = <T extends { html_url: string }>(item: T) =>
      this.commentUrls ? item : { ...item, html_url: undefined };
    // A comment or issue a test pushed without a user stands for one the action wrote in an earlier run.
    const authored = <T extends { user?: Account }>(item: T) => ({ ...item, user: item.user ?? this.defaultIdentity });
    if (url.pathname === '/graphql' && method === 'POST') {
      if (!this.graphqlAnswers) return send(404, { message: 'Not Found' });
      if (!/\bviewer\b/.test(String(body.query)))
        return send(200, { errors: [{ message: 'the fake answers viewer only' }] });
      return send(200, { data: { viewer: { login: caller.login } } });
    }
    if (url.pathname === '/user' && method === 'GET') {
      // Like GitHub, an installation token (a bot) may not ask who it is here.
      return caller.type === 'Bot'
        ? send(403, { message: 'Resource not accessible by integration' })
        : send(200, { login: caller.login, type: caller.type });
    }
    let m: RegExpExecArray | null;
    if ((m = /^\/repos\/[^/]+\/[^/]+\/contents\/(.+)$/.exec(url.pathname))) {
      const file = decodeURIComponent(m[1]);
      if (method === 'GET') {
        const entry = this.files.get(url.searchParams.get('ref') ?? this.defaultBranch)?.get(file);
        if (!entry) return send(404, { message: 'Not Found' });
        // Like GitHub, content is left out of files over 1 MB.
        const big = Buffer.from(entry.content, 'base64').length > 1_000_000;
        return send(200, {
          type: 'file',
          path: file,
          sha: entry.sha,
          encoding: 'base64',
          content: big ? '' : entry.content,
        });
      }
      if (method === 'PUT') {
        if (!this.refs.has(body.branch)) return send(404, { message: 'Branch not found' });
        const files = this.files.get(body.branch) ?? new Map();
        this.files.set(body.branch, files);
        const existing = files.get(file);
        if (existing && !body.sha) return send(422, { message: '"sha" wasn\'t supplied.' });
        if (existing && body.sha !== existing.sha) return send(409, { message: `${file} does not match ${body.sha}` });
        const entry = { content: body.content, sha: `blob${++this.shaCounter}` };
        files.set(file, entry);
        return send(existing ? 200 : 201, { content: { path: file, sha: entry.sha } });
      }
    }
    if ((m = /^\/repos\/[^/]+\/[^/]+\/git\/blobs\/([^/]+)$/.exec(url.pathname))) {
      for (const files of this.files.values())
        for (const entry of files.values())
          if (entry.sha === m[1]) return send(200, { sha: entry.sha, encoding: 'base64', content: entry.content });
      return send(404, { message: 'Not Found' });
    }
    if ((m = /^\/repos\/[^/]+\/[^/]+\/git\/ref\/heads\/(.+)$/.exec(url.pathname))) {
      return this.refs.has(decodeURIComponent(m[1]))
        ? send(200, { ref: `refs/heads/${m[1]}` })
        : send(404, { message: 'Not Found' });
    }
    if (/^\/repos\/[^/]+\/[^/]+\/git\/refs$/.test(url.pathname) && method === 'POST') {
      const name = String(body.ref).replace('refs/heads/', '');
      if (this.refs.has(name)) return send(422, { message: 'Reference already exists' });
      this.refs.add(name);
      return send(201, { ref: body.ref });
    }
    if (/^\/repos\/[^/]+\/[^/]+\/issues\/\d+\/events$/.test(url.pathname)) return send(200, this.labelEvents);
    if ((m = /^\/repos\/[^/]+\/[^/]+\/issues\/(\d+)\/labels$/.exec(url.pathname)) && method === 'GET')
      return page(
        (this.labelsOn.get(Number(m[1])) ?? []).map((name, i) => ({
          id: i + 1,
          name,
          color: 'ededed',
          default: false,
        })),
      );
    if (/^\/repos\/[^/]+\/[^/]+$/.test(url.pathname)) return send(200, { default_branch: this.defaultBranch });
    if ((m = /^\/repos\/[^/]+\/[^/]+\/issues\/(\d+)\/comments$/.exec(url.pathname))) {
      const issue = Number(m[1]);
      if (method === 'GET')
        return page(this.comments.filter((c) => c.issue_number === issue).map((c) => withUrl(authored(c))));
      const comment = {
        id: this.nextId++,
        body: body.body,
        issue_number: issue,
        html_url: `https://github.test/pr/${issue}#c${this.nextId}`,
        user: caller,
      };
      this.comments.push(comment);
      return send(201, withUrl(comment));
    }
    if ((m = /^\/repos\/[^/]+\/[^/]+\/issues\/comments\/(\d+)$/.exec(url.pathname)) && method === 'PATCH') {
      const comment = this.comments.find((c) => c.id === Number(m![1]));
      if (!comment) return send(404, { message: 'Not Found' });
      comment.body = body.body;
      return send(200, withUrl(comment));
    }
    if (/^\/repos\/[^/]+\/[^/]+\/issues$/.test(url.pathname)) {
      if (method === 'GET') {
        const label = url.searchParams.get('labels');
        const state = url.searchParams.get('state') ?? 'open';
        return send(
          200,
          this.issues
            .filter((i) => i.state === state && (!label || i.labels.some((l) => l.name === label)))
            .map(authored),
        );
      }
      const issue = {
        number: this.nextId++,
        title: body.title,
        body: body.body,
        state: 'open',
        labels: (body.labels ?? []).map((name: string) => ({ name })),
        html_url: `https://github.test/issues/${this.nextId}`,
        user: caller,
      };
      this.issues.push(issue);
      return send(201, issue);
    }
    if ((m = /^\/repos\/[^/]+\/[^/]+\/issues\/(\d+)$/.exec(url.pathname)) && method === 'PATCH') {
      const issue = this.issues.find((i) => i.number === Number(m![1]));
      if (!issue) return send(404, { message: 'Not Found' });
      Object.assign(issue, body.body !== undefined ? { body: body.body } : {}, body.state ? { state: body.state } : {});
      return send(200, issue);
    }
    if ((m = /^\/repos\/[^/]+\/[^/]+\/statuses\/([0-9a-f]+)$/i.exec(url.pathname)) && method === 'POST') {
      const { context = 'default', state, description = '', target_url = '' } = body;
      if (!['pending', 'success', 'failure', 'error'].includes(state))
        return send(422, { message: `state ${state} is not valid` });
      if (description.length > 140)
        return send(422, { message: 'description is too long (maximum is 140 characters)' });
      this.statuses.push({ sha: m[1], context, state, description, target_url });
      return send(201, { id: this.nextId++, state, context, description, target_url });
    }
    if ((m = /^\/repos\/[^/]+\/[^/]+\/pulls\/(\d+)(\/files)?$/.exec(url.pathname)) && method === 'GET') {
      const pull = this.pullFiles.get(Number(m[1]));
      if (!pull) return send(404, { message: 'Not Found' });
      if (m[2]) return page(pull.files.map((filename) => ({ filename, status: 'modified' })));
      return send(200, { number: Number(m[1]), base: { sha: pull.baseSha }, changed_files: pull.files.length });
    }
    if ((m = /^\/repos\/[^/]+\/[^/]+\/commits\/([^/]+)\/pulls$/.exec(url.pathname))) {
      return send(200, this.commitsListTheirPulls ? this.pulls.filter((p) => p.head.sha === m![1]) : []);
    }
    if (/^\/repos\/[^/]+\/[^/]+\/pulls$/.test(url.pathname))
      return page(this.pulls.filter((p) => p.state === (url.searchParams.get('state') ?? 'open')));
    send(404, { message: `no route for ${method} ${url.pathname}` });
  }
}
