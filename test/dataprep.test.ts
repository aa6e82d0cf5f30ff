// Dataprep on the real data in ../shared/data (the head of databricks-dolly-15k and TinyLlama's real Llama-2
// tokenizer.json): exact token counts, the dolly preset and template choice, every bad-row reason located,
// determinism of the content address, Hub and store sources, the CLI and the publish event.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { loadConfig, type FtuneConfig } from "../src/config/index.js";
import { prepareDataset } from "../src/dataprep/index.js";
import { restorePrepared } from "../src/dataprep/actions-cache.js";
import { loadTokenCounter } from "../src/dataprep/tokenizer.js";
import { HubClient } from "../src/hub/index.js";
import { mirrorModel } from "../src/models/index.js";
import { openStore, type Store } from "../src/store/index.js";
import { UserError } from "../src/util/errors.js";
import { startGitHubStandIn, type GitHubStandIn } from "./support/github.js";
import { startHubStandIn, type HubStandIn } from "./support/hub.js";
import { makeActionsEnv } from "./support/actions-env.js";
import { REPO, ftuneAsync } from "./helpers/cli.js";

const SHARED = resolve(REPO, "..", "shared", "data");
const TOKENIZER = join(SHARED, "tokenizer-tinyllama-1.1b-chat.json");
const DOLLY = join(SHARED, "dolly-15k-head.jsonl");
const MODEL = "TinyLlama/TinyLlama-1.1B-Chat-v1.0";

const work = mkdtempSync(join(tmpdir(), "ftune-dataprep-test-"));
const storeUrl = `file://${join(work, "store")}`;
let store: Store;
let hub: HubStandIn;
let gh: GitHubStandIn;
const offlineHub = new HubClient({ endpoint: "http://127.0.0.1:9" });

before(async () => {
  process.env.FTUNE_CACHE_DIR = join(work, "cache");
  store = openStore(storeUrl);
  // The model store holds the base model's tokenizer, as `ftune models mirror` would have left it.
  const modelDir = join(work, "model");
  mkdirSync(modelDir);
  copyFileSync(TOKENIZER, join(modelDir, "tokenizer.json"));
  writeFileSync(join(modelDir, "config.json"), '{"model_type":"llama"}');
  await mirrorModel(store, { model: MODEL, from: modelDir, progress: { quiet: true } });
  hub = await startHubStandIn({
    repos: [{ id: "acme/dolly-mini", type: "dataset", files: [{ path: "README.md", content: "# data" }, { path: "data/train.jsonl", content: readFileSync(DOLLY).subarray(0, 30_000).toString().split("\n").slice(0, 30).join("\n") + "\n" }] }],
  });
  gh = await startGitHubStandIn();
});
after(async () => {
  await hub?.stop();
  await gh?.stop();
  rmSync(work, { recursive: true, force: true });
});

let n = 0;
function config(body: string): { path: string; cfg: FtuneConfig; dir: string } {
  const dir = join(work, `cfg${++n}`);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, "exp.yaml");
  writeFileSync(path, `model:\n  base_model: ${MODEL}\n${body}`);
  const r = loadConfig(path);
  assert.ok(r.ok && r.config, JSON.stringify(r.diagnostics));
  return { path, cfg: r.config, dir };
}

const prepare = (c: { cfg: FtuneConfig; dir: string }, h: HubClient = offlineHub) => prepareDataset(c.cfg, { store, hub: h, configDir: c.dir });

function readJsonl(path: string): { id: string; tokens: number; segments: { label: boolean; text: string }[] }[] {
  return readFileSync(path, "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

describe("tokenizer", () => {
  it("counts tokens exactly as the Llama tokenizer encodes them (ids from transformers' own tests)", async () => {
    const expected: [string, number[]][] = [
      ["This is a test", [1, 910, 338, 263, 1243]],
      ["生活的真谛是", [1, 29871, 30486, 31704, 30210, 30848, 235, 179, 158, 30392]],
      ["Hi  Hello", [1, 6324, 29871, 15043]],
      ["Hi   Hello", [1, 6324, 259, 15043]],
      ["", [1]],
      [" ", [1, 259]],
      ["  ", [1, 1678]],
      [" Hello", [1, 29871, 15043]],
      ["A sample test", [1, 319, 4559, 1243]],
      ["The following string should be properly encoded: Hello.", [1, 450, 1494, 1347, 881, 367, 6284, 18511, 29901, 15043, 29889]],
      ["hello", [1, 22172]],
    ];
    const { Tokenizer } = createRequire(import.meta.url)("tokenizers") as { Tokenizer: { fromFile(p: string): { encode(s: string): Promise<{ getIds(): number[] }> } } };
    const native = Tokenizer.fromFile(TOKENIZER);
    for (const [s, ids] of expected) assert.deepEqual((await native.encode(s)).getIds(), ids, JSON.stringify(s));
    const plain = loadTokenCounter(TOKENIZER, false);
    assert.deepEqual(await plain.count(expected.map(([s]) => s)), expected.map(([, ids]) => ids.length));
    const withEos = loadTokenCounter(TOKENIZER, true);
    assert.deepEqual(await withEos.count(["A sample test"]), [5]); // [1, 319, 4559, 1243, 2]
    assert.match(plain.sha256, /^[0-9a-f]{64}$/);
  });
});

describe("dataprep on databricks-dolly-15k (head)", () => {
  it("maps the dolly preset, picks the template by context, splits, and stores it content-addressed", async () => {
    const c = config(`dataset:\n  local_dataset_path: ${DOLLY}\n  fields: dolly\n  val_set_size: 20\n  tokenization:\n    cutoff_len: 512\n    train_on_inputs: false\n`);
    const r = await prepare(c);
    assert.equal(r.skipped, false);
    assert.equal(r.counts.input, 382);
    assert.equal(r.counts.kept + (r.counts.dropped.duplicate ?? 0), 382);
    assert.equal(r.counts.eval, 20);
    assert.equal(r.counts.train + r.counts.eval, r.counts.kept);
    assert.equal(r.dataset_uri, `${storeUrl}/datasets/${r.dataset_hash}`);
    const dir = join(work, "store", "datasets", r.dataset_hash);
    const rows = [...readJsonl(join(dir, "train.jsonl")), ...readJsonl(join(dir, "eval.jsonl"))];
    assert.equal(rows.length, r.counts.kept);
    const source = readFileSync(DOLLY, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { instruction: string; context: string; response: string });
    const withContext = rows.filter((x) => x.segments[0]!.text.includes("### Input:")).length;
    const byResponse = new Map(source.map((s) => [s.response, s]));
    assert.equal(withContext, rows.filter((x) => byResponse.get(x.segments[1]!.text)?.context !== "").length);
    const first = rows.find((x) => byResponse.get(x.segments[1]!.text) === source[0])!;
    assert.equal(first.segments[0]!.label, false, "train_on_inputs: false masks the prompt");
    assert.equal(first.segments[0]!.text, `Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n### Instruction:\n${source[0]!.instruction}\n\n### Input:\n${source[0]!.context}\n\n### Response:\n`);
    const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")) as { tokens: { p50: number; max: number; min: number; cutoff_len: number }; source: { kind: string }; tokenizer: { from: string } };
    assert.equal(manifest.tokens.cutoff_len, 512);
    assert.ok(manifest.tokens.min > 20 && manifest.tokens.p50 > manifest.tokens.min && manifest.tokens.max <= 512, JSON.stringify(manifest.tokens));
    assert.match(manifest.tokenizer.from, /models\/TinyLlama\/TinyLlama-1\.1B-Chat-v1\.0@main\/tokenizer\.json$/);
  });

  it("is deterministic: the same inputs give the same address (and are skipped); any recipe change moves it", async () => {
    const body = (extra = "", seed = 42, cutoff = 256) => `dataset:\n  local_dataset_path: ${DOLLY}\n  fields: dolly\n  val_set_size: 30\n  split_seed: ${seed}\n  tokenization:\n    cutoff_len: ${cutoff}\n${extra}`;
    const a = await prepare(config(body()));
    const again = await prepare(config(body()));
    assert.equal(again.dataset_hash, a.dataset_hash);
    assert.equal(again.skipped, true);
    const template = await prepare(config(body(`  prompt_template:\n    prompt_no_input: "Q: {instruction}\\nA: "\n`)));
    const cutoff = await prepare(config(body("", 42, 300)));
    const seed = await prepare(config(body("", 7)));
    assert.equal(new Set([a.dataset_hash, template.dataset_hash, cutoff.dataset_hash, seed.dataset_hash]).size, 4);
    const evalIds = (h: string) => new Set(readJsonl(join(work, "store", "datasets", h, "eval.jsonl")).map((x) => x.id));
    assert.notDeepEqual(evalIds(a.dataset_hash), evalIds(seed.dataset_hash));
    assert.deepEqual(evalIds(a.dataset_hash), evalIds(cutoff.dataset_hash), "the split depends on content and seed, not on the cutoff");
  });

  it("a dataset larger than the in-memory limit spills to disk and comes out the same", async () => {
    const body = `dataset:\n  local_dataset_path: ${DOLLY}\n  fields: dolly\n  val_set_size: 25\n  split_seed: 99\n`;
    const inMemory = await prepare(config(body));
    const files = (h: string) => ["train.jsonl", "eval.jsonl"].map((f) => readFileSync(join(work, "store", "datasets", h, f), "utf8"));
    const expected = files(inMemory.dataset_hash);
    rmSync(join(work, "store", "datasets", inMemory.dataset_hash), { recursive: true });
    process.env.FTUNE_DATAPREP_SPILL_BYTES = "1000";
    try {
      const spilled = await prepare(config(body));
      assert.equal(spilled.dataset_hash, inMemory.dataset_hash);
      assert.equal(spilled.skipped, false);
      assert.deepEqual(files(spilled.dataset_hash), expected);
    } finally {
      delete process.env.FTUNE_DATAPREP_SPILL_BYTES;
    }
  });

  it("num_samples keeps the first N usable rows", async () => {
    const r = await prepare(config(`dataset:\n  local_dataset_path: ${DOLLY}\n  fields: dolly\n  num_samples: 100\n  val_set_size: 0.1\n`));
    assert.equal(r.counts.kept, 100);
    assert.equal(r.counts.eval, 10);
  });
});

describe("bad rows", () => {
  const good = (i: number) => JSON.stringify({ instruction: `Question number ${i}?`, input: "", output: `Answer ${i}.` });
  const lines = [
    good(1),
    '{"instruction": "broken", ',
    "[1, 2, 3]",
    JSON.stringify({ input: "", output: "no instruction" }),
    JSON.stringify({ instruction: "   ", input: "", output: "x" }),
    JSON.stringify({ instruction: "numbers", input: "", output: 42 }),
    "INVALID_UTF8",
    JSON.stringify({ instruction: "bell \u0007 here", input: "", output: "x" }),
    good(1),
    JSON.stringify({ instruction: "long", input: "", output: "word ".repeat(400) }),
    good(2),
    "",
    good(3),
  ];
  function fixture(): string {
    const dir = join(work, `bad${++n}`);
    mkdirSync(dir);
    const path = join(dir, "rows.jsonl");
    const bufs = lines.map((l) => (l === "INVALID_UTF8" ? Buffer.concat([Buffer.from('{"instruction": "caf'), Buffer.from([0xc3, 0x28]), Buffer.from('", "input": "", "output": "x"}')]) : Buffer.from(l)));
    writeFileSync(path, Buffer.concat(bufs.flatMap((b) => [b, Buffer.from("\n")])));
    return path;
  }

  it("skips every kind of bad row and reports each reason with its line", async () => {
    const path = fixture();
    const r = await prepare(config(`dataset:\n  local_dataset_path: ${path}\n  val_set_size: 1\n  max_bad_fraction: 1\n  tokenization:\n    cutoff_len: 64\n    overflow: drop\n`));
    assert.deepEqual(r.counts.dropped, { parse_error: 1, not_an_object: 1, missing_field: 1, empty_field: 1, wrong_type: 1, invalid_utf8: 1, control_characters: 1, duplicate: 1, too_long: 1 });
    assert.equal(r.counts.input, 12);
    assert.equal(r.counts.kept, 3);
    const ex = (r.manifest as unknown as { dropped_examples: Record<string, { row: number; file: string }[]> }).dropped_examples;
    assert.deepEqual(Object.fromEntries(Object.entries(ex).map(([k, v]) => [k, v.map((e) => e.row)])), {
      parse_error: [2], not_an_object: [3], missing_field: [4], empty_field: [5], wrong_type: [6], invalid_utf8: [7], control_characters: [8], duplicate: [9], too_long: [10],
    });
    assert.ok(ex.parse_error![0]!.file.endsWith("rows.jsonl"));
  });

  it("on_bad_rows: fail stops at the first bad row, naming file and line", async () => {
    const path = fixture();
    await assert.rejects(prepare(config(`dataset:\n  local_dataset_path: ${path}\n  val_set_size: 1\n  on_bad_rows: fail\n`)), (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.match((e as Error).message, /rows\.jsonl:2: parse_error: .*on_bad_rows: fail/);
      return true;
    });
  });

  it("too many bad rows fail even when skipping, with the report", async () => {
    const path = fixture();
    await assert.rejects(prepare(config(`dataset:\n  local_dataset_path: ${path}\n  val_set_size: 1\n  max_bad_fraction: 0.1\n`)), /7 of 12 rows \(58\.3%\) are invalid, more than dataset\.max_bad_fraction 0\.1:[\s\S]*dropped parse_error: 1 — first: .*rows\.jsonl:2/);
  });
});

describe("sources", () => {
  it("a Hub dataset repo at a pinned commit", async () => {
    const h = new HubClient({ endpoint: hub.url });
    const r = await prepare(config(`dataset:\n  huggingface_dataset_path: acme/dolly-mini\n  fields: dolly\n  val_set_size: 3\n`), h);
    assert.equal(r.counts.input, 30);
    const m = r.manifest as unknown as { source: { kind: string; revision: string; files: { name: string }[] } };
    assert.equal(m.source.kind, "hub");
    assert.equal(m.source.revision, (await h.repo("dataset", "acme/dolly-mini")).sha);
    assert.deepEqual(m.source.files.map((f) => f.name), ["data/train.jsonl"]);
  });

  it("an object in a store", async () => {
    const raw = openStore(`file://${join(work, "raw")}`);
    await raw.putBytes("dolly.jsonl", readFileSync(DOLLY));
    const r = await prepare(config(`dataset:\n  store_dataset_uri: file://${join(work, "raw")}/dolly.jsonl\n  fields: dolly\n  val_set_size: 5\n`));
    assert.equal(r.counts.input, 382);
  });

  it("a missing tokenizer says how to get one", async () => {
    const c = config(`dataset:\n  local_dataset_path: ${DOLLY}\n  fields: dolly\n`.replace(MODEL, "x"));
    c.cfg.model.base_model = "acme/unknown-model";
    await assert.rejects(prepare(c, new HubClient({ endpoint: hub.url })), /no tokenizer for acme\/unknown-model@main: it is not in the model store .*ftune models mirror acme\/unknown-model/);
  });
});

describe("ftune dataprep CLI", () => {
  it("prints one JSON object and publishes <project>.dataprep to every notified repo", async () => {
    const c = config(`project:\n  name: llm-lab\ndataset:\n  local_dataset_path: ${DOLLY}\n  fields: dolly\n  val_set_size: 10\nevents:\n  notify: [acme/finetune, acme/other]\n`);
    const r = await ftuneAsync(["dataprep", c.path, "--store", storeUrl, "--publish", "--json"], { env: { FTUNE_CACHE_DIR: join(work, "cache"), FTUNE_DISPATCH_TOKEN: "t0ken", GITHUB_API_URL: gh.url, HF_ENDPOINT: "http://127.0.0.1:9" } });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { dataset_uri: string; dataset_hash: string; counts: { input: number; kept: number; train: number; eval: number; dropped: object } };
    assert.deepEqual(Object.keys(out.counts).sort(), ["dropped", "eval", "input", "kept", "train"]);
    assert.equal(out.counts.eval, 10);
    const dispatches = gh.requests.filter((q) => q.method === "POST" && /\/dispatches$/.test(q.path));
    assert.deepEqual(dispatches.map((q) => q.path).sort(), ["/repos/acme/finetune/dispatches", "/repos/acme/other/dispatches"]);
    const body = dispatches[0]!.body as { event_type: string; client_payload: Record<string, unknown> };
    assert.equal(body.event_type, "llm-lab.dataprep");
    assert.deepEqual(Object.keys(body.client_payload).sort(), ["counts", "dataset_hash", "dataset_uri", "revision", "source"]);
    assert.equal(body.client_payload.dataset_hash, out.dataset_hash);
    assert.match(r.stderr, /sent llm-lab\.dataprep to acme\/finetune/);
  });

  it("in Actions it sets the step outputs and writes the validation report to the job summary", async () => {
    const c = config(`dataset:\n  local_dataset_path: ${DOLLY}\n  fields: dolly\n  val_set_size: 12\n`);
    const actions = await makeActionsEnv({ event: "push", workspace: work });
    try {
      const r = await ftuneAsync(["dataprep", c.path, "--store", storeUrl], { env: { ...actions.env, FTUNE_CACHE_DIR: join(work, "cache"), HF_ENDPOINT: "http://127.0.0.1:9" } });
      assert.equal(r.code, 0, r.stderr);
      const outputs = actions.readOutputs();
      assert.match(outputs["dataset-hash"] ?? "", /^[0-9a-f]{64}$/);
      assert.equal(outputs["dataset-uri"], `${storeUrl}/datasets/${outputs["dataset-hash"]}`);
      const summary = actions.readSummary();
      assert.match(summary, /ftune dataprep/);
      assert.match(summary, /<td>eval<\/td><td>12<\/td>/);
      assert.match(summary, /tokens per example: min \d+/);
    } finally {
      await actions.cleanup();
    }
  });

  it("outside Actions the Actions cache degrades to nothing, without an error", async () => {
    assert.equal(await restorePrepared("0".repeat(64), join(work, "nowhere")), false);
  });
});
