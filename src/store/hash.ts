// sha256 of local files, streamed so a 13 GB model never sits in memory.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { Worker } from "node:worker_threads";

export async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 4 << 20 })) h.update(chunk as Buffer);
  return h.digest("hex");
}

export function sha256Hex(data: Buffer | string): string {
  return createHash("sha256").update(data).digest("hex");
}

// Runs in a worker thread: reads the ranges it is sent, in order, from the file and hashes them, so verifying a
// download uses another core instead of the thread that moves the bytes. Plain CommonJS source, started with
// eval, so it survives bundling.
const RANGE_HASHER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const fs = require("node:fs");
const crypto = require("node:crypto");
const fd = fs.openSync(workerData.path, "r");
const hash = crypto.createHash("sha256");
const buf = Buffer.allocUnsafe(4 << 20);
parentPort.on("message", (m) => {
  try {
    for (let pos = m.start; pos < m.end; ) {
      const n = fs.readSync(fd, buf, 0, Math.min(buf.length, m.end - pos), pos);
      if (n <= 0) throw new Error("short read at " + pos + " of " + workerData.path);
      hash.update(n === buf.length ? buf : buf.subarray(0, n));
      pos += n;
    }
    if (m.last) {
      fs.closeSync(fd);
      parentPort.postMessage({ digest: hash.digest("hex") });
    }
  } catch (e) {
    parentPort.postMessage({ error: String(e && e.message || e) });
  }
});
`;

/** sha256 of a file that is being written out of order: hand it each byte range once it is complete, in order. */
export class OrderedRangeHasher {
  private readonly worker: Worker;
  private readonly result: Promise<string>;

  constructor(path: string) {
    this.worker = new Worker(RANGE_HASHER_SOURCE, { eval: true, workerData: { path } });
    this.result = new Promise<string>((resolve, reject) => {
      this.worker.on("message", (m: { digest?: string; error?: string }) => (m.digest ? resolve(m.digest) : reject(new Error(m.error))));
      this.worker.once("error", reject);
      this.worker.once("exit", (code) => reject(new Error(`hash worker exited with code ${code}`)));
    });
    // A rejected result nobody awaits (the download failed first) must not crash the process.
    this.result.catch(() => undefined);
  }

  /** The next contiguous range [start, end); `last` when it ends the file. */
  add(start: number, end: number, last: boolean): void {
    this.worker.postMessage({ start, end, last });
  }

  async digest(): Promise<string> {
    try {
      return await this.result;
    } finally {
      await this.worker.terminate();
    }
  }

  async abort(): Promise<void> {
    await this.worker.terminate();
  }
}
