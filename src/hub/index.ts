// The HuggingFace Hub client ftune needs, on the Hub's public REST API (the endpoints huggingface_hub's
// model_info / hf_hub_download use): resolve a revision to a commit sha with the file list and sizes/hashes,
// and stream a file. HF_ENDPOINT points it at a mirror or a test stand-in, as it does for huggingface_hub.
import { createHash } from "node:crypto";
import { Readable, Transform } from "node:stream";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { InfraError, UserError } from "../util/errors.js";
import { withRetry } from "../store/retry.js";

export type RepoKind = "model" | "dataset";

export interface HubFile {
  path: string;
  size: number;
  /** sha256 of the content, known up front for LFS files (all weights). */
  sha256?: string;
  /** Git blob sha1 (of the content for regular files, of the LFS pointer for LFS files). */
  blobId?: string;
  lfs: boolean;
}

export interface HubRepo {
  id: string;
  kind: RepoKind;
  /** The revision as asked (branch, tag or sha). */
  revision: string;
  /** The commit it resolved to. */
  sha: string;
  gated: boolean;
  files: HubFile[];
}

interface Sibling {
  rfilename: string;
  size?: number;
  blobId?: string;
  lfs?: { size: number; sha256: string; pointerSize?: number };
}

export interface HubClientOptions {
  endpoint?: string;
  token?: string;
  /** Test hook and proxy support: defaults to the global fetch. */
  fetch?: typeof fetch;
}

export class HubClient {
  readonly endpoint: string;
  private readonly token?: string;
  private readonly fetchImpl: typeof fetch;

  constructor(opts: HubClientOptions = {}) {
    this.endpoint = (opts.endpoint ?? process.env.HF_ENDPOINT ?? "https://huggingface.co").replace(/\/+$/, "");
    this.token = opts.token || undefined;
    this.fetchImpl = opts.fetch ?? fetch;
  }

  private headers(): Record<string, string> {
    return this.token ? { authorization: `Bearer ${this.token}` } : {};
  }

  private repoPath(kind: RepoKind, id: string): string {
    return kind === "dataset" ? `datasets/${id}` : id;
  }

  /** Where a file of a repo at a revision is served (302 to a CDN for LFS files). */
  fileUrl(kind: RepoKind, id: string, revision: string, path: string): string {
    const p = path.split("/").map(encodeURIComponent).join("/");
    return `${this.endpoint}/${this.repoPath(kind, id)}/resolve/${encodeURIComponent(revision)}/${p}`;
  }

  private async failure(res: Response, kind: RepoKind, id: string, revision: string, what: string): Promise<Error> {
    const code = res.headers.get("x-error-code") ?? "";
    const body = (await res.text().catch(() => "")).slice(0, 300);
    const page = `${this.endpoint}/${this.repoPath(kind, id)}`;
    if (code === "GatedRepo" || ((res.status === 401 || res.status === 403) && /restricted|gated/i.test(body))) {
      return new UserError(
        this.token
          ? `${kind} ${id} is gated and this token has no access: request access at ${page}, then retry`
          : `${kind} ${id} is gated: accept its terms at ${page} and provide a HuggingFace token (set the variable named by model.hf_token_env, HF_TOKEN by default)`,
      );
    }
    if (code === "RepoNotFound" || (res.status === 401 && !this.token)) {
      return new UserError(`${kind} ${id} was not found on the Hub (${this.endpoint}); check the id, or set a token if it is private`);
    }
    if (code === "RevisionNotFound") return new UserError(`${kind} ${id} has no revision ${JSON.stringify(revision)} (a branch, tag or commit sha)`);
    if (code === "EntryNotFound") return new UserError(`${kind} ${id}@${revision} has no file ${what}`);
    if (res.status === 401 || res.status === 403) return new UserError(`the Hub refused ${what} of ${kind} ${id} (HTTP ${res.status}): check the token`);
    return Object.assign(new InfraError(`the Hub answered HTTP ${res.status} for ${what} of ${kind} ${id}: ${body}`), {
      status: res.status,
      retryable: res.status >= 500 || res.status === 429,
    });
  }

  async repo(kind: RepoKind, id: string, revision = "main"): Promise<HubRepo> {
    const url = `${this.endpoint}/api/${kind === "dataset" ? "datasets" : "models"}/${id}/revision/${encodeURIComponent(revision)}?blobs=true`;
    const info = await withRetry(async () => {
      const res = await this.fetchImpl(url, { headers: this.headers() });
      if (!res.ok) throw await this.failure(res, kind, id, revision, "the file list");
      return (await res.json()) as { sha?: string; gated?: unknown; siblings?: Sibling[] };
    });
    if (!info.sha || !Array.isArray(info.siblings)) throw new InfraError(`unexpected answer from ${url}: no sha or siblings`);
    return {
      id,
      kind,
      revision,
      sha: info.sha,
      gated: Boolean(info.gated),
      files: info.siblings.map((s) => ({
        path: s.rfilename,
        size: s.lfs?.size ?? s.size ?? 0,
        sha256: s.lfs?.sha256,
        blobId: s.blobId,
        lfs: Boolean(s.lfs),
      })),
    };
  }

  /**
   * The file's bytes as a stream. fetch follows the Hub's redirect to its CDN and, being cross-origin,
   * drops the Authorization header there, so the token never reaches the CDN.
   */
  async download(kind: RepoKind, id: string, sha: string, path: string, signal?: AbortSignal): Promise<Readable> {
    const res = await this.fetchImpl(this.fileUrl(kind, id, sha, path), { headers: this.headers(), signal });
    if (!res.ok || !res.body) throw await this.failure(res, kind, id, sha, path);
    return Readable.fromWeb(res.body as unknown as WebReadableStream<Uint8Array>);
  }
}

/**
 * Checks a Hub file's bytes as they stream past: the size, and the LFS sha256 (weights) or, for small files, the
 * git blob sha1 the Hub lists. `finish()` after the stream ends says whether they match and gives their sha256.
 */
export function hubFileCheck(f: HubFile): { tap: Transform; finish(): { bytes: number; sha256: string; matches: boolean } } {
  const sha256 = createHash("sha256");
  const blob = createHash("sha1").update(`blob ${f.size}\0`);
  let bytes = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      sha256.update(chunk);
      blob.update(chunk);
      bytes += chunk.length;
      cb(null, chunk);
    },
  });
  return {
    tap,
    finish() {
      const got = { bytes, sha256: sha256.digest("hex"), blobSha1: blob.digest("hex") };
      const matches = got.bytes === f.size && (f.sha256 ? got.sha256 === f.sha256 : f.blobId ? got.blobSha1 === f.blobId : true);
      return { bytes: got.bytes, sha256: got.sha256, matches };
    },
  };
}
