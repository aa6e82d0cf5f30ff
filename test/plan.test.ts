// `ftune plan`: the key-level diff against a git ref (extends resolved at that ref), instance choice and cost.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { makePlan, isPlan, type Plan } from "../src/plan/index.js";
import { paramsFromName } from "../src/plan/estimate.js";
import { ftune } from "./helpers/cli.js";
import { makeTree } from "./helpers/tree.js";

const tree = makeTree();
const git = (...args: string[]): string =>
  execFileSync("git", ["-c", "user.email=t@example.com", "-c", "user.name=t", "-c", "commit.gpgsign=false", ...args], { cwd: tree.dir, encoding: "utf8" });

const BASE = `compute:\n  provider: ec2\n  instance_types: [g5.xlarge, g4dn.xlarge, x9.huge]\n  ttl_minutes: 120\ntraining:\n  learning_rate: 0.0003\n`;
const EXP = `extends: base.yaml\nmodel:\n  base_model: meta-llama/Llama-2-7b-hf\n  quantization: int8\ndataset:\n  huggingface_dataset_path: databricks/databricks-dolly-15k\n  fields: dolly\n`;

function plan(path: string, base?: string, sets?: string[]): Plan {
  const p = makePlan(path, { base, cwd: tree.dir, sets });
  assert.ok(isPlan(p), isPlan(p) ? "" : JSON.stringify(p.diagnostics));
  return p;
}

before(() => {
  tree.write("configs/base.yaml", BASE);
  tree.write("configs/exp.yaml", EXP);
  git("init", "-q", "-b", "main");
  git("add", ".");
  git("commit", "-qm", "base");
  git("branch", "base-ref");
  // The PR: a change in the shared base and one in the experiment itself, and a brand-new config.
  tree.write("configs/base.yaml", BASE.replace("0.0003", "0.0001"));
  tree.write("configs/exp.yaml", `${EXP}lora:\n  rank: 32\n  target_modules: [q_proj, k_proj, v_proj]\n`);
  tree.write("configs/new.yaml", EXP);
});
after(() => tree.remove());

describe("plan", () => {
  it("diffs only the changed keys, including changes that come through extends", () => {
    const p = plan("configs/exp.yaml", "base-ref");
    assert.equal(p.base?.status, "changed");
    assert.deepEqual(p.changes, [
      { key: "lora.rank", old: 16, new: 32 },
      { key: "lora.target_modules", old: ["q_proj", "v_proj"], new: ["q_proj", "k_proj", "v_proj"] },
      { key: "training.learning_rate", old: 0.0003, new: 0.0001 },
    ]);
  });

  it("a config new at the base ref diffs against nothing", () => {
    const p = plan("configs/new.yaml", "base-ref");
    assert.equal(p.base?.status, "new");
    assert.ok(p.changes.length > 50);
    assert.ok(p.changes.every((c) => !("old" in c)));
  });

  it("an unchanged config says so", () => {
    const p = plan("configs/exp.yaml", "HEAD", ["training.learning_rate=0.0003", "lora.rank=16", "lora.target_modules=q_proj,v_proj"]);
    assert.equal(p.base?.status, "unchanged");
    assert.deepEqual(p.changes, []);
  });

  it("lists the instance types in order with GPU memory, price and fit, and bounds the cost by the TTL", () => {
    const p = plan("configs/exp.yaml");
    assert.deepEqual(p.instances.map((i) => [i.type, i.known, i.gpu_memory_gib, i.on_demand_per_hour, i.fits]), [
      ["g5.xlarge", true, 24, 1.006, true],
      ["g4dn.xlarge", true, 16, 0.526, true],
      ["x9.huge", false, undefined, undefined, undefined],
    ]);
    assert.equal(p.cost.first_choice_per_hour, 1.006);
    // the dearest known candidate, on-demand, for the whole TTL (2 h)
    assert.equal(p.cost.ttl_cap, 2.01);
    assert.ok(p.gpu_memory_estimate_gib! > 7 && p.gpu_memory_estimate_gib! < 12, String(p.gpu_memory_estimate_gib));
    const big = plan("configs/exp.yaml", undefined, ["model.base_model=meta-llama/Llama-2-70b-hf", "model.quantization=none"]);
    assert.equal(big.instances[0]!.fits, false);
    const capped = plan("configs/exp.yaml", undefined, ["compute.max_price=0.5"]);
    assert.equal(capped.cost.ttl_cap, 1);
    const local = plan("configs/exp.yaml", undefined, ["compute.provider=local"]);
    assert.deepEqual(local.instances, []);
    assert.equal(local.cost.market, "none");
  });

  it("reads the parameter count from model names", () => {
    assert.equal(paramsFromName("meta-llama/Llama-2-7b-hf"), 7e9);
    assert.equal(paramsFromName("TinyLlama/TinyLlama-1.1B-Chat-v1.0"), 1.1e9);
    assert.equal(paramsFromName("EleutherAI/pythia-70m-deduped"), 70e6);
    assert.equal(paramsFromName("mistralai/Mistral-7B-v0.1"), 7e9);
    assert.equal(paramsFromName("gpt2"), undefined);
  });

  it("the CLI prints the diff and exits 1 for an unknown ref", () => {
    const r = ftune(["plan", "configs/exp.yaml", "--base", "base-ref", "--no-config"], { cwd: tree.dir });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /changes vs base-ref \([0-9a-f]{12}\): 3 keys/);
    assert.match(r.stdout, /^ {2}~ training\.learning_rate: 0\.0003 -> 0\.0001$/m);
    assert.match(r.stdout, /^ {2}g5\.xlarge +1x NVIDIA A10G 24 GiB {2}on-demand \$1\.006\/h {2}fits$/m);
    assert.match(r.stdout, /at most \$2\.01 if it ran until the TTL/);
    const json = JSON.parse(ftune(["plan", "configs/exp.yaml", "--base", "base-ref", "--json"], { cwd: tree.dir }).stdout) as { changes: unknown[]; price_table: { retrieved: string } };
    assert.equal(json.changes.length, 3);
    assert.match(json.price_table.retrieved, /^\d{4}-\d{2}-\d{2}$/);
    const bad = ftune(["plan", "configs/exp.yaml", "--base", "no-such-ref"], { cwd: tree.dir });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--base no-such-ref: no such git ref/);
  });

  it("in a pull request the base defaults to origin/$GITHUB_BASE_REF", () => {
    git("update-ref", "refs/remotes/origin/main", "base-ref");
    const r = ftune(["plan", "configs/exp.yaml", "--json"], { cwd: tree.dir, env: { GITHUB_BASE_REF: "main" } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { base: { ref: string } }).base.ref, "origin/main");
  });
});
