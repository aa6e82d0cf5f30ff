// The axolotl config ftune renders from a resolved config (the seed experiment and the dry-run example).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { parse } from "yaml";
import { loadConfig } from "../src/config/index.js";
import { axolotlConfig, renderAxolotlYaml } from "../src/train/axolotl.js";
import { UserError } from "../src/util/errors.js";
import { REPO } from "./helpers/cli.js";

const paths = { modelDir: "/opt/ftune/model", dataDir: "/opt/ftune/data", outputDir: "/opt/ftune/out" };
const seed = (sets: string[] = []) => loadConfig(join(REPO, "configs", "llama2-7b-dolly.yaml"), { sets }).config!;

describe("axolotl config", () => {
  it("renders the seed experiment as an int8 LoRA on pre-split input_output data", () => {
    const a = parse(renderAxolotlYaml(seed(), paths, 1)) as Record<string, unknown>;
    assert.equal(a.base_model, "/opt/ftune/model");
    assert.deepEqual([a.load_in_8bit, a.load_in_4bit, a.adapter], [true, false, "lora"]);
    assert.deepEqual([a.lora_r, a.lora_alpha, a.lora_dropout, a.lora_target_modules], [16, 32, 0.05, ["q_proj", "v_proj"]]);
    assert.equal(a.sequence_len, 258);
    assert.deepEqual(a.datasets, [{ path: "/opt/ftune/data/train.jsonl", ds_type: "json", type: "input_output" }]);
    assert.equal((a.test_datasets as { path: string }[])[0]!.path, "/opt/ftune/data/eval.jsonl");
    assert.equal(a.val_set_size, 0);
    assert.deepEqual([a.micro_batch_size, a.gradient_accumulation_steps, a.learning_rate, a.num_epochs], [4, 32, 0.0003, 1]);
    assert.deepEqual([a.auto_resume_from_checkpoints, a.dynamic_checkpoint], [true, { enabled: true, check_interval: 1 }]);
    assert.equal(a.output_dir, "/opt/ftune/out");
  });

  it("nf4 is QLoRA; GPUs divide the accumulation; all-linear targets every linear layer", () => {
    const a = axolotlConfig(seed(["model.quantization=nf4", "lora.target_modules=all-linear"]), paths, 4);
    assert.deepEqual([a.load_in_4bit, a.adapter, a.lora_target_linear, a.lora_target_modules], [true, "qlora", true, undefined]);
    assert.equal(a.gradient_accumulation_steps, 8);
    assert.throws(() => axolotlConfig(seed(), paths, 3), /not a multiple of micro_batch_size x GPUs \(4 x 3\)/);
  });

  it("passes trainer.extra through, but never over a key ftune sets", () => {
    const ok = axolotlConfig(seed(["trainer.extra={sample_packing: true, flash_attention: true}"]), paths, 1);
    assert.deepEqual([ok.sample_packing, ok.flash_attention], [true, true]);
    assert.throws(() => axolotlConfig(seed(["trainer.extra={learning_rate: 0.1}"]), paths, 1), (e: unknown) => e instanceof UserError && /trainer\.extra\.learning_rate: ftune sets learning_rate itself/.test((e as Error).message));
  });

  it("W&B settings appear only when wandb is set", () => {
    assert.equal(axolotlConfig(seed(), paths, 1).wandb_project, undefined);
    const w = axolotlConfig(seed(["wandb={project: llm, log_model: true}"]), paths, 1);
    assert.deepEqual([w.wandb_project, w.wandb_log_model], ["llm", "end"]);
  });
});
