// The model store: base models cached in the store as models/<hf-id>@<commit>/ with _ftune_manifest.json
// (path, size, sha256 per file) written last, so "present" means "manifest present". Mirroring streams each
// file from the Hub into the store (no local staging) or copies a local folder (--from); an interrupted mirror
// keeps a journal of finished files, so a rerun moves only what is missing or wrong.
import { readdir, stat, writeFile, mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Readable } from "node:stream";
import { UserError } from "../util/errors.js";
import { hubFileCheck, type HubClient, type HubFile } from "../hub/index.js";
import {
  batchPartSize, downloadFiles, forEachPool, Limiter, presignFiles, Progress, sha256File, withRetry, type FileEntry, type PresignedFile,
  type ProgressOptions, type Store,
} from "../store/index.js";
import { TransientError } from "../store/retry.js";
import { selectModelFiles } from "./select.js";

export const MANIFEST = "_ftune_manifest.json";
const JOURNAL = "_ftune_partial.json";

export interface ModelManifest {
  format: "ftune-model/1";
  model: string;
  /** The revision as asked (branch, tag, sha, or a label for --from). */
  revision: string;
  /** The Hub commit it resolved to; null for a local folder. */
  commit: string | null;
  source: string;
  created_at: string;
  files: FileEntry[];
  bytes: number;
}

export interface TransferSummary {
  /** Files and bytes that moved in this call (files already present and verified are not counted). */
  files: number;
  bytes: number;
  seconds: number;
  reused: number;
}

export interface MirrorResult {
  manifest: ModelManifest;
  uri: string;
  /** True when the manifest was already there: nothing was checked or moved. */
  already: boolean;
  transferred: TransferSummary;
}

export interface MirrorOptions {
  model: string;
  revision?: string;
  /** Fill the cache from this local folder instead of the Hub. */
  from?: string;
  hub?: HubClient;
  allow?: readonly string[] | null;
  ignore?: readonly string[] | null;
  concurrency?: number;
  progress?: ProgressOptions;
  signal?: AbortSignal;
}

export function modelPrefix(model: string, revision: string): string {
  return `models/${model}@${revision}`;
}

const isSha = (rev: string): boolean => /^[0-9a-f]{40}$/.test(rev);

async function readJson<T>(store: Store, key: string): Promise<T | null> {
  const bytes = await store.getBytes(key);
  return bytes ? (JSON.parse(bytes.toString("utf8")) as T) : null;
}

export async function readModelManifest(store: Store, prefix: string): Promise<ModelManifest | null> {
  return readJson<ModelManifest>(store, `${prefix}/${MANIFEST}`);
}

/** Files finished by an earlier, interrupted mirror, written after each file so a rerun can trust them. */
class Journal {
  private entries = new Map<string, FileEntry>();
  private writing: Promise<void> = Promise.resolve();

  constructor(private readonly store: Store, private readonly key: string) {}

  async load(): Promise<void> {
    let list: FileEntry[] = [];
    try {
      list = (await readJson<FileEntry[]>(this.store, this.key)) ?? [];
    } catch {
      // A journal cut short (a store without atomic writes, a crash mid-write) only costs re-sending those files.
    }
    this.entries = new Map(list.map((e) => [e.path, e]));
  }

  get(path: string): FileEntry | undefined {
    return this.entries.get(path);
  }

  /** Records a finished file; writes are serialised so the journal object is never a stale overwrite. */
  add(entry: FileEntry): Promise<void> {
    this.entries.set(entry.path, entry);
    const snapshot = JSON.stringify([...this.entries.values()]);
    this.writing = this.writing.then(() => this.store.putBytes(this.key, snapshot, { contentType: "application/json" }));
    return this.writing;
  }

  async remove(): Promise<void> {
    await this.writing;
    await this.store.delete(this.key);
  }
}

/** A journalled file counts as done when the stored object still has its size (and its Hub sha256 agrees). */
async function alreadyStored(store: Store, prefix: string, journal: Journal, path: string, size: number, sha256?: string): Promise<FileEntry | undefined> {
  const j = journal.get(path);
  if (!j || j.size !== size || (sha256 && j.sha256 !== sha256)) return undefined;
  const head = await store.head(`${prefix}/${path}`);
  return head && head.size === size ? j : undefined;
}

/** An existing manifest: the mirror is complete and nothing is checked or moved. */
function alreadyMirrored(store: Store, prefix: string, manifest: ModelManifest): MirrorResult {
  return { manifest, uri: store.uri(prefix), already: true, transferred: { files: 0, bytes: 0, seconds: 0, reused: manifest.files.length } };
}

/** Writes the manifest (the last write of the set: its presence is what "mirrored" means) and drops the journal. */
async function finishMirror(
  store: Store,
  prefix: string,
  journal: Journal,
  origin: Pick<ModelManifest, "model" | "revision" | "commit" | "source">,
  files: FileEntry[],
  moved: { files: number; bytes: number; seconds: number },
): Promise<MirrorResult> {
  const manifest: ModelManifest = {
    format: "ftune-model/1",
    ...origin,
    created_at: new Date().toISOString(),
    files,
    bytes: files.reduce((n, f) => n + f.size, 0),
  };
  await store.putBytes(`${prefix}/${MANIFEST}`, `${JSON.stringify(manifest, null, 2)}\n`, { contentType: "application/json" });
  await journal.remove();
  return { manifest, uri: store.uri(prefix), already: false, transferred: { ...moved, reused: files.length - moved.files } };
}

async function mirrorFromHub(store: Store, o: MirrorOptions & { hub: HubClient }): Promise<MirrorResult> {
  const revision = o.revision ?? "main";
  const repo = await o.hub.repo("model", o.model, revision);
  const { selected } = selectModelFiles(repo.files, o.allow, o.ignore);
  if (selected.length === 0) throw new UserError(`model ${o.model}@${revision}: no file matches the selection (model.allow_patterns / ignore_patterns)`);
  const prefix = modelPrefix(o.model, repo.sha);
  const existing = await readModelManifest(store, prefix);
  if (existing) return alreadyMirrored(store, prefix, existing);

  const journal = new Journal(store, `${prefix}/${JOURNAL}`);
  await journal.load();
  const done = new Map<string, FileEntry>();
  const todo: HubFile[] = [];
  for (const f of selected) {
    const stored = await alreadyStored(store, prefix, journal, f.path, f.size, f.sha256);
    if (stored) done.set(f.path, stored);
    else todo.push(f);
  }
  const concurrency = o.concurrency ?? 16;
  const limiter = new Limiter(concurrency);
  const progress = new Progress(`mirror ${o.model}@${repo.sha.slice(0, 12)}`, todo.reduce((n, f) => n + f.size, 0), o.progress);
  try {
    // Each streamed upload holds up to 4 requests; more files than concurrency/4 would only queue.
    await forEachPool(todo, Math.max(1, Math.floor(concurrency / 4)), async (f) => {
      const entry = await withRetry(async () => {
        const body: Readable = await o.hub.download("model", o.model, repo.sha, f.path, o.signal);
        const check = hubFileCheck(f);
        body.once("error", (e) => check.tap.destroy(e));
        await store.uploadStream(`${prefix}/${f.path}`, body.pipe(check.tap), f.size, f.sha256, { limiter, progress, signal: o.signal });
        const got = check.finish();
        if (!got.matches) {
          await store.delete(`${prefix}/${f.path}`);
          throw new TransientError(`${f.path}: the Hub sent ${got.bytes} bytes that do not match its listing (size ${f.size}); retrying`);
        }
        return { path: f.path, size: f.size, sha256: got.sha256 };
      }, { signal: o.signal });
      done.set(f.path, entry);
      await journal.add(entry);
    });
  } finally {
    progress.finish();
  }
  const bytes = todo.reduce((n, f) => n + f.size, 0);
  return finishMirror(store, prefix, journal, { model: o.model, revision, commit: repo.sha, source: o.hub.endpoint }, selected.map((f) => done.get(f.path)!), {
    files: todo.length,
    bytes,
    seconds: progress.finish().seconds,
  });
}

async function listLocal(root: string): Promise<{ path: string; size: number }[]> {
  const out: { path: string; size: number }[] = [];
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const e of (await readdir(dir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      if (e.name.startsWith(".")) continue; // .git, .cache (huggingface_hub's download metadata)
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(join(dir, e.name), p);
      else if (e.isFile() || e.isSymbolicLink()) out.push({ path: p, size: (await stat(join(dir, e.name))).size });
    }
  };
  await walk(root, "");
  return out;
}

async function mirrorFromFolder(store: Store, o: MirrorOptions & { from: string }): Promise<MirrorResult> {
  const root = resolve(o.from);
  const revision = o.revision ?? "main";
  let listing;
  try {
    listing = await listLocal(root);
  } catch (e) {
    throw new UserError(`--from ${o.from}: ${(e as Error).message}`);
  }
  const { selected } = selectModelFiles(listing, o.allow, o.ignore);
  if (selected.length === 0) throw new UserError(`--from ${o.from}: no model files found (config.json, tokenizer files, *.safetensors)`);
  const prefix = modelPrefix(o.model, revision);
  const existing = await readModelManifest(store, prefix);
  if (existing) return alreadyMirrored(store, prefix, existing);

  const journal = new Journal(store, `${prefix}/${JOURNAL}`);
  await journal.load();
  const concurrency = o.concurrency ?? 16;
  const limiter = new Limiter(concurrency);
  const total = selected.reduce((n, f) => n + f.size, 0);
  const partSize = batchPartSize(total, concurrency);
  const progress = new Progress(`mirror ${o.model}@${revision} from ${o.from}`, total, o.progress);
  const done = new Map<string, FileEntry>();
  const uploads: Promise<void>[] = [];
  let failed: unknown;
  let moved = 0;
  let movedBytes = 0;
  try {
    // One file is hashed at a time while the files hashed before it upload: hashing overlaps the transfer
    // instead of preceding it, and never competes with itself for the disk.
    for (const f of selected) {
      if (failed !== undefined) break;
      const entry: FileEntry = { path: f.path, size: f.size, sha256: await sha256File(join(root, f.path)) };
      done.set(f.path, entry);
      if (await alreadyStored(store, prefix, journal, f.path, f.size, entry.sha256)) {
        progress.add(f.size);
        continue;
      }
      uploads.push(
        store
          .uploadFile(join(root, f.path), `${prefix}/${f.path}`, f.size, entry.sha256, { limiter, progress, partSize, signal: o.signal })
          .then(async () => {
            moved++;
            movedBytes += f.size;
            await journal.add(entry);
          })
          .catch((e: unknown) => {
            failed ??= e;
          }),
      );
    }
    await Promise.all(uploads);
    if (failed !== undefined) throw failed;
  } finally {
    progress.finish();
  }
  return finishMirror(store, prefix, journal, { model: o.model, revision, commit: isSha(revision) ? revision : null, source: "local" }, selected.map((f) => done.get(f.path)!), {
    files: moved,
    bytes: movedBytes,
    seconds: progress.finish().seconds,
  });
}

export async function mirrorModel(store: Store, o: MirrorOptions): Promise<MirrorResult> {
  if (o.from) return mirrorFromFolder(store, { ...o, from: o.from });
  if (!o.hub) throw new UserError("mirroring from the Hub needs a Hub client");
  return mirrorFromHub(store, { ...o, hub: o.hub });
}

/** The manifest for model@revision: looked up under the revision as given, then under the commit the Hub resolves it to. */
export async function findModel(store: Store, model: string, revision = "main", hub?: HubClient): Promise<{ prefix: string; manifest: ModelManifest } | null> {
  const direct = modelPrefix(model, revision);
  const m = await readModelManifest(store, direct);
  if (m) return { prefix: direct, manifest: m };
  if (!hub || isSha(revision)) return null;
  let sha: string;
  try {
    sha = (await hub.repo("model", model, revision)).sha;
  } catch (e) {
    // Not stored under this name, and the Hub cannot say which commit it means: that is "not in the store".
    if (e instanceof UserError) return null;
    throw new UserError(`model ${model}@${revision} is not stored under that name, and the Hub could not resolve it to a commit (${(e as Error).message}); pull by the stored revision or commit sha (ftune models ls)`);
  }
  const resolved = modelPrefix(model, sha);
  const r = await readModelManifest(store, resolved);
  return r ? { prefix: resolved, manifest: r } : null;
}

export interface PullOptions {
  model: string;
  revision?: string;
  to: string;
  hub?: HubClient;
  concurrency?: number;
  progress?: ProgressOptions;
  signal?: AbortSignal;
}

/** A verified local copy: files already there with the right sha256 are kept; the rest are downloaded and checked. */
export async function pullModel(store: Store, o: PullOptions): Promise<{ manifest: ModelManifest; dir: string; transferred: TransferSummary }> {
  const found = await findModel(store, o.model, o.revision, o.hub);
  if (!found) throw new UserError(`model ${o.model}@${o.revision ?? "main"} is not in the store ${store.url}; run: ftune models mirror ${o.model}${o.revision ? ` --revision ${o.revision}` : ""}`);
  const dir = resolve(o.to);
  const todo: FileEntry[] = [];
  for (const f of found.manifest.files) {
    const local = join(dir, f.path);
    const s = await stat(local).catch(() => null);
    if (!s || s.size !== f.size || (await sha256File(local)) !== f.sha256) todo.push(f);
  }
  const r = await downloadFiles(store, found.prefix, dir, todo, {
    concurrency: o.concurrency,
    label: `pull ${o.model}@${found.manifest.revision}`,
    progress: o.progress,
    signal: o.signal,
  });
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, MANIFEST), `${JSON.stringify(found.manifest, null, 2)}\n`);
  return { manifest: found.manifest, dir, transferred: { ...r, reused: found.manifest.files.length - todo.length } };
}

export interface ModelListing {
  model: string;
  revision: string;
  commit: string | null;
  uri: string;
  files: number;
  bytes: number;
  created_at: string;
}

export async function listModels(store: Store): Promise<ModelListing[]> {
  const out: ModelListing[] = [];
  for await (const o of store.list("models")) {
    if (!o.key.endsWith(`/${MANIFEST}`)) continue;
    const prefix = o.key.slice(0, -MANIFEST.length - 1);
    const m = await readModelManifest(store, prefix);
    if (!m) continue;
    out.push({ model: m.model, revision: m.revision, commit: m.commit, uri: store.uri(prefix), files: m.files.length, bytes: m.bytes, created_at: m.created_at });
  }
  return out.sort((a, b) => a.model.localeCompare(b.model) || b.created_at.localeCompare(a.created_at));
}

/** Presigned GET URLs for every file of a stored model (see presignFiles for the expiry rules). */
export async function presignModel(store: Store, prefix: string, manifest: ModelManifest, expiresSeconds: number): Promise<PresignedFile[]> {
  return presignFiles(store, prefix, manifest.files, expiresSeconds);
}
