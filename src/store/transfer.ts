// Moving many files at once: a pool of files in flight, every request through one Limiter, progress for the
// whole batch, and sha256 verification of every download before it is renamed into place.
import { mkdir, rename, rm } from "node:fs/promises";
import { dirname } from "node:path";
import { InfraError } from "../util/errors.js";
import { forEachPool, Limiter } from "./limiter.js";
import { Progress, type ProgressOptions } from "./progress.js";
import { joinKey, type Store } from "./types.js";

export interface FileEntry {
  /** Path relative to the set's root (also the key suffix in the store). */
  path: string;
  size: number;
  sha256: string;
}

export interface BatchOptions {
  concurrency?: number;
  label: string;
  progress?: ProgressOptions;
  signal?: AbortSignal;
  /** Called after each file lands (e.g. to journal a resumable mirror). */
  onFile?: (entry: FileEntry) => Promise<void> | void;
}

export interface BatchResult {
  files: number;
  bytes: number;
  seconds: number;
}

/** A stored object whose bytes do not match its manifest. */
export class IntegrityError extends InfraError {}

const MiB = 1 << 20;

/**
 * Part (and range) size for a batch: large enough that a small batch still splits into about `concurrency`
 * pieces (fewer, bigger requests), between 16 MiB and 64 MiB. Bigger parts would leave the last few connections
 * working alone at the end of a large batch (measured: 320 MiB parts moved 5 GB slower than awscli's 8 MiB).
 * Parts stream from disk, so their size costs no memory.
 */
export function batchPartSize(totalBytes: number, concurrency: number): number {
  const even = Math.ceil(totalBytes / Math.max(1, concurrency) / MiB) * MiB;
  return Math.min(64 * MiB, Math.max(16 * MiB, even));
}

function batch(opts: BatchOptions, totalBytes: number): { limiter: Limiter; progress: Progress; width: number; partSize: number } {
  const concurrency = opts.concurrency ?? 16;
  return {
    limiter: new Limiter(concurrency),
    progress: new Progress(opts.label, totalBytes, opts.progress),
    width: concurrency,
    partSize: batchPartSize(totalBytes, concurrency),
  };
}

/** Stops the progress display whether the batch succeeded or not. */
async function finishing(progress: Progress, work: Promise<void>): Promise<void> {
  try {
    await work;
  } catch (e) {
    progress.finish();
    throw e;
  }
}

/** Uploads local files (`root`/path) to `prefix`/path; each object carries its sha256. */
export async function uploadFiles(store: Store, root: string, prefix: string, files: readonly FileEntry[], opts: BatchOptions): Promise<BatchResult> {
  const total = files.reduce((n, f) => n + f.size, 0);
  const { limiter, progress, width, partSize } = batch(opts, total);
  await finishing(progress, forEachPool(files, width, async (f) => {
    await store.uploadFile(`${root}/${f.path}`, joinKey(prefix, f.path), f.size, f.sha256, { limiter, progress, partSize, signal: opts.signal });
    await opts.onFile?.(f);
  }));
  return { files: files.length, bytes: total, seconds: progress.finish().seconds };
}

/**
 * Downloads `prefix`/path to `root`/path. Each file lands as `<path>.ftune-part`, is checked against its sha256,
 * then renamed: an interrupted or corrupt download never looks like a complete file.
 */
export async function downloadFiles(store: Store, prefix: string, root: string, files: readonly FileEntry[], opts: BatchOptions): Promise<BatchResult> {
  const total = files.reduce((n, f) => n + f.size, 0);
  const { limiter, progress, width, partSize } = batch(opts, total);
  await finishing(progress, forEachPool(files, width, async (f) => {
    const target = `${root}/${f.path}`;
    const part = `${target}.ftune-part`;
    await mkdir(dirname(target), { recursive: true });
    const got = await store.downloadFile(joinKey(prefix, f.path), part, f.size, { limiter, progress, partSize, signal: opts.signal });
    if (got !== f.sha256) {
      await rm(part, { force: true });
      throw new IntegrityError(`${store.uri(joinKey(prefix, f.path))} is corrupt: its sha256 is ${got}, the manifest says ${f.sha256}; repair the store entry (mirror it again) and retry`);
    }
    await rename(part, target);
    await opts.onFile?.(f);
  }));
  return { files: files.length, bytes: total, seconds: progress.finish().seconds };
}

export interface PresignedFile extends FileEntry {
  url: string;
}

/**
 * Presigned GET URLs for a set of stored files, so the GPU box downloads them with no AWS credentials. SigV4 URLs
 * live at most 7 days, and no longer than the credentials that signed them (an OIDC role session: 1 h by default),
 * so size the role's session to the job.
 */
export async function presignFiles(store: Store, prefix: string, files: readonly FileEntry[], expiresSeconds: number): Promise<PresignedFile[]> {
  const expires = Math.min(Math.max(60, Math.ceil(expiresSeconds)), 7 * 24 * 3600);
  return Promise.all(files.map(async (f) => ({ ...f, url: await store.presignGet(joinKey(prefix, f.path), expires) })));
}
