// The dataprep stage's public interface: from the configured source to validated, templated, tokenized,
// split training data in the dataset store, content-addressed by everything that shapes it (source commit or
// file hashes, mapping, template, tokenizer, limits, split), so the same inputs are prepared once.
import { once } from "node:events";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, createWriteStream, type WriteStream } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { canonicalJson, type FtuneConfig } from "../config/index.js";
import { placeholders } from "../config/semantic.js";
import type { HubClient } from "../hub/index.js";
import { putDataset, readDatasetManifest, type DatasetManifest, type Store } from "../store/index.js";
import { UserError } from "../util/errors.js";
import { readRecords } from "./readers.js";
import { checkRecord, DROP_REASONS, mappingOf, type DropReason } from "./records.js";
import { cacheDir, resolveSource, resolveTokenizer, type ResolvedSource } from "./source.js";
import { evalCount, evalThreshold, splitKey } from "./split.js";
import { renderPrompt } from "./template.js";
import { loadTokenCounter } from "./tokenizer.js";

export { DROP_REASONS, type DropReason } from "./records.js";

/** Rows that are wrong in themselves; duplicates and too-long rows are policy drops, not bad data. */
const BAD: ReadonlySet<DropReason> = new Set(["parse_error", "not_an_object", "missing_field", "empty_field", "wrong_type", "invalid_utf8", "control_characters"]);
const EXAMPLES_PER_REASON = 5;
const BATCH = 2048;
/** Prepared rows are held in memory up to this size before spilling to a temp file for the split. */
const spillBytes = (): number => Number(process.env.FTUNE_DATAPREP_SPILL_BYTES ?? 256 * 2 ** 20);

export interface DroppedExample {
  file: string;
  row: number;
  unit: string;
  detail: string;
}

export interface DataprepCounts {
  input: number;
  kept: number;
  train: number;
  eval: number;
  dropped: Partial<Record<DropReason, number>>;
}

export interface TokenStats {
  cutoff_len: number;
  min: number;
  mean: number;
  p50: number;
  p95: number;
  max: number;
  truncated: number;
  dropped: number;
}

export interface DataprepResult {
  dataset_uri: string;
  dataset_hash: string;
  counts: DataprepCounts;
  /** True when the store already held this exact preparation: nothing was read or written. */
  skipped: boolean;
  manifest: DatasetManifest;
}

export interface DataprepOptions {
  store: Store;
  hub: HubClient;
  /** Folder of the config file: relative dataset paths start there. */
  configDir: string;
  cwd?: string;
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

async function writeLine(ws: WriteStream, line: string): Promise<void> {
  if (!ws.write(line)) await once(ws, "drain");
}

async function closeStream(ws: WriteStream): Promise<void> {
  ws.end();
  await once(ws, "finish");
}

/** The identity of a preparation: every input that changes its output, and nothing else. */
export function recipeOf(cfg: FtuneConfig, source: ResolvedSource, tokenizerSha256: string): Record<string, unknown> {
  const d = cfg.dataset;
  return {
    format: "ftune-dataprep/1",
    source: { kind: source.kind, id: source.id, revision: source.revision, files: source.files.map((f) => ({ name: f.name, sha256: f.sha256, format: f.format })) },
    mapping: mappingOf(d.fields),
    template: { prompt_input: d.prompt_template.prompt_input, prompt_no_input: d.prompt_template.prompt_no_input, response_split: d.prompt_template.response_split },
    tokenization: d.tokenization,
    tokenizer_sha256: tokenizerSha256,
    num_samples: d.num_samples,
    val_set_size: d.val_set_size,
    split_seed: d.split_seed,
    on_bad_rows: d.on_bad_rows,
    max_bad_fraction: d.max_bad_fraction,
  };
}

export async function prepareDataset(cfg: FtuneConfig, opts: DataprepOptions): Promise<DataprepResult> {
  const cwd = opts.cwd ?? process.cwd();
  const d = cfg.dataset;
  const source = await resolveSource(cfg, opts.configDir, opts.hub, cwd);
  const tokenizer = await resolveTokenizer(cfg, opts.store, opts.hub, cwd, opts.configDir);
  const counter = loadTokenCounter(tokenizer.path, d.tokenization.add_eos_token);
  const recipe = recipeOf(cfg, source, counter.sha256);
  const hash = createHash("sha256").update(canonicalJson(recipe)).digest("hex");

  const existing = await readDatasetManifest(opts.store, hash);
  if (existing) {
    return { dataset_uri: opts.store.uri(`datasets/${hash}`), dataset_hash: hash, counts: existing.counts as DataprepCounts, skipped: true, manifest: existing };
  }

  const mapping = mappingOf(d.fields);
  const fieldNames = Object.keys(mapping);
  const used = new Set([...placeholders(d.prompt_template.prompt_input), ...placeholders(d.prompt_template.prompt_no_input)]);
  const required = new Set(["instruction", "output", ...[...used].filter((f) => f !== "input")]);
  const cutoff = d.tokenization.cutoff_len;
  const work = join(cacheDir(cwd), "datasets", `.tmp-${hash.slice(0, 12)}-${randomBytes(4).toString("hex")}`);
  await mkdir(work, { recursive: true });
  try {
    const counts: DataprepCounts = { input: 0, kept: 0, train: 0, eval: 0, dropped: {} };
    const examples: Partial<Record<DropReason, DroppedExample[]>> = {};
    const seen = new Set<string>();
    const keys: string[] = [];
    const lengths: number[] = [];
    let truncated = 0;
    const drop = (reason: DropReason, file: string, row: number, unit: string, detail: string): void => {
      counts.dropped[reason] = (counts.dropped[reason] ?? 0) + 1;
      const list = (examples[reason] ??= []);
      if (list.length < EXAMPLES_PER_REASON) list.push({ file, row, unit, detail });
    };

    // Kept rows wait here for the split; past SPILL_BYTES they go to a temp file instead (bounded memory).
    let held: string[] = [];
    let heldBytes = 0;
    let spill: WriteStream | undefined;
    const SPILL_BYTES = spillBytes();
    const keep = async (line: string): Promise<void> => {
      if (spill) return writeLine(spill, line);
      held.push(line);
      heldBytes += line.length;
      if (heldBytes > SPILL_BYTES) {
        spill = createWriteStream(join(work, "all.jsonl"));
        for (const l of held) await writeLine(spill, l);
        held = [];
      }
    };
    interface Pending {
      id: string;
      key: string;
      prompt: string;
      response: string;
      file: string;
      row: number;
      unit: string;
    }
    let tokenizing: Promise<void> = Promise.resolve();
    let inFlight = 0;
    const limitReached = (): boolean => d.num_samples !== null && counts.kept >= d.num_samples;
    const flush = (batch: Pending[]): void => {
      // Tokenizing runs on the library's own threads while the next batch is read and checked.
      const counting = counter.count(batch.map((p) => p.prompt + p.response));
      inFlight++;
      tokenizing = tokenizing.then(async () => {
        const n = await counting;
        inFlight--;
        for (let i = 0; i < batch.length; i++) {
          const p = batch[i]!;
          if (limitReached()) return;
          let tokens = n[i]!;
          if (tokens > cutoff) {
            if (d.tokenization.overflow === "drop") {
              drop("too_long", p.file, p.row, p.unit, `${tokens} tokens > cutoff_len ${cutoff}`);
              continue;
            }
            truncated++;
            tokens = cutoff;
          }
          counts.kept++;
          keys.push(p.key);
          lengths.push(tokens);
          const segments = [
            { label: d.tokenization.train_on_inputs, text: p.prompt },
            { label: true, text: p.response },
          ];
          // The split key leads the line so the second pass can route it without parsing.
          await keep(`{"k":"${p.key}","id":"${p.id}","tokens":${tokens},"segments":${JSON.stringify(segments)}}\n`);
        }
      });
    };

    let batch: Pending[] = [];
    reading: for (const file of source.files) {
      for await (const raw of readRecords(file.path, file.format)) {
        if (limitReached()) break reading;
        counts.input++;
        const checked = checkRecord({ ...raw, file: file.name }, mapping, required);
        if (!checked.ok) {
          if (d.on_bad_rows === "fail" && BAD.has(checked.reason)) {
            throw new UserError(`${file.name}:${raw.row}: ${checked.reason}: ${checked.detail} (dataset.on_bad_rows: fail; fix the ${raw.unit} or set on_bad_rows: skip)`);
          }
          drop(checked.reason, file.name, raw.row, raw.unit, checked.detail);
          continue;
        }
        const f = checked.fields;
        // Field order is the mapping's, fixed for the run: no need to sort keys per row.
        const id = createHash("sha256").update(JSON.stringify(fieldNames.map((k) => f[k]))).digest("hex").slice(0, 32);
        if (seen.has(id)) {
          drop("duplicate", file.name, raw.row, raw.unit, "the same instruction, input and output as an earlier row");
          continue;
        }
        seen.add(id);
        batch.push({ id, key: splitKey(d.split_seed, id), prompt: renderPrompt(d.prompt_template, f), response: f.output ?? "", file: file.name, row: raw.row, unit: raw.unit });
        if (batch.length >= BATCH) {
          flush(batch);
          batch = [];
          if (inFlight >= 2) await tokenizing;
        }
      }
    }
    if (batch.length) flush(batch);
    await tokenizing;
    if (spill) await closeStream(spill);

    const bad = Object.entries(counts.dropped).filter(([r]) => BAD.has(r as DropReason)).reduce((n, [, c]) => n + c, 0);
    const report = formatDropReport(counts, examples);
    if (counts.input > 0 && bad / counts.input > d.max_bad_fraction) {
      throw new UserError(`${bad} of ${counts.input} rows (${((100 * bad) / counts.input).toFixed(1)}%) are invalid, more than dataset.max_bad_fraction ${d.max_bad_fraction}:\n${report}`);
    }
    if (counts.kept === 0) throw new UserError(`no usable rows in ${source.files.map((f) => f.name).join(", ")}:\n${report}`);
    const nEval = evalCount(d.val_set_size, counts.kept);
    if (nEval >= counts.kept) {
      throw new UserError(`dataset.val_set_size ${d.val_set_size} leaves nothing to train on: only ${counts.kept} rows are usable; lower it or use a fraction`);
    }
    const threshold = evalThreshold(keys, nEval);

    const trainPath = join(work, "train.jsonl");
    const evalPath = join(work, "eval.jsonl");
    const train = createWriteStream(trainPath);
    const evalOut = createWriteStream(evalPath);
    const lines: AsyncIterable<string> | string[] = spill ? createInterface({ input: createReadStream(join(work, "all.jsonl")), crlfDelay: Infinity }) : held;
    for await (const line of lines) {
      const key = line.slice(6, 22);
      const out = `{${line.slice(24).replace(/\n?$/, "\n")}`;
      if (threshold !== null && key <= threshold) {
        counts.eval++;
        await writeLine(evalOut, out);
      } else {
        counts.train++;
        await writeLine(train, out);
      }
    }
    held = [];
    await Promise.all([closeStream(train), closeStream(evalOut)]);
    if (spill) await rm(join(work, "all.jsonl"));

    lengths.sort((a, b) => a - b);
    const tokens: TokenStats = {
      cutoff_len: cutoff,
      min: lengths[0] ?? 0,
      mean: Math.round((lengths.reduce((a, b) => a + b, 0) / Math.max(1, lengths.length)) * 10) / 10,
      p50: quantile(lengths, 0.5),
      p95: quantile(lengths, 0.95),
      max: lengths[lengths.length - 1] ?? 0,
      truncated,
      dropped: counts.dropped.too_long ?? 0,
    };
    const put = await putDataset(
      opts.store,
      [trainPath, evalPath],
      {
        recipe,
        source: { kind: source.kind, id: source.id, revision: source.revision, files: source.files.map((f) => ({ name: f.name, sha256: f.sha256 })) },
        tokenizer: { from: tokenizer.from, sha256: counter.sha256 },
        counts,
        dropped_examples: examples,
        tokens,
        train_on_inputs: d.tokenization.train_on_inputs,
        add_eos_token: d.tokenization.add_eos_token,
        record_format: "segments: [{label, text}] per row (prompt, then response); label false = masked from the loss",
      },
      { address: hash, progress: { quiet: true } },
    );
    const local = join(cacheDir(cwd), "datasets", hash);
    await rm(local, { recursive: true, force: true });
    await rename(work, local);
    return { dataset_uri: put.uri, dataset_hash: hash, counts, skipped: false, manifest: put.manifest };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** The validation report as log lines: counts per reason and where the first rows of each are. */
export function formatDropReport(counts: DataprepCounts, examples: Partial<Record<DropReason, DroppedExample[]>>): string {
  const lines = [`  rows read: ${counts.input}, kept: ${counts.kept}`];
  for (const reason of DROP_REASONS) {
    const n = counts.dropped[reason];
    if (!n) continue;
    const where = (examples[reason] ?? []).map((e) => `${e.file}:${e.row} (${e.detail})`).join("; ");
    lines.push(`  dropped ${reason}: ${n}${where ? ` — first: ${where}` : ""}`);
  }
  return lines.join("\n");
}
