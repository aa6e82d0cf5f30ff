// A fault-injecting HTTP proxy for putting in front of the S3 stand-in: it forwards requests verbatim, streaming
// both ways, and answers a seeded-random fraction with what S3 and flaky networks do (503 ServiceUnavailable,
// SlowDown, 500 InternalError, connection resets, a body cut mid-way, a stall). Seeded, so a failing run replays.
import { Agent, createServer, request, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

export type FaultKind = "503" | "slowdown" | "500" | "reset" | "reset-mid-body" | "stall";

export const FAULT_KINDS: readonly FaultKind[] = ["503", "slowdown", "500", "reset", "reset-mid-body", "stall"];

export interface FaultyProxyOptions {
  /** The server behind the proxy, e.g. s3rver's http://127.0.0.1:PORT; must be in 127.0.0.0/8. */
  target: string;
  /** Fraction of requests faulted, 0..1; default 0. */
  rate?: number;
  /** Kinds drawn from, uniformly; default every kind but "stall" (which costs the client a whole timeout). */
  kinds?: FaultKind[];
  seed?: number;
  /** Never fault more than this many requests in a row; default unlimited. With sequential clients, set it below
   * the client's attempt count to make "survives with retries" independent of the seed. */
  maxConsecutive?: number;
  /** How long a stalled request is held before its socket is destroyed; default 30 s. */
  stallMs?: number;
}

export interface FaultyProxy {
  /** Point the client here (e.g. S3Client endpoint). */
  endpoint: string;
  /** Requests per outcome: "forwarded" counts requests passed through untouched, so the total of all entries is
   * the number of requests seen. A "reset-mid-body" request also reached the target but counts only as itself. */
  stats: Record<FaultKind | "forwarded", number>;
  setFaults(rate: number, kinds?: FaultKind[]): void;
  stop(): Promise<void>;
}

const DEFAULT_KINDS: FaultKind[] = ["503", "slowdown", "500", "reset", "reset-mid-body"];
// Below this a response is not worth cutting mid-body; the fault degrades to a plain reset.
const MID_BODY_MIN = 1024;

// Per RFC 9110 these describe one connection, not the message; forwarding them would confuse the next hop.
// expect: Node's server already answered "100 Continue" to the client before the request reached us.
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "upgrade",
  "expect",
]);

const S3_ERRORS = {
  "503": { status: 503, code: "ServiceUnavailable", message: "Please reduce your request rate." },
  slowdown: { status: 503, code: "SlowDown", message: "Please reduce your request rate." },
  "500": { status: 500, code: "InternalError", message: "We encountered an internal error. Please try again." },
} as const;

/** mulberry32: a tiny seeded PRNG, good enough to pick faults reproducibly. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function filterRaw(raw: string[], drop: Set<string>): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (!drop.has((raw[i] as string).toLowerCase())) out.push(raw[i] as string, raw[i + 1] as string);
  }
  return out;
}

function checkKinds(kinds: readonly FaultKind[]): void {
  for (const k of kinds) if (!FAULT_KINDS.includes(k)) throw new Error(`faulty proxy: unknown fault kind ${k}`);
}

function checkRate(rate: number): void {
  if (!(rate >= 0 && rate <= 1)) throw new Error(`faulty proxy: rate must be in [0, 1], got ${rate}`);
}

export async function startFaultyProxy(opts: FaultyProxyOptions): Promise<FaultyProxy> {
  const target = new URL(opts.target);
  // The test bed talks to loopback only; refuse anything else rather than proxy a test's traffic off the machine.
  if (target.protocol !== "http:" || !/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(target.hostname)) {
    throw new Error(`faulty proxy: target must be http://127.x.x.x:PORT, got ${opts.target}`);
  }
  const targetPort = Number(target.port || 80);
  let rate = opts.rate ?? 0;
  let kinds = [...(opts.kinds ?? DEFAULT_KINDS)];
  checkRate(rate);
  checkKinds(kinds);
  const maxConsecutive = opts.maxConsecutive ?? Infinity;
  const stallMs = opts.stallMs ?? 30_000;
  const random = mulberry32(opts.seed ?? 1);
  let consecutive = 0;
  let requestIds = 0;
  const stats: Record<FaultKind | "forwarded", number> = {
    forwarded: 0,
    "503": 0,
    slowdown: 0,
    "500": 0,
    reset: 0,
    "reset-mid-body": 0,
    stall: 0,
  };
  const stalls = new Set<NodeJS.Timeout>();
  const agent = new Agent({ keepAlive: true });

  function pick(): FaultKind | null {
    // Both draws happen for every request, so the sequence of decisions depends only on the request count.
    const roll = random();
    const which = random();
    if (roll >= rate || kinds.length === 0 || consecutive >= maxConsecutive) {
      consecutive = 0;
      return null;
    }
    consecutive++;
    return kinds[Math.floor(which * kinds.length)] as FaultKind;
  }

  function reset(req: IncomingMessage): void {
    // Unread request bytes in the kernel make this close a TCP RST, as a real reset would be.
    req.socket.destroy();
  }

  function s3Error(req: IncomingMessage, res: ServerResponse, kind: keyof typeof S3_ERRORS): void {
    const e = S3_ERRORS[kind];
    const id = (++requestIds).toString(16).toUpperCase().padStart(16, "0");
    const xml =
      `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${e.code}</Code><Message>${e.message}</Message>` +
      `<RequestId>${id}</RequestId><HostId>ftune-faulty-proxy</HostId></Error>`;
    // Answer after the request body is in, as S3 does; answering mid-upload would make the client see a broken
    // pipe instead of the status under test.
    req.on("end", () => {
      res.writeHead(e.status, { "content-type": "application/xml", "x-amz-request-id": id }).end(xml);
    });
    req.resume();
  }

  function stall(req: IncomingMessage): void {
    const socket: Socket = req.socket;
    const timer = setTimeout(() => {
      stalls.delete(timer);
      socket.destroy();
    }, stallMs);
    stalls.add(timer);
    // The client giving up (its socket timeout) ends the stall early.
    socket.once("close", () => {
      clearTimeout(timer);
      stalls.delete(timer);
    });
  }

  function forward(req: IncomingMessage, res: ServerResponse, cutMidBody: boolean): void {
    const up = request({
      host: target.hostname,
      port: targetPort,
      method: req.method,
      path: req.url,
      // The client's Host goes through as sent: s3rver does not check signatures, and path-style URLs do not
      // depend on it.
      headers: filterRaw(req.rawHeaders, HOP_BY_HOP),
      setHost: false,
      agent,
    });
    // If the client goes away first, stop the upstream exchange too.
    res.on("close", () => {
      if (!res.writableFinished) up.destroy();
    });
    up.on("error", () => {
      if (res.destroyed) return;
      if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" }).end("faulty proxy: target failed");
      else res.destroy();
    });
    up.on("response", (ur) => {
      const status = ur.statusCode ?? 502;
      const length = Number(ur.headers["content-length"]);
      const hasBody = req.method !== "HEAD" && status !== 204 && status !== 304;
      let cut: number | undefined;
      if (cutMidBody) {
        if (!hasBody || !Number.isFinite(length) || length <= MID_BODY_MIN) {
          // Nothing worth cutting (or a length we cannot halve): reset without a response. The target did
          // see this one, like a request whose answer the network lost.
          up.destroy();
          reset(req);
          return;
        }
        cut = Math.floor(length / 2);
      }
      // Node re-frames the body itself (chunked when there is no Content-Length), so transfer-encoding goes too.
      res.writeHead(status, ur.statusMessage, filterRaw(ur.rawHeaders, new Set([...HOP_BY_HOP, "transfer-encoding"])));
      let sent = 0;
      let done = false;
      ur.on("data", (chunk: Buffer) => {
        if (done) return;
        if (cut !== undefined && sent + chunk.length >= cut) {
          done = true;
          ur.pause();
          // Destroy only once the piece reached the socket, so the client gets a truncated body, not none.
          res.write(chunk.subarray(0, cut - sent), () => {
            res.socket?.destroy();
            up.destroy();
          });
          return;
        }
        sent += chunk.length;
        if (!res.write(chunk)) {
          ur.pause();
          res.once("drain", () => ur.resume());
        }
      });
      ur.on("end", () => {
        if (!done) res.end();
      });
      ur.on("error", () => {
        if (!done) res.destroy();
      });
    });
    // Streams the upload with backpressure; an aborted client upload is handled by res 'close' above.
    req.pipe(up);
  }

  const server = createServer((req, res) => {
    res.on("error", () => undefined);
    req.on("error", () => undefined);
    const kind = pick();
    stats[kind ?? "forwarded"]++;
    switch (kind) {
      case "503":
      case "slowdown":
      case "500":
        s3Error(req, res, kind);
        return;
      case "reset":
        reset(req);
        return;
      case "stall":
        stall(req);
        return;
      case "reset-mid-body":
        forward(req, res, true);
        return;
      case null:
        forward(req, res, false);
        return;
    }
  });
  // A reset client socket surfaces here; it is the point of the exercise, not an error.
  server.on("clientError", (_err, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: 0 }, () => {
      server.off("error", reject);
      resolve();
    });
  });

  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stats,
    setFaults(newRate, newKinds) {
      checkRate(newRate);
      if (newKinds) checkKinds(newKinds);
      rate = newRate;
      if (newKinds) kinds = [...newKinds];
      consecutive = 0;
    },
    stop() {
      for (const t of stalls) clearTimeout(t);
      stalls.clear();
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Ends keep-alive, in-flight and stalled client connections alike.
        server.closeAllConnections();
        agent.destroy();
      });
    },
  };
}
