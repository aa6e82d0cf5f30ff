// Proves the simulated runner environment with the real toolkit in a child process: @actions/core's outputs
// (including the heredoc form) and step summary land in the files, and @actions/github's context reads the payload.
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { makeActionsEnv, type ActionsEnv } from "./support/actions-env.js";
import { runTracked, teardownAll } from "./support/processes.js";

const REPO_ROOT = fileURLToPath(new URL("..", import.meta.url));

const STEP = `
import * as core from "@actions/core";
import { context } from "@actions/github";
core.setOutput("config-hash", "abc");
core.setOutput("report", "line one\\nline two\\n\\nline four");
core.saveState("phase", "trained");
core.exportVariable("FTUNE_RUN", "r-1");
await core.summary.addRaw("hi").write();
process.stdout.write(JSON.stringify({
  eventName: context.eventName,
  issue: context.issue,
  sha: context.sha,
  ref: context.ref,
  apiUrl: context.apiUrl,
}));
`;

async function runStep(a: ActionsEnv): Promise<Record<string, unknown>> {
  const r = await runTracked(process.execPath, ["--input-type=module", "-e", STEP], {
    env: a.env,
    // -e code resolves packages from the working directory.
    cwd: REPO_ROOT,
  });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

describe("simulated Actions step environment", () => {
  after(async () => {
    await teardownAll();
  });

  it("collects outputs, state, env and summary written by @actions/core in a pull_request step", async () => {
    const a = await makeActionsEnv({ event: "pull_request.opened", apiUrl: "http://127.0.0.1:1" });
    const seen = await runStep(a);

    assert.deepEqual(a.readOutputs(), {
      "config-hash": "abc",
      report: "line one\nline two\n\nline four",
    });
    assert.match(readFileSync(a.files.output, "utf8"), /^report<<ghadelimiter_/m);
    assert.deepEqual(a.readState(), { phase: "trained" });
    assert.deepEqual(a.readExportedEnv(), { FTUNE_RUN: "r-1" });
    assert.equal(a.readSummary(), "hi");

    assert.deepEqual(seen, {
      eventName: "pull_request",
      issue: { owner: "Codertocat", repo: "Hello-World", number: 2 },
      sha: "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
      ref: "refs/pull/2/merge",
      apiUrl: "http://127.0.0.1:1",
    });
    assert.equal(a.env.GITHUB_HEAD_REF, "changes");
    assert.equal(a.env.GITHUB_BASE_REF, "master");
    await a.cleanup();
  });

  it("derives ref and sha for push and dispatch events, and rewrites the repository when asked", async () => {
    const push = await makeActionsEnv({ event: "push" });
    assert.equal(push.env.GITHUB_REF, "refs/heads/master");
    assert.equal(push.env.GITHUB_SHA, "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
    assert.equal(push.env.GITHUB_HEAD_REF, "");
    assert.match(push.env.GITHUB_API_URL ?? "", /^http:\/\/127\.0\.0\.1:/);

    const wd = await makeActionsEnv({ event: "workflow_dispatch", repo: "acme/widgets" });
    assert.equal(wd.env.GITHUB_EVENT_NAME, "workflow_dispatch");
    assert.equal(wd.env.GITHUB_REF, "refs/heads/main");
    assert.match(wd.env.GITHUB_SHA ?? "", /^[0-9a-f]{40}$/);
    assert.equal(wd.env.GITHUB_REPOSITORY_OWNER, "acme");
    const payload = JSON.parse(readFileSync(wd.eventPath, "utf8")) as { repository: { full_name: string } };
    assert.equal(payload.repository.full_name, "acme/widgets");

    const rd = await makeActionsEnv({ event: "repository_dispatch", sha: "a".repeat(40) });
    assert.equal(rd.env.GITHUB_EVENT_NAME, "repository_dispatch");
    assert.equal(rd.env.GITHUB_SHA, "a".repeat(40));
    assert.match(rd.env.GITHUB_REF ?? "", /^refs\/heads\//);
  });
});
