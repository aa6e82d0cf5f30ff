// Proves the Hugging Face Hub stand-in against the shapes huggingface_hub reads: model/dataset info with and without
// blobs, revisions, X-Error-Code 404s, gating, resolve (plain and LFS via the cross-origin CDN), Range, and the
// injected faults. Node's own fetch is the client, since it is what ftune's downloader uses.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { gitBlobId, lfsPointer, startHubStandIn, type HubStandIn } from "./support/hub.js";

const MODEL = "acme/tiny-llm";
const GATED = "acme/gated-llm";
const DATASET = "acme/corpus";
const SOLO = "solo-model";
const TOKEN = "hf_granted";
const SHA_MAIN = "1".repeat(40);
const SHA_V1 = "a1b2c3d4e5".repeat(4);
const CONFIG = JSON.stringify({ model_type: "llama", hidden_size: 64 });
const MB = 1024 * 1024;

const sha256 = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

async function body(res: Response): Promise<Buffer> {
  return Buffer.from(await res.arrayBuffer());
}

/** Status, X-Error-Code and parsed JSON of an error answer. */
async function hubError(res: Response): Promise<{ status: number; code: string | null; body: unknown }> {
  return { status: res.status, code: res.headers.get("x-error-code"), body: await res.json() };
}

describe("Hugging Face Hub stand-in", () => {
  let hub: HubStandIn;

  before(async () => {
    hub = await startHubStandIn({
      repos: [
        {
          id: MODEL,
          revisions: { main: SHA_MAIN, v1: SHA_V1, "refs/pr/1": SHA_V1 },
          files: [
            { path: "config.json", content: CONFIG },
            { path: "tokenizer.json", size: 300_000 },
            { path: "model.safetensors", size: 5 * MB },
            { path: "nested/dir/adapter.bin", size: 1000 },
            { path: "big.gguf", size: 64 * MB },
          ],
        },
        { id: GATED, gated: { tokens: [TOKEN] }, files: [{ path: "config.json", content: "{}" }] },
        {
          id: DATASET,
          type: "dataset",
          files: [
            { path: "README.md", content: "# corpus\n" },
            { path: "data/train.parquet", size: 2 * MB },
          ],
        },
        { id: SOLO, files: [{ path: "config.json", content: "{}" }] },
      ],
    });
  });

  after(async () => {
    await hub?.stop();
  });

  it("serves model info in the Hub's shape, siblings by name only without blobs", async () => {
    const res = await fetch(`${hub.url}/api/models/${MODEL}`);
    assert.equal(res.status, 200);
    const info = (await res.json()) as Record<string, unknown>;
    assert.match(info._id as string, /^[0-9a-f]{24}$/);
    assert.equal(info.id, MODEL);
    assert.equal(info.modelId, MODEL);
    assert.equal(info.sha, SHA_MAIN);
    assert.equal(info.private, false);
    assert.equal(info.gated, false);
    assert.equal(info.disabled, false);
    assert.match(info.lastModified as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.deepEqual(info.tags, []);
    assert.deepEqual(info.siblings, [
      { rfilename: "config.json" },
      { rfilename: "tokenizer.json" },
      { rfilename: "model.safetensors" },
      { rfilename: "nested/dir/adapter.bin" },
      { rfilename: "big.gguf" },
    ]);
  });

  it("adds size, blobId and lfs to siblings with blobs=true (and Python's blobs=True)", async () => {
    const truth = new Map(hub.files(MODEL).map((f) => [f.path, f]));
    assert.equal(truth.get("config.json")?.lfs, false);
    assert.equal(truth.get("tokenizer.json")?.lfs, false);
    assert.equal(truth.get("model.safetensors")?.lfs, true);
    assert.equal(truth.get("nested/dir/adapter.bin")?.lfs, true, "*.bin is LFS whatever its size");
    assert.equal(truth.get("big.gguf")?.lfs, true, "1 MiB and up is LFS");
    for (const flag of ["true", "True"]) {
      const info = (await (await fetch(`${hub.url}/api/models/${MODEL}/revision/main?blobs=${flag}`)).json()) as {
        siblings: Record<string, unknown>[];
      };
      const config = info.siblings[0];
      assert.deepEqual(config, {
        rfilename: "config.json",
        size: CONFIG.length,
        blobId: gitBlobId(CONFIG),
      });
      const st = truth.get("model.safetensors");
      assert.ok(st);
      const pointer = lfsPointer(st.sha256, st.size);
      assert.deepEqual(info.siblings[2], {
        rfilename: "model.safetensors",
        size: 5 * MB,
        blobId: gitBlobId(pointer),
        lfs: { size: 5 * MB, sha256: st.sha256, pointerSize: pointer.length },
      });
      assert.equal(st.blobId, gitBlobId(pointer));
    }
    // The generated blobId of a non-LFS file is git's, over the very bytes resolve serves.
    const tok = await body(await fetch(`${hub.url}/${MODEL}/resolve/main/tokenizer.json`));
    assert.equal(gitBlobId(tok), truth.get("tokenizer.json")?.blobId);
    assert.equal(sha256(tok), truth.get("tokenizer.json")?.sha256);
  });

  it("resolves revisions by name (URL-encoded) and by sha, each reporting its own sha", async () => {
    const sha = async (rev: string): Promise<unknown> =>
      ((await (await fetch(`${hub.url}/api/models/${MODEL}/revision/${encodeURIComponent(rev)}`)).json()) as {
        sha: unknown;
      }).sha;
    assert.equal(await sha("main"), SHA_MAIN);
    assert.equal(await sha("v1"), SHA_V1);
    assert.equal(await sha("refs/pr/1"), SHA_V1);
    assert.equal(await sha(SHA_V1), SHA_V1);

    const res = await fetch(`${hub.url}/${MODEL}/resolve/v1/config.json`);
    assert.equal(res.headers.get("x-repo-commit"), SHA_V1);
    assert.equal((await body(res)).toString(), CONFIG);
    const bySha = await fetch(`${hub.url}/${MODEL}/resolve/${SHA_MAIN}/config.json`, { method: "HEAD" });
    assert.equal(bySha.status, 200);
    assert.equal(bySha.headers.get("x-repo-commit"), SHA_MAIN);
  });

  it("answers 404 with the Hub's X-Error-Code for an unknown repo, revision or file", async () => {
    assert.deepEqual(await hubError(await fetch(`${hub.url}/api/models/acme/nope`)), {
      status: 404,
      code: "RepoNotFound",
      body: { error: "Repository not found" },
    });
    assert.deepEqual(await hubError(await fetch(`${hub.url}/api/models/${MODEL}/revision/v9`)), {
      status: 404,
      code: "RevisionNotFound",
      body: { error: "Invalid rev id: v9" },
    });
    assert.deepEqual(await hubError(await fetch(`${hub.url}/${MODEL}/resolve/v9/config.json`)), {
      status: 404,
      code: "RevisionNotFound",
      body: { error: "Invalid rev id: v9" },
    });
    assert.deepEqual(await hubError(await fetch(`${hub.url}/${MODEL}/resolve/main/missing.json`)), {
      status: 404,
      code: "EntryNotFound",
      body: { error: "Entry not found" },
    });
    assert.deepEqual(await hubError(await fetch(`${hub.url}/acme/nope/resolve/main/config.json`)), {
      status: 404,
      code: "RepoNotFound",
      body: { error: "Repository not found" },
    });
    // A dataset is not a model.
    assert.equal((await hubError(await fetch(`${hub.url}/api/models/${DATASET}`))).code, "RepoNotFound");
  });

  it("gates info and resolve: 401 without a token, 403 with a wrong one, 200 with a granted one", async () => {
    for (const path of [`/api/models/${GATED}`, `/${GATED}/resolve/main/config.json`]) {
      assert.deepEqual(await hubError(await fetch(`${hub.url}${path}`)), {
        status: 401,
        code: "GatedRepo",
        body: {
          error: `Access to model ${GATED} is restricted. You must have access to it and be authenticated to access it. Please log in.`,
        },
      });
      const wrong = await fetch(`${hub.url}${path}`, { headers: { authorization: "Bearer hf_other" } });
      assert.deepEqual(await hubError(wrong), {
        status: 403,
        code: "GatedRepo",
        body: {
          error: `Access to model ${GATED} is restricted and you are not in the authorized list. Visit https://huggingface.co/${GATED} to ask for access.`,
        },
      });
      const ok = await fetch(`${hub.url}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
      assert.equal(ok.status, 200);
      await ok.arrayBuffer();
    }
    const info = (await (
      await fetch(`${hub.url}/api/models/${GATED}`, { headers: { authorization: `Bearer ${TOKEN}` } })
    ).json()) as { gated: unknown };
    assert.equal(info.gated, "manual");
  });

  it("serves a small file directly with ETag, X-Repo-Commit and Content-Length", async () => {
    const res = await fetch(`${hub.url}/${MODEL}/resolve/main/config.json`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("etag"), `"${gitBlobId(CONFIG)}"`);
    assert.equal(res.headers.get("x-repo-commit"), SHA_MAIN);
    assert.equal(res.headers.get("content-length"), String(CONFIG.length));
    assert.equal((await body(res)).toString(), CONFIG);

    const one = await fetch(`${hub.url}/${SOLO}/resolve/main/config.json`);
    assert.equal((await body(one)).toString(), "{}");
  });

  it("redirects an LFS file to the cross-origin CDN, which fetch follows without the Bearer token", async () => {
    const st = hub.files(MODEL).find((f) => f.path === "model.safetensors");
    assert.ok(st);
    const path = `/${MODEL}/resolve/main/model.safetensors`;
    const auth = { authorization: "Bearer hf_some_token" };

    const head = await fetch(`${hub.url}${path}`, { method: "HEAD", redirect: "manual", headers: auth });
    assert.equal(head.status, 302);
    assert.equal(head.headers.get("x-repo-commit"), SHA_MAIN);
    assert.equal(head.headers.get("x-linked-etag"), `"${st.sha256}"`);
    assert.equal(head.headers.get("x-linked-size"), String(5 * MB));
    assert.equal(head.headers.get("etag"), `"${st.blobId}"`);
    const location = head.headers.get("location") ?? "";
    assert.ok(location.startsWith(`${hub.cdnUrl}/repos/`), location);
    assert.match(location, new RegExp(`/${st.sha256}\\?.*X-Amz-Signature=[0-9a-f]+`));
    assert.notEqual(new URL(location).origin, new URL(hub.url).origin);

    const before = hub.requests.length;
    const bytesBefore = hub.bytesServed(MODEL, "model.safetensors");
    const res = await fetch(`${hub.url}${path}`, { headers: auth });
    assert.equal(res.status, 200);
    assert.equal(res.url, location);
    const got = await body(res);
    assert.equal(got.length, 5 * MB);
    assert.equal(sha256(got), st.sha256);
    const seen = hub.requests.slice(before).map((r) => [r.host, r.status, r.authorization]);
    assert.deepEqual(seen, [
      ["hub", 302, true],
      ["cdn", 200, false],
    ]);
    assert.equal(hub.bytesServed(MODEL, "model.safetensors") - bytesBefore, 5 * MB);

    // A client that carries the token across origins itself is refused, as by a presigned S3 URL.
    const leaked = await fetch(location, { headers: auth });
    assert.equal(leaked.status, 400);
    assert.match(await leaked.text(), /<Code>InvalidArgument<\/Code><Message>Only one auth mechanism allowed/);
    // A tampered URL is refused too.
    const forged = await fetch(location.replace(/X-Amz-Signature=[0-9a-f]+/, "X-Amz-Signature=00"));
    assert.equal(forged.status, 403);
    await forged.arrayBuffer();
  });

  it("streams a 64 MiB generated LFS file whose sha256 matches lfs.sha256", async () => {
    const info = (await (await fetch(`${hub.url}/api/models/${MODEL}?blobs=true`)).json()) as {
      siblings: { rfilename: string; lfs?: { sha256: string; size: number } }[];
    };
    const lfs = info.siblings.find((s) => s.rfilename === "big.gguf")?.lfs;
    assert.equal(lfs?.size, 64 * MB);
    const res = await fetch(`${hub.url}/${MODEL}/resolve/main/big.gguf`);
    assert.ok(res.body);
    const h = createHash("sha256");
    let n = 0;
    for await (const chunk of res.body) {
      h.update(chunk);
      n += chunk.length;
    }
    assert.equal(n, 64 * MB);
    assert.equal(h.digest("hex"), lfs?.sha256);
  });

  it("honours Range on the CDN: 206 with Content-Range, suffix ranges, 416 when unsatisfiable", async () => {
    const path = `${hub.url}/${MODEL}/resolve/main/model.safetensors`;
    const full = await body(await fetch(path));
    const ranged = await fetch(path, { headers: { range: "bytes=1000-70999" } });
    assert.equal(ranged.status, 206);
    assert.equal(ranged.headers.get("content-range"), `bytes 1000-70999/${5 * MB}`);
    assert.equal(ranged.headers.get("content-length"), "70000");
    assert.deepEqual(await body(ranged), full.subarray(1000, 71000));

    // Mid-block start: the generator seeks into its keystream rather than regenerating from 0.
    const tail = await fetch(path, { headers: { range: `bytes=${5 * MB - 7}-` } });
    assert.equal(tail.status, 206);
    assert.deepEqual(await body(tail), full.subarray(5 * MB - 7));
    const suffix = await fetch(path, { headers: { range: "bytes=-100" } });
    assert.deepEqual(await body(suffix), full.subarray(5 * MB - 100));

    const bad = await fetch(path, { headers: { range: `bytes=${5 * MB}-` } });
    assert.equal(bad.status, 416);
    assert.equal(bad.headers.get("content-range"), `bytes */${5 * MB}`);
    assert.match(await bad.text(), /<Code>InvalidRange<\/Code>/);

    const head = await fetch(path, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-length"), String(5 * MB));
    assert.equal(head.headers.get("accept-ranges"), "bytes");
  });

  it("failNext: afterBytes makes the body read reject; a status answers once, then all is well", async () => {
    const path = `${hub.url}/${MODEL}/resolve/main/model.safetensors`;
    const before = hub.bytesServed(MODEL, "model.safetensors");
    hub.failNext({ path: "model.safetensors", host: "cdn" }, { afterBytes: 100_000 });
    const res = await fetch(path);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-length"), String(5 * MB));
    await assert.rejects(res.arrayBuffer());
    assert.equal(hub.bytesServed(MODEL, "model.safetensors") - before, 100_000);
    const cut = hub.requests.at(-1);
    assert.equal(cut?.host, "cdn");
    assert.equal(cut?.bytes, 100_000);

    hub.failNext({ path: /\/api\/models\// }, { status: 503, times: 2 });
    assert.equal((await fetch(`${hub.url}/api/models/${MODEL}`)).status, 503);
    assert.equal((await fetch(`${hub.url}/api/models/${MODEL}`)).status, 503);
    const ok = await fetch(`${hub.url}/api/models/${MODEL}`);
    assert.equal(ok.status, 200);
    await ok.arrayBuffer();

    // The 302 has no download body to cut, so an afterBytes fault for the hub passes it by.
    hub.failNext({ host: "hub" }, { afterBytes: 10 });
    const redirected = await fetch(path);
    assert.equal((await body(redirected)).length, 5 * MB);
    const small = await fetch(`${hub.url}/${MODEL}/resolve/main/tokenizer.json`);
    await assert.rejects(small.arrayBuffer(), "the pending fault cuts the next body the hub serves");
  });

  it("serves dataset repos under /api/datasets and /datasets/.../resolve", async () => {
    const res = await fetch(`${hub.url}/api/datasets/${DATASET}?blobs=true`);
    const info = (await res.json()) as Record<string, unknown>;
    assert.equal(info.id, DATASET);
    assert.equal(info.modelId, undefined);
    assert.deepEqual(
      (info.siblings as { rfilename: string; lfs?: unknown }[]).map((s) => [s.rfilename, s.lfs !== undefined]),
      [
        ["README.md", false],
        ["data/train.parquet", true],
      ],
    );
    const readme = await fetch(`${hub.url}/datasets/${DATASET}/resolve/main/README.md`);
    assert.equal((await body(readme)).toString(), "# corpus\n");
    const parquet = await fetch(`${hub.url}/datasets/${DATASET}/resolve/main/data/train.parquet`);
    const truth = hub.files(DATASET).find((f) => f.path === "data/train.parquet");
    assert.equal(sha256(await body(parquet)), truth?.sha256);
    // The same id under /api/models, or without /datasets/, is not found.
    assert.equal((await hubError(await fetch(`${hub.url}/${DATASET}/resolve/main/README.md`))).code, "RepoNotFound");
  });
});
