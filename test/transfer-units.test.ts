// The pieces under the transfer engine: the global limiter, retry classification and backoff, progress output.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { batchPartSize, forEachPool, isRetryable, Limiter, Progress, withRetry } from "../src/store/index.js";
import { TransientError } from "../src/store/retry.js";

const MiB = 1 << 20;

function sink(isTTY: boolean): Writable & { isTTY: boolean; text: () => string } {
  let out = "";
  const w = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out += chunk.toString();
      cb();
    },
  }) as Writable & { isTTY: boolean; text: () => string };
  w.isTTY = isTTY;
  w.text = () => out;
  return w;
}

describe("Limiter", () => {
  it("never runs more than its limit at once, counting weights, in FIFO order", async () => {
    const lim = new Limiter(4);
    let active = 0;
    let peak = 0;
    const order: number[] = [];
    const job = (i: number, weight: number) =>
      lim.run(async () => {
        active += weight;
        peak = Math.max(peak, active);
        order.push(i);
        await sleep(5);
        active -= weight;
      }, weight);
    await Promise.all([job(0, 1), job(1, 4), job(2, 1), job(3, 2), job(4, 1), job(5, 1)]);
    assert.ok(peak <= 4, `peak ${peak}`);
    assert.deepEqual(order, [0, 1, 2, 3, 4, 5]);
  });

  it("forEachPool reports the first error after the others settle", async () => {
    const seen: number[] = [];
    await assert.rejects(
      forEachPool([1, 2, 3, 4], 2, async (n) => {
        await sleep(n);
        seen.push(n);
        if (n === 2) throw new Error("two");
      }),
      /two/,
    );
    assert.deepEqual(seen.sort(), [1, 2, 3]);
  });
});

describe("retry", () => {
  it("retries throttling, 5xx, resets and timeouts; not client errors", () => {
    for (const e of [
      { name: "SlowDown", $metadata: { httpStatusCode: 503 } },
      { name: "InternalError", $metadata: { httpStatusCode: 500 } },
      { name: "RequestLimitExceeded" },
      Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }),
      Object.assign(new Error("socket hang up"), {}),
      { name: "TimeoutError", message: "timed out" },
      new TransientError("short read"),
      { name: "Wrapped", cause: { code: "EPIPE" } },
      { status: 429 },
    ]) {
      assert.equal(isRetryable(e), true, JSON.stringify(e));
    }
    for (const e of [{ name: "AccessDenied", $metadata: { httpStatusCode: 403 } }, { name: "NoSuchKey", $metadata: { httpStatusCode: 404 } }, new Error("bad input"), { name: "AbortError" }]) {
      assert.equal(isRetryable(e), false, JSON.stringify(e));
    }
  });

  it("backs off with jitter below the cap and gives up after the attempts", async () => {
    const waits: number[] = [];
    let calls = 0;
    await assert.rejects(
      withRetry(
        async () => {
          calls++;
          throw Object.assign(new Error("slow down"), { name: "SlowDown" });
        },
        { attempts: 4, baseMs: 1, capMs: 3, onRetry: (_e, _n, w) => waits.push(w) },
      ),
      /slow down/,
    );
    assert.equal(calls, 4);
    assert.equal(waits.length, 3);
    assert.ok(waits.every((w) => w >= 0 && w <= 3), JSON.stringify(waits));
    let n = 0;
    assert.equal(await withRetry(async () => (++n < 3 ? Promise.reject(new TransientError("x")) : "ok"), { baseMs: 1 }), "ok");
    const fatal = withRetry(async () => Promise.reject(Object.assign(new Error("denied"), { name: "AccessDenied" })), { baseMs: 1 });
    await assert.rejects(fatal, /denied/);
  });
});

describe("progress", () => {
  it("prints periodic lines with rate and ETA in CI logs, and a final summary", async () => {
    const out = sink(false);
    const p = new Progress("upload x", 10 * MiB, { stream: out, intervalSeconds: 0.05 });
    p.add(5 * MiB);
    await sleep(120);
    p.add(5 * MiB);
    p.finish();
    const text = out.text();
    assert.match(text, /^upload x: +50% 5\.2 MB\/10\.5 MB [\d.]+ [KMG]?B\/s ETA \d+s$/m);
    assert.match(text, /^upload x: done, 10\.5 MB in \d+s \([\d.]+ [KMG]?B\/s\)$/m);
    assert.doesNotMatch(text, /\r/);
  });

  it("redraws one bar line on a terminal", () => {
    const out = sink(true);
    const p = new Progress("pull", 4 * MiB, { stream: out });
    p.add(MiB);
    p.finish();
    assert.match(out.text(), /\r\[#{6}\.{18}\] pull: +25%/);
    assert.match(out.text(), /\r\[#{6}\.{18}\] pull: +25% .*\n$/);
  });

  it("quiet prints nothing", () => {
    const out = sink(false);
    const p = new Progress("x", 1, { stream: out, quiet: true });
    p.add(1);
    p.finish();
    assert.equal(out.text(), "");
  });
});

describe("batch part size", () => {
  it("splits a small batch into about one part per connection, within 16 MiB..64 MiB", () => {
    assert.equal(batchPartSize(512 * MiB, 16), 32 * MiB);
    assert.equal(batchPartSize(10 * MiB, 16), 16 * MiB);
    assert.equal(batchPartSize(13_500 * MiB, 16), 64 * MiB);
  });
});
