// The box agent (python3 standard library only): fetches inputs through presigned URLs with sha256 checks and
// uploads outputs through presigned PUTs, against s3rver and a local store.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes, createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { presignFiles, type FileEntry } from "../src/store/index.js";
import { teardownAll } from "./support/processes.js";
import { REPO } from "./helpers/cli.js";
import { fileBackend, s3Backend, type Backend } from "./helpers/stores.js";

const AGENT = join(REPO, "src", "agent", "ftune_agent.py");
const work = mkdtempSync(join(tmpdir(), "ftune-agent-test-"));
const sha256 = (b: Buffer): string => createHash("sha256").update(b).digest("hex");
after(async () => {
  rmSync(work, { recursive: true, force: true });
  await teardownAll();
});

function agent(...args: string[]): { code: number | null; stderr: string } {
  const r = spawnSync("python3", [AGENT, ...args], { encoding: "utf8", env: { PATH: process.env.PATH!, HOME: work } });
  return { code: r.status, stderr: r.stderr };
}

for (const make of [fileBackend, () => s3Backend("agent")]) {
  describe("box agent", () => {
    let b: Backend;
    const files: FileEntry[] = [];
    before(async () => {
      b = await make();
      for (const [path, size] of [["model/config.json", 100], ["model/model.safetensors", 5 << 20], ["data/train.jsonl", 30_000]] as const) {
        const data = randomBytes(size);
        await b.store.putBytes(`inputs/${path}`, data);
        files.push({ path, size, sha256: sha256(data) });
      }
    });
    after(async () => b?.stop());

    it("fetches every input through presigned URLs, verified, and keeps what is already right", async () => {
      const manifest = join(work, `${b.name}-inputs.json`);
      writeFileSync(manifest, JSON.stringify(await presignFiles(b.store, "inputs", files, 3600)));
      const dest = join(work, `${b.name}-box`);
      const first = agent("fetch", "--manifest", manifest, "--dest", dest);
      assert.equal(first.code, 0, first.stderr);
      assert.match(first.stderr, /fetched 3/);
      for (const f of files) assert.equal(sha256(readFileSync(join(dest, f.path))), f.sha256);
      const again = agent("fetch", "--manifest", manifest, "--dest", dest);
      assert.match(again.stderr, /kept 3/);
    });

    it("refuses a file that does not match its sha256 and leaves no partial file", async () => {
      const bad = (await presignFiles(b.store, "inputs", files, 3600)).map((f, i) => (i === 1 ? { ...f, sha256: "0".repeat(64) } : f));
      const manifest = join(work, `${b.name}-bad.json`);
      writeFileSync(manifest, JSON.stringify(bad));
      const dest = join(work, `${b.name}-box-bad`);
      const r = agent("fetch", "--manifest", manifest, "--dest", dest);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /FAILED model\/model\.safetensors: .*does not match the manifest's 0{64}/);
      assert.equal(existsSync(join(dest, "model/model.safetensors")), false);
      assert.equal(existsSync(join(dest, "model/model.safetensors.ftune-part")), false);
      assert.equal(agent("fetch", "--manifest", join(work, "missing.json"), "--dest", dest).code, 1);
    });

    if (make !== fileBackend) {
      it("uploads outputs through presigned PUT URLs", async () => {
        const local = join(work, "adapter_model.safetensors");
        const data = randomBytes(200_000);
        writeFileSync(local, data);
        const manifest = join(work, "outputs.json");
        writeFileSync(manifest, JSON.stringify([{ path: local, url: await b.store.presignPut("outputs/adapter_model.safetensors", 3600) }]));
        const r = agent("upload", "--manifest", manifest);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(sha256((await b.store.getBytes("outputs/adapter_model.safetensors"))!), sha256(data));
      });
    }
  });
}
