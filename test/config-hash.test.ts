// Same effective values = same hash, whatever the comments, key order or extends layout; any value change moves it.
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { canonicalJson, loadConfig } from "../src/config/index.js";
import { makeTree } from "./helpers/tree.js";

const tree = makeTree();
after(() => tree.remove());

const ORIGINAL = `# an experiment
model:
  base_model: TinyLlama/TinyLlama-1.1B-Chat-v1.0
  quantization: int8
dataset:
  local_dataset_path: data.jsonl
  val_set_size: 20
training:
  learning_rate: 0.0003
  num_epochs: 2
lora:
  rank: 8
  target_modules: [q_proj, v_proj]
`;

function hashOf(rel: string, text: string, extra: Record<string, string> = {}, sets?: string[]): string {
  for (const [p, body] of Object.entries(extra)) tree.write(p, body);
  tree.write(rel, text);
  const r = loadConfig(rel, { cwd: tree.dir, sets });
  assert.equal(r.ok, true, JSON.stringify(r.diagnostics));
  assert.match(r.hash!, /^[0-9a-f]{64}$/);
  return r.hash!;
}

describe("config hash", () => {
  const base = hashOf("original.yaml", ORIGINAL);

  it("ignores comments, key order, quoting and flow vs block style", () => {
    const reordered = `lora:
  target_modules:
    - q_proj   # the attention query
    - v_proj
  rank: 8
training: {num_epochs: 2, learning_rate: 3.0e-4}
dataset:
  val_set_size: 20
  local_dataset_path: "data.jsonl"
model:
  quantization: 'int8'
  base_model: TinyLlama/TinyLlama-1.1B-Chat-v1.0
`;
    assert.equal(hashOf("reordered.yaml", reordered), base);
  });

  it("ignores how values are split over extends files", () => {
    const child = `extends: [shared/model.yaml, shared/train.yaml]\ndataset:\n  local_dataset_path: data.jsonl\n  val_set_size: 20\n`;
    const extra = {
      "shared/model.yaml": "model:\n  base_model: TinyLlama/TinyLlama-1.1B-Chat-v1.0\n  quantization: int8\nlora:\n  rank: 8\n",
      "shared/train.yaml": "extends: more.yaml\ntraining:\n  learning_rate: 0.0003\n",
      "shared/more.yaml": "training:\n  num_epochs: 2\n  learning_rate: 0.1\n",
    };
    assert.equal(hashOf("split.yaml", child, extra), base);
  });

  it("writing a default explicitly does not change it", () => {
    assert.equal(hashOf("explicit-default.yaml", `${ORIGINAL}  bias: none\ncompute:\n  ttl_minutes: 240\n`), base);
  });

  it("changes when any effective value changes", () => {
    const variants: [string, string][] = [
      ["learning rate", ORIGINAL.replace("0.0003", "0.0001")],
      ["a list item", ORIGINAL.replace("[q_proj, v_proj]", "[q_proj, k_proj]")],
      ["list order", ORIGINAL.replace("[q_proj, v_proj]", "[v_proj, q_proj]")],
      ["a default made explicit with another value", `${ORIGINAL}compute:\n  ttl_minutes: 241\n`],
      ["a string", ORIGINAL.replace("data.jsonl", "data2.jsonl")],
      ["a group set to null", `${ORIGINAL}wandb:\n  project: x\n`],
    ];
    const seen = new Set([base]);
    variants.forEach(([what, text], i) => {
      const h = hashOf(`variant${i}.yaml`, text);
      assert.ok(!seen.has(h), `${what}: hash did not change`);
      seen.add(h);
    });
  });

  it("--set changes it like the same edit in the file", () => {
    const edited = hashOf("edited.yaml", ORIGINAL.replace("0.0003", "0.0001"));
    assert.equal(hashOf("original.yaml", ORIGINAL, {}, ["training.learning_rate=1e-4"]), edited);
  });

  it("canonical JSON sorts keys at every level", () => {
    assert.equal(canonicalJson({ b: 1, a: { d: [2, { z: 1, y: null }], c: "x" } }), '{"a":{"c":"x","d":[2,{"y":null,"z":1}]},"b":1}');
  });
});
