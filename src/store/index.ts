// The store stage's public interface: openStore(url) for file://<dir> and s3://bucket/prefix, the batch transfer
// engine, and the dataset and run stores on top (models live in src/models, which adds the Hub).
import { isAbsolute, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { UserError } from "../util/errors.js";
import type { StorageConfig } from "../config/index.js";
import { FileStore } from "./file-store.js";
import { S3Store } from "./s3-store.js";
import type { Store, StoreOptions } from "./types.js";

export type { ObjectInfo, Store, StoreOptions, TransferOptions } from "./types.js";
export { joinKey } from "./types.js";
export { batchPartSize, downloadFiles, presignFiles, uploadFiles, IntegrityError, type FileEntry, type BatchResult, type PresignedFile } from "./transfer.js";
export { Limiter, forEachPool } from "./limiter.js";
export { Progress, NO_PROGRESS, formatBytes, formatDuration, type ProgressOptions, type ProgressSink } from "./progress.js";
export { withRetry, isRetryable } from "./retry.js";
export { sha256File, sha256Hex } from "./hash.js";

export const DEFAULT_STORE_URL = "file://.ftune/store";

/** Store options from a config's storage group (flags override them field by field). */
export function storeOptionsFromConfig(storage: StorageConfig | undefined): StoreOptions {
  if (!storage) return {};
  return {
    region: storage.region,
    endpoint: storage.endpoint,
    forcePathStyle: storage.force_path_style,
    checksums: storage.checksums,
    concurrency: storage.concurrency,
    partSize: storage.part_size_mb * 2 ** 20,
  };
}

/**
 * file://<dir> (relative dirs are relative to `cwd`; file:///abs also works) or s3://bucket[/prefix].
 * Throws UserError for anything else.
 */
export function openStore(url: string, opts: StoreOptions = {}, cwd = process.cwd()): Store {
  const m = /^([a-z0-9]+):\/\/(.*)$/i.exec(url);
  if (!m) throw new UserError(`store URL ${JSON.stringify(url)} is not file://<dir> or s3://<bucket>/<prefix>`);
  const scheme = m[1]!.toLowerCase();
  const rest = m[2]!;
  if (scheme === "file") {
    const dir = rest.startsWith("/") ? fileURLToPath(`file://${rest}`) : rest;
    if (!dir) throw new UserError(`store URL ${url}: no folder`);
    return new FileStore(isAbsolute(dir) ? dir : resolve(cwd, dir));
  }
  if (scheme === "s3") {
    const [bucket, ...prefix] = rest.split("/");
    if (!bucket || !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) throw new UserError(`store URL ${url}: ${JSON.stringify(bucket)} is not a valid S3 bucket name`);
    return new S3Store(bucket, prefix.filter(Boolean).join("/"), opts);
  }
  throw new UserError(`store URL ${url}: unsupported scheme ${scheme}:// (use file:// or s3://)`);
}
export { datasetHash, datasetPrefix, pullDataset, putDataset, readDatasetManifest, type DatasetManifest, type PutDatasetResult } from "./datasets.js";
export { newRunId, RunStore, type RunRecord, type RunStatus } from "./runs.js";
