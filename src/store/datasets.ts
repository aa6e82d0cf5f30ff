// Prepared datasets, content-addressed: datasets/<sha256>/ holds the files and manifest.json (written last).
// The address is the sha256 of the sorted (name, size, sha256) list, so the same prepared data is stored once
// and a changed byte anywhere gives a new address.
import { createHash } from "node:crypto";
import { stat } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { canonicalJson } from "../config/index.js";
import { sha256File } from "./hash.js";
import { downloadFiles, uploadFiles, type FileEntry } from "./transfer.js";
import type { Store } from "./types.js";
import type { ProgressOptions } from "./progress.js";

export const DATASET_MANIFEST = "manifest.json";

export interface DatasetManifest {
  format: "ftune-dataset/1";
  hash: string;
  created_at: string;
  files: FileEntry[];
  /** What produced it (source, revision, counts, dropped rows, token stats): written by dataprep. */
  [extra: string]: unknown;
}

export function datasetHash(files: readonly FileEntry[]): string {
  const list = [...files].map((f) => ({ path: f.path, size: f.size, sha256: f.sha256 })).sort((a, b) => a.path.localeCompare(b.path));
  return createHash("sha256").update(canonicalJson(list)).digest("hex");
}

export function datasetPrefix(hash: string): string {
  return `datasets/${hash}`;
}

export async function readDatasetManifest(store: Store, hash: string): Promise<DatasetManifest | null> {
  const b = await store.getBytes(`${datasetPrefix(hash)}/${DATASET_MANIFEST}`);
  return b ? (JSON.parse(b.toString("utf8")) as DatasetManifest) : null;
}

export interface PutDatasetResult {
  hash: string;
  uri: string;
  manifest: DatasetManifest;
  /** True when the same content was already stored: nothing was uploaded. */
  existed: boolean;
}

/**
 * Stores local files (by base name) under an address, unless that address is already complete. The address is the
 * hash of the files themselves, or `address` when the caller hashes what produced them (dataprep hashes its
 * recipe, so it can skip the work before doing it).
 */
export async function putDataset(
  store: Store,
  localFiles: readonly string[],
  extra: Record<string, unknown>,
  opts: { concurrency?: number; progress?: ProgressOptions; address?: string } = {},
): Promise<PutDatasetResult> {
  const entries: FileEntry[] = [];
  const byName = new Map<string, string>();
  for (const p of localFiles) {
    const name = basename(p);
    if (byName.has(name)) throw new Error(`two dataset files are both named ${name}`);
    byName.set(name, p);
    const { size } = await stat(p);
    entries.push({ path: name, size, sha256: await sha256File(p) });
  }
  const hash = opts.address ?? datasetHash(entries);
  if (!/^[0-9a-f]{64}$/.test(hash)) throw new Error(`dataset address must be a sha256, got ${hash}`);
  const prefix = datasetPrefix(hash);
  const existing = await readDatasetManifest(store, hash);
  if (existing) return { hash, uri: store.uri(prefix), manifest: existing, existed: true };
  // Files are uploaded from their own folders; group by folder so each batch has one root.
  const byDir = new Map<string, FileEntry[]>();
  for (const e of entries) {
    const dir = dirname(byName.get(e.path)!);
    byDir.set(dir, [...(byDir.get(dir) ?? []), e]);
  }
  for (const [dir, files] of byDir) await uploadFiles(store, dir, prefix, files, { concurrency: opts.concurrency, label: `dataset ${hash.slice(0, 12)}`, progress: opts.progress });
  const manifest: DatasetManifest = { ...extra, format: "ftune-dataset/1", hash, created_at: new Date().toISOString(), files: entries };
  await store.putBytes(`${prefix}/${DATASET_MANIFEST}`, `${JSON.stringify(manifest, null, 2)}\n`, { contentType: "application/json" });
  return { hash, uri: store.uri(prefix), manifest, existed: false };
}

/** A verified local copy of a stored dataset. */
export async function pullDataset(store: Store, hash: string, to: string, opts: { concurrency?: number; progress?: ProgressOptions } = {}): Promise<DatasetManifest | null> {
  const manifest = await readDatasetManifest(store, hash);
  if (!manifest) return null;
  await downloadFiles(store, datasetPrefix(hash), to, manifest.files, { concurrency: opts.concurrency, label: `dataset ${hash.slice(0, 12)}`, progress: opts.progress });
  return manifest;
}
