// `ftune train --dry-run` on compute.provider local: dataprep, the dry-run trainer run detached, progress, every
// checkpoint synced to the run store, the final adapter and run.json; and a failing trainer recorded as failed.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { mirrorModel } from "../src/models/index.js";
import { openStore, RunStore } from "../src/store/index.js";
import { REPO, ftuneAsync } from "./helpers/cli.js";

const work = mkdtempSync(join(tmpdir(), "ftune-train-test-"));
const storeUrl = `file://${join(work, "store")}`;
const env = { FTUNE_CACHE_DIR: join(work, "cache"), HF_ENDPOINT: "http://127.0.0.1:9", FTUNE_DRYRUN_STEP_SECONDS: "0.01", FTUNE_POLL_MS: "200" };

before(async () => {
  const model = join(work, "model");
  mkdirSync(model);
  copyFileSync(resolve(REPO, "..", "shared", "data", "tokenizer-tinyllama-1.1b-chat.json"), join(model, "tokenizer.json"));
  writeFileSync(join(model, "config.json"), "{}");
  await mirrorModel(openStore(storeUrl), { model: "TinyLlama/TinyLlama-1.1B-Chat-v1.0", from: model, progress: { quiet: true } });
});
after(() => rmSync(work, { recursive: true, force: true }));

describe("ftune train", () => {
  it("--dry-run prepares the data, trains, syncs every checkpoint and records the run", async () => {
    const out = join(work, "artifacts");
    const r = await ftuneAsync(["train", join(REPO, "configs", "examples", "dry-run.yaml"), "--dry-run", "--store", storeUrl, "--out", out, "--json"], { cwd: work, env });
    assert.equal(r.code, 0, r.stderr);
    const rec = JSON.parse(r.stdout) as { run_id: string; status: string; dry_run: boolean; phases: Record<string, number>; metrics: { steps: number; best_eval_loss: number; final_train_loss: number }; dataset_uri: string };
    assert.equal(rec.status, "succeeded");
    assert.equal(rec.dry_run, true);
    assert.deepEqual(Object.keys(rec.phases).sort(), ["dataprep", "staging", "training", "upload"], "a dry run needs no base model");
    assert.equal(rec.metrics.steps, 20);
    assert.ok(rec.metrics.best_eval_loss > 0 && rec.metrics.final_train_loss > 0);
    assert.match(r.stderr, /train: step 20\/20 \(100%\) loss [\d.]+ ETA \d+s \[dry run\]/);
    const runs = new RunStore(openStore(storeUrl));
    const stored = await runs.latestSuccessful("ftune-experiments", "local", "dry-run");
    assert.equal(stored?.run_id, rec.run_id);
    const base = join(work, "store", "runs", "ftune-experiments", "local", rec.run_id);
    for (const f of ["checkpoints/checkpoint-10/trainer_state.json", "checkpoints/checkpoint-10/_ftune_checkpoint.json", "checkpoints/checkpoint-20/adapter_model.safetensors", "adapter/adapter_config.json", "adapter/adapter_model.safetensors", "trainer_state.json", "logs/train.log", "config.resolved.yaml", "run.json"]) {
      assert.ok(existsSync(join(base, f)), f);
    }
    // The artifact folder holds the same outputs for the action's upload.
    for (const f of ["adapter/adapter_config.json", "adapter/adapter_model.safetensors", "trainer_state.json", "logs/train.log", "config.resolved.yaml", "run.json"]) {
      assert.ok(existsSync(join(out, f)), `artifact ${f}`);
    }
    const local = JSON.parse(readFileSync(join(out, "run.json"), "utf8")) as { status: string; attempts: { provider: string; end_reason: string; checkpoints_synced: string[] }[] };
    assert.equal(local.status, "succeeded");
    assert.deepEqual(local.attempts.map((a) => [a.provider, a.end_reason]), [["local", "completed"]]);
    assert.deepEqual([...local.attempts[0]!.checkpoints_synced].sort(), ["checkpoint-10", "checkpoint-20"]);
  });

  it("a failing trainer is recorded as failed with its error, and the command exits 2", async () => {
    const cfg = join(work, "custom.yaml");
    const data = join(REPO, "configs", "examples", "data", "tiny-instructions.jsonl");
    writeFileSync(cfg, `extends: ${join(REPO, "configs", "examples", "dry-run.yaml")}\ndataset:\n  local_dataset_path: ${data}\ntrainer:\n  backend: custom\n  command: "echo starting; exit 7"\nproject:\n  name: failing\n`);
    const r = await ftuneAsync(["train", cfg, "--store", storeUrl], { cwd: work, env });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /the trainer exited with 7/);
    const runs = new RunStore(openStore(storeUrl));
    const [id] = await runs.listRuns("failing", "local");
    const rec = await runs.readRecord("failing", "local", id!);
    assert.equal(rec?.status, "failed");
    assert.match(String(rec?.error), /exited with 7/);
  });
});
