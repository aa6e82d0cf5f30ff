// The run store (records, namespaces, the baseline query) and the content-addressed dataset store, on both backends.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { datasetHash, newRunId, pullDataset, putDataset, readDatasetManifest, RunStore, type RunRecord } from "../src/store/index.js";
import { teardownAll } from "./support/processes.js";
import { fileBackend, s3Backend, type Backend } from "./helpers/stores.js";

const work = mkdtempSync(join(tmpdir(), "ftune-runs-test-"));
after(async () => {
  rmSync(work, { recursive: true, force: true });
  await teardownAll();
});

function record(runId: string, ns: string, config: string, status: RunRecord["status"]): RunRecord {
  return { run_id: runId, project: "proj", namespace: ns, config_name: config, config_hash: "h", status, started_at: new Date().toISOString() };
}

describe("run ids", () => {
  it("sort by start time and are unique", () => {
    const a = newRunId(new Date("2026-11-29T01:02:03.456Z"));
    assert.match(a, /^20261129T010203Z-[0-9a-f]{8}$/);
    const b = newRunId(new Date("2026-11-29T01:02:04Z"));
    assert.ok(a < b);
    assert.notEqual(newRunId(), newRunId());
  });
});

for (const make of [fileBackend, () => s3Backend("runs-test")]) {
  describe("run and dataset stores", () => {
    let b: Backend;
    before(async () => {
      b = await make();
    });
    after(async () => b?.stop());

    it("finds the latest successful run of a config in a namespace, newest first", async () => {
      const runs = new RunStore(b.store);
      const t = (s: number) => newRunId(new Date(Date.UTC(2026, 10, 29, 0, 0, s)));
      const ids = [t(1), t(2), t(3), t(4), t(5)];
      await runs.writeRecord(record(ids[0]!, "main", "llama", "succeeded"));
      await runs.writeRecord(record(ids[1]!, "main", "other", "succeeded"));
      await runs.writeRecord(record(ids[2]!, "main", "llama", "succeeded"));
      await runs.writeRecord(record(ids[3]!, "main", "llama", "failed"));
      await runs.writeRecord(record(ids[4]!, "pr-7", "llama", "succeeded"));
      assert.equal((await runs.latestSuccessful("proj", "main", "llama"))?.run_id, ids[2]);
      assert.equal((await runs.latestSuccessful("proj", "main", "other"))?.run_id, ids[1]);
      assert.equal(await runs.latestSuccessful("proj", "main", "nope"), null);
      assert.deepEqual(await runs.listRuns("proj", "main"), [ids[3], ids[2], ids[1], ids[0]]);
      assert.equal((await runs.findRun("proj", ids[4]!))?.namespace, "pr-7");
    });

    it("a branch namespace with '/' is one folder, listed back by its name", async () => {
      const runs = new RunStore(b.store);
      const id = newRunId();
      await runs.writeRecord(record(id, "feature/lr-sweep", "llama", "succeeded"));
      await runs.writeFile("proj", "feature/lr-sweep", id, "logs/train.log", "step 1\n");
      assert.ok((await runs.listNamespaces("proj")).includes("feature/lr-sweep"));
      assert.equal((await runs.readFile("proj", "feature/lr-sweep", id, "logs/train.log"))?.toString(), "step 1\n");
      assert.equal(runs.prefix("proj", "feature/lr-sweep", id), `runs/proj/feature~lr-sweep/${id}`);
      assert.throws(() => runs.prefix("proj", "main", "../x"), /run id/);
    });

    it("stores a prepared dataset once under its content address and gives it back verified", async () => {
      const dir = join(work, `${b.name}-ds`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, "train.jsonl"), '{"a":1}\n{"a":2}\n');
      writeFileSync(join(dir, "eval.jsonl"), '{"a":3}\n');
      const files = [join(dir, "train.jsonl"), join(dir, "eval.jsonl")];
      const first = await putDataset(b.store, files, { source: "test", counts: { train: 2, eval: 1 } }, { progress: { quiet: true } });
      assert.equal(first.existed, false);
      assert.equal(first.hash, datasetHash(first.manifest.files));
      assert.match(first.uri, new RegExp(`datasets/${first.hash}$`));
      const again = await putDataset(b.store, files, { source: "test" }, { progress: { quiet: true } });
      assert.equal(again.existed, true);
      assert.equal(again.hash, first.hash);
      assert.deepEqual((await readDatasetManifest(b.store, first.hash))?.counts, { train: 2, eval: 1 });
      writeFileSync(join(dir, "eval.jsonl"), '{"a":4}\n');
      const changed = await putDataset(b.store, files, {}, { progress: { quiet: true } });
      assert.notEqual(changed.hash, first.hash);
      const out = join(work, `${b.name}-ds-out`);
      await pullDataset(b.store, first.hash, out, { progress: { quiet: true } });
      assert.equal(readFileSync(join(out, "eval.jsonl"), "utf8"), '{"a":3}\n');
    });
  });
}
