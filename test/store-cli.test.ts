// `ftune models` end to end against s3rver, awscli as the reference client both ways, a mirror killed mid-transfer
// and resumed, and transfers through a proxy that injects S3 errors, resets and stalls.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { mirrorModel, pullModel, modelPrefix } from "../src/models/index.js";
import { openStore } from "../src/store/index.js";
import { startFaultyProxy } from "./support/faulty-proxy.js";
import { teardownAll } from "./support/processes.js";
import { CLI, ftune } from "./helpers/cli.js";
import { BUCKET, s3Backend, type Backend } from "./helpers/stores.js";

const MiB = 1 << 20;
const AWS = "/usr/bin/aws";
const work = mkdtempSync(join(tmpdir(), "ftune-store-cli-"));
const sha256 = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

let b: Backend;
let flags: string[];
let env: Record<string, string>;
before(async () => {
  b = await s3Backend("cli");
  flags = ["--store", b.url, "--endpoint", b.options.endpoint!, "--path-style", "--checksums", "when_required"];
  env = { ...b.env, HF_ENDPOINT: "http://127.0.0.1:9", FTUNE_PROGRESS_SECONDS: "1" };
});
after(async () => {
  await b?.stop();
  rmSync(work, { recursive: true, force: true });
  await teardownAll();
});

function modelDir(name: string, sizes: Record<string, number>): string {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  for (const [file, size] of Object.entries(sizes)) writeFileSync(join(dir, file), file.endsWith(".json") ? JSON.stringify({ file }) : randomBytes(size));
  return dir;
}

function aws(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(AWS, ["--endpoint-url", b.options.endpoint!, ...args], { env: { PATH: process.env.PATH!, HOME: work, ...b.env }, encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("ftune models CLI on S3", () => {
  it("mirror --from, ls and pull print one JSON object each", () => {
    const dir = modelDir("cli-model", { "config.json": 0, "model.safetensors": 11 * MiB, "tokenizer.json": 0 });
    const m = ftune(["models", "mirror", "acme/cli-model", "--from", dir, "--revision", "v1", ...flags, "--json"], { env });
    assert.equal(m.code, 0, m.stderr);
    const mj = JSON.parse(m.stdout) as { model: string; revision: string; uri: string; files: number; bytes: number; transferred: { files: number } };
    assert.equal(mj.model, "acme/cli-model");
    assert.equal(mj.uri, `${b.url}/models/acme/cli-model@v1`);
    assert.equal(mj.files, 3);
    assert.equal(mj.transferred.files, 3);
    assert.match(m.stderr, /mirror acme\/cli-model@v1 from .*: done, 11\.\d MB/);

    const ls = JSON.parse(ftune(["models", "ls", ...flags, "--json"], { env }).stdout) as { models: { model: string; revision: string; uri: string; files: number; bytes: number }[] };
    assert.deepEqual(ls.models.map((x) => [x.model, x.revision, x.files, x.bytes, x.uri]), [["acme/cli-model", "v1", 3, mj.bytes, mj.uri]]);

    const to = join(work, "cli-pulled");
    const p = ftune(["models", "pull", "acme/cli-model", "--revision", "v1", "--to", to, ...flags, "--json"], { env });
    assert.equal(p.code, 0, p.stderr);
    assert.equal((JSON.parse(p.stdout) as { transferred: { files: number } }).transferred.files, 3);
    assert.equal(sha256(readFileSync(join(to, "model.safetensors"))), sha256(readFileSync(join(dir, "model.safetensors"))));
  });

  it("awscli reads what ftune wrote, and ftune reads what awscli wrote", async () => {
    const listed = aws(["s3", "ls", "--recursive", `${b.url}/models/acme/cli-model@v1/`]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /models\/acme\/cli-model@v1\/model\.safetensors/);
    assert.match(listed.stdout, /models\/acme\/cli-model@v1\/_ftune_manifest\.json/);
    const out = join(work, "aws-got.safetensors");
    assert.equal(aws(["s3", "cp", `${b.url}/models/acme/cli-model@v1/model.safetensors`, out]).code, 0);
    assert.equal(sha256(readFileSync(out)), sha256(readFileSync(join(work, "cli-model", "model.safetensors"))));

    // awscli uploads a folder (its own multipart for the big file); ftune mirrors nothing but reads it back verified.
    const dir = modelDir("aws-model", { "config.json": 0, "model.safetensors": 19 * MiB });
    assert.equal(aws(["s3", "cp", "--recursive", dir, `${b.url}/from-aws/`]).code, 0);
    const store = openStore(b.url, b.options);
    const got = await store.downloadFile("from-aws/model.safetensors", join(work, "ftune-got"), 19 * MiB, {
      limiter: new (await import("../src/store/index.js")).Limiter(8),
      progress: { add: () => undefined },
    });
    assert.equal(got, sha256(readFileSync(join(dir, "model.safetensors"))));
  });

  it("a mirror killed mid-transfer resumes: only missing files move, the manifest appears only at the end", async () => {
    const sizes: Record<string, number> = { "config.json": 0 };
    for (let i = 1; i <= 8; i++) sizes[`model-0000${i}-of-00008.safetensors`] = 6 * MiB;
    const dir = modelDir("killed-model", sizes);
    const store = openStore(b.url, b.options);
    const prefix = modelPrefix("acme/killed", "v1");
    const child = spawn(process.execPath, [CLI, "models", "mirror", "acme/killed", "--from", dir, "--revision", "v1", ...flags, "--concurrency", "1"], {
      env: { ...process.env, ...env },
      stdio: "ignore",
    });
    // Kill it as soon as some, but not all, files are journaled.
    let journaled = 0;
    for (let i = 0; i < 400 && journaled === 0; i++) {
      await sleep(25);
      const j = await store.getBytes(`${prefix}/_ftune_partial.json`);
      try {
        journaled = j ? (JSON.parse(j.toString()) as unknown[]).length : 0;
      } catch {
        journaled = 0; // s3rver serves an object while its PUT is still being written; real S3 does not
      }
    }
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    assert.ok(journaled > 0 && journaled < 9, `journaled ${journaled}`);
    assert.equal(await store.head(`${prefix}/_ftune_manifest.json`), null, "manifest must not exist after a kill");

    const r = ftune(["models", "mirror", "acme/killed", "--from", dir, "--revision", "v1", ...flags, "--json"], { env });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { files: number; transferred: { files: number; reused: number } };
    assert.equal(out.files, 9);
    assert.ok(out.transferred.reused >= journaled, JSON.stringify(out));
    assert.equal(out.transferred.files + out.transferred.reused, 9);
    assert.ok(await store.head(`${prefix}/_ftune_manifest.json`));
  });

  it("exit codes: a model not in the store is a user error (1); an unreachable store is infrastructure (2)", () => {
    const missing = ftune(["models", "pull", "acme/none", "--revision", "v1", "--to", join(work, "none"), ...flags], { env });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /acme\/none@v1 is not stored under that name, and the Hub could not resolve it/);
    const dead = ftune(["models", "ls", "--store", "s3://bkt/x", "--endpoint", "http://127.0.0.1:9", "--path-style"], { env });
    assert.equal(dead.code, 2, dead.stderr);
    assert.doesNotMatch(dead.stderr, /\n\s+at /);
  });
});

describe("transfers through injected faults", () => {
  it("503s, SlowDown, 500s, resets and mid-body drops are survived with correct bytes", async () => {
    const proxy = await startFaultyProxy({ target: b.options.endpoint!, rate: 0.25, kinds: ["503", "slowdown", "500", "reset", "reset-mid-body"], seed: 7, maxConsecutive: 3 });
    try {
      const store = openStore(`s3://${BUCKET}/faults`, { ...b.options, endpoint: proxy.endpoint, partSize: 5 * MiB, concurrency: 8 });
      const dir = modelDir("faulty-model", { "config.json": 0, "model-1.safetensors": 23 * MiB, "model-2.safetensors": 9 * MiB, "tokenizer.json": 0 });
      const m = await mirrorModel(store, { model: "acme/faulty", revision: "v1", from: dir, progress: { quiet: true } });
      const to = join(work, "faulty-pulled");
      await pullModel(store, { model: "acme/faulty", revision: "v1", to, progress: { quiet: true } });
      for (const f of m.manifest.files) assert.equal(sha256(readFileSync(join(to, f.path))), sha256(readFileSync(join(dir, f.path))), f.path);
      const faults = proxy.stats["503"] + proxy.stats.slowdown + proxy.stats["500"] + proxy.stats.reset + proxy.stats["reset-mid-body"];
      const kinds = (["503", "slowdown", "500", "reset", "reset-mid-body"] as const).filter((k) => proxy.stats[k] > 0);
      assert.ok(faults >= 5 && kinds.length >= 4, JSON.stringify(proxy.stats));
    } finally {
      await proxy.stop();
    }
  });

  it("a stalled request times out and is retried", async () => {
    const proxy = await startFaultyProxy({ target: b.options.endpoint!, rate: 0, stallMs: 20_000 });
    try {
      const store = openStore(`s3://${BUCKET}/stall`, { ...b.options, endpoint: proxy.endpoint, timeoutMs: 1500 });
      await store.putBytes("x.txt", "before");
      proxy.setFaults(1, ["stall"]);
      const pending = store.getBytes("x.txt");
      await sleep(300);
      proxy.setFaults(0);
      assert.equal((await pending)?.toString(), "before");
      assert.ok(proxy.stats.stall >= 1);
    } finally {
      await proxy.stop();
    }
  });
});
