// Proves the fault-injecting proxy in front of the S3 stand-in: a clean pass-through for the SDK, each injected
// fault as a client sees it (S3 error XML, a body cut short, a reset, a stall ended by the client or by stop()),
// and that the SDK's default retries ride out a steady rate of S3's retryable errors.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { request } from "node:http";
import { GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { startS3Server, type S3StandIn } from "./support/s3.js";
import { startFaultyProxy, type FaultyProxy } from "./support/faulty-proxy.js";
import { teardownAll } from "./support/processes.js";

const BUCKET = "b";

const sha256 = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

function client(s3: S3StandIn, endpoint: string): S3Client {
  return new S3Client({
    endpoint,
    forcePathStyle: true,
    region: s3.region,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
}

/** A raw GET with a socket timeout; resolves with how the exchange ended. */
function rawGet(url: string, timeoutMs: number): Promise<"timeout" | "closed" | number> {
  return new Promise((resolve) => {
    const req = request(url, { agent: false });
    req.setTimeout(timeoutMs, () => {
      resolve("timeout");
      req.destroy();
    });
    req.on("response", (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", () => resolve("closed"));
    req.end();
  });
}

describe("fault-injecting proxy in front of the S3 stand-in", () => {
  let s3: S3StandIn;
  const proxies: FaultyProxy[] = [];
  const clients: S3Client[] = [];

  const proxy = async (opts: Omit<Parameters<typeof startFaultyProxy>[0], "target"> = {}): Promise<FaultyProxy> => {
    const p = await startFaultyProxy({ target: s3.endpoint, ...opts });
    proxies.push(p);
    return p;
  };

  before(async () => {
    s3 = await startS3Server({ buckets: [BUCKET] });
  });

  after(async () => {
    for (const c of clients) c.destroy();
    await Promise.all(proxies.map((p) => p.stop()));
    await s3?.stop();
    await teardownAll();
  });

  it("refuses a target outside 127.0.0.0/8", async () => {
    await assert.rejects(startFaultyProxy({ target: "http://10.0.0.1:9000" }), /127\.x\.x\.x/);
  });

  it("passes a 5 MB PUT and GET through untouched at rate 0", async () => {
    const p = await proxy();
    const c = client(s3, p.endpoint);
    clients.push(c);
    const data = randomBytes(5 * 1024 * 1024);
    await c.send(new PutObjectCommand({ Bucket: BUCKET, Key: "clean/5mb.bin", Body: data }));
    const got = await c.send(new GetObjectCommand({ Bucket: BUCKET, Key: "clean/5mb.bin" }));
    const bytes = await got.Body?.transformToByteArray();
    assert.ok(bytes);
    assert.equal(bytes.length, data.length);
    assert.equal(sha256(bytes), sha256(data));
    assert.equal(p.stats.forwarded, 2);
  });

  it("answers S3's SlowDown 503 at rate 1, without forwarding", async () => {
    const p = await proxy({ rate: 1, kinds: ["slowdown"] });
    const res = await fetch(`${p.endpoint}/${BUCKET}/clean/5mb.bin`);
    assert.equal(res.status, 503);
    const xml = await res.text();
    assert.match(xml, /^<\?xml version="1\.0" encoding="UTF-8"\?>/);
    assert.match(xml, /<Code>SlowDown<\/Code><Message>Please reduce your request rate\.<\/Message><RequestId>/);
    p.setFaults(1, ["503", "500"]);
    const codes = new Set<string>();
    for (let i = 0; i < 12; i++) {
      const r = await fetch(`${p.endpoint}/${BUCKET}/x`);
      codes.add(`${r.status} ${/<Code>(\w+)<\/Code>/.exec(await r.text())?.[1]}`);
    }
    assert.deepEqual([...codes].sort(), ["500 InternalError", "503 ServiceUnavailable"]);
    const { "503": s503, "500": s500, ...rest } = p.stats;
    assert.equal(s503 + s500, 12);
    assert.deepEqual(rest, { forwarded: 0, slowdown: 1, reset: 0, "reset-mid-body": 0, stall: 0 });
  });

  it("cuts a GET body mid-way with reset-mid-body, and resets outright with reset", async () => {
    const p = await proxy({ rate: 1, kinds: ["reset-mid-body"] });
    const res = await fetch(`${p.endpoint}/${BUCKET}/clean/5mb.bin`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-length"), String(5 * 1024 * 1024));
    assert.ok(res.body);
    let received = 0;
    await assert.rejects(async () => {
      for await (const chunk of res.body as AsyncIterable<Uint8Array>) received += chunk.length;
    });
    assert.equal(received, 5 * 512 * 1024, "the client got exactly the first half before the reset");
    // A body too small to halve degrades to a reset.
    await assert.rejects(fetch(`${p.endpoint}/${BUCKET}?list-type=2&max-keys=0`, { method: "HEAD" }));

    p.setFaults(1, ["reset"]);
    await assert.rejects(fetch(`${p.endpoint}/${BUCKET}/clean/5mb.bin`));
    p.setFaults(0);
    const ok = await fetch(`${p.endpoint}/${BUCKET}/clean/5mb.bin`);
    assert.equal((await ok.arrayBuffer()).byteLength, 5 * 1024 * 1024);
    assert.deepEqual(
      { ...p.stats },
      { forwarded: 1, "503": 0, slowdown: 0, "500": 0, reset: 1, "reset-mid-body": 2, stall: 0 },
    );
  });

  it("stalls until the client's socket timeout, and stop() ends a stalled connection", async () => {
    const p = await proxy({ rate: 1, kinds: ["stall"] });
    const started = Date.now();
    assert.equal(await rawGet(`${p.endpoint}/${BUCKET}/x`, 200), "timeout");
    assert.ok(Date.now() - started < 5000);
    const pending = rawGet(`${p.endpoint}/${BUCKET}/x`, 60_000);
    // Give the request time to arrive, then stop: the stalled socket must close now, not in 30 s.
    await new Promise((r) => setTimeout(r, 100));
    await p.stop();
    assert.equal(await pending, "closed");
    assert.equal(p.stats.stall, 2);
  });

  it("the SDK with default retries survives 30% of 503/SlowDown/500 over 20 PUT+GETs", async () => {
    // At most two faults in a row: the SDK's default is 3 attempts, so every operation has a chance to succeed
    // whatever the seed, while most still see retries.
    const p = await proxy({ rate: 0.3, kinds: ["503", "slowdown", "500"], seed: 20240501, maxConsecutive: 2 });
    const c = client(s3, p.endpoint);
    clients.push(c);
    for (let i = 0; i < 20; i++) {
      const data = randomBytes(1000 + i * 97);
      const Key = `flaky/${i}.bin`;
      await c.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: data }));
      const got = await c.send(new GetObjectCommand({ Bucket: BUCKET, Key }));
      const bytes = await got.Body?.transformToByteArray();
      assert.ok(bytes);
      assert.equal(sha256(bytes), sha256(data), Key);
    }
    const faults = p.stats["503"] + p.stats.slowdown + p.stats["500"];
    assert.equal(p.stats.forwarded, 40, "every operation reached S3 exactly once");
    assert.ok(faults >= 5, `expected retries, saw ${faults} faults`);
    assert.ok(p.stats["503"] > 0 && p.stats.slowdown > 0 && p.stats["500"] > 0, JSON.stringify(p.stats));
  });
});
