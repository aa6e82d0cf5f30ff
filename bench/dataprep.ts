// Dataprep benchmark: 15,000 dolly-shaped records (the real head of databricks-dolly-15k, replicated with a
// variant tag so none is a duplicate) through the whole of `prepareDataset` (read, validate, dedupe, template,
// tokenize with the real TinyLlama/Llama-2 tokenizer.json, split, write, store) against tokenizing the same
// rendered texts alone with the same tokenizer, in one run. Targets: <= 1.5x the tokenize-only time, < 5 s.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { loadConfig } from "../src/config/index.js";
import { prepareDataset } from "../src/dataprep/index.js";
import { mappingOf } from "../src/dataprep/records.js";
import { renderPrompt } from "../src/dataprep/template.js";
import { loadTokenCounter } from "../src/dataprep/tokenizer.js";
import { HubClient } from "../src/hub/index.js";
import { mirrorModel } from "../src/models/index.js";
import { openStore } from "../src/store/index.js";

const SHARED = resolve(import.meta.dirname, "..", "..", "shared", "data");
const N = Number(process.env.FTUNE_BENCH_RECORDS ?? 15_000);
const work = mkdtempSync(join(tmpdir(), "ftune-bench-dataprep-"));
process.env.FTUNE_CACHE_DIR = join(work, "cache");
try {
  const head = readFileSync(join(SHARED, "dolly-15k-head.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, string>);
  const records = Array.from({ length: N }, (_, i) => {
    const r = head[i % head.length]!;
    const rec: Record<string, string> = { ...r, instruction: i < head.length ? r.instruction! : `${r.instruction} [variant ${Math.floor(i / head.length)}]` };
    return rec;
  });
  const data = join(work, "dolly-15k.jsonl");
  writeFileSync(data, records.map((r) => JSON.stringify(r)).join("\n") + "\n");

  const store = openStore(`file://${join(work, "store")}`);
  const model = join(work, "model");
  mkdirSync(model);
  copyFileSync(join(SHARED, "tokenizer-tinyllama-1.1b-chat.json"), join(model, "tokenizer.json"));
  await mirrorModel(store, { model: "TinyLlama/TinyLlama-1.1B-Chat-v1.0", from: model, progress: { quiet: true } });
  const cfgPath = join(work, "exp.yaml");
  writeFileSync(cfgPath, `model:\n  base_model: TinyLlama/TinyLlama-1.1B-Chat-v1.0\ndataset:\n  local_dataset_path: ${data}\n  fields: dolly\n  val_set_size: 200\n  tokenization:\n    cutoff_len: 512\n`);
  const cfg = loadConfig(cfgPath).config!;

  // Reference: the same texts the pipeline tokenizes, rendered beforehand, in one batch.
  const mapping = mappingOf(cfg.dataset.fields);
  const texts = records.map((r) => {
    const f = Object.fromEntries(Object.entries(mapping).map(([k, col]) => [k, col ? (r[col] ?? "") : ""]));
    return renderPrompt(cfg.dataset.prompt_template, f) + f.output;
  });
  await loadTokenCounter(join(model, "tokenizer.json"), true).count(texts.slice(0, 100)); // load the native library once
  // Tokenizing alone: load the tokenizer.json, then encode every text in one batch (the library's fastest path).
  let t = performance.now();
  const counter = loadTokenCounter(join(model, "tokenizer.json"), true);
  const counts = await counter.count(texts);
  const tokenizeOnly = (performance.now() - t) / 1000;

  t = performance.now();
  const r = await prepareDataset(cfg, { store, hub: new HubClient({ endpoint: "http://127.0.0.1:9" }), configDir: work });
  const full = (performance.now() - t) / 1000;

  const chars = texts.reduce((a, s) => a + s.length, 0);
  const tokens = counts.reduce((a, b) => a + b, 0);
  console.log(`dataprep: ${N} dolly-shaped records, ${(chars / 1e6).toFixed(1)} M characters, ${(tokens / 1e6).toFixed(2)} M tokens (kept ${r.counts.kept}, train ${r.counts.train}, eval ${r.counts.eval})`);
  console.log(`whole dataprep ${full.toFixed(2)} s vs tokenize-only ${tokenizeOnly.toFixed(2)} s: ${(full / tokenizeOnly).toFixed(2)}x (targets: <= 1.5x, < 5 s)`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
