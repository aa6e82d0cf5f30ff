// The same suite against both backends: file:// (a temp folder) and s3:// (s3rver). Every transfer is checked
// with sha256; presigned URLs are used with plain HTTP and no credentials.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import {
  downloadFiles, IntegrityError, Limiter, NO_PROGRESS, presignFiles, sha256Hex, uploadFiles, type FileEntry,
} from "../src/store/index.js";
import { teardownAll } from "./support/processes.js";
import { fileBackend, s3Backend, type Backend } from "./helpers/stores.js";

const MiB = 1 << 20;
const work = mkdtempSync(join(tmpdir(), "ftune-store-test-"));
after(async () => {
  rmSync(work, { recursive: true, force: true });
  await teardownAll();
});

const opts = () => ({ limiter: new Limiter(8), progress: NO_PROGRESS });

function local(name: string, data: Buffer): string {
  const p = join(work, name);
  mkdirSync(join(p, ".."), { recursive: true });
  writeFileSync(p, data);
  return p;
}

async function readUrl(url: string): Promise<Buffer> {
  if (url.startsWith("file://")) return readFileSync(fileURLToPath(url));
  const res = await fetch(url);
  assert.equal(res.status, 200, `GET ${url} -> ${res.status}`);
  return Buffer.from(await res.arrayBuffer());
}

for (const make of [fileBackend, () => s3Backend("pre/fix", { partSize: 5 * MiB })]) {
  describe(`store backend`, () => {
    let b: Backend;
    before(async () => {
      b = await make();
    });
    after(async () => b?.stop());

    it("small objects: put, head, get, list, delete", async () => {
      const s = b.store;
      await s.putBytes("a/x.json", '{"x":1}', { sha256: sha256Hex('{"x":1}') });
      await s.putBytes("a/b/y.txt", "yy");
      await s.putBytes("c/z.txt", "zzz");
      assert.equal((await s.getBytes("a/x.json"))?.toString(), '{"x":1}');
      assert.equal(await s.getBytes("nope"), null);
      assert.equal((await s.head("a/b/y.txt"))?.size, 2);
      assert.equal(await s.head("a/nope"), null);
      if (b.name === "s3") assert.equal((await s.head("a/x.json"))?.sha256, sha256Hex('{"x":1}'));
      const keys: string[] = [];
      for await (const o of s.list("a")) keys.push(`${o.key}:${o.size}`);
      assert.deepEqual(keys.sort(), ["a/b/y.txt:2", "a/x.json:7"]);
      const all: string[] = [];
      for await (const o of s.list("")) all.push(o.key);
      assert.deepEqual(all.sort(), ["a/b/y.txt", "a/x.json", "c/z.txt"]);
      await s.delete("c/z.txt");
      assert.equal(await s.head("c/z.txt"), null);
      assert.equal(await s.deletePrefix("a"), 2);
      assert.equal(await s.getBytes("a/x.json"), null);
      assert.match(s.uri("k/v"), b.name === "s3" ? /^s3:\/\/ftune-store\/pre\/fix\/k\/v$/ : /^file:\/\/\/.*\/k\/v$/);
    });

    it("a large file moves in parallel parts/ranges with identical sha256; the download hash is computed on the way", async () => {
      const data = randomBytes(23 * MiB + 12345);
      const src = local(`${b.name}/big.bin`, data);
      await b.store.uploadFile(src, "big/data.bin", data.length, sha256Hex(data), opts());
      assert.equal((await b.store.head("big/data.bin"))?.size, data.length);
      const dst = join(work, `${b.name}-big.out`);
      const got = await b.store.downloadFile("big/data.bin", dst, data.length, opts());
      assert.equal(got, sha256Hex(data));
      assert.equal(sha256Hex(readFileSync(dst)), sha256Hex(data));
    });

    it("empty and small files round-trip", async () => {
      for (const [name, data] of [["empty", Buffer.alloc(0)], ["small", randomBytes(1000)]] as const) {
        const src = local(`${b.name}/${name}`, data);
        await b.store.uploadFile(src, `s/${name}`, data.length, sha256Hex(data), opts());
        const got = await b.store.downloadFile(`s/${name}`, join(work, `${b.name}-${name}.out`), data.length, opts());
        assert.equal(got, sha256Hex(data), name);
      }
    });

    it("a stream of known length uploads (the Hub-to-store path)", async () => {
      const data = randomBytes(12 * MiB);
      const chunks = Array.from({ length: 12 }, (_, i) => data.subarray(i * MiB, (i + 1) * MiB));
      await b.store.uploadStream("stream/s.bin", Readable.from(chunks), data.length, undefined, opts());
      assert.equal(sha256Hex((await b.store.getBytes("stream/s.bin"))!), sha256Hex(data));
    });

    it("presigned URLs read and write with no credentials", async () => {
      await b.store.putBytes("p/in.txt", "hello box");
      const get = await b.store.presignGet("p/in.txt", 600);
      assert.equal((await readUrl(get)).toString(), "hello box");
      const put = await b.store.presignPut("p/out.txt", 600);
      if (b.name === "s3") {
        assert.doesNotMatch(put, /x-amz-checksum|x-amz-sdk-checksum/i, "a presigned PUT must not pin a checksum");
        const res = await fetch(put, { method: "PUT", body: "from the box" });
        assert.equal(res.status, 200);
      } else {
        writeFileSync(fileURLToPath(put), "from the box");
      }
      assert.equal((await b.store.getBytes("p/out.txt"))?.toString(), "from the box");
      // A file set at the store's root (no prefix) is presigned by its own key.
      await b.store.putBytes("root.txt", "at the root");
      const [root] = await presignFiles(b.store, "", [{ path: "root.txt", size: 11, sha256: sha256Hex("at the root") }], 600);
      assert.equal((await readUrl(root!.url)).toString(), "at the root");
    });

    it("batches verify every file; a corrupted stored object is detected and never renamed into place", async () => {
      const root = join(work, `${b.name}-batch`);
      const files: FileEntry[] = [];
      for (const [name, size] of [["w/one.bin", 7 * MiB], ["w/two.bin", 100], ["three.json", 10]] as const) {
        const data = randomBytes(size);
        local(`${b.name}-batch/${name}`, data);
        files.push({ path: name, size, sha256: sha256Hex(data) });
      }
      await uploadFiles(b.store, root, "batch", files, { label: "up", progress: { quiet: true } });
      const out = join(work, `${b.name}-batch-out`);
      const r = await downloadFiles(b.store, "batch", out, files, { label: "down", progress: { quiet: true } });
      assert.equal(r.files, 3);
      for (const f of files) assert.equal(sha256Hex(readFileSync(join(out, f.path))), f.sha256);

      // Same size, different bytes: only the sha256 can tell.
      await b.store.putBytes("batch/w/two.bin", randomBytes(100));
      const out2 = join(work, `${b.name}-batch-out2`);
      await assert.rejects(downloadFiles(b.store, "batch", out2, files, { label: "down", progress: { quiet: true } }), (e: unknown) => {
        assert.ok(e instanceof IntegrityError);
        assert.match((e as Error).message, /batch\/w\/two\.bin is corrupt: its sha256 is [0-9a-f]{64}, the manifest says/);
        return true;
      });
      assert.equal(existsSync(join(out2, "w/two.bin")), false);
      assert.equal(existsSync(join(out2, "w/two.bin.ftune-part")), false);
    });

    if (make === fileBackend) {
      it("keys cannot escape the store folder", async () => {
        await assert.rejects(b.store.putBytes("../outside", "x"), /escapes the store/);
      });
    }
  });
}
