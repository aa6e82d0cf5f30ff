// The ftune binary: help for every command, the exit codes of DESIGN.md, and what the shipped configs give.
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ftune } from "./helpers/cli.js";
import { makeTree, MINIMAL } from "./helpers/tree.js";

const tree = makeTree();
after(() => tree.remove());

describe("ftune CLI", () => {
  it("has --help for every command", () => {
    for (const args of [["--help"], ["validate", "--help"], ["config", "--help"], ["config", "show", "--help"], ["plan", "--help"]]) {
      const r = ftune(args);
      assert.equal(r.code, 0, args.join(" "));
      assert.match(r.stdout, /^Usage: ftune/m, args.join(" "));
    }
    assert.match(ftune(["--help"]).stdout, /Exit codes: 0 ok, 1 user error .* 2 infrastructure error/);
  });

  it("an unknown command or flag is a user error (exit 1)", () => {
    assert.equal(ftune(["frobnicate"]).code, 1);
    assert.equal(ftune(["validate", "--nope"]).code, 1);
  });

  it("validates the shipped configs (exit 0), the base as a base", () => {
    const r = ftune(["validate", "configs/"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^ok +configs\/base\.yaml \(base of configs\/examples\/dry-run\.yaml, configs\/llama2-7b-dolly\.yaml\)$/m);
    assert.match(r.stdout, /^ok +configs\/llama2-7b-dolly\.yaml sha256:[0-9a-f]{64}$/m);
    assert.match(r.stdout, /3 configs: 3 valid, 0 invalid; 0 errors, 0 warnings/);
    assert.equal(r.stderr, "");
  });

  it("config show --json prints the hash and the resolved seed experiment", () => {
    const r = ftune(["config", "show", "configs/llama2-7b-dolly.yaml", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { hash: string; config: Record<string, Record<string, unknown>> };
    assert.match(out.hash, /^[0-9a-f]{64}$/);
    const c = out.config;
    assert.equal(c.model!.base_model, "meta-llama/Llama-2-7b-hf");
    assert.equal(c.model!.quantization, "int8");
    assert.equal(c.dataset!.huggingface_dataset_path, "databricks/databricks-dolly-15k");
    assert.equal((c.dataset!.tokenization as Record<string, unknown>).cutoff_len, 258);
    assert.deepEqual(c.lora, { alpha: 32, bias: "none", dropout: 0.05, rank: 16, target_modules: ["q_proj", "v_proj"], task_type: "CAUSAL_LM" });
    assert.equal(c.training!.learning_rate, 0.0003);
    assert.equal(c.training!.num_epochs, 1);
    assert.equal(c.dataset!.val_set_size, 200);
    // keys are sorted
    assert.deepEqual(Object.keys(c), [...Object.keys(c)].sort());
    // the text form carries the same hash
    assert.match(ftune(["config", "show", "configs/llama2-7b-dolly.yaml"]).stdout, new RegExp(`^# sha256:${out.hash}$`, "m"));
    // --set changes the hash and the value
    const changed = JSON.parse(ftune(["config", "show", "configs/llama2-7b-dolly.yaml", "--json", "--set", "training.learning_rate=1e-4"]).stdout) as typeof out;
    assert.notEqual(changed.hash, out.hash);
    assert.equal(changed.config.training!.learning_rate, 0.0001);
  });

  it("a bad config exits 1 with located messages and no stack trace", () => {
    const p = tree.write("bad/x.yaml", `${MINIMAL}training:\n  lerning_rate: 1\nlora:\n  rank: -1\n`);
    const r = ftune(["validate", p], { cwd: tree.dir });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^bad\/x\.yaml:6:3: training\.lerning_rate: unknown key `lerning_rate`; did you mean `learning_rate`\?$/m);
    assert.match(r.stderr, /^bad\/x\.yaml:8:9: lora\.rank: must be >= 1/m);
    assert.doesNotMatch(r.stderr + r.stdout, /\n\s+at /);
    assert.match(r.stdout, /^invalid bad\/x\.yaml/m);
    const json = JSON.parse(ftune(["validate", p, "--json"], { cwd: tree.dir }).stdout) as { ok: boolean; errors: number; diagnostics: { line: number; key: string }[] };
    assert.equal(json.ok, false);
    assert.equal(json.errors, 2);
    assert.deepEqual(json.diagnostics.map((d) => [d.key, d.line]), [["training.lerning_rate", 6], ["lora.rank", 8]]);
  });

  it("a missing file is a user error naming it", () => {
    const r = ftune(["config", "show", "nope.yaml"], { cwd: tree.dir });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^nope\.yaml: file not found$/m);
  });

  it("in GitHub Actions each error is also an annotation with file, line and column", () => {
    const p = tree.write("ann/x.yaml", `${MINIMAL}training:\n  lerning_rate: 1\n`);
    const outFile = join(tree.dir, "gh-output");
    writeFileSync(outFile, "");
    const r = ftune(["validate", p], { cwd: tree.dir, env: { GITHUB_ACTIONS: "true", GITHUB_WORKSPACE: tree.dir, GITHUB_OUTPUT: outFile } });
    assert.equal(r.code, 1);
    assert.match(r.stdout, /^::error title=ftune%3A training\.lerning_rate,file=ann\/x\.yaml,line=6,col=3::ann\/x\.yaml:6:3: training\.lerning_rate: unknown key/m);
  });

  it("a single valid config in Actions sets the config-hash output", () => {
    const outFile = join(tree.dir, "gh-output-ok");
    writeFileSync(outFile, "");
    const r = ftune(["validate", "configs/examples/dry-run.yaml"], { env: { GITHUB_ACTIONS: "true", GITHUB_OUTPUT: outFile } });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const hash = ftune(["config", "show", "configs/examples/dry-run.yaml", "--json"]).stdout;
    assert.match(readFileSync(outFile, "utf8"), new RegExp(`config-hash<<.*\\n${(JSON.parse(hash) as { hash: string }).hash}\\n`));
  });

  it("an infrastructure failure exits 2 (git missing for plan --base)", () => {
    const empty = mkdtempSync(join(tmpdir(), "ftune-nopath-"));
    try {
      const r = ftune(["plan", "configs/llama2-7b-dolly.yaml", "--base", "HEAD"], { env: { PATH: empty } });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /^ftune: git is not installed or not on PATH/m);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
