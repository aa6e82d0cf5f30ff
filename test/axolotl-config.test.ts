// The axolotl config ftune renders from a resolved config (the seed experiment and the dry-run example), the keys it
// may use (src/train/axolotl-keys.json, extracted from axolotl's pydantic schema at a pinned commit), and how the
// axolotl backend is launched on a host.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { parse } from "yaml";
import { expandConfigPaths, loadConfig } from "../src/config/index.js";
import { axolotlConfig, renderAxolotlYaml } from "../src/train/axolotl.js";
import axolotlKeys from "../src/train/axolotl-keys.json" with { type: "json" };
import { AXOLOTL_IMAGE, boxJobScript, hostPaths, trainerLaunch } from "../src/train/launch.js";
import { ftune } from "./helpers/cli.js";
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
    assert.deepEqual([a.auto_resume_from_checkpoints, a.dynamic_checkpoint], [true, { enabled: true, check_interval: 1, trigger_file_path: "axolotl_checkpoint.save" }]);
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

  it("renders the seed experiment exactly as the golden file (UPDATE_GOLDEN=1 rewrites it)", () => {
    const golden = join(REPO, "test", "golden", "axolotl-llama2-7b-dolly.yaml");
    const p = hostPaths("/opt/ftune/RUN/attempt-1");
    const text = renderAxolotlYaml(seed(), { modelDir: p.model, dataDir: p.data, outputDir: p.output }, 1);
    if (process.env.UPDATE_GOLDEN === "1") writeFileSync(golden, text);
    assert.equal(text, readFileSync(golden, "utf8"));
  });

  it("every config in configs/ renders with known axolotl keys only", () => {
    const known = new Set(axolotlKeys.keys);
    assert.match(axolotlKeys.commit, /^[0-9a-f]{40}$/, "the key list names its source commit");
    assert.ok(known.size > 300, "the full key list, not a sample");
    const files = expandConfigPaths(["configs"], REPO);
    assert.ok(files.length >= 3);
    for (const f of files) {
      const cfg = loadConfig(f).config;
      if (!cfg?.model) continue; // a base file alone is not an experiment
      const a = axolotlConfig(cfg, paths, 1);
      const unknown = Object.keys(a).filter((k) => !known.has(k));
      assert.deepEqual(unknown, [], `${relative(REPO, f)} renders keys axolotl does not know`);
      assert.deepEqual(Object.keys(a.dynamic_checkpoint as object).sort(), ["check_interval", "enabled", "trigger_file_path"]);
    }
    // The test can fail: a key axolotl does not have is caught.
    assert.equal(known.has("lora_rank"), false);
  });

  it("validate rejects a trainer.extra key axolotl would silently ignore, at its line, with the likely key", () => {
    const cfg = join(REPO, "configs", "llama2-7b-dolly.yaml");
    const r = ftune(["validate", cfg, "--set", "trainer.extra={sample_packin: true, flash_attention: true}"]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /trainer\.extra\.sample_packin: "sample_packin" is not an axolotl config key .*did you mean sample_packing\?/);
    assert.match(r.stdout + r.stderr, /1 error, 0 warnings/, "flash_attention is a real axolotl key");
  });

  it("launches the pinned image by digest with every GPU, telemetry off, one torchrun process per GPU", () => {
    const p = hostPaths("/opt/ftune/RUN/attempt-1");
    const l = trainerLaunch(seed(), "axolotl", p, { gpus: 4, runId: "RUN", hasEval: true });
    assert.match(AXOLOTL_IMAGE, /@sha256:[0-9a-f]{64}$/);
    assert.match(l.command, new RegExp(`docker run --rm --name ftune-RUN --gpus all .*-e AXOLOTL_DO_NOT_TRACK=1 .*${AXOLOTL_IMAGE.replace(/[.]/g, "\\.")} axolotl train /opt/ftune/RUN/attempt-1/axolotl.yaml --launcher torchrun -- --nproc_per_node=4`));
    assert.equal(l.trigger, "/opt/ftune/RUN/attempt-1/output/axolotl_checkpoint.save");
    assert.equal((parse(l.files["axolotl.yaml"]!) as { gradient_accumulation_steps: number }).gradient_accumulation_steps, 8);
    const script = boxJobScript(p, l, { fetch: true, spotPollSeconds: 5, watchSpot: true });
    assert.doesNotMatch(boxJobScript(p, l, { fetch: true, spotPollSeconds: 5, watchSpot: false }), /watch-spot/, "no IMDS to poll off spot");
    assert.match(script, /watch-spot .* --trigger \/opt\/ftune\/RUN\/attempt-1\/output\/axolotl_checkpoint\.save --output \/opt\/ftune\/RUN\/attempt-1\/output --stop-after-checkpoint --interval 5 &/);
    assert.ok(script.indexOf("fetch --manifest inputs.json") < script.indexOf("docker run"), "inputs before the trainer");
    const own = trainerLaunch(seed(["trainer.image=ghcr.io/me/axolotl@sha256:" + "a".repeat(64)]), "axolotl", p, { gpus: 1, runId: "RUN", hasEval: true });
    assert.match(own.command, /ghcr\.io\/me\/axolotl@sha256:a{64} axolotl train/);
  });

  it("multi-node: torchrun's static rendezvous on node 0 (node 0 is rank 0), the host network, accumulation over every GPU of every node", () => {
    const p = hostPaths("/opt/ftune/RUN/attempt-1");
    const cfg = seed(["compute.nodes=2"]);
    const rank1 = trainerLaunch(cfg, "axolotl", p, { gpus: 4, runId: "RUN", hasEval: true, node: { rank: 1, count: 2, masterAddr: "10.0.1.5" } });
    assert.match(rank1.command, /--network=host /);
    assert.match(rank1.command, /--launcher torchrun -- --nnodes=2 --node_rank=1 --nproc_per_node=4 --master_addr=10\.0\.1\.5 --master_port=29400$/m);
    assert.equal((parse(rank1.files["axolotl.yaml"]!) as { gradient_accumulation_steps: number }).gradient_accumulation_steps, 4, "128 / (4 micro x 4 GPUs x 2 nodes)");
    assert.deepEqual([rank1.env.FTUNE_NODE_RANK, rank1.env.FTUNE_NUM_NODES, rank1.env.FTUNE_MASTER_ADDR, rank1.env.FTUNE_MASTER_PORT], ["1", "2", "10.0.1.5", "29400"]);
    // Several machines exist only on ec2, where they are launched together.
    const v = ftune(["validate", join(REPO, "configs", "llama2-7b-dolly.yaml"), "--set", "compute.nodes=2", "--set", "compute.provider=ssh", "--set", "compute.ssh={host: box, user: me, private_key_env: KEY, host_key: null}"]);
    assert.equal(v.code, 1, v.stdout + v.stderr);
    assert.match(v.stderr, /compute\.nodes: 2 machines need compute\.provider ec2/);
    assert.equal(ftune(["validate", join(REPO, "configs", "llama2-7b-dolly.yaml"), "--set", "compute.nodes=2"]).code, 0);
  });
});
