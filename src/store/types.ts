// What every store backend (file://, s3://) offers. Keys are '/'-separated paths below the store's root.
// Large-file methods take the shared Limiter so one global concurrency bound holds across files and parts.
import type { Readable } from "node:stream";
import type { Limiter } from "./limiter.js";
import type { ProgressSink } from "./progress.js";

export interface ObjectInfo {
  key: string;
  size: number;
  /** sha256 recorded with the object when it was written by ftune (S3 metadata); undefined when unknown. */
  sha256?: string;
  /** The server's entity tag, when it has one (S3). */
  etag?: string;
}

export interface TransferOptions {
  limiter: Limiter;
  progress: ProgressSink;
  signal?: AbortSignal;
  /** Part/range size chosen for the whole batch (see batchPartSize); default: the store's. */
  partSize?: number;
}

export interface Store {
  /** The store's root, e.g. s3://bucket/prefix or file:///abs/dir. */
  readonly url: string;
  readonly kind: "file" | "s3";
  /** URI of one key (what manifests and run records point at). */
  uri(key: string): string;
  head(key: string): Promise<ObjectInfo | null>;
  /** Every object under a prefix, recursively. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  getBytes(key: string): Promise<Buffer | null>;
  /** Small objects in one request; the object appears whole or not at all. */
  putBytes(key: string, data: Buffer | string, meta?: { sha256?: string; contentType?: string }): Promise<void>;
  /** A local file, in parallel parts when large. `sha256` is recorded with the object. */
  uploadFile(localPath: string, key: string, size: number, sha256: string | undefined, opts: TransferOptions): Promise<void>;
  /** A stream of known or unknown length (e.g. straight from the Hub); one slot of the limiter per part in flight. */
  uploadStream(key: string, body: Readable, size: number | undefined, sha256: string | undefined, opts: TransferOptions): Promise<void>;
  /**
   * Into localPath (overwritten), in parallel ranges when large; resolves to the sha256 of the bytes written,
   * computed while the download runs. The caller compares it with the manifest and renames.
   */
  downloadFile(key: string, localPath: string, size: number, opts: TransferOptions): Promise<string>;
  delete(key: string): Promise<void>;
  deletePrefix(prefix: string): Promise<number>;
  /** A URL that reads the object with no credentials until it expires (file:// for a local store). */
  presignGet(key: string, expiresSeconds: number): Promise<string>;
  /** A URL that writes the object with a plain HTTP PUT until it expires (file:// for a local store). */
  presignPut(key: string, expiresSeconds: number): Promise<string>;
}

export interface StoreOptions {
  region?: string | null;
  endpoint?: string | null;
  forcePathStyle?: boolean;
  /** when_required: no flexible checksums (s3rver, MinIO, R2, Ceph); null/undefined: the SDK's env or default. */
  checksums?: "when_supported" | "when_required" | null;
  /** Requests in flight at once (default 16). */
  concurrency?: number;
  /** Smallest multipart part / download range in bytes (default 16 MiB). Batches use larger parts when that
   * keeps every connection busy with fewer requests, and huge files stay under S3's 10,000 parts. */
  partSize?: number;
  /** Socket idle timeout in ms before a request counts as stalled and is retried (default 60 s). */
  timeoutMs?: number;
}

export function joinKey(...parts: string[]): string {
  return parts.filter((p) => p !== "").join("/").replace(/\/{2,}/g, "/");
}
