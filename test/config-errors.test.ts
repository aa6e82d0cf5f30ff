// Broken configs of every kind are rejected with a located message (file:line:col: key: message).
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { formatDiagnostic, loadConfig, type ConfigResult } from "../src/config/index.js";
import { makeTree, MINIMAL } from "./helpers/tree.js";

const tree = makeTree();
after(() => tree.remove());

let n = 0;
function check(text: string, opts: { sets?: string[]; extra?: Record<string, string> } = {}): { r: ConfigResult; lines: string[]; errors: string[] } {
  const name = `case${++n}/config.yaml`;
  for (const [rel, body] of Object.entries(opts.extra ?? {})) tree.write(`case${n}/${rel}`, body);
  tree.write(name, text);
  const r = loadConfig(name, { cwd: tree.dir, sets: opts.sets });
  const lines = r.diagnostics.map(formatDiagnostic);
  return { r, lines, errors: r.diagnostics.filter((d) => d.severity === "error").map(formatDiagnostic) };
}

function expectError(text: string, expected: string | RegExp, opts?: Parameters<typeof check>[1]): string[] {
  const { r, errors } = check(text, opts);
  assert.equal(r.ok, false, `expected an error, got none for:\n${text}`);
  const hit = errors.some((e) => (typeof expected === "string" ? e.includes(expected) : expected.test(e)));
  assert.ok(hit, `no error matching ${String(expected)} in:\n${errors.join("\n")}`);
  return errors;
}

describe("config errors are located", () => {
  it("unknown key with a close known key suggests it", () => {
    expectError(`${MINIMAL}training:\n  lerning_rate: 0.001\n`, /^case\d+\/config\.yaml:6:3: training\.lerning_rate: unknown key `lerning_rate`; did you mean `learning_rate`\?$/);
  });

  it("unknown group suggests the group", () => {
    expectError(`${MINIMAL}trainig:\n  num_epochs: 2\n`, /config\.yaml:5:1: trainig: unknown key `trainig`; did you mean `training`\?/);
  });

  it("a key in the wrong group names where it belongs", () => {
    expectError(`${MINIMAL}lora:\n  learning_rate: 0.001\n`, /config\.yaml:6:3: lora\.learning_rate: unknown key `learning_rate` here; did you mean `training\.learning_rate`\?/);
  });

  it("wrong type points at the value", () => {
    expectError(`${MINIMAL}training:\n  learning_rate: fast\n`, /config\.yaml:6:18: training\.learning_rate: must be a number, got the string "fast"/);
  });

  it("a quoted number says to drop the quotes", () => {
    expectError(`${MINIMAL}training:\n  num_epochs: "2"\n`, /training\.num_epochs: must be a number, got the string "2" \(drop the quotes\)/);
  });

  it("enum values are listed, with a suggestion", () => {
    expectError(`model:\n  base_model: x/y\n  quantization: int4\ndataset:\n  local_dataset_path: d.jsonl\n`, /config\.yaml:3:17: model\.quantization: must be one of: none, int8, nf4 \(got the string "int4"\); did you mean `int8`\?/);
  });

  it("duplicate keys name both lines", () => {
    expectError(`${MINIMAL}training:\n  num_epochs: 1\n  num_epochs: 2\n`, /config\.yaml:7:3: training\.num_epochs: duplicate key \(first written at line 6\)/);
  });

  it("tabs used for indentation are located", () => {
    expectError(`${MINIMAL}training:\n\tnum_epochs: 1\n`, /config\.yaml:6:1: YAML syntax error: a tab is used for indentation/);
  });

  it("YAML syntax errors are located", () => {
    expectError(`${MINIMAL}lora:\n  target_modules: [q_proj, v_proj\nwandb: null\n`, /config\.yaml:7:1: YAML syntax error/);
    expectError(`model:\n  base_model: 'unterminated\n`, /config\.yaml:\d+:\d+: YAML syntax error: a quote or bracket is not closed/);
  });

  it("missing required keys are reported", () => {
    expectError(`dataset:\n  local_dataset_path: d.jsonl\n`, /config\.yaml:1:1: model\.base_model: missing required key `base_model`/);
    expectError(`model: {}\ndataset:\n  local_dataset_path: d.jsonl\n`, /config\.yaml:1:1: model\.base_model: missing required key/);
  });

  it("a top level that is not a mapping, and an empty file", () => {
    expectError(`- a\n- b\n`, /config\.yaml:1:1: a config must be a YAML mapping \(key: value\), not a list/);
    expectError(`# only a comment\n`, /config\.yaml:1:1: the file is empty/);
  });

  it("all errors come at once", () => {
    const errors = expectError(
      `model:\n  base_model: x/y\n  quantization: int4\ntraining:\n  lerning_rate: 1\n  micro_batch_size: 3\n  macro_batch_size: 8\nlora:\n  rank: 0\n`,
      "quantization",
    );
    assert.ok(errors.length >= 4, errors.join("\n"));
    for (const want of ["model.quantization", "training.lerning_rate", "training.macro_batch_size", "lora.rank", "dataset"]) {
      assert.ok(errors.some((e) => e.includes(`: ${want}: `)), `missing ${want} in:\n${errors.join("\n")}`);
    }
  });
});

describe("extends", () => {
  it("a missing extended file is located at the extends value", () => {
    expectError(`extends: nope.yaml\n${MINIMAL}`, /config\.yaml:1:10: extends: extended file case\d+\/nope\.yaml does not exist/);
  });

  it("cycles are detected with their chain", () => {
    const errors = expectError(`extends: a.yaml\n${MINIMAL}`, /extends: extends cycle: case\d+\/a\.yaml -> case\d+\/b\.yaml -> case\d+\/a\.yaml/, {
      extra: { "a.yaml": "extends: b.yaml\n", "b.yaml": "extends: [a.yaml]\n" },
    });
    assert.ok(errors.some((e) => /case\d+\/b\.yaml:1:11: extends:/.test(e)), errors.join("\n"));
  });

  it("a file extending itself is a cycle", () => {
    expectError(`extends: config.yaml\n${MINIMAL}`, /extends cycle: case\d+\/config\.yaml -> case\d+\/config\.yaml/);
  });

  it("an error inside an extended file is located in that file", () => {
    expectError(`extends: base/common.yaml\n${MINIMAL}`, /case\d+\/base\/common\.yaml:3:3: training\.warmup: unknown key `warmup`/, {
      extra: { "base/common.yaml": "# shared\ntraining:\n  warmup: 10\n" },
    });
  });

  it("several levels merge, later files winning, lists replaced", () => {
    const { r } = check(`extends: [a.yaml, b.yaml]\n${MINIMAL}lora:\n  rank: 8\n`, {
      extra: {
        "a.yaml": "extends: c.yaml\nlora:\n  rank: 4\n  alpha: 8\n  target_modules: [q_proj, k_proj, v_proj]\n",
        "b.yaml": "lora:\n  target_modules: [o_proj]\n",
        "c.yaml": "training:\n  num_epochs: 3\nlora:\n  alpha: 99\n",
      },
    });
    assert.equal(r.ok, true, r.diagnostics.map(formatDiagnostic).join("\n"));
    assert.equal(r.config?.lora.rank, 8);
    assert.equal(r.config?.lora.alpha, 8);
    assert.deepEqual(r.config?.lora.target_modules, ["o_proj"]);
    assert.equal(r.config?.training.num_epochs, 3);
    assert.equal(r.files.length, 4);
  });

  it("null in a child removes the parent's value", () => {
    const { r } = check(`extends: a.yaml\n${MINIMAL}wandb: null\n`, { extra: { "a.yaml": "wandb:\n  project: p\n" } });
    assert.equal(r.ok, true);
    assert.equal(r.config?.wandb, null);
  });

  it("extends must be paths", () => {
    expectError(`extends: 3\n${MINIMAL}`, /config\.yaml:1:10: extends: must be a relative path/);
  });
});

describe("semantic checks", () => {
  it("macro batch must be a multiple of micro batch (x GPUs)", () => {
    expectError(`${MINIMAL}training:\n  micro_batch_size: 3\n  macro_batch_size: 128\n`, /config\.yaml:7:21: training\.macro_batch_size: must be a multiple of micro_batch_size \(3\)/);
    expectError(`${MINIMAL}training:\n  micro_batch_size: 4\n  macro_batch_size: 12\ncompute:\n  gpus_per_node: 2\n`, /micro_batch_size x GPUs \(4 x 2 = 8\)/);
  });

  it("lora.rank must be > 0 and target modules non-empty", () => {
    expectError(`${MINIMAL}lora:\n  rank: 0\n`, /config\.yaml:6:9: lora\.rank: must be >= 1/);
    expectError(`${MINIMAL}lora:\n  target_modules: []\n`, /config\.yaml:6:19: lora\.target_modules: must name at least one module/);
  });

  it("val_set_size must be below num_samples", () => {
    expectError(`${MINIMAL}  num_samples: 100\n  val_set_size: 100\n`, /config\.yaml:6:17: dataset\.val_set_size: 100 eval rows leaves nothing to train on/);
    expectError(`${MINIMAL}  val_set_size: 2.5\n`, /dataset\.val_set_size: 2\.5 is neither a row count/);
    assert.equal(check(`${MINIMAL}  num_samples: 100\n  val_set_size: 0.1\n`).r.ok, true);
  });

  it("templates may only use the fields the dataset provides", () => {
    expectError(`${MINIMAL}  prompt_template:\n    prompt_input: "{instruction} {context}"\n`, /config\.yaml:6:19: dataset\.prompt_template\.prompt_input: uses \{context\} but dataset\.fields provides only \{instruction\}, \{input\}/);
    expectError(`${MINIMAL}  prompt_template:\n    prompt_no_input: "{instruction} {output}"\n`, /prompt_no_input: the prompt must not contain \{output\}/);
    // dolly provides category; a custom mapping provides its own keys; {{ }} are literal braces
    assert.equal(check(`${MINIMAL}  fields: dolly\n  prompt_template:\n    prompt_input: "{category}: {instruction} {{x}} {input}"\n`).r.ok, true);
    const custom = `${MINIMAL}  fields: {instruction: question, input: null, output: answer, topic: subject}\n  prompt_template:\n    prompt_input: "{topic} {instruction}"\n`;
    const { r } = check(custom);
    assert.equal(r.ok, true, r.diagnostics.map(formatDiagnostic).join("\n"));
    assert.ok(r.diagnostics.some((d) => d.severity === "warning" && d.key === "dataset.prompt_template.prompt_input") === false);
  });

  it("spot max_price must be > 0, ttl_minutes set and bounded", () => {
    expectError(`${MINIMAL}compute:\n  max_price: 0\n`, /config\.yaml:6:14: compute\.max_price: must be > 0/);
    expectError(`${MINIMAL}compute:\n  ttl_minutes: null\n`, /compute\.ttl_minutes: must be a whole number, got null/);
    expectError(`${MINIMAL}compute:\n  ttl_minutes: 5\n`, /compute\.ttl_minutes: must be >= 10/);
    expectError(`${MINIMAL}compute:\n  ttl_minutes: 10000\n`, /compute\.ttl_minutes: must be <= 2880/);
  });

  it("exactly one dataset source", () => {
    expectError(`model:\n  base_model: x/y\ndataset:\n  val_set_size: 10\n`, /config\.yaml:3:1: dataset: no dataset source: set one of dataset\.huggingface_dataset_path, dataset\.local_dataset_path, dataset\.store_dataset_uri/);
    const both = `${MINIMAL}  huggingface_dataset_path: databricks/databricks-dolly-15k\n`;
    expectError(both, /config\.yaml:5:3: dataset\.huggingface_dataset_path: set only one dataset source/);
    expectError(both, /config\.yaml:4:3: dataset\.local_dataset_path: set only one dataset source/);
  });

  it("compute and trainer choices need their settings", () => {
    expectError(`${MINIMAL}compute:\n  provider: ssh\n`, /config\.yaml:6:13: compute\.provider: provider ssh needs compute\.ssh/);
    expectError(`${MINIMAL}trainer:\n  backend: custom\n`, /trainer\.backend: backend custom needs trainer\.command/);
    expectError(`${MINIMAL}training:\n  fp16: true\n  bf16: true\n`, /training\.fp16: fp16 and bf16 cannot both be true/);
  });

  it("training.cutoff_len (seed) must agree with tokenization.cutoff_len, and alone it sets it", () => {
    expectError(`${MINIMAL}  tokenization:\n    cutoff_len: 256\ntraining:\n  cutoff_len: 512\n`, /training\.cutoff_len: is 512 but dataset\.tokenization\.cutoff_len is 256/);
    const { r } = check(`${MINIMAL}training:\n  cutoff_len: 300\n`);
    assert.equal(r.config?.dataset.tokenization.cutoff_len, 300);
  });
});

describe("literal secrets", () => {
  const cases: [string, string, RegExp][] = [
    ["a HuggingFace token", `${MINIMAL}  tokenizer: hf_abcdefghijklmnopqrstuvwxyzABCDEFGH\n`, /config\.yaml:5:14: dataset\.tokenizer: looks like a HuggingFace token/],
    ["an AWS access key id", `${MINIMAL}storage:\n  endpoint: "https://AKIAIOSFODNN7EXAMPLE@s3.example.com"\n`, /storage\.endpoint: looks like an AWS access key id/],
    ["an AWS secret key in trainer.extra", `${MINIMAL}trainer:\n  extra:\n    aws_secret_access_key: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n`, /trainer\.extra\.aws_secret_access_key: looks like an AWS secret access key/],
    ["a W&B key", `${MINIMAL}wandb:\n  project: p\n  run_name: 0123456789abcdef0123456789abcdef01234567\n`, /wandb\.run_name: looks like a Weights & Biases API key/],
    ["a GitHub token", `${MINIMAL}events:\n  subscribe: [ghp_abcdefghijklmnopqrstuvwxyz0123456789]\n`, /events\.subscribe\[0\]: looks like a GitHub token/],
    ["a private key", `${MINIMAL}compute:\n  ssh:\n    host: h\n    host_key: "-----BEGIN OPENSSH PRIVATE KEY-----\\nabc"\n`, /compute\.ssh\.host_key: looks like a private key/],
  ];
  for (const [what, text, re] of cases) {
    it(`${what} is an error that never repeats the secret`, () => {
      const errors = expectError(text, re);
      for (const secret of ["hf_abcdefghijklmnopqrstuvwxyz", "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI", "0123456789abcdef0123456789abcdef01234567", "ghp_abcdefghijklmnopqrstuvwxyz0"]) {
        assert.ok(!errors.join("\n").includes(secret), `secret leaked: ${errors.join("\n")}`);
      }
    });
  }

  it("a git commit sha as a revision is not a secret", () => {
    const { r } = check(`model:\n  base_model: x/y\n  revision: 0123456789abcdef0123456789abcdef01234567\ndataset:\n  local_dataset_path: d.jsonl\n`);
    assert.equal(r.ok, true, r.diagnostics.map(formatDiagnostic).join("\n"));
  });
});

describe("--set overrides", () => {
  it("values are typed by the schema", () => {
    const { r } = check(MINIMAL, {
      sets: ["training.learning_rate=1e-4", "wandb=null", "lora.target_modules=q_proj,k_proj", "compute.spot=false", "project.name=007", "trainer.extra.flash_attention=true"],
    });
    assert.equal(r.ok, true, r.diagnostics.map(formatDiagnostic).join("\n"));
    assert.equal(r.config?.training.learning_rate, 1e-4);
    assert.equal(r.config?.wandb, null);
    assert.deepEqual(r.config?.lora.target_modules, ["q_proj", "k_proj"]);
    assert.equal(r.config?.compute.spot, false);
    assert.equal(r.config?.project.name, "007");
    assert.equal(r.config?.trainer.extra.flash_attention, true);
  });

  it("--set wandb=null overrides a wandb group from the file", () => {
    const { r } = check(`${MINIMAL}wandb:\n  project: p\n`, { sets: ["wandb=null"] });
    assert.equal(r.config?.wandb, null);
  });

  it("errors in --set values are located at the flag", () => {
    expectError(MINIMAL, /^--set training\.learning_rate=fast: training\.learning_rate: must be a number/, { sets: ["training.learning_rate=fast"] });
    expectError(MINIMAL, /^--set training\.lerning_rate=1: training\.lerning_rate: unknown key `lerning_rate`; did you mean `learning_rate`\?/, { sets: ["training.lerning_rate=1"] });
    expectError(MINIMAL, /^--set nonsense: expected --set dotted\.key=value/, { sets: ["nonsense"] });
  });
});

describe("the seed project's configs", () => {
  const seed = new URL("../../shared/data/seed/", import.meta.url).pathname;

  it("the final seed config validates unchanged, warning that fp16: false meant int8", () => {
    const r = loadConfig(`${seed}experiment_config.yaml`);
    assert.equal(r.ok, true, r.diagnostics.map(formatDiagnostic).join("\n"));
    const warnings = r.diagnostics.filter((d) => d.severity === "warning");
    assert.equal(warnings.length, 1);
    assert.match(formatDiagnostic(warnings[0]!), /experiment_config\.yaml:9:9: warning: training\.fp16: .*`model\.quantization: int8`/);
    assert.equal(r.config?.lora.rank, 16);
    assert.equal(r.config?.dataset.tokenization.cutoff_len, 258);
  });

  it("adding model.quantization: int8 silences the warning", () => {
    const r = loadConfig(`${seed}experiment_config.yaml`, { sets: ["model.quantization=int8"] });
    assert.equal(r.diagnostics.length, 0, r.diagnostics.map(formatDiagnostic).join("\n"));
  });

  it("the seed's first config format is rejected with today's names", () => {
    const r = loadConfig(`${seed}experiment_config.v0.yaml`);
    assert.equal(r.ok, false);
    const text = r.diagnostics.map(formatDiagnostic).join("\n");
    for (const re of [
      /v0\.yaml:14:3: lora\.r: .*write `lora\.rank`/,
      /v0\.yaml:5:3: training\.world_size: .*write `compute\.gpus_per_node`/,
      /v0\.yaml:17:3: dataset\.num_data_samples: .*write `dataset\.num_samples`/,
      /v0\.yaml:18:3: dataset\.dataset_path: .*write `dataset\.huggingface_dataset_path`/,
      /v0\.yaml:15:19: lora\.target_modules: must be a list, got the string "\[q_proj,v_proj\]" \(it is a quoted string; drop the quotes/,
    ]) {
      assert.match(text, re);
    }
  });
});
