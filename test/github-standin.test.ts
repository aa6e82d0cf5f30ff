// Proves the GitHub REST stand-in against the real client ftune uses (@actions/github's Octokit): comment
// create/list/update, Link-header pagination, the over-length 422, dispatches, auth and injected faults.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { getOctokit } from "@actions/github";
import { startGitHubStandIn, type GitHubStandIn } from "./support/github.js";

const OWNER = "acme";
const REPO = "widgets";
const TOKEN = "ghs_standin_token";

/** Octokit throws a RequestError on non-2xx; this returns its status and GitHub's parsed error body. */
async function failure(p: Promise<unknown>): Promise<{ status: number; data: unknown }> {
  try {
    await p;
  } catch (e) {
    const err = e as { status: number; response?: { data: unknown } };
    return { status: err.status, data: err.response?.data };
  }
  return assert.fail("expected the request to fail");
}

describe("GitHub REST stand-in", () => {
  let gh: GitHubStandIn;
  let octokit: ReturnType<typeof getOctokit>;

  before(async () => {
    gh = await startGitHubStandIn();
    octokit = getOctokit(TOKEN, { baseUrl: gh.url });
  });

  after(async () => {
    await gh?.stop();
  });

  it("creates, lists and updates a comment in GitHub's shape", async () => {
    const created = await octokit.rest.issues.createComment({ owner: OWNER, repo: REPO, issue_number: 7, body: "first" });
    assert.equal(created.status, 201);
    assert.equal(created.data.body, "first");
    assert.equal(created.data.user?.login, "github-actions[bot]");
    assert.equal(created.data.user?.type, "Bot");
    assert.equal(created.data.url, `${gh.url}/repos/${OWNER}/${REPO}/issues/comments/${created.data.id}`);
    assert.match(created.data.html_url, /#issuecomment-\d+$/);
    assert.match(created.data.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

    const listed = await octokit.rest.issues.listComments({ owner: OWNER, repo: REPO, issue_number: 7 });
    assert.deepEqual(
      listed.data.map((c) => [c.id, c.body]),
      [[created.data.id, "first"]],
    );

    const updated = await octokit.rest.issues.updateComment({
      owner: OWNER,
      repo: REPO,
      comment_id: created.data.id,
      body: "second",
    });
    assert.equal(updated.status, 200);
    assert.equal(gh.comments(OWNER, REPO, 7)[0]?.body, "second");

    const post = gh.requests.find((r) => r.route === "createComment");
    assert.equal(post?.headers.authorization, `token ${TOKEN}`);
    assert.deepEqual(post?.body, { body: "first" });
  });

  it("answers 404 when updating an unknown comment", async () => {
    const f = await failure(octokit.rest.issues.updateComment({ owner: OWNER, repo: REPO, comment_id: 42, body: "x" }));
    assert.equal(f.status, 404);
  });

  it("paginates 250 seeded comments over 3 pages with Link headers", async () => {
    gh.seedComments(OWNER, REPO, 9, 250);
    const before = gh.requests.length;
    const all = await octokit.paginate(octokit.rest.issues.listComments, {
      owner: OWNER,
      repo: REPO,
      issue_number: 9,
      per_page: 100,
    });
    assert.equal(all.length, 250);
    assert.equal(new Set(all.map((c) => c.id)).size, 250);
    const pages = gh.requests.slice(before);
    assert.deepEqual(
      pages.map((r) => r.query.page ?? "1"),
      ["1", "2", "3"],
    );

    const res = await fetch(`${gh.url}/repos/${OWNER}/${REPO}/issues/9/comments?per_page=100&page=2`, {
      headers: { authorization: `token ${TOKEN}` },
    });
    const link = res.headers.get("link") ?? "";
    await res.arrayBuffer();
    const base = `${gh.url}/repos/${OWNER}/${REPO}/issues/9/comments?per_page=100&page=`;
    assert.equal(
      link,
      `<${base}1>; rel="prev", <${base}3>; rel="next", <${base}3>; rel="last", <${base}1>; rel="first"`,
    );
  });

  it("rejects a body over 65,536 characters with GitHub's 422", async () => {
    const f = await failure(
      octokit.rest.issues.createComment({ owner: OWNER, repo: REPO, issue_number: 7, body: "x".repeat(70_000) }),
    );
    assert.equal(f.status, 422);
    assert.deepEqual(f.data, {
      message: "Validation Failed",
      errors: [
        {
          resource: "IssueComment",
          code: "custom",
          field: "body",
          message: "body is too long (maximum is 65536 characters)",
        },
      ],
      documentation_url: "https://docs.github.com/rest/issues/comments#create-an-issue-comment",
      status: "422",
    });
  });

  it("records a repository dispatch, and 422s one without event_type", async () => {
    const r = await octokit.rest.repos.createDispatchEvent({
      owner: OWNER,
      repo: REPO,
      event_type: "ftune-train",
      client_payload: { pr: 7 },
    });
    assert.equal(r.status, 204);
    assert.deepEqual(gh.dispatches, [
      { owner: OWNER, repo: REPO, event_type: "ftune-train", client_payload: { pr: 7 } },
    ]);
    const bad = await fetch(`${gh.url}/repos/${OWNER}/${REPO}/dispatches`, {
      method: "POST",
      headers: { authorization: `token ${TOKEN}`, "content-type": "application/json" },
      body: "{}",
    });
    assert.equal(bad.status, 422);
    await bad.arrayBuffer();
  });

  it("answers 401 without an authorization header", async () => {
    const res = await fetch(`${gh.url}/repos/${OWNER}/${REPO}/issues/7/comments`);
    assert.equal(res.status, 401);
    assert.equal(((await res.json()) as { message: string }).message, "Requires authentication");
  });

  it("injects a fork-PR 403 and a 5xx for the next requests to a route", async () => {
    gh.failNext("createComment", { status: 403 });
    gh.failNext("createComment", { status: 502 });
    const create = (body: string) => octokit.rest.issues.createComment({ owner: OWNER, repo: REPO, issue_number: 7, body });
    const forbidden = await failure(create("a"));
    assert.equal(forbidden.status, 403);
    assert.equal((forbidden.data as { message: string }).message, "Resource not accessible by integration");
    assert.equal((await failure(create("b"))).status, 502);
    assert.equal((await create("c")).status, 201);
  });
});
