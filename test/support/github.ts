// A GitHub REST stand-in for the few endpoints ftune calls, answering in GitHub's own shapes (comment JSON, Link
// pagination, error bodies) so Octokit runs unmodified against it. Every request is recorded for assertions.
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { readBody } from "./http.js";

export type RouteName = "listComments" | "createComment" | "updateComment" | "dispatch";

export interface GitHubUser {
  login: string;
  id: number;
  node_id: string;
  type: "User" | "Bot";
  site_admin: boolean;
  url: string;
  html_url: string;
}

export interface IssueComment {
  id: number;
  node_id: string;
  url: string;
  html_url: string;
  issue_url: string;
  body: string;
  user: GitHubUser;
  created_at: string;
  updated_at: string;
  author_association: string;
  performed_via_github_app: null;
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: IncomingHttpHeaders;
  /** Parsed JSON body, the raw text if it did not parse, or undefined when empty. */
  body: unknown;
  route: RouteName | null;
  status: number;
}

export interface RecordedDispatch {
  owner: string;
  repo: string;
  event_type: string;
  client_payload: unknown;
}

export interface SeedOptions {
  login?: string;
  type?: "User" | "Bot";
  authorAssociation?: string;
  body?: (i: number) => string;
}

export interface FaultOptions {
  status: 403 | 500 | 502 | 503;
  /** How many of the next matching requests fail; default 1. */
  times?: number;
  body?: unknown;
}

export interface GitHubStandIn {
  /** Use as GITHUB_API_URL / Octokit baseUrl. */
  url: string;
  requests: RecordedRequest[];
  dispatches: RecordedDispatch[];
  /** The live comment list of one issue or PR, oldest first; mutate it to seed. */
  comments(owner: string, repo: string, issue: number): IssueComment[];
  seedComments(owner: string, repo: string, issue: number, n: number, opts?: SeedOptions): IssueComment[];
  /** Makes the next matching requests fail, e.g. 403 as with a fork PR's read-only token. "*" matches any route. */
  failNext(route: RouteName | "*", opts: FaultOptions): void;
  stop(): Promise<void>;
}

export interface GitHubStandInOptions {
  /** Author of comments created through the API. */
  botLogin?: string;
}

export const MAX_COMMENT_CHARS = 65_536;

const DOCS = {
  listComments: "https://docs.github.com/rest/issues/comments#list-issue-comments",
  createComment: "https://docs.github.com/rest/issues/comments#create-an-issue-comment",
  updateComment: "https://docs.github.com/rest/issues/comments#update-an-issue-comment",
  dispatch: "https://docs.github.com/rest/repos/repos#create-a-repository-dispatch-event",
} satisfies Record<RouteName, string>;

interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

interface Matched {
  route: RouteName;
  owner: string;
  repo: string;
  n: number;
}

const ROUTES: { method: string; re: RegExp; route: RouteName }[] = [
  { method: "GET", re: /^\/repos\/([^/]+)\/([^/]+)\/issues\/(\d+)\/comments$/, route: "listComments" },
  { method: "POST", re: /^\/repos\/([^/]+)\/([^/]+)\/issues\/(\d+)\/comments$/, route: "createComment" },
  { method: "PATCH", re: /^\/repos\/([^/]+)\/([^/]+)\/issues\/comments\/(\d+)$/, route: "updateComment" },
  { method: "POST", re: /^\/repos\/([^/]+)\/([^/]+)\/dispatches$/, route: "dispatch" },
];

function match(method: string, path: string): Matched | null {
  for (const r of ROUTES) {
    const m = r.method === method ? r.re.exec(path) : null;
    if (m) return { route: r.route, owner: m[1] as string, repo: m[2] as string, n: Number(m[3] ?? 0) };
  }
  return null;
}

function error(status: number, message: string, documentation_url: string, extra: object = {}): Reply {
  return { status, body: { message, ...extra, documentation_url, status: String(status) } };
}

function isoSeconds(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, "Z");
}

function clampInt(raw: string | null, fallback: number, min: number, max: number): number {
  const v = raw === null ? NaN : Number.parseInt(raw, 10);
  if (!Number.isFinite(v) || v < min) return fallback;
  return Math.min(v, max);
}


export async function startGitHubStandIn(opts: GitHubStandInOptions = {}): Promise<GitHubStandIn> {
  const botLogin = opts.botLogin ?? "github-actions[bot]";
  const store = new Map<string, IssueComment[]>();
  const requests: RecordedRequest[] = [];
  const dispatches: RecordedDispatch[] = [];
  const faults: { route: RouteName | "*"; left: number; reply: Reply }[] = [];
  let nextCommentId = 1_000_000_001;
  let nextUserId = 1000;
  const userIds = new Map<string, number>([["github-actions[bot]", 41898282]]);
  let url = "";

  const comments = (owner: string, repo: string, issue: number): IssueComment[] => {
    const key = `${owner}/${repo}#${issue}`.toLowerCase();
    let list = store.get(key);
    if (!list) store.set(key, (list = []));
    return list;
  };

  const user = (login: string, type: "User" | "Bot"): GitHubUser => {
    let id = userIds.get(login);
    if (id === undefined) userIds.set(login, (id = nextUserId++));
    return {
      login,
      id,
      node_id: `${type === "Bot" ? "BOT" : "U"}_kgDO${Buffer.from(String(id)).toString("base64url")}`,
      type,
      site_admin: false,
      url: `${url}/users/${encodeURIComponent(login)}`,
      html_url: type === "Bot" ? `https://github.com/apps/${login.replace(/\[bot\]$/, "")}` : `https://github.com/${login}`,
    };
  };

  const makeComment = (
    owner: string,
    repo: string,
    issue: number,
    body: string,
    author: GitHubUser,
    association: string,
    at: Date,
  ): IssueComment => {
    const id = nextCommentId++;
    return {
      id,
      node_id: `IC_kwDO${Buffer.from(String(id)).toString("base64url")}`,
      url: `${url}/repos/${owner}/${repo}/issues/comments/${id}`,
      html_url: `https://github.com/${owner}/${repo}/issues/${issue}#issuecomment-${id}`,
      issue_url: `${url}/repos/${owner}/${repo}/issues/${issue}`,
      body,
      user: author,
      created_at: isoSeconds(at),
      updated_at: isoSeconds(at),
      author_association: association,
      performed_via_github_app: null,
    };
  };

  const bot = (): GitHubUser => user(botLogin, botLogin.endsWith("[bot]") ? "Bot" : "User");

  function validBody(body: unknown, docs: string): Reply | string {
    const text = (body as { body?: unknown } | null)?.body;
    if (typeof text !== "string") return error(422, 'Invalid request.\n\n"body" wasn\'t supplied.', docs);
    // GitHub counts characters, not UTF-16 units or bytes.
    if ([...text].length > MAX_COMMENT_CHARS) {
      return error(422, "Validation Failed", docs, {
        errors: [
          {
            resource: "IssueComment",
            code: "custom",
            field: "body",
            message: `body is too long (maximum is ${MAX_COMMENT_CHARS} characters)`,
          },
        ],
      });
    }
    return text;
  }

  function handle(m: Matched, u: URL, body: unknown): Reply {
    switch (m.route) {
      case "listComments": {
        const all = comments(m.owner, m.repo, m.n);
        const perPage = clampInt(u.searchParams.get("per_page"), 30, 1, 100);
        const page = clampInt(u.searchParams.get("page"), 1, 1, Number.MAX_SAFE_INTEGER);
        const last = Math.max(1, Math.ceil(all.length / perPage));
        const link = (p: number, rel: string): string => {
          const q = new URLSearchParams(u.searchParams);
          q.set("page", String(p));
          return `<${url}${u.pathname}?${q.toString()}>; rel="${rel}"`;
        };
        const links: string[] = [];
        if (page > 1) links.push(link(page - 1, "prev"));
        if (page < last) links.push(link(page + 1, "next"), link(last, "last"));
        if (page > 1) links.push(link(1, "first"));
        return {
          status: 200,
          body: all.slice((page - 1) * perPage, page * perPage),
          headers: links.length > 0 ? { link: links.join(", ") } : {},
        };
      }
      case "createComment": {
        const text = validBody(body, DOCS.createComment);
        if (typeof text !== "string") return text;
        const c = makeComment(m.owner, m.repo, m.n, text, bot(), "NONE", new Date());
        comments(m.owner, m.repo, m.n).push(c);
        return { status: 201, body: c, headers: { location: c.url } };
      }
      case "updateComment": {
        const prefix = `${m.owner}/${m.repo}#`.toLowerCase();
        const c = [...store.entries()]
          .filter(([k]) => k.startsWith(prefix))
          .flatMap(([, list]) => list)
          .find((x) => x.id === m.n);
        if (!c) return error(404, "Not Found", DOCS.updateComment);
        const text = validBody(body, DOCS.updateComment);
        if (typeof text !== "string") return text;
        c.body = text;
        c.updated_at = isoSeconds(new Date());
        return { status: 200, body: c };
      }
      case "dispatch": {
        const b = (body ?? {}) as { event_type?: unknown; client_payload?: unknown };
        if (typeof b.event_type !== "string" || b.event_type.length === 0) {
          return error(422, 'Invalid request.\n\n"event_type" wasn\'t supplied.', DOCS.dispatch);
        }
        dispatches.push({ owner: m.owner, repo: m.repo, event_type: b.event_type, client_payload: b.client_payload });
        return { status: 204 };
      }
    }
  }

  async function respond(req: IncomingMessage): Promise<{ reply: Reply; record: RecordedRequest }> {
    const u = new URL(req.url ?? "/", url);
    const raw = await readBody(req);
    let body: unknown = undefined;
    let badJson = false;
    if (raw.length > 0) {
      try {
        body = JSON.parse(raw);
      } catch {
        body = raw;
        badJson = true;
      }
    }
    const method = req.method ?? "GET";
    const m = match(method, u.pathname);
    const record: RecordedRequest = {
      method,
      path: u.pathname,
      query: Object.fromEntries(u.searchParams),
      headers: req.headers,
      body,
      route: m?.route ?? null,
      status: 0,
    };
    let reply: Reply;
    if (!req.headers.authorization) {
      reply = error(401, "Requires authentication", "https://docs.github.com/rest");
    } else if (!m) {
      reply = error(404, "Not Found", "https://docs.github.com/rest");
    } else if (badJson) {
      reply = error(400, "Problems parsing JSON", DOCS[m.route]);
    } else {
      const f = faults.find((x) => x.left > 0 && (x.route === "*" || x.route === m.route));
      if (f) {
        f.left--;
        reply = f.reply.status === 403 && f.reply.body === undefined ? forbidden(m.route) : f.reply;
      } else {
        reply = handle(m, u, body);
      }
    }
    record.status = reply.status;
    return { reply, record };
  }

  function forbidden(route: RouteName): Reply {
    return error(403, "Resource not accessible by integration", DOCS[route]);
  }

  function send(res: ServerResponse, reply: Reply): void {
    const headers: Record<string, string> = {
      "x-github-media-type": "github.v3; format=json",
      "x-github-request-id": `0000:${requests.length.toString(16).toUpperCase()}`,
      "x-ratelimit-limit": "5000",
      "x-ratelimit-remaining": "4999",
      ...reply.headers,
    };
    if (reply.body === undefined) {
      res.writeHead(reply.status, headers).end();
      return;
    }
    const text = typeof reply.body === "string" ? reply.body : JSON.stringify(reply.body);
    headers["content-type"] =
      typeof reply.body === "string" ? "text/plain; charset=utf-8" : "application/json; charset=utf-8";
    res.writeHead(reply.status, headers).end(text);
  }

  const server = createServer((req, res) => {
    respond(req).then(
      ({ reply, record }) => {
        requests.push(record);
        send(res, reply);
      },
      (e: unknown) => send(res, { status: 500, body: { message: String(e) } }),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: 0 }, resolve);
  });
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    requests,
    dispatches,
    comments,
    seedComments(owner, repo, issue, n, seed = {}) {
      const author = user(seed.login ?? "octocat", seed.type ?? "User");
      const list = comments(owner, repo, issue);
      // Seeded history lies in the past, one comment per minute, so it sorts before anything the API creates.
      const start = Date.now() - (n + 1) * 60_000;
      const added = Array.from({ length: n }, (_, i) =>
        makeComment(
          owner,
          repo,
          issue,
          seed.body?.(i) ?? `seeded comment ${i + 1}`,
          author,
          seed.authorAssociation ?? "MEMBER",
          new Date(start + i * 60_000),
        ),
      );
      list.push(...added);
      return added;
    },
    failNext(route, f) {
      faults.push({
        route,
        left: f.times ?? 1,
        reply: { status: f.status, body: f.body ?? (f.status === 403 ? undefined : { message: "Server Error" }) },
      });
    },
    stop() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Octokit's fetch keeps connections alive; without this close() waits for them to time out.
        server.closeAllConnections();
      });
    },
  };
}
