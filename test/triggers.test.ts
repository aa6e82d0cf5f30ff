// The three ways in, each driven with the real webhook payload (../shared/data/events) and the Actions environment
// laid out, through the CLI: a pull request (`ftune changed` finds the configs it changed, including through an
// `extends` parent and local data), workflow_dispatch (the named config), repository_dispatch <project>.dataprep
// (the subscribed configs, with the dataset from the payload); and the namespaces runs land in.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeActionsEnv, readEventPayload, type ActionsEvent } from "./support/actions-env.js";
import { startGitHubStandIn } from "./support/github.js";
import { teardownAll } from "./support/processes.js";
import { REPO, ftuneAsync, lastJson } from "./helpers/cli.js";

const work = mkdtempSync(join(tmpdir(), "ftune-triggers-"));
const repo = join(work, "repo");
let baseSha = "";
const git = (...args: string[]): string => execFileSync("git", args, { cwd: repo, encoding: "utf8", env: { ...process.env, GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@example.com", GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@example.com" } }).trim();

const experiment = (extra: string) =>
  ["extends: base.yaml", "model:", "  base_model: TinyLlama/TinyLlama-1.1B-Chat-v1.0", "dataset:", "  local_dataset_path: data/tiny-instructions.jsonl", "  tokenizer: data/tokenizer.json", "  val_set_size: 2", extra].join("\n");

before(() => {
  mkdirSync(join(repo, "configs", "data"), { recursive: true });
  cpSync(join(REPO, "configs", "examples", "data"), join(repo, "configs", "data"), { recursive: true });
  mkdirSync(join(repo, "configs", "other"), { recursive: true });
  writeFileSync(join(repo, "configs", "base.yaml"), "training:\n  max_steps: 10\n  micro_batch_size: 2\n  macro_batch_size: 4\n");
  writeFileSync(join(repo, "configs", "a.yaml"), experiment("events:\n  subscribe: [llm-data]"));
  writeFileSync(join(repo, "configs", "b.yaml"), experiment("events:\n  subscribe: [databricks/databricks-dolly-15k]"));
  // c does not extend base.yaml and reads its own data file.
  writeFileSync(join(repo, "configs", "other", "c.yaml"), ["model:", "  base_model: x/y", "dataset:", "  local_dataset_path: rows.jsonl", "  tokenizer: ../data/tokenizer.json", "  val_set_size: 0"].join("\n"));
  writeFileSync(join(repo, "configs", "other", "rows.jsonl"), '{"instruction": "a", "input": "", "output": "b"}\n');
  git("init", "-q", "-b", "main");
  git("add", "-A");
  git("commit", "-qm", "base");
  baseSha = git("rev-parse", "HEAD");
  git("checkout", "-qb", "feature");
});
after(async () => {
  rmSync(work, { recursive: true, force: true });
  await teardownAll();
});

interface Matrix {
  include: { config: string; name: string; reason: string; dataset_uri?: string }[];
}

async function changed(event: ActionsEvent, payload?: object): Promise<{ matrix: Matrix; outputs: Record<string, string>; stderr: string }> {
  const actions = await makeActionsEnv({ event, payload, repo: "acme/llm", workspace: repo });
  const r = await ftuneAsync(["changed", "--json"], { cwd: repo, env: actions.env });
  assert.equal(r.code, 0, r.stderr);
  const outputs = actions.readOutputs();
  await actions.cleanup();
  return { matrix: lastJson<Matrix>(r.stdout), outputs, stderr: r.stderr };
}

function prPayload(): object {
  const p = readEventPayload("pull_request.opened") as { pull_request: { base: { sha: string; ref: string } } };
  p.pull_request.base.sha = baseSha;
  p.pull_request.base.ref = "main";
  return p;
}

describe("triggers", () => {
  it("a pull request: the configs it changed, through an extends parent and through local data", async () => {
    writeFileSync(join(repo, "configs", "base.yaml"), "training:\n  max_steps: 12\n  micro_batch_size: 2\n  macro_batch_size: 4\n");
    git("commit", "-qam", "base: more steps");
    const first = await changed("pull_request.opened", prPayload());
    const outputs = first.outputs;
    let matrix = first.matrix;
    assert.deepEqual(matrix.include.map((e) => [e.config, e.reason]), [
      ["configs/a.yaml", "extends configs/base.yaml, which changed"],
      ["configs/b.yaml", "extends configs/base.yaml, which changed"],
    ]);
    assert.equal(outputs.count, "2");
    assert.deepEqual(JSON.parse(outputs.matrix!), matrix, "the step output is the matrix");

    writeFileSync(join(repo, "configs", "other", "rows.jsonl"), '{"instruction": "a", "input": "", "output": "c"}\n');
    git("commit", "-qam", "c: data");
    ({ matrix } = await changed("pull_request.synchronize", prPayload()));
    assert.deepEqual(matrix.include.map((e) => e.config), ["configs/a.yaml", "configs/b.yaml", "configs/other/c.yaml"]);
    assert.equal(matrix.include[2]!.reason, "its data configs/other/rows.jsonl changed");
    assert.equal(matrix.include.some((e) => e.config === "configs/base.yaml"), false, "a base file is not an experiment");
  });

  it("workflow_dispatch: the config named in the inputs", async () => {
    const p = readEventPayload("workflow_dispatch") as { inputs: Record<string, string> };
    p.inputs = { config: "configs/b.yaml", overrides: "training.learning_rate=1e-4", "dry-run": "true" };
    const { matrix } = await changed("workflow_dispatch", p);
    assert.deepEqual(matrix.include.map((e) => [e.config, e.name, e.reason]), [["configs/b.yaml", "b", "named in the dispatch"]]);
    p.inputs = { config: "configs/nope.yaml" };
    const actions = await makeActionsEnv({ event: "workflow_dispatch", payload: p, repo: "acme/llm", workspace: repo });
    const r = await ftuneAsync(["changed", "--json"], { cwd: repo, env: actions.env });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /config configs\/nope\.yaml does not exist/);
    await actions.cleanup();
  });

  it("repository_dispatch <project>.dataprep: every subscribed config, with the dataset from the payload", async () => {
    const uri = `s3://bucket/ftune/datasets/${"ab".repeat(32)}`;
    const p = readEventPayload("repository_dispatch") as Record<string, unknown>;
    p.action = "llm-data.dataprep";
    p.client_payload = { dataset_uri: uri, dataset_hash: "ab".repeat(32), source: "databricks/databricks-dolly-15k", revision: "abc", counts: {} };
    const { matrix } = await changed("repository_dispatch", p);
    assert.deepEqual(matrix.include.map((e) => [e.config, e.reason, e.dataset_uri]), [
      ["configs/a.yaml", "subscribed to llm-data", uri],
      ["configs/b.yaml", "subscribed to databricks/databricks-dolly-15k", uri],
    ]);
    p.action = "on-demand-test"; // the recorded payload's own type: not a dataprep event
    assert.deepEqual((await changed("repository_dispatch", p)).matrix.include, []);
  });

  it("namespaces: pr-<N> in a pull request, the branch on a push, never main from a pull request", async () => {
    const cfg = join(repo, "configs", "a.yaml");
    const env = { FTUNE_DRYRUN_STEP_SECONDS: "0.01", FTUNE_POLL_MS: "100", FTUNE_CACHE_DIR: join(work, "cache") };
    const store = `file://${join(work, "store")}`;
    const pr = await makeActionsEnv({ event: "pull_request.opened", payload: prPayload(), repo: "acme/llm", workspace: repo });
    let r = await ftuneAsync(["train", cfg, "--dry-run", "--store", store, "--json"], { cwd: repo, env: { ...pr.env, ...env } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(lastJson<{ namespace: string }>(r.stdout).namespace, "pr-2");
    r = await ftuneAsync(["train", cfg, "--dry-run", "--store", store, "--namespace", "main"], { cwd: repo, env: { ...pr.env, ...env } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /a pull request never writes to namespace main/);
    r = await ftuneAsync(["train", cfg, "--dry-run", "--store", store, "--set", "project.namespace=main"], { cwd: repo, env: { ...pr.env, ...env } });
    assert.equal(r.code, 1, "not through the config either");
    const push = readEventPayload("push") as { ref: string };
    push.ref = "refs/heads/feature/faster";
    const pushEnv = await makeActionsEnv({ event: "push", payload: push, repo: "acme/llm", workspace: repo });
    r = await ftuneAsync(["train", cfg, "--dry-run", "--store", store, "--json"], { cwd: repo, env: { ...pushEnv.env, ...env } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(lastJson<{ namespace: string }>(r.stdout).namespace, "feature/faster");
    assert.ok(execFileSync("ls", [join(work, "store", "runs", "llm")], { encoding: "utf8" }).includes("feature~faster"), "one path segment per namespace");
    // A hand-dispatched run on main with overrides is an experiment: it goes to "manual", not to the baselines.
    const dispatch = await makeActionsEnv({ event: "workflow_dispatch", repo: "acme/llm", workspace: repo });
    r = await ftuneAsync(["train", cfg, "--dry-run", "--store", store, "--set", "training.learning_rate=1e-4", "--json"], { cwd: repo, env: { ...dispatch.env, ...env } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(lastJson<{ namespace: string }>(r.stdout).namespace, "manual");
    r = await ftuneAsync(["train", cfg, "--dry-run", "--store", store, "--json"], { cwd: repo, env: { ...dispatch.env, ...env } });
    assert.equal(lastJson<{ namespace: string }>(r.stdout).namespace, "main", "the config as merged may be a baseline");
    await pr.cleanup();
    await pushEnv.cleanup();
    await dispatch.cleanup();
  });

  it("ftune run in a pull request: the whole pipeline, in namespace pr-<N>, ending with the PR comment", async () => {
    const gh = await startGitHubStandIn();
    try {
      const actions = await makeActionsEnv({ event: "pull_request.opened", payload: prPayload(), repo: "acme/llm", apiUrl: gh.url, token: "ghs_test", workspace: repo });
      const r = await ftuneAsync(["run", join(repo, "configs", "a.yaml"), "--dry-run", "--store", `file://${join(work, "run-store")}`, "--json"], {
        cwd: repo,
        env: { ...actions.env, FTUNE_DRYRUN_STEP_SECONDS: "0.01", FTUNE_POLL_MS: "100", FTUNE_CACHE_DIR: join(work, "cache") },
      });
      assert.equal(r.code, 0, r.stderr);
      const out = lastJson<{ namespace: string; status: string; comment: { action: string } }>(r.stdout);
      assert.deepEqual([out.namespace, out.status, out.comment.action], ["pr-2", "succeeded", "created"]);
      const [comment] = gh.comments("acme", "llm", 2);
      assert.match(comment!.body, /^<!-- ftune-report config=a -->/);
      assert.match(actions.readSummary(), /## ftune · `a`/);
      await actions.cleanup();
    } finally {
      await gh.stop();
    }
  });
});
