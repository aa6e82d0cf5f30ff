// The report: trainer_state.json parsing (every real file in ../shared/data), the markdown against a golden file
// (a dry run with a spot interruption vs its baseline, from fixtures in test/fixtures/report), the fit into GitHub's
// comment limit, and `ftune report` publishing through the GitHub REST stand-in: create, update in place, the
// marker found on page 3, 403 from a fork's token, one comment per config, the job summary and step outputs.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { upsertComment } from "../src/github/comment.js";
import { buildReport, fitComment, MAX_COMMENT_CHARS, parseTrainerState, reportMarker, TrainerStateError } from "../src/report/index.js";
import { openStore, RunStore, type RunRecord, type Store } from "../src/store/index.js";
import { makeActionsEnv } from "./support/actions-env.js";
import { startGitHubStandIn, type GitHubStandIn } from "./support/github.js";
import { teardownAll } from "./support/processes.js";
import { REPO, ftuneAsync, lastJson } from "./helpers/cli.js";

const SHARED = resolve(REPO, "..", "shared", "data");
const FIX = join(REPO, "test", "fixtures", "report");
const work = mkdtempSync(join(tmpdir(), "ftune-report-test-"));
after(async () => {
  rmSync(work, { recursive: true, force: true });
  await teardownAll();
});

const READ_PY = `
import json, math, sys
h = json.load(open(sys.argv[1]))["log_history"]
ok = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
train = sorted([e for e in h if ok(e.get("loss")) and ok(e.get("step"))], key=lambda e: e["step"])
ev = [e["eval_loss"] for e in h if ok(e.get("eval_loss")) and ok(e.get("step"))]
print(json.dumps({"train": len(train), "eval": len(ev), "final": train[-1]["loss"] if train else None, "best": min(ev) if ev else None}))
`;

describe("trainer_state.json parsing", () => {
  const files = readdirSync(SHARED).filter((f) => /^trainer_state.*\.json$/.test(f));
  it("finds the real files", () => assert.ok(files.length >= 5, files.join(", ")));
  for (const f of files) {
    it(`parses ${f} like an independent reading of its log_history`, () => {
      const text = readFileSync(join(SHARED, f), "utf8");
      const m = parseTrainerState(text, f);
      // The independent reading: Python's own json module, the one that wrote these files.
      const py = spawnSync("python3", ["-c", READ_PY, join(SHARED, f)], { encoding: "utf8" });
      assert.equal(py.status, 0, py.stderr);
      const want = JSON.parse(py.stdout) as { train: number; eval: number; final: number | null; best: number | null };
      assert.equal(m.train.length, want.train);
      assert.equal(m.eval.length, want.eval);
      assert.equal(m.finalTrainLoss ?? null, want.final);
      assert.equal(m.bestEvalLoss ?? null, want.best);
      for (let i = 1; i < m.train.length; i++) assert.ok(m.train[i]!.step >= m.train[i - 1]!.step);
      assert.equal(m.dryRun, false);
    });
  }

  it("tolerates missing keys and values that are not finite numbers; rejects what is not a trainer state", () => {
    const m = parseTrainerState(
      JSON.stringify({
        log_history: [
          { step: 1, loss: 2.5 },
          { step: 2, loss: "NaN", grad_norm: "Infinity" },
          { loss: 1.0 },
          { step: 3, loss: 2.1, learning_rate: null },
          { step: 3, eval_loss: 2.2, eval_runtime: 1.5, "memory/max_mem_allocated": 11.2 },
          { step: 3, train_runtime: 30, train_samples_per_second: 4.2, train_loss: 2.3 },
          null,
        ],
      }),
    );
    assert.deepEqual(m.train.map((p) => [p.step, p.loss]), [[1, 2.5], [3, 2.1]]);
    assert.deepEqual(m.eval.map((p) => [p.step, p.eval_loss, p.extra.eval_runtime]), [[3, 2.2, 1.5]]);
    assert.deepEqual([m.trainRuntimeS, m.trainSamplesPerSecond, m.trainLoss, m.peakMemoryGib], [30, 4.2, 2.3, 11.2]);
    assert.throws(() => parseTrainerState("{}", "x/trainer_state.json"), (e: unknown) => e instanceof TrainerStateError && /x\/trainer_state\.json: no log_history/.test((e as Error).message));
    assert.throws(() => parseTrainerState("{", "y.json"), /y\.json: not JSON/);
  });
});

/** Puts the fixture runs into a store the way `ftune train` leaves them. */
async function seedRuns(store: Store, runs: Record<string, string> = { baseline: "baseline", run: "run" }): Promise<Record<string, RunRecord>> {
  const rs = new RunStore(store);
  const out: Record<string, RunRecord> = {};
  for (const [key, prefix] of Object.entries(runs)) {
    const rec = JSON.parse(readFileSync(join(FIX, `${prefix}.run.json`), "utf8")) as RunRecord;
    await rs.writeRecord(rec);
    await rs.writeFile(rec.project, rec.namespace, rec.run_id, "trainer_state.json", readFileSync(join(FIX, `${prefix}.trainer_state.json`)));
    await rs.writeFile(rec.project, rec.namespace, rec.run_id, "config.resolved.yaml", readFileSync(join(FIX, `${prefix}.config.resolved.yaml`)));
    out[key] = rec;
  }
  return out;
}

describe("report markdown", () => {
  it("matches the golden file for a dry run with a spot interruption vs its baseline (UPDATE_GOLDEN=1 rewrites it)", async () => {
    const dir = join(work, "golden-store");
    const store = openStore(`file://${dir}`);
    const { run, baseline } = await seedRuns(store);
    const r = await buildReport({ store, project: "llm-team", runId: run!.run_id, actionsRunUrl: "https://github.com/acme/llm/actions/runs/42" });
    assert.equal(r.baseline?.run_id, baseline!.run_id, "the latest successful run of the config in main");
    const md = r.markdown.replaceAll(`file://${dir}`, "file:///STORE");
    const golden = join(REPO, "test", "golden", "report-dry-run.md");
    if (process.env.UPDATE_GOLDEN === "1") writeFileSync(golden, md);
    assert.equal(md, readFileSync(golden, "utf8"));
    // What the golden file must say, whatever its layout.
    assert.match(md, /^<!-- ftune-report config=dolly-tiny -->\n/);
    assert.match(md, /dry run: no model was trained/);
    assert.match(md, /\| `training\.learning_rate` \| `0\.0003` \| `0\.0001` \|/);
    assert.match(md, /\| best eval loss \| 0\.9602 \| 0\.9481 \| −0\.0121 \(−1\.3%\) ✅ better \|/);
    assert.match(md, /\| cost \(estimate\) \| \$0\.11 \| \$0\.15 \| \+\$0\.04 \(\+34\.6%\) ⚠️ worse \|/);
    assert.match(md, /1 host lost\*\* \(spot interruption\), survived: the run resumed on g6\.xlarge from checkpoint-17; 0 steps computed twice/);
    assert.match(md, /```mermaid\n[^`]*xychart-beta/);
    assert.match(r.svg, /^<svg /);
  });

  it("without a baseline says so and shows absolute numbers", async () => {
    const store = openStore(`file://${join(work, "lonely-store")}`);
    const { run } = await seedRuns(store, { run: "run" });
    const r = await buildReport({ store, project: "llm-team", runId: run!.run_id });
    assert.equal(r.baseline, undefined);
    assert.match(r.markdown, /\*\*No baseline:\*\* no successful dry run of `dolly-tiny` in namespace `main`/);
    assert.match(r.markdown, /\| metric \| this run \|/);
    assert.doesNotMatch(r.markdown, /Config changes/);
  });

  it("fits a 200,000-character report into one comment, cut at a line with fences and details closed", () => {
    const lines = ["<!-- ftune-report config=x -->", "<details><summary>all</summary>", "", "```"];
    while (lines.join("\n").length < 200_000) lines.push(`row ${lines.length} ${"x".repeat(60)}`);
    const body = fitComment(lines.join("\n"));
    assert.ok(body.length <= MAX_COMMENT_CHARS, `${body.length}`);
    assert.ok(body.length > MAX_COMMENT_CHARS - 1000, "uses the room it has");
    assert.equal(body.split("\n").filter((l) => l.startsWith("```")).length % 2, 0, "code fences balanced");
    assert.equal((body.match(/<details>/g) ?? []).length, (body.match(/<\/details>/g) ?? []).length, "details closed");
    assert.match(body, /row \d+ x+\n```\n<\/details>\n\n_The report is longer than a comment allows \(200,0\d\d characters\); cut here\./);
    assert.equal(fitComment("short"), "short");
  });
});

describe("ftune report on a pull request (GitHub stand-in)", () => {
  let gh: GitHubStandIn;
  let storeUrl: string;
  let recs: Record<string, RunRecord>;
  before(async () => {
    gh = await startGitHubStandIn();
    storeUrl = `file://${join(work, "pr-store")}`;
    recs = await seedRuns(openStore(storeUrl));
  });
  after(() => gh.stop());

  const report = async (runId: string, extra: Record<string, string> = {}) => {
    const actions = await makeActionsEnv({ event: "pull_request.opened", repo: "acme/llm", apiUrl: gh.url, token: "ghs_test" });
    const r = await ftuneAsync(["report", runId, "--project", "llm-team", "--store", storeUrl, "--out", join(work, `out-${runId}`), "--json"], { cwd: work, env: { ...actions.env, ...extra } });
    return { ...r, actions };
  };

  it("creates the comment, then updates the same one; the job summary and the outputs hold the report", async () => {
    const first = await report(recs.run!.run_id);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(lastJson<{ comment: { action: string } }>(first.stdout).comment.action, "created");
    const comments = gh.comments("acme", "llm", 2);
    assert.equal(comments.length, 1);
    assert.ok(comments[0]!.body.startsWith(reportMarker("dolly-tiny")));
    assert.match(first.actions.readSummary(), /## ftune · `dolly-tiny`/);
    const outputs = first.actions.readOutputs();
    assert.equal(outputs["run-id"], recs.run!.run_id);
    assert.equal((JSON.parse(outputs.metrics!) as { best_eval_loss: number }).best_eval_loss, 0.9481);
    assert.match(outputs["comment-url"]!, /#issuecomment-\d+$/);

    const second = await report(recs.run!.run_id);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(lastJson<{ comment: { action: string } }>(second.stdout).comment.action, "updated");
    assert.equal(gh.comments("acme", "llm", 2).length, 1, "still one comment");
    await first.actions.cleanup();
    await second.actions.cleanup();
  });

  it("finds its comment on page 3 of 250, and never edits a human's comment that quotes the marker", async () => {
    const issue = 3;
    const marker = reportMarker("dolly-tiny");
    gh.seedComments("acme", "llm", issue, 220, { body: (i) => (i === 5 ? `quoting ${marker} here` : `review comment ${i}`) });
    const [ours] = gh.seedComments("acme", "llm", issue, 1, { login: "github-actions[bot]", type: "Bot", body: () => `${marker}\nold report` });
    gh.seedComments("acme", "llm", issue, 29);
    const before = gh.requests.length;
    const r = await report(recs.run!.run_id, {});
    // The event's PR is #2; this test reports on #3 explicitly.
    assert.equal(r.code, 0, r.stderr);
    const r3 = await ftuneAsync(["report", recs.run!.run_id, "--project", "llm-team", "--store", storeUrl, "--pr", String(issue), "--json"], { cwd: work, env: { ...r.actions.env } });
    assert.equal(r3.code, 0, r3.stderr);
    assert.equal(lastJson<{ comment: { action: string } }>(r3.stdout).comment.action, "updated");
    const list = gh.comments("acme", "llm", issue);
    assert.equal(list.length, 250, "nothing created");
    assert.equal(list.find((c) => c.id === ours!.id)!.body.includes("old report"), false, "our comment was updated");
    assert.equal(list[5]!.body, `quoting ${marker} here`, "the human's comment is untouched");
    const pages = gh.requests.slice(before).filter((q) => q.method === "GET" && q.path.includes(`/issues/${issue}/comments`)).map((q) => q.query.page ?? "1");
    assert.deepEqual(pages, ["1", "2", "3"], "read until found: 100 per page");
    await r.actions.cleanup();
  });

  it("a 403 (a fork's read-only token) warns and still writes the summary", async () => {
    gh.failNext("listComments", { status: 403 });
    const r = await report(recs.run!.run_id);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(lastJson<{ comment: { action: string } }>(r.stdout).comment.action, "forbidden");
    assert.match(r.stdout + r.stderr, /::warning::could not comment on pull request #2 \(403/);
    assert.match(r.actions.readSummary(), /## ftune · `dolly-tiny`/);
    await r.actions.cleanup();
  });

  it("two configs in one pull request get one comment each", async () => {
    const store = openStore(storeUrl);
    const rs = new RunStore(store);
    const other = { ...recs.run!, run_id: "20261129T093000Z-99998888", config_name: "dolly-tiny-r32" };
    await rs.writeRecord(other);
    await rs.writeFile(other.project, other.namespace, other.run_id, "trainer_state.json", readFileSync(join(FIX, "run.trainer_state.json")));
    const issue = 9;
    for (const id of [recs.run!.run_id, other.run_id, recs.run!.run_id]) {
      const actions = await makeActionsEnv({ event: "pull_request.opened", repo: "acme/llm", apiUrl: gh.url, token: "ghs_test" });
      const r = await ftuneAsync(["report", id, "--project", "llm-team", "--store", storeUrl, "--pr", String(issue)], { cwd: work, env: actions.env });
      assert.equal(r.code, 0, r.stderr);
      await actions.cleanup();
    }
    const list = gh.comments("acme", "llm", issue);
    assert.deepEqual(list.map((c) => c.body.split("\n")[0]).sort(), [reportMarker("dolly-tiny"), reportMarker("dolly-tiny-r32")].sort());
  });

  it("a report cut to fit is accepted by GitHub (the stand-in answers 422 over 65,536 characters)", async () => {
    const huge = `${reportMarker("huge")}\n${"| a | b |\n".repeat(25_000)}`;
    assert.ok(huge.length > 200_000);
    const res = await upsertComment({ token: "ghs_test", repo: "acme/llm", issue: 11, marker: reportMarker("huge"), body: fitComment(huge), apiUrl: gh.url });
    assert.equal(res.action, "created");
    await assert.rejects(upsertComment({ token: "ghs_test", repo: "acme/llm", issue: 12, marker: reportMarker("huge"), body: huge, apiUrl: gh.url }), (e: unknown) => (e as { status?: number }).status === 422, "the uncut body is refused: the test can fail");
  });
});
