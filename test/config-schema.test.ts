// The schema file is complete (type, default, description on every field; no unknown keys anywhere), matches the
// FtuneConfig type, is referenced by every shipped config for editors, and the README's reference is generated from it.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { SCHEMA, typesOf, type JsonSchema } from "../src/config/schema.js";
import type { FtuneConfig } from "../src/config/index.js";
import { validatePaths } from "../src/config/index.js";
import { renderConfigReference, START, END } from "../scripts/config-reference.js";
import { REPO } from "./helpers/cli.js";
import { makeTree, MINIMAL } from "./helpers/tree.js";

// Every key of FtuneConfig, written out: tsc (npm run lint) rejects a missing or extra key here, and the test
// below compares this tree with the schema's, so the type and the schema cannot drift apart.
const EVERY_KEY = {
  project: { name: null, namespace: null },
  dataset: {
    huggingface_dataset_path: null, local_dataset_path: null, store_dataset_uri: null, revision: "", split: "", format: "auto",
    fields: "alpaca", num_samples: null, val_set_size: null, split_seed: 0, on_bad_rows: "skip", max_bad_fraction: 0, tokenizer: null,
    prompt_template: { description: "", prompt_input: "", prompt_no_input: "", response_split: "" },
    tokenization: { cutoff_len: 0, add_eos_token: true, train_on_inputs: true, overflow: "truncate" },
  },
  model: { base_model: "", revision: "", allow_patterns: null, ignore_patterns: [], quantization: "nf4", hf_token_env: null, trust_remote_code: false, resuming_checkpoint_path: null, model_save_directory: null },
  training: {
    num_epochs: 1, max_steps: null, micro_batch_size: 1, macro_batch_size: 1, learning_rate: 1, lr_scheduler: "", warmup_steps: 0,
    weight_decay: 0, max_grad_norm: 1, optimizer: "", eval_steps: 1, save_steps: null, logging_steps: 1, bf16: "auto", fp16: null,
    gradient_checkpointing: true, group_by_length: false, seed: 0, cutoff_len: null, visible_devices: null, master_port: 1,
  },
  lora: { rank: 1, alpha: 1, dropout: 0, target_modules: [], bias: "none", task_type: "CAUSAL_LM" },
  wandb: { project: "", entity: null, run_name: null, api_key_env: "", log_model: false },
  compute: {
    provider: "local", region: null, instance_types: [], availability_zones: [], subnets: [], spot: true, on_demand_fallback: false,
    max_price: null, nodes: 1, gpus_per_node: null, ttl_minutes: 1, max_attempts: 1, ami: null, ami_user: "", volume_gb: null, ssh_port: 22, ssh_cidr: null, workdir: "",
    ssh: { host: "", port: 22, user: "", private_key_env: "", host_key: null },
  },
  storage: { url: "", region: null, endpoint: null, force_path_style: false, checksums: null, concurrency: 1, part_size_mb: 5 },
  trainer: { backend: "axolotl", image: null, command: null, extra: {} },
  report: { baseline: "main", metrics: [], comment: "update" },
  events: { notify: [], subscribe: [] },
} satisfies FtuneConfig;

function keyTree(v: unknown): unknown {
  if (typeof v !== "object" || v === null || Array.isArray(v) || Object.keys(v).length === 0) return null;
  return Object.fromEntries(Object.entries(v).map(([k, x]): [string, unknown] => [k, keyTree(x)]).sort(([a], [b]) => a.localeCompare(b)));
}

function schemaTree(s: JsonSchema): unknown {
  if (!s.properties) return null;
  return Object.fromEntries(Object.entries(s.properties).map(([k, x]): [string, unknown] => [k, schemaTree(x)]).sort(([a], [b]) => a.localeCompare(b)));
}

describe("schema", () => {
  it("every field has a type, a description and a default (or is required); objects forbid unknown keys", () => {
    const problems: string[] = [];
    const visit = (s: JsonSchema, path: string, required: boolean): void => {
      if (!s.description) problems.push(`${path}: no description`);
      if (typesOf(s).length === 0 && !s.enum) problems.push(`${path}: no type`);
      if (!("default" in s) && !required) problems.push(`${path}: no default`);
      if (s.properties) {
        const freeForm = path === "trainer.extra";
        if (s.additionalProperties !== false && !freeForm) problems.push(`${path || "(root)"}: additionalProperties is not false`);
        for (const [k, child] of Object.entries(s.properties)) visit(child, path ? `${path}.${k}` : k, (s.required ?? []).includes(k) || path === "");
      }
    };
    visit(SCHEMA, "", true);
    assert.deepEqual(problems, []);
    assert.equal(SCHEMA.additionalProperties, false);
  });

  it("names the same keys as the FtuneConfig type", () => {
    const fromSchema = schemaTree(SCHEMA) as Record<string, unknown>;
    delete fromSchema.extends; // an input-only key, removed by the loader
    assert.deepEqual(keyTree(EVERY_KEY), fromSchema);
  });

  it("every shipped config points editors at the schema file", () => {
    const files: string[] = [];
    const walk = (d: string): void => {
      for (const n of readdirSync(d)) {
        const p = join(d, n);
        if (statSync(p).isDirectory()) walk(p);
        else if (/\.ya?ml$/.test(n)) files.push(p);
      }
    };
    walk(join(REPO, "configs"));
    assert.ok(files.length >= 3);
    for (const f of files) {
      const m = /^# yaml-language-server: \$schema=(\S+)$/m.exec(readFileSync(f, "utf8"));
      assert.ok(m, `${f}: no yaml-language-server line`);
      assert.equal(resolve(dirname(f), m[1]!), join(REPO, "schema", "ftune.schema.json"), f);
    }
  });

  it("the README's config reference is generated from the schema and up to date (npm run docs)", () => {
    const readme = readFileSync(join(REPO, "README.md"), "utf8");
    const section = readme.slice(readme.indexOf(START), readme.indexOf(END) + END.length);
    assert.equal(section, renderConfigReference());
    assert.match(section, /\| `training\.learning_rate` \| number \| `0\.0003` \| Peak learning rate\. \|/);
  });
});

describe("validating folders", () => {
  it("a file that others extend is validated as a base; its errors are reported once", () => {
    const tree = makeTree({
      "configs/base.yaml": "training:\n  lerning_rate: 1\n",
      "configs/a.yaml": `extends: base.yaml\n${MINIMAL}`,
      "configs/b/b.yaml": `extends: ../base.yaml\n${MINIMAL}`,
      "configs/.hidden/x.yaml": "not: [valid\n",
      "configs/notes.txt": "ignored",
    });
    try {
      const report = validatePaths(["configs"], { cwd: tree.dir });
      assert.deepEqual(report.results.map((r) => [r.file, r.baseOf ?? null]), [
        ["configs/a.yaml", null],
        ["configs/b/b.yaml", null],
        ["configs/base.yaml", ["configs/a.yaml", "configs/b/b.yaml"]],
      ]);
      assert.equal(report.errors, 1);
      assert.equal(report.diagnostics.length, 1);
      assert.match(report.diagnostics[0]!.message, /did you mean `learning_rate`/);
      // Validated on its own, without a config extending it, a file must be complete.
      tree.write("partial/base.yaml", "training:\n  learning_rate: 0.001\n");
      const alone = validatePaths(["partial/base.yaml"], { cwd: tree.dir });
      assert.deepEqual(alone.diagnostics.map((d) => d.key).sort(), ["dataset", "model.base_model"]);
      tree.write("partial/child.yaml", `extends: base.yaml\n${MINIMAL}`);
      assert.equal(validatePaths(["partial"], { cwd: tree.dir }).errors, 0);
    } finally {
      tree.remove();
    }
  });
});
