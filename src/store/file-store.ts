// A store in a local folder (file://<dir>, the embedded default). Same layout as S3; every write goes to a temp
// file in the target folder and is renamed into place, so a reader never sees half a file.
import { createReadStream, createWriteStream } from "node:fs";
import { copyFile, mkdir, readdir, readFile, rename, rm, stat, unlink, writeFile } from "node:fs/promises";
import { dirname, join, resolve, sep } from "node:path";
import { pathToFileURL } from "node:url";
import { createHash, randomBytes } from "node:crypto";
import { pipeline } from "node:stream/promises";
import { Transform, type Readable } from "node:stream";
import { UserError } from "../util/errors.js";
import type { ObjectInfo, Store, TransferOptions } from "./types.js";

const TMP = ".ftune-tmp-";

export class FileStore implements Store {
  readonly kind = "file" as const;
  readonly url: string;

  constructor(readonly root: string) {
    this.url = pathToFileURL(root).href;
  }

  private path(key: string): string {
    const p = resolve(this.root, key);
    if (p !== this.root && !p.startsWith(this.root + sep)) throw new UserError(`store key escapes the store: ${key}`);
    return p;
  }

  uri(key: string): string {
    return pathToFileURL(this.path(key)).href;
  }

  private tempFor(target: string): string {
    return join(dirname(target), `${TMP}${randomBytes(6).toString("hex")}-${target.split(sep).pop()}`);
  }

  /** Writes through a temp file in the same folder, then renames: atomic on one file system. */
  private async atomically(target: string, write: (tmp: string) => Promise<void>): Promise<void> {
    await mkdir(dirname(target), { recursive: true });
    const tmp = this.tempFor(target);
    try {
      await write(tmp);
      await rename(tmp, target);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  }

  async head(key: string): Promise<ObjectInfo | null> {
    try {
      const s = await stat(this.path(key));
      return s.isFile() ? { key, size: s.size } : null;
    } catch {
      return null;
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const base = this.path(prefix);
    const walk = async function* (dir: string, rel: string): AsyncIterable<ObjectInfo> {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch {
        return;
      }
      entries.sort((a, b) => a.name.localeCompare(b.name));
      for (const e of entries) {
        if (e.name.startsWith(TMP)) continue;
        const childRel = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory()) yield* walk(join(dir, e.name), childRel);
        else if (e.isFile()) yield { key: childRel, size: (await stat(join(dir, e.name))).size };
      }
    };
    const prefixKey = prefix.replace(/\/$/, "");
    for await (const o of walk(base, "")) yield { ...o, key: prefixKey ? `${prefixKey}/${o.key}` : o.key };
  }

  async getBytes(key: string): Promise<Buffer | null> {
    try {
      return await readFile(this.path(key));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw e;
    }
  }

  async putBytes(key: string, data: Buffer | string): Promise<void> {
    await this.atomically(this.path(key), (tmp) => writeFile(tmp, data));
  }

  async uploadFile(localPath: string, key: string, size: number, _sha256: string | undefined, opts: TransferOptions): Promise<void> {
    await opts.limiter.run(() => this.atomically(this.path(key), (tmp) => copyFile(localPath, tmp)));
    opts.progress.add(size);
  }

  async uploadStream(key: string, body: Readable, _size: number | undefined, _sha256: string | undefined, opts: TransferOptions): Promise<void> {
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        opts.progress.add(chunk.length);
        cb(null, chunk);
      },
    });
    await opts.limiter.run(() => this.atomically(this.path(key), (tmp) => pipeline(body, counter, createWriteStream(tmp), { signal: opts.signal })));
  }

  async downloadFile(key: string, localPath: string, _size: number, opts: TransferOptions): Promise<string> {
    return opts.limiter.run(async () => {
      await mkdir(dirname(localPath), { recursive: true });
      const hash = createHash("sha256");
      const tap = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          hash.update(chunk);
          opts.progress.add(chunk.length);
          cb(null, chunk);
        },
      });
      await pipeline(createReadStream(this.path(key), { highWaterMark: 4 << 20 }), tap, createWriteStream(localPath), { signal: opts.signal });
      return hash.digest("hex");
    });
  }

  async delete(key: string): Promise<void> {
    await unlink(this.path(key)).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== "ENOENT") throw e;
    });
  }

  async deletePrefix(prefix: string): Promise<number> {
    let n = 0;
    for await (const _ of this.list(prefix)) n++;
    await rm(this.path(prefix), { recursive: true, force: true });
    return n;
  }

  /** The local provider reads and writes the folder directly; there is nothing to sign. */
  async presignGet(key: string): Promise<string> {
    return this.uri(key);
  }

  async presignPut(key: string): Promise<string> {
    return this.uri(key);
  }

  /** For callers that need to stream a stored file (e.g. hashing a cached object). */
  readStream(key: string): Readable {
    return createReadStream(this.path(key));
  }
}
