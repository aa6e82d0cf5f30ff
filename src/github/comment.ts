// One PR comment per config, kept up to date: every comment of the PR is read (100 per page, all pages), the one
// carrying the config's hidden marker and written by ftune's own identity is updated in place; otherwise a new one
// is created. Requests are retried on 5xx and throttled on rate limits (the octokit plugins). A 403 (a fork PR's
// read-only token) is an answer, not a failure: the caller still has the job summary and the artifacts.
import { getOctokit } from "@actions/github";
import { retry } from "@octokit/plugin-retry";
import { throttling } from "@octokit/plugin-throttling";

export interface UpsertOptions {
  token: string;
  /** owner/name */
  repo: string;
  issue: number;
  marker: string;
  body: string;
  apiUrl?: string;
  /** Whose comments may be updated: this login; default the token's own user, else any bot account. */
  author?: string;
  log?: (line: string) => void;
}

export type UpsertResult =
  | { action: "created" | "updated"; id: number; url: string; pagesRead: number }
  | { action: "forbidden"; message: string };

export function octokitFor(token: string, apiUrl: string | undefined, log: (line: string) => void = () => undefined): ReturnType<typeof getOctokit> {
  return getOctokit(
    token,
    {
      ...(apiUrl ? { baseUrl: apiUrl } : {}),
      retry: { retries: 3 },
      throttle: {
        onRateLimit: (after: number, _opts: unknown, _o: unknown, count: number) => {
          log(`GitHub rate limit: retrying after ${after} s`);
          return count < 2;
        },
        onSecondaryRateLimit: (after: number, _opts: unknown, _o: unknown, count: number) => {
          log(`GitHub secondary rate limit: retrying after ${after} s`);
          return count < 2;
        },
      },
    },
    retry,
    throttling,
  );
}

interface CommentLike {
  id: number;
  body?: string | null;
  html_url: string;
  user: { login: string; type?: string } | null;
}

export async function upsertComment(o: UpsertOptions): Promise<UpsertResult> {
  const [owner, repo] = o.repo.split("/") as [string, string];
  const octokit = octokitFor(o.token, o.apiUrl, o.log);
  try {
    // Who we are: a PAT's user; GITHUB_TOKEN and App tokens cannot ask (403/404), and comment as a bot account.
    let author = o.author;
    if (!author) author = await octokit.rest.users.getAuthenticated().then((r) => r.data.login, () => undefined);
    const ours = (c: CommentLike): boolean => (author ? c.user?.login === author : c.user?.type === "Bot");
    let pagesRead = 0;
    let found: CommentLike | undefined;
    for await (const page of octokit.paginate.iterator(octokit.rest.issues.listComments, { owner, repo, issue_number: o.issue, per_page: 100 })) {
      pagesRead++;
      found ??= (page.data as CommentLike[]).find((c) => ours(c) && (c.body ?? "").includes(o.marker));
      if (found) break;
    }
    if (found) {
      const r = await octokit.rest.issues.updateComment({ owner, repo, comment_id: found.id, body: o.body });
      return { action: "updated", id: r.data.id, url: r.data.html_url, pagesRead };
    }
    const r = await octokit.rest.issues.createComment({ owner, repo, issue_number: o.issue, body: o.body });
    return { action: "created", id: r.data.id, url: r.data.html_url, pagesRead };
  } catch (e) {
    const err = e as { status?: number; message?: string };
    if (err.status === 403) return { action: "forbidden", message: err.message ?? "403" };
    throw e;
  }
}
