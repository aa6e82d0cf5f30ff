// Where the raw data and the tokenizer come from, resolved to local files with an identity that pins them:
// a Hub dataset at a commit (files verified against the Hub's hashes), a local path (hashed), or an object in a
// store. Downloads go to a local cache (.ftune/cache, FTUNE_CACHE_DIR) keyed by that identity.
import { createHash } from "node:crypto";
import { mkdir, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { pipeline } from "node:stream/promises";
import { createWriteStream, existsSync } from "node:fs";
import type { FtuneConfig } from "../config/index.js";
import { hubFileCheck, type HubClient, type HubFile } from "../hub/index.js";
import { findModel } from "../models/index.js";
import { Limiter, NO_PROGRESS, openStore, sha256File, withRetry, type Store } from "../store/index.js";
import { TransientError } from "../store/retry.js";
import { UserError } from "../util/errors.js";
import { formatFromPath, type DataFormat } from "./readers.js";

export interface SourceFile {
  /** Local path to read. */
  path: string;
  /** How it is named in messages and the manifest (repo path, or the path as configured). */
  name: string;
  sha256: string;
  format: DataFormat;
}

export interface ResolvedSource {
  kind: "hub" | "local" | "store";
  /** Hub id, local path or store URI as configured. */
  id: string;
  /** The Hub commit, or null for local and store sources (their identity is the files' sha256). */
  revision: string | null;
  files: SourceFile[];
}

export function cacheDir(cwd = process.cwd()): string {
  return resolve(cwd, process.env.FTUNE_CACHE_DIR ?? ".ftune/cache");
}

function dataFormat(name: string, configured: FtuneConfig["dataset"]["format"]): DataFormat | undefined {
  return configured === "auto" ? formatFromPath(name) : configured;
}

/** Downloads one Hub file to `target` (via a temp name), checking it against the Hub's sha256 or git blob id. */
async function hubDownload(hub: HubClient, kind: "model" | "dataset", id: string, sha: string, f: HubFile, target: string): Promise<string> {
  if (existsSync(target) && (await stat(target)).size === f.size) {
    const have = await sha256File(target);
    if (!f.sha256 || have === f.sha256) return have;
  }
  await mkdir(dirname(target), { recursive: true });
  return withRetry(async () => {
    const check = hubFileCheck(f);
    const tmp = `${target}.ftune-part`;
    await pipeline(await hub.download(kind, id, sha, f.path), check.tap, createWriteStream(tmp));
    const { sha256: got, matches } = check.finish();
    if (!matches) {
      await rm(tmp, { force: true });
      throw new TransientError(`${kind} ${id}: ${f.path} arrived corrupted (size or hash differ from the Hub's listing); retrying`);
    }
    await rename(tmp, target);
    return got;
  });
}

async function listDataFiles(root: string, rel = ""): Promise<string[]> {
  const out: string[] = [];
  for (const e of (await readdir(join(root, rel), { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    if (e.name.startsWith(".")) continue;
    const p = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await listDataFiles(root, p)));
    else if (formatFromPath(e.name)) out.push(p);
  }
  return out;
}

/** Hub datasets keep splits as files: prefer the ones named after the split (data/train-*.parquet), else all. */
function pickSplit<T extends { path: string }>(files: T[], split: string): T[] {
  const named = files.filter((f) => new RegExp(`(^|[/_.-])${split}([/_.-]|$)`).test(f.path));
  return named.length ? named : files;
}

export async function resolveSource(cfg: FtuneConfig, configDir: string, hub: HubClient, cwd = process.cwd()): Promise<ResolvedSource> {
  const d = cfg.dataset;
  if (d.huggingface_dataset_path) {
    const repo = await hub.repo("dataset", d.huggingface_dataset_path, d.revision);
    const data = pickSplit(repo.files.filter((f) => dataFormat(f.path, d.format)), d.split);
    if (data.length === 0) throw new UserError(`dataset ${repo.id}@${d.revision} has no data files (.jsonl, .json, .parquet, .csv)`);
    const dir = join(cacheDir(cwd), "hub", "datasets", `${repo.id}@${repo.sha}`);
    const files: SourceFile[] = [];
    for (const f of data) {
      const path = join(dir, f.path);
      files.push({ path, name: f.path, sha256: await hubDownload(hub, "dataset", repo.id, repo.sha, f, path), format: dataFormat(f.path, d.format)! });
    }
    return { kind: "hub", id: repo.id, revision: repo.sha, files };
  }
  if (d.local_dataset_path) {
    const abs = resolve(configDir, d.local_dataset_path);
    let s;
    try {
      s = await stat(abs);
    } catch {
      throw new UserError(`dataset.local_dataset_path ${d.local_dataset_path}: ${abs} does not exist`);
    }
    const rels = s.isDirectory() ? await listDataFiles(abs) : [""];
    if (rels.length === 0) throw new UserError(`dataset.local_dataset_path ${d.local_dataset_path}: no data files (.jsonl, .json, .parquet, .csv) in ${abs}`);
    const files: SourceFile[] = [];
    for (const rel of rels) {
      const path = rel ? join(abs, rel) : abs;
      const name = rel ? `${d.local_dataset_path.replace(/\/$/, "")}/${rel}` : d.local_dataset_path;
      const format = dataFormat(path, d.format);
      if (!format) throw new UserError(`${name}: unknown data format; name it .jsonl, .json, .parquet or .csv, or set dataset.format`);
      files.push({ path, name, sha256: await sha256File(path), format });
    }
    return { kind: "local", id: d.local_dataset_path, revision: null, files };
  }
  const uri = d.store_dataset_uri!;
  const cut = uri.lastIndexOf("/");
  const store = openStore(uri.slice(0, cut), {}, cwd);
  const key = uri.slice(cut + 1);
  const head = await store.head(key);
  if (!head) throw new UserError(`dataset.store_dataset_uri ${uri} does not exist`);
  const format = dataFormat(key, d.format);
  if (!format) throw new UserError(`${uri}: unknown data format; name it .jsonl, .json, .parquet or .csv, or set dataset.format`);
  const path = join(cacheDir(cwd), "store", createHash("sha256").update(uri).digest("hex").slice(0, 16), key);
  const sha256 = await store.downloadFile(key, path, head.size, { limiter: new Limiter(8), progress: NO_PROGRESS });
  return { kind: "store", id: uri, revision: null, files: [{ path, name: uri, sha256, format }] };
}

/**
 * The tokenizer.json of `dataset.tokenizer` or the base model: from the model store when `models mirror` cached it,
 * else from the Hub. Returns a local path.
 */
export async function resolveTokenizer(cfg: FtuneConfig, store: Store, hub: HubClient, cwd = process.cwd(), configDir = cwd): Promise<{ path: string; from: string }> {
  // A tokenizer.json file next to the config (offline examples, private tokenizers): used as it is.
  if (cfg.dataset.tokenizer?.endsWith(".json")) {
    const path = resolve(configDir, cfg.dataset.tokenizer);
    if (!existsSync(path)) throw new UserError(`dataset.tokenizer: ${cfg.dataset.tokenizer} does not exist (resolved to ${path}, relative to the config file)`);
    return { path, from: path };
  }
  const id = cfg.dataset.tokenizer ?? cfg.model.base_model;
  const revision = cfg.dataset.tokenizer ? "main" : cfg.model.revision;
  const cached = await findModel(store, id, revision).catch(() => null);
  const entry = cached?.manifest.files.find((f) => f.path === "tokenizer.json");
  if (cached && entry) {
    const path = join(cacheDir(cwd), "tokenizers", `${entry.sha256}.json`);
    if (!existsSync(path) || (await sha256File(path)) !== entry.sha256) {
      const got = await store.downloadFile(`${cached.prefix}/tokenizer.json`, `${path}.ftune-part`, entry.size, { limiter: new Limiter(4), progress: NO_PROGRESS });
      if (got !== entry.sha256) throw new UserError(`${store.uri(`${cached.prefix}/tokenizer.json`)} is corrupt (sha256 mismatch); mirror ${id} again`);
      await rename(`${path}.ftune-part`, path);
    }
    return { path, from: store.uri(`${cached.prefix}/tokenizer.json`) };
  }
  let repo;
  try {
    repo = await hub.repo("model", id, revision);
  } catch (e) {
    if (e instanceof UserError) throw new UserError(`no tokenizer for ${id}@${revision}: it is not in the model store (${store.url}) and the Hub says: ${e.message}. Run ftune models mirror ${id}, or set dataset.tokenizer`);
    throw e;
  }
  const f = repo.files.find((x) => x.path === "tokenizer.json");
  if (!f) throw new UserError(`${id}@${revision} has no tokenizer.json (ftune counts tokens with HF tokenizers' format); set dataset.tokenizer to a repo that has one`);
  const path = join(cacheDir(cwd), "hub", "models", `${id}@${repo.sha}`, "tokenizer.json");
  await hubDownload(hub, "model", id, repo.sha, f, path);
  return { path, from: hub.fileUrl("model", id, repo.sha, "tokenizer.json") };
}

export async function writeJson(path: string, v: unknown): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, `${JSON.stringify(v, null, 2)}\n`);
}
