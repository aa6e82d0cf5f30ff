// A Hugging Face Hub stand-in: the model/dataset info API, resolve URLs and a separate LFS "CDN" server, answering
// in the real Hub's shapes (info JSON, X-Error-Code headers, 302 to a presigned cross-origin URL) so a client that
// works here behaves the same against huggingface.co. File bytes are either given or generated deterministically
// on the fly, so tests can serve tens of MB without holding them in memory. Every request is recorded.
import { createCipheriv, createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { listen } from "./http.js";

export interface HubFileSpec {
  /** Path inside the repo, "/"-separated, e.g. "config.json" or "data/train.parquet". */
  path: string;
  content?: Buffer | string;
  /** Without content: deterministic pseudo-random bytes of this size, generated while serving. */
  size?: number;
  /** Default: true for *.safetensors, *.bin, *.parquet, or a size of 1 MiB or more. */
  lfs?: boolean;
}

export interface HubRepoSpec {
  /** "org/name" or "name". */
  id: string;
  type?: "model" | "dataset";
  /** 40 hex; default derived from type and id. */
  sha?: string;
  /** Revision name -> commit sha, e.g. {main: sha, v1: sha}; default {main: sha}. Every revision serves the same
   * files; only the sha differs. */
  revisions?: Record<string, string>;
  files: HubFileSpec[];
  /** Only requests with `Authorization: Bearer <one of tokens>` get in (info and resolve alike). */
  gated?: { tokens: string[] };
}

export type HubHost = "hub" | "cdn";

export interface HubRequest {
  method: string;
  /** The URL path as sent, still percent-encoded. */
  path: string;
  query: Record<string, string>;
  /** Whether the request carried an Authorization header at all. */
  authorization: boolean;
  status: number;
  host: HubHost;
  /** Body bytes handed to the socket so far (updated while streaming). */
  bytes: number;
  /** For resolve and CDN requests of a known file: the repo id and the file's path in it. */
  repo?: string;
  file?: string;
}

export interface HubFileInfo {
  path: string;
  size: number;
  sha256: string;
  /** Git blob sha1 of what git stores: the bytes, or for LFS files the pointer text. */
  blobId: string;
  lfs: boolean;
}

export interface HubFaultMatch {
  /** A string matches a request whose repo file path, URL path or decoded URL path equals it; a RegExp is tested
   * against each of those. */
  path?: RegExp | string;
  host?: HubHost;
}

export interface HubFault {
  /** Answer this status with a small JSON body instead of the real answer. */
  status?: 429 | 500 | 502 | 503;
  /** Send the headers and this many body bytes of the real answer, then destroy the socket. Only matches GET
   * requests answered 200/206 with a body; the cut lands only when the body is longer than this. */
  afterBytes?: number;
  /** How many of the next matching requests this applies to; default 1. */
  times?: number;
}

export interface HubStandIn {
  /** The Hub endpoint: what HF_ENDPOINT points at. */
  url: string;
  /** The LFS CDN, a second server on its own port (a different origin, as on the real Hub). */
  cdnUrl: string;
  requests: HubRequest[];
  /** The truth about a repo's files, for assertions. A dataset and a model with the same id: pass type. */
  files(repoId: string, type?: "model" | "dataset"): HubFileInfo[];
  /** Body bytes of this file served so far, by the Hub and the CDN together (ranges and cut bodies included). */
  bytesServed(repoId: string, path: string, type?: "model" | "dataset"): number;
  failNext(match: HubFaultMatch, fault: HubFault): void;
  stop(): Promise<void>;
}

export interface HubStandInOptions {
  repos: HubRepoSpec[];
}

const MiB = 1024 * 1024;
const CHUNK = 64 * 1024;
const ZEROS = Buffer.alloc(CHUNK);
const LFS_BY_NAME = /\.(safetensors|bin|parquet)$/;
const SHA40 = /^[0-9a-f]{40}$/;
// Fixed so info JSON is identical run to run.
const LAST_MODIFIED = "2024-05-01T12:00:00.000Z";

type RepoType = "model" | "dataset";

interface Entry extends HubFileInfo {
  md5: string;
  chunks(start: number, end: number): Iterable<Buffer>;
}

interface Repo {
  type: RepoType;
  id: string;
  /** Hex digest naming the repo in CDN URLs, as the real CDN's /repos/xx/yy/<hash>/ does. */
  key: string;
  objectId: string;
  revisions: Map<string, string>;
  shas: Set<string>;
  files: Map<string, Entry>;
  tokens?: Set<string>;
}

interface Plan {
  status: number;
  headers: Record<string, string>;
  body?: Buffer;
  file?: { entry: Entry; start: number; end: number };
  repo?: Repo;
  entry?: Entry;
}

interface PendingFault {
  match: HubFaultMatch;
  fault: HubFault;
  left: number;
}

const sha1 = (s: string | Buffer): string => createHash("sha1").update(s).digest("hex");
const sha256hex = (s: string | Buffer): string => createHash("sha256").update(s).digest("hex");

/**
 * AES-128-CTR over zeros as a keystream: native and fast (GB/s), deterministic per key, and seekable, since counter
 * block n covers bytes 16n..16n+15, so a Range request starts mid-file without generating what precedes it.
 */
function* generated(key: Buffer, start: number, end: number): Generator<Buffer> {
  const iv = Buffer.alloc(16);
  iv.writeBigUInt64BE(BigInt(Math.floor(start / 16)), 8);
  const cipher = createCipheriv("aes-128-ctr", key, iv);
  const skip = start % 16;
  if (skip > 0) cipher.update(ZEROS.subarray(0, skip));
  for (let pos = start; pos < end; pos += CHUNK) yield cipher.update(ZEROS.subarray(0, Math.min(CHUNK, end - pos)));
}

function* slices(buf: Buffer, start: number, end: number): Generator<Buffer> {
  for (let pos = start; pos < end; pos += CHUNK) yield buf.subarray(pos, Math.min(pos + CHUNK, end));
}

export function lfsPointer(sha256: string, size: number): string {
  return `version https://git-lfs.github.com/spec/v1\noid sha256:${sha256}\nsize ${size}\n`;
}

/** Git's object id for a blob: sha1 of "blob <len>\0" + bytes. */
export function gitBlobId(bytes: Buffer | string): string {
  const b = typeof bytes === "string" ? Buffer.from(bytes, "utf8") : bytes;
  return createHash("sha1").update(`blob ${b.length}\0`).update(b).digest("hex");
}

function buildEntry(type: RepoType, id: string, f: HubFileSpec): Entry {
  if (f.path === "" || f.path.startsWith("/") || f.path.split("/").some((s) => s === "" || s === "." || s === "..")) {
    throw new Error(`hub stand-in: bad file path ${JSON.stringify(f.path)} in ${id}`);
  }
  const content = typeof f.content === "string" ? Buffer.from(f.content, "utf8") : f.content;
  if (content === undefined && f.size === undefined) {
    throw new Error(`hub stand-in: ${id}/${f.path} needs content or size`);
  }
  if (content !== undefined && f.size !== undefined && f.size !== content.length) {
    throw new Error(`hub stand-in: ${id}/${f.path}: size ${f.size} but content has ${content.length} bytes`);
  }
  const size = content?.length ?? (f.size as number);
  if (!Number.isSafeInteger(size) || size < 0) throw new Error(`hub stand-in: ${id}/${f.path}: bad size ${size}`);
  const lfs = f.lfs ?? (LFS_BY_NAME.test(f.path) || size >= MiB);
  const key = createHash("sha256").update(`${type}\0${id}\0${f.path}`).digest().subarray(0, 16);
  const chunks = (s: number, e: number): Iterable<Buffer> => (content ? slices(content, s, e) : generated(key, s, e));
  // One streaming pass at startup: the hashes are what the real Hub reports, and the bytes are never all in memory.
  const h256 = createHash("sha256");
  const hmd5 = createHash("md5");
  const blob = lfs ? null : createHash("sha1").update(`blob ${size}\0`);
  for (const c of chunks(0, size)) {
    h256.update(c);
    hmd5.update(c);
    blob?.update(c);
  }
  const sha256 = h256.digest("hex");
  const blobId = blob ? blob.digest("hex") : gitBlobId(lfsPointer(sha256, size));
  return { path: f.path, size, sha256, blobId, lfs, md5: hmd5.digest("hex"), chunks };
}

function buildRepo(spec: HubRepoSpec): Repo {
  const type = spec.type ?? "model";
  const parts = spec.id.split("/");
  if (parts.length > 2 || parts.some((p) => !/^[\w.-]+$/.test(p))) {
    throw new Error(`hub stand-in: bad repo id ${JSON.stringify(spec.id)}`);
  }
  const revs = spec.revisions;
  const sha = spec.sha ?? revs?.main ?? sha1(`${type}:${spec.id}`);
  const revisions = new Map(Object.entries(revs ?? { main: sha }));
  for (const s of [sha, ...revisions.values()]) {
    if (!SHA40.test(s)) throw new Error(`hub stand-in: ${spec.id}: sha ${JSON.stringify(s)} is not 40 lowercase hex`);
  }
  const files = new Map<string, Entry>();
  for (const f of spec.files) {
    if (files.has(f.path)) throw new Error(`hub stand-in: ${spec.id}: duplicate file ${f.path}`);
    files.set(f.path, buildEntry(type, spec.id, f));
  }
  return {
    type,
    id: spec.id,
    key: sha256hex(`${type}:${spec.id}`),
    objectId: sha256hex(`_id:${type}:${spec.id}`).slice(0, 24),
    revisions,
    shas: new Set([sha, ...revisions.values()]),
    files,
    tokens: spec.gated ? new Set(spec.gated.tokens) : undefined,
  };
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Plan {
  return {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
    body: Buffer.from(JSON.stringify(body)),
  };
}

/** The Hub's error shape: {"error": message}, plus the X-Error-Code/X-Error-Message headers huggingface_hub reads. */
function hubError(status: number, code: string | null, message: string): Plan {
  const headers: Record<string, string> = { "x-error-message": message };
  if (code) headers["x-error-code"] = code;
  return json(status, { error: message }, headers);
}

function s3Error(status: number, code: string, message: string): Plan {
  const xml =
    `<?xml version="1.0" encoding="UTF-8"?>\n` + `<Error><Code>${code}</Code><Message>${message}</Message></Error>`;
  return { status, headers: { "content-type": "application/xml" }, body: Buffer.from(xml) };
}

function contentType(path: string): string {
  if (path.endsWith(".json")) return "application/json; charset=utf-8";
  if (/\.(md|txt)$/.test(path)) return "text/plain; charset=utf-8";
  return "application/octet-stream";
}

/** One "bytes=a-b" / "bytes=a-" / "bytes=-n" range; null for none or a form not supported (then the whole body). */
function parseRange(header: string | undefined, size: number): { start: number; end: number } | "unsatisfiable" | null {
  const m = header === undefined ? null : /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return null;
  if (m[1] === "") {
    const n = Number(m[2]);
    return n === 0 || size === 0 ? "unsatisfiable" : { start: Math.max(0, size - n), end: size };
  }
  const start = Number(m[1]);
  const last = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || last < start) return "unsatisfiable";
  return { start, end: last + 1 };
}

function serveFile(
  req: IncomingMessage,
  entry: Entry,
  headers: Record<string, string>,
  unsatisfiable: (size: number) => Plan,
): Plan {
  const range = parseRange(req.headers.range, entry.size);
  if (range === "unsatisfiable") {
    const p = unsatisfiable(entry.size);
    p.headers["content-range"] = `bytes */${entry.size}`;
    return p;
  }
  const h: Record<string, string> = { ...headers, "accept-ranges": "bytes" };
  if (range === null) return { status: 200, headers: h, file: { entry, start: 0, end: entry.size } };
  h["content-range"] = `bytes ${range.start}-${range.end - 1}/${entry.size}`;
  return { status: 206, headers: h, file: { entry, ...range } };
}

function bodyLength(p: Plan): number {
  return p.body ? p.body.length : p.file ? p.file.end - p.file.start : 0;
}

/** Resolves on 'drain', or on 'close' when the client went away (the caller then sees res.destroyed). */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}


function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    // fetch keeps connections alive, and a stalled stream would hold close() open; end them all now.
    server.closeAllConnections();
  });
}

export async function startHubStandIn(opts: HubStandInOptions): Promise<HubStandIn> {
  const repos = new Map<string, Repo>();
  for (const spec of opts.repos) {
    const repo = buildRepo(spec);
    const k = `${repo.type}:${repo.id}`;
    if (repos.has(k)) throw new Error(`hub stand-in: duplicate ${repo.type} repo ${repo.id}`);
    repos.set(k, repo);
  }
  // Presigned CDN URLs carry a signature naming exactly one (repo, file), so CDN bytes can be attributed to a file
  // even when two files share content, and a tampered URL is refused as S3 would.
  const signed = new Map<string, { repo: Repo; entry: Entry }>();
  const signature = (repo: Repo, entry: Entry): string => {
    const sig = sha256hex(`sig\0${repo.key}\0${entry.path}`);
    signed.set(sig, { repo, entry });
    return sig;
  };
  const requests: HubRequest[] = [];
  const served = new Map<string, number>();
  const faults: PendingFault[] = [];
  let url = "";
  let cdnUrl = "";

  const findRepo = (type: RepoType | undefined, id: string): Repo | undefined =>
    type ? repos.get(`${type}:${id}`) : (repos.get(`model:${id}`) ?? repos.get(`dataset:${id}`));

  function gate(repo: Repo, req: IncomingMessage): Plan | null {
    if (!repo.tokens) return null;
    const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? "");
    if (!m) {
      return hubError(
        401,
        "GatedRepo",
        `Access to ${repo.type} ${repo.id} is restricted. You must have access to it and be authenticated to access it. Please log in.`,
      );
    }
    if (!repo.tokens.has(m[1] as string)) {
      const page = `https://huggingface.co/${repo.type === "dataset" ? "datasets/" : ""}${repo.id}`;
      return hubError(
        403,
        "GatedRepo",
        `Access to ${repo.type} ${repo.id} is restricted and you are not in the authorized list. Visit ${page} to ask for access.`,
      );
    }
    return null;
  }

  /** A revision name, or any sha the repo knows. */
  function revision(repo: Repo, rev: string): string | null {
    return repo.revisions.get(rev) ?? (repo.shas.has(rev) ? rev : null);
  }

  const notFound = (): Plan => hubError(404, "RepoNotFound", "Repository not found");
  const badRev = (rev: string): Plan => hubError(404, "RevisionNotFound", `Invalid rev id: ${rev}`);

  function info(req: IncomingMessage, u: URL, type: RepoType, segs: string[]): Plan {
    // {id} or {id}/revision/{rev}, where id is one or two segments; the revision arrives URL-encoded as one segment.
    let id: string;
    let rev = "main";
    const at = segs.indexOf("revision");
    if (at >= 1 && at <= 2 && segs.length === at + 2) {
      id = segs.slice(0, at).join("/");
      rev = segs[at + 1] as string;
    } else if (segs.length >= 1 && segs.length <= 2) {
      id = segs.join("/");
    } else {
      return notFound();
    }
    const repo = repos.get(`${type}:${id}`);
    if (!repo) return notFound();
    const denied = gate(repo, req);
    if (denied) return denied;
    const sha = revision(repo, rev);
    if (!sha) return badRev(rev);
    // huggingface_hub sends Python's True as "True".
    const blobs = /^(true|1)$/i.test(u.searchParams.get("blobs") ?? "");
    const siblings = [...repo.files.values()].map((e) =>
      blobs
        ? {
            rfilename: e.path,
            size: e.size,
            blobId: e.blobId,
            ...(e.lfs
              ? { lfs: { size: e.size, sha256: e.sha256, pointerSize: lfsPointer(e.sha256, e.size).length } }
              : {}),
          }
        : { rfilename: e.path },
    );
    const slash = id.indexOf("/");
    return json(200, {
      _id: repo.objectId,
      id,
      ...(type === "model" ? { modelId: id } : {}),
      ...(slash > 0 ? { author: id.slice(0, slash) } : {}),
      sha,
      private: false,
      gated: repo.tokens ? "manual" : false,
      disabled: false,
      downloads: 0,
      likes: 0,
      lastModified: LAST_MODIFIED,
      createdAt: LAST_MODIFIED,
      tags: [],
      siblings,
    });
  }

  /** null when no known repo matches. */
  function resolve(req: IncomingMessage, type: RepoType, segs: string[]): Plan | null {
    // {id}/resolve/{rev}/{path...}; the id has one segment or two, whichever names a known repo.
    for (const at of [1, 2]) {
      if (segs[at] !== "resolve" || segs.length < at + 3) continue;
      const repo = repos.get(`${type}:${segs.slice(0, at).join("/")}`);
      if (!repo) continue;
      const denied = gate(repo, req);
      if (denied) return denied;
      const rev = segs[at + 1] as string;
      const sha = revision(repo, rev);
      if (!sha) return badRev(rev);
      const entry = repo.files.get(segs.slice(at + 2).join("/"));
      if (!entry) return { ...hubError(404, "EntryNotFound", "Entry not found"), repo };
      const headers: Record<string, string> = { "x-repo-commit": sha, etag: `"${entry.blobId}"` };
      if (!entry.lfs) {
        headers["content-type"] = contentType(entry.path);
        const p = serveFile(req, entry, headers, () => hubError(416, null, "Requested Range Not Satisfiable"));
        return { ...p, repo, entry };
      }
      const location =
        `${cdnUrl}/repos/${repo.key.slice(0, 2)}/${repo.key.slice(2, 4)}/${repo.key}/${entry.sha256}` +
        `?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=3600&X-Amz-SignedHeaders=host` +
        `&X-Amz-Signature=${signature(repo, entry)}`;
      return {
        status: 302,
        headers: {
          ...headers,
          location,
          "x-linked-etag": `"${entry.sha256}"`,
          "x-linked-size": String(entry.size),
          "content-type": "text/plain; charset=utf-8",
        },
        body: Buffer.from(`Found. Redirecting to ${location}`),
        repo,
        entry,
      };
    }
    return null;
  }

  function planHub(req: IncomingMessage, u: URL, segs: string[]): Plan {
    const method = req.method ?? "GET";
    if (method !== "GET" && method !== "HEAD") return hubError(405, null, "Method not allowed");
    if (segs[0] === "api" && (segs[1] === "models" || segs[1] === "datasets")) {
      return info(req, u, segs[1] === "models" ? "model" : "dataset", segs.slice(2));
    }
    if (segs[0] === "datasets") return resolve(req, "dataset", segs.slice(1)) ?? notFound();
    return resolve(req, "model", segs) ?? notFound();
  }

  function planCdn(req: IncomingMessage, u: URL): Plan {
    // A presigned S3 URL already authenticates; S3 refuses a second mechanism. This is what catches a client
    // that forwards the Hub token across origins.
    if (req.headers.authorization !== undefined) {
      return s3Error(
        400,
        "InvalidArgument",
        "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified",
      );
    }
    const method = req.method ?? "GET";
    if (method !== "GET" && method !== "HEAD") {
      return s3Error(405, "MethodNotAllowed", "The specified method is not allowed against this resource.");
    }
    const m = /^\/repos\/[0-9a-f]{2}\/[0-9a-f]{2}\/([0-9a-f]{64})\/([0-9a-f]{64})$/.exec(u.pathname);
    const sig = u.searchParams.get("X-Amz-Signature");
    const hit = sig === null ? undefined : signed.get(sig);
    if (!m || !hit) return s3Error(403, "AccessDenied", "Access Denied");
    if (hit.repo.key !== m[1] || hit.entry.sha256 !== m[2]) {
      return s3Error(
        403,
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided.",
      );
    }
    const { repo, entry } = hit;
    const headers = {
      "content-type": "application/octet-stream",
      etag: `"${entry.md5}"`,
      "last-modified": new Date(LAST_MODIFIED).toUTCString(),
    };
    const p = serveFile(req, entry, headers, () =>
      s3Error(416, "InvalidRange", "The requested range is not satisfiable"),
    );
    return { ...p, repo, entry };
  }

  function takeFault(host: HubHost, method: string, u: URL, plan: Plan): HubFault | undefined {
    let decoded = u.pathname;
    try {
      decoded = decodeURIComponent(u.pathname);
    } catch {
      // keep the raw path
    }
    const candidates = [plan.entry?.path, u.pathname, decoded].filter((x): x is string => x !== undefined);
    for (const f of faults) {
      if (f.left <= 0 || (f.match.host !== undefined && f.match.host !== host)) continue;
      const p = f.match.path;
      if (p !== undefined && !candidates.some((c) => (typeof p === "string" ? c === p : p.test(c)))) continue;
      if (
        f.fault.afterBytes !== undefined &&
        !(method === "GET" && (plan.status === 200 || plan.status === 206) && bodyLength(plan) > 0)
      ) {
        continue;
      }
      f.left--;
      return f.fault;
    }
    return undefined;
  }

  async function send(
    res: ServerResponse,
    method: string,
    plan: Plan,
    record: HubRequest,
    cut?: number,
  ): Promise<void> {
    const length = bodyLength(plan);
    record.status = plan.status;
    res.writeHead(plan.status, { ...plan.headers, "content-length": String(length) });
    if (method === "HEAD" || length === 0) {
      res.end();
      return;
    }
    const servedKey = plan.repo && plan.entry ? `${plan.repo.type}:${plan.repo.id}\0${plan.entry.path}` : null;
    const count = (n: number): void => {
      record.bytes += n;
      if (servedKey && plan.file) served.set(servedKey, (served.get(servedKey) ?? 0) + n);
    };
    const chunks = plan.body ? [plan.body] : plan.file ? plan.file.entry.chunks(plan.file.start, plan.file.end) : [];
    let sent = 0;
    for (const chunk of chunks) {
      if (res.destroyed) return;
      if (cut !== undefined && cut < length && sent + chunk.length >= cut) {
        const piece = chunk.subarray(0, cut - sent);
        count(piece.length);
        // The callback runs once headers and piece reached the socket; only then cut, so the client sees exactly
        // a truncated body rather than nothing.
        await new Promise<void>((r) => res.write(piece, () => r()));
        res.socket?.destroy();
        return;
      }
      sent += chunk.length;
      count(chunk.length);
      if (!res.write(chunk)) await drained(res);
    }
    if (!res.destroyed) res.end();
  }

  async function handle(host: HubHost, req: IncomingMessage, res: ServerResponse): Promise<void> {
    req.resume();
    const method = req.method ?? "GET";
    const u = new URL(req.url ?? "/", "http://127.0.0.1");
    const record: HubRequest = {
      method,
      path: u.pathname,
      query: Object.fromEntries(u.searchParams),
      authorization: req.headers.authorization !== undefined,
      status: 0,
      host,
      bytes: 0,
    };
    requests.push(record);
    let plan: Plan;
    if (host === "cdn") {
      plan = planCdn(req, u);
    } else {
      let segs: string[] | null;
      try {
        segs = u.pathname.split("/").slice(1).map(decodeURIComponent);
      } catch {
        segs = null;
      }
      plan = segs ? planHub(req, u, segs) : hubError(400, null, "Bad request: malformed URL encoding");
    }
    if (plan.repo) record.repo = plan.repo.id;
    if (plan.entry) record.file = plan.entry.path;
    const fault = takeFault(host, method, u, plan);
    if (fault?.status !== undefined) {
      const reason: Record<number, string> = {
        429: "Too Many Requests",
        500: "Internal Server Error",
        502: "Bad Gateway",
        503: "Service Unavailable",
      };
      await send(res, method, json(fault.status, { error: reason[fault.status] }), record);
      return;
    }
    await send(res, method, plan, record, fault?.afterBytes);
  }

  const serve =
    (host: HubHost) =>
    (req: IncomingMessage, res: ServerResponse): void => {
      // A write racing a client abort must not surface as an unhandled 'error'.
      res.on("error", () => undefined);
      handle(host, req, res).catch((e: unknown) => {
        if (res.headersSent) res.destroy();
        else res.writeHead(500, { "content-type": "text/plain" }).end(String(e));
      });
    };
  const hub = createServer(serve("hub"));
  const cdn = createServer(serve("cdn"));
  url = await listen(hub);
  try {
    cdnUrl = await listen(cdn);
  } catch (e) {
    await close(hub);
    throw e;
  }

  const repoOrThrow = (id: string, type?: RepoType): Repo => {
    const r = findRepo(type, id);
    if (!r) throw new Error(`hub stand-in: no ${type ?? "model or dataset"} repo ${id}`);
    return r;
  };

  return {
    url,
    cdnUrl,
    requests,
    files(repoId, type) {
      return [...repoOrThrow(repoId, type).files.values()].map(({ path, size, sha256, blobId, lfs }) => ({
        path,
        size,
        sha256,
        blobId,
        lfs,
      }));
    },
    bytesServed(repoId, path, type) {
      const r = repoOrThrow(repoId, type);
      return served.get(`${r.type}:${r.id}\0${path}`) ?? 0;
    },
    failNext(match, fault) {
      if ((fault.status === undefined) === (fault.afterBytes === undefined)) {
        throw new Error("hub stand-in: failNext needs exactly one of status and afterBytes");
      }
      if (fault.afterBytes !== undefined && !(Number.isSafeInteger(fault.afterBytes) && fault.afterBytes >= 0)) {
        throw new Error(`hub stand-in: bad afterBytes ${fault.afterBytes}`);
      }
      faults.push({ match, fault, left: fault.times ?? 1 });
    },
    async stop() {
      await Promise.all([close(hub), close(cdn)]);
    },
  };
}
