// A store in S3 or an S3-compatible server (s3://bucket/prefix). Large files move as parallel multipart uploads
// and parallel ranged GETs through one global Limiter, each request retried with backoff; downloads are hashed in
// order while later ranges are still arriving, so verification costs almost no extra time.
import {
  AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateMultipartUploadCommand, DeleteObjectCommand,
  DeleteObjectsCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client,
  UploadPartCommand, paginateListObjectsV2, type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, type FileHandle } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import { dirname } from "node:path";
import type { Readable } from "node:stream";
import { OrderedRangeHasher } from "./hash.js";
import { TransientError, withRetry } from "./retry.js";
import type { ObjectInfo, Store, StoreOptions, TransferOptions } from "./types.js";

const MiB = 1 << 20;
const MAX_PARTS = 10_000;

export function s3ClientConfig(opts: StoreOptions, purpose: "transfer" | "presign"): S3ClientConfig {
  const sockets = Math.max(64, (opts.concurrency ?? 16) * 2);
  const cfg: S3ClientConfig = {
    followRegionRedirects: true,
    maxAttempts: 3,
    requestHandler: {
      connectionTimeout: 10_000,
      // Idle time, not total time: a stalled request fails and is retried, a slow but moving part is left alone.
      socketTimeout: opts.timeoutMs ?? 60_000,
      httpAgent: new http.Agent({ keepAlive: true, maxSockets: sockets }),
      httpsAgent: new https.Agent({ keepAlive: true, maxSockets: sockets }),
    },
  };
  // Unset options are left to the SDK, which reads AWS_REGION, AWS_ENDPOINT_URL(_S3) and
  // AWS_{REQUEST,RESPONSE}_CHECKSUM_* exactly as awscli does. awscli also reads AWS_DEFAULT_REGION; so do we.
  const region = opts.region ?? (process.env.AWS_REGION ? undefined : process.env.AWS_DEFAULT_REGION);
  if (region) cfg.region = region;
  if (opts.endpoint) cfg.endpoint = opts.endpoint;
  if (opts.forcePathStyle) cfg.forcePathStyle = true;
  if (opts.checksums === "when_required" || purpose === "presign") {
    // A presigned PUT must not carry a checksum of the empty body the SDK saw when signing.
    cfg.requestChecksumCalculation = "WHEN_REQUIRED";
    cfg.responseChecksumValidation = "WHEN_REQUIRED";
  } else if (opts.checksums === "when_supported") {
    cfg.requestChecksumCalculation = "WHEN_SUPPORTED";
    cfg.responseChecksumValidation = "WHEN_SUPPORTED";
  }
  return cfg;
}

function isNotFound(e: unknown): boolean {
  const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
  return err.name === "NotFound" || err.name === "NoSuchKey" || err.$metadata?.httpStatusCode === 404;
}

/** The ETag S3 gives a completed multipart upload: md5 of the concatenated binary part md5s, then -<parts>. */
export function multipartEtag(partEtags: readonly string[]): string {
  const md5 = createHash("md5");
  for (const e of partEtags) md5.update(Buffer.from(e.replace(/"/g, ""), "hex"));
  return `"${md5.digest("hex")}-${partEtags.length}"`;
}

/** Part size for a file: the configured size, raised so a huge file stays under S3's 10,000 parts. */
export function partSizeFor(size: number, configured: number): number {
  return Math.max(configured, 5 * MiB, Math.ceil(size / MAX_PARTS / MiB) * MiB);
}

export class S3Store implements Store {
  readonly kind = "s3" as const;
  readonly url: string;
  private readonly client: S3Client;
  /** For requests whose body is a stream: SDK retries off (withRetry reopens the stream instead). */
  private readonly streamClient: S3Client;
  private readonly presigner: S3Client;
  private readonly partSize: number;

  constructor(readonly bucket: string, readonly prefix: string, private readonly opts: StoreOptions) {
    this.url = `s3://${bucket}${prefix ? `/${prefix}` : ""}`;
    this.client = new S3Client(s3ClientConfig(opts, "transfer"));
    this.streamClient = new S3Client({ ...s3ClientConfig(opts, "transfer"), maxAttempts: 1 });
    this.presigner = new S3Client(s3ClientConfig(opts, "presign"));
    this.partSize = opts.partSize ?? 16 * MiB;
  }

  private k(key: string): string {
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  private rel(fullKey: string): string {
    return this.prefix ? fullKey.slice(this.prefix.length + 1) : fullKey;
  }

  uri(key: string): string {
    return `s3://${this.bucket}/${this.k(key)}`;
  }

  /** The full key prefix of a "folder" ("" is the store's root), ending in "/" unless it is the bucket root. */
  private folder(prefix: string): string {
    const p = prefix.replace(/^\/+|\/+$/g, "");
    if (p === "") return this.prefix ? `${this.prefix}/` : "";
    return `${this.k(p)}/`;
  }

  async head(key: string): Promise<ObjectInfo | null> {
    try {
      const r = await withRetry(() => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.k(key) })));
      return { key, size: r.ContentLength ?? 0, sha256: r.Metadata?.sha256, etag: r.ETag };
    } catch (e) {
      if (isNotFound(e)) return null;
      throw e;
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const full = this.folder(prefix);
    for await (const page of paginateListObjectsV2({ client: this.client, pageSize: 1000 }, { Bucket: this.bucket, Prefix: full })) {
      for (const o of page.Contents ?? []) if (o.Key) yield { key: this.rel(o.Key), size: o.Size ?? 0 };
    }
  }

  async getBytes(key: string): Promise<Buffer | null> {
    try {
      return await withRetry(async () => {
        const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.k(key) }));
        return Buffer.from(await r.Body!.transformToByteArray());
      });
    } catch (e) {
      if (isNotFound(e)) return null;
      throw e;
    }
  }

  async putBytes(key: string, data: Buffer | string, meta: { sha256?: string; contentType?: string } = {}): Promise<void> {
    const body = typeof data === "string" ? Buffer.from(data) : data;
    await withRetry(() =>
      this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.k(key),
          Body: body,
          ContentLength: body.length,
          ContentType: meta.contentType,
          Metadata: meta.sha256 ? { sha256: meta.sha256 } : undefined,
        }),
      ),
    );
  }

  /**
   * Parts are streamed from the file, not buffered: memory stays flat whatever the part size, and a retry opens
   * the byte range again (these requests go through a client with SDK retries off, since a consumed stream cannot
   * be resent; withRetry does the retrying).
   */
  async uploadFile(localPath: string, key: string, size: number, sha256: string | undefined, opts: TransferOptions): Promise<void> {
    const metadata = sha256 ? { sha256 } : undefined;
    const partSize = partSizeFor(size, Math.max(opts.partSize ?? 0, this.partSize));
    const body = (start: number, len: number): Readable | Buffer =>
      len === 0 ? Buffer.alloc(0) : createReadStream(localPath, { start, end: start + len - 1, highWaterMark: 1 * MiB });
    if (size <= partSize) {
      await opts.limiter.run(() =>
        withRetry(
          () => this.streamClient.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.k(key), Body: body(0, size), ContentLength: size, Metadata: metadata }), { abortSignal: opts.signal }),
          { signal: opts.signal },
        ),
      );
      opts.progress.add(size);
      return;
    }
    const created = await withRetry(() =>
      this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: this.k(key), Metadata: metadata })),
    );
    const uploadId = created.UploadId!;
    try {
      const count = Math.ceil(size / partSize);
      const etags = await Promise.all(
        Array.from({ length: count }, (_, i) =>
          opts.limiter.run(async () => {
            const start = i * partSize;
            const len = Math.min(partSize, size - start);
            const r = await withRetry(
              () =>
                this.streamClient.send(
                  new UploadPartCommand({ Bucket: this.bucket, Key: this.k(key), UploadId: uploadId, PartNumber: i + 1, Body: body(start, len), ContentLength: len }),
                  { abortSignal: opts.signal },
                ),
              { signal: opts.signal },
            );
            opts.progress.add(len);
            return r.ETag!;
          }),
        ),
      );
      await withRetry(async (attempt) => {
        try {
          await this.client.send(
            new CompleteMultipartUploadCommand({
              Bucket: this.bucket,
              Key: this.k(key),
              UploadId: uploadId,
              MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
            }),
          );
        } catch (e) {
          // A retried Complete whose first try succeeded (the answer was lost) finds the upload gone; servers say
          // so differently (NoSuchUpload, or a 500). The object is ours when it carries our sha256 (same bytes
          // either way) or S3's multipart ETag of exactly our parts.
          if (attempt > 1) {
            const head = await this.head(key).catch(() => null);
            if (head && head.size === size && ((sha256 && head.sha256 === sha256) || head.etag === multipartEtag(etags))) return;
          }
          throw e;
        }
      });
    } catch (e) {
      // Stored parts cost money until aborted.
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: this.k(key), UploadId: uploadId })).catch(() => undefined);
      throw e;
    }
  }

  async uploadStream(key: string, body: Readable, size: number | undefined, sha256: string | undefined, opts: TransferOptions): Promise<void> {
    const queueSize = 4;
    const partSize = partSizeFor(size ?? 0, Math.max(this.partSize, 8 * MiB));
    const upload = new Upload({
      client: this.client,
      queueSize,
      partSize,
      leavePartsOnError: false,
      params: { Bucket: this.bucket, Key: this.k(key), Body: body, ContentLength: size, Metadata: sha256 ? { sha256 } : undefined },
    });
    let reported = 0;
    upload.on("httpUploadProgress", (p) => {
      const loaded = p.loaded ?? 0;
      if (loaded > reported) {
        opts.progress.add(loaded - reported);
        reported = loaded;
      }
    });
    opts.signal?.addEventListener("abort", () => void upload.abort(), { once: true });
    // lib-storage keeps up to queueSize parts in flight: hold that many slots of the global limit.
    await opts.limiter.run(() => upload.done(), queueSize);
  }

  async downloadFile(key: string, localPath: string, size: number, opts: TransferOptions): Promise<string> {
    await mkdir(dirname(localPath), { recursive: true });
    const fh = await open(localPath, "w+");
    try {
      const chunk = partSizeFor(size, Math.max(opts.partSize ?? 0, this.partSize));
      const count = Math.max(1, Math.ceil(size / chunk));
      await fh.truncate(size);
      if (count === 1) {
        // One range arrives in order: hash the bytes as they are written.
        const hash = createHash("sha256");
        await opts.limiter.run(() => this.fetchRange(key, fh, 0, size - 1, size, opts, (bufs) => bufs.forEach((b) => hash.update(b))));
        return hash.digest("hex");
      }
      const complete: boolean[] = new Array<boolean>(count).fill(false);
      // Completed ranges are hashed in file order by a worker thread, overlapping the ranges still downloading.
      const hasher = new OrderedRangeHasher(localPath);
      let hashedRanges = 0;
      const advanceHash = (): void => {
        while (hashedRanges < count && complete[hashedRanges]) {
          const start = hashedRanges * chunk;
          hashedRanges++;
          hasher.add(start, Math.min(size, start + chunk), hashedRanges === count);
        }
      };
      try {
        await Promise.all(
          Array.from({ length: count }, (_, i) =>
            opts.limiter.run(async () => {
              const start = i * chunk;
              await this.fetchRange(key, fh, start, Math.min(size, start + chunk) - 1, size, opts);
              complete[i] = true;
              advanceHash();
            }),
          ),
        );
        return await hasher.digest();
      } catch (e) {
        await hasher.abort();
        throw e;
      }
    } finally {
      await fh.close();
    }
  }

  /**
   * Bytes start..last (inclusive) into fh at the same offsets; a retry resumes where the last attempt stopped.
   * `written` sees every byte once, in order, as it is written (bytes lost with a dropped connection never are).
   */
  private async fetchRange(
    key: string,
    fh: FileHandle,
    start: number,
    last: number,
    size: number,
    opts: TransferOptions,
    written?: (bufs: Buffer[]) => void,
  ): Promise<void> {
    let pos = start;
    await withRetry(
      async () => {
        if (size === 0) {
          await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.k(key) }));
          return;
        }
        const r = await this.client.send(
          new GetObjectCommand({ Bucket: this.bucket, Key: this.k(key), Range: `bytes=${pos}-${last}` }),
          { abortSignal: opts.signal },
        );
        if (r.ContentLength !== undefined && r.ContentLength !== last - pos + 1) {
          throw new Error(`${this.uri(key)}: asked for ${last - pos + 1} bytes at ${pos}, the server sent ${r.ContentLength} (is the object shorter than its manifest says?)`);
        }
        // Socket chunks are ~16-64 KiB; gathering them into one writev per few MiB cuts the syscalls (and the
        // CPU the server on the same machine needs) by two orders of magnitude, without copying.
        let pending: Buffer[] = [];
        let pendingBytes = 0;
        const flush = async (): Promise<void> => {
          if (pendingBytes === 0) return;
          await fh.writev(pending, pos);
          written?.(pending);
          pos += pendingBytes;
          opts.progress.add(pendingBytes);
          pending = [];
          pendingBytes = 0;
        };
        for await (const data of r.Body as Readable) {
          const buf = data as Buffer;
          if (pos + pendingBytes + buf.length > last + 1) throw new Error(`${this.uri(key)}: the server sent more than the requested range`);
          pending.push(buf);
          pendingBytes += buf.length;
          if (pendingBytes >= 4 * MiB) await flush();
        }
        await flush();
        if (pos !== last + 1) throw new TransientError(`${this.uri(key)}: connection ended ${last + 1 - pos} bytes early`);
      },
      { signal: opts.signal },
    );
  }

  async delete(key: string): Promise<void> {
    await withRetry(() => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.k(key) })));
  }

  async deletePrefix(prefix: string): Promise<number> {
    const keys: string[] = [];
    for await (const o of this.list(prefix)) keys.push(this.k(o.key));
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      await withRetry(() => this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } })));
    }
    return keys.length;
  }

  async presignGet(key: string, expiresSeconds: number): Promise<string> {
    return getSignedUrl(this.presigner, new GetObjectCommand({ Bucket: this.bucket, Key: this.k(key) }), { expiresIn: expiresSeconds });
  }

  async presignPut(key: string, expiresSeconds: number): Promise<string> {
    return getSignedUrl(this.presigner, new PutObjectCommand({ Bucket: this.bucket, Key: this.k(key) }), { expiresIn: expiresSeconds });
  }
}
