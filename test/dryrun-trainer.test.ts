// The dry-run trainer (python3 stdlib) writes the HF Trainer layout from a labelled synthetic curve: checkpoints that
// are always complete, PEFT adapter files with a valid safetensors, trainer_state in log_history format; it resumes
// from the newest checkpoint and checkpoints at once when the trigger file appears.
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { loadConfig } from "../src/config/index.js";
import { REPO } from "./helpers/cli.js";

const TRAINER = join(REPO, "src", "train", "dryrun_trainer.py");
const work = mkdtempSync(join(tmpdir(), "ftune-dryrun-"));
after(() => rmSync(work, { recursive: true, force: true }));

function setup(name: string, sets: string[]): Record<string, string> {
  const cfg = loadConfig(join(REPO, "configs", "examples", "dry-run.yaml"), { sets }).config!;
  const dir = join(work, name);
  const cfgPath = join(work, `${name}.json`);
  writeFileSync(cfgPath, JSON.stringify(cfg));
  return { PATH: process.env.PATH!, FTUNE_CONFIG: cfgPath, FTUNE_OUTPUT_DIR: dir, FTUNE_DRYRUN_STEP_SECONDS: "0.005" };
}

interface LogEntry {
  step: number;
  loss?: number;
  eval_loss?: number;
  train_runtime?: number;
  learning_rate?: number;
}

/** Parses a safetensors file the way the format defines it and checks every tensor's byte range. */
function checkSafetensors(path: string): string[] {
  const b = readFileSync(path);
  const n = Number(b.readBigUInt64LE(0));
  const header = JSON.parse(b.subarray(8, 8 + n).toString()) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const names = Object.keys(header).filter((k) => k !== "__metadata__");
  let end = 0;
  for (const k of names) {
    const t = header[k]!;
    assert.equal(t.dtype, "F32");
    assert.equal(t.data_offsets[1] - t.data_offsets[0], 4 * t.shape.reduce((a, c) => a * c, 1), k);
    end = Math.max(end, t.data_offsets[1]);
  }
  assert.equal(b.length, 8 + n + end);
  return names;
}

describe("dry-run trainer", () => {
  it("writes complete checkpoints and the final adapter in the HF/PEFT layout, labelled as a dry run", () => {
    const env = setup("full", ["training.max_steps=20", "training.save_steps=10", "training.eval_steps=10", "training.logging_steps=1"]);
    const r = spawnSync("python3", [TRAINER], { env, encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /dry run: no model was trained/);
    assert.match(r.stdout, /^\{'loss': [\d.]+, 'grad_norm': [\d.]+, 'learning_rate': [\d.e-]+, 'epoch': [\d.]+\}$/m);
    const out = env.FTUNE_OUTPUT_DIR!;
    assert.deepEqual(readdirSync(out).sort(), ["adapter_config.json", "adapter_model.safetensors", "checkpoint-10", "checkpoint-20", "trainer_state.json"]);
    for (const d of ["checkpoint-10", "checkpoint-20", "."]) {
      const state = JSON.parse(readFileSync(join(out, d, "trainer_state.json"), "utf8")) as { ftune_dry_run: boolean; global_step: number; log_history: LogEntry[] };
      assert.equal(state.ftune_dry_run, true);
      const adapter = JSON.parse(readFileSync(join(out, d, "adapter_config.json"), "utf8")) as { peft_type: string; r: number; lora_alpha: number; target_modules: string[]; base_model_name_or_path: string };
      assert.deepEqual([adapter.peft_type, adapter.r, adapter.lora_alpha, adapter.target_modules, adapter.base_model_name_or_path], ["LORA", 16, 32, ["q_proj", "v_proj"], "TinyLlama/TinyLlama-1.1B-Chat-v1.0"]);
      const tensors = checkSafetensors(join(out, d, "adapter_model.safetensors"));
      assert.ok(tensors.includes("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"));
    }
    const final = JSON.parse(readFileSync(join(out, "trainer_state.json"), "utf8")) as { global_step: number; log_history: LogEntry[] };
    assert.equal(final.global_step, 20);
    const train = final.log_history.filter((e) => e.loss !== undefined);
    assert.deepEqual(train.map((e) => e.step), Array.from({ length: 20 }, (_, i) => i + 1));
    assert.ok(train[0]!.loss! > train[19]!.loss!, "the synthetic loss goes down");
    assert.deepEqual(final.log_history.filter((e) => e.eval_loss !== undefined).map((e) => e.step), [10, 20]);
    assert.ok(final.log_history.at(-1)!.train_runtime! >= 0);
  });

  it("resumes from the newest complete checkpoint after being killed, without repeating logged steps", async () => {
    const env = setup("resume", ["training.max_steps=30", "training.save_steps=5", "training.eval_steps=10", "training.logging_steps=1"]);
    env.FTUNE_DRYRUN_STEP_SECONDS = "0.05";
    const child = spawn("python3", [TRAINER], { env, stdio: "ignore" });
    const out = env.FTUNE_OUTPUT_DIR!;
    for (let i = 0; i < 200 && !existsSync(join(out, "checkpoint-10")); i++) await sleep(20);
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    assert.ok(existsSync(join(out, "checkpoint-10")));
    const r = spawnSync("python3", [TRAINER], { env: { ...env, FTUNE_DRYRUN_STEP_SECONDS: "0.005" }, encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Resuming training from checkpoint .*checkpoint-(\d+) \(step \d+ of 30\)/);
    const final = JSON.parse(readFileSync(join(out, "trainer_state.json"), "utf8")) as { global_step: number; log_history: LogEntry[] };
    assert.equal(final.global_step, 30);
    const steps = final.log_history.filter((e) => e.loss !== undefined).map((e) => e.step);
    assert.deepEqual(steps, Array.from({ length: 30 }, (_, i) => i + 1));
    assert.ok(!readdirSync(out).some((n) => n.endsWith(".tmp")), "no half-written checkpoint left");
  });

  it("checkpoints at once when the trigger file appears, and removes it", () => {
    const env = setup("trigger", ["training.max_steps=6", "training.save_steps=100", "training.eval_steps=100"]);
    const trigger = join(work, "checkpoint-now");
    writeFileSync(trigger, "");
    const r = spawnSync("python3", [TRAINER], { env: { ...env, FTUNE_CHECKPOINT_TRIGGER: trigger }, encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Saving model checkpoint to .*checkpoint-1 \(requested\)/);
    assert.ok(existsSync(join(env.FTUNE_OUTPUT_DIR!, "checkpoint-1", "adapter_model.safetensors")));
    assert.equal(existsSync(trigger), false);
  });
});
