// The model store against the Hub stand-in and both store backends: mirror (file selection, verification, the
// manifest written last), resume after an interruption, gated models, pull, ls and presigned URLs.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HubClient } from "../src/hub/index.js";
import { findModel, listModels, mirrorModel, modelPrefix, presignModel, pullModel, MANIFEST } from "../src/models/index.js";
import { selectModelFiles } from "../src/models/select.js";
import type { Store } from "../src/store/index.js";
import { UserError } from "../src/util/errors.js";
import { startHubStandIn, type HubStandIn } from "./support/hub.js";
import { teardownAll } from "./support/processes.js";
import { fileBackend, s3Backend, type Backend } from "./helpers/stores.js";

const MiB = 1 << 20;
const MODEL = "org/tiny-llama";
const GATED = "org/gated-llama";
const TOKEN = "hf_testtokenabcdefghijklmnopqrstuvwxyz";
const quiet = { quiet: true };
const work = mkdtempSync(join(tmpdir(), "ftune-models-test-"));
const sha256 = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

let hub: HubStandIn;
before(async () => {
  hub = await startHubStandIn({
    repos: [
      {
        id: MODEL,
        files: [
          { path: "config.json", content: '{"model_type":"llama","hidden_size":64}' },
          { path: "generation_config.json", content: '{"max_length":2048}' },
          { path: "tokenizer.json", size: 200_000, lfs: false },
          { path: "tokenizer_config.json", content: '{"add_bos_token":true}' },
          { path: "model.safetensors.index.json", content: '{"weight_map":{}}' },
          { path: "model-00001-of-00002.safetensors", size: 9 * MiB + 7 },
          { path: "model-00002-of-00002.safetensors", size: 6 * MiB },
          { path: "pytorch_model.bin", size: 2 * MiB },
          { path: "README.md", content: "# tiny" },
          { path: ".gitattributes", content: "*.safetensors filter=lfs" },
          { path: "onnx/model.onnx", size: MiB },
        ],
      },
      { id: GATED, gated: { tokens: [TOKEN] }, files: [{ path: "config.json", content: "{}" }, { path: "model.safetensors", size: 2 * MiB }] },
    ],
  });
});
after(async () => {
  await hub?.stop();
  rmSync(work, { recursive: true, force: true });
  await teardownAll();
});

const client = (token?: string): HubClient => new HubClient({ endpoint: hub.url, token });
const WANTED = ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors.index.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"];

/** Wraps a store and records the order of writes (the store itself is real). */
function recording(store: Store): { store: Store; writes: string[] } {
  const writes: string[] = [];
  const wrapped = Object.create(store) as Store;
  wrapped.putBytes = (key, ...rest) => (writes.push(key), store.putBytes(key, ...rest));
  wrapped.uploadStream = (key, ...rest) => store.uploadStream(key, ...rest).then(() => void writes.push(key));
  wrapped.uploadFile = (path, key, ...rest) => store.uploadFile(path, key, ...rest).then(() => void writes.push(key));
  return { store: wrapped, writes };
}

describe("file selection", () => {
  it("keeps config, tokenizer, safetensors and code; drops .bin duplicates, docs and other formats", () => {
    const files = ["config.json", "model.safetensors", "pytorch_model.bin", "pytorch_model.bin.index.json", "tokenizer.model", "README.md", "onnx/model.onnx", "flax_model.msgpack", "modeling_x.py", "original/consolidated.00.pth", "chat_template.jinja"].map((path) => ({ path }));
    assert.deepEqual(selectModelFiles(files).selected.map((f) => f.path), ["config.json", "model.safetensors", "tokenizer.model", "modeling_x.py", "chat_template.jinja"]);
    const binOnly = [{ path: "config.json" }, { path: "pytorch_model.bin" }];
    assert.deepEqual(selectModelFiles(binOnly).selected.map((f) => f.path), ["config.json", "pytorch_model.bin"]);
    assert.deepEqual(selectModelFiles(files, ["*.json"], null).selected.map((f) => f.path), ["config.json", "pytorch_model.bin.index.json"]);
    assert.deepEqual(selectModelFiles(files, null, ["*.py", "*.jinja"]).selected.map((f) => f.path), ["config.json", "model.safetensors", "tokenizer.model"]);
  });
});

for (const make of [fileBackend, () => s3Backend("models-test", { partSize: 5 * MiB })]) {
  describe("model store", () => {
    let b: Backend;
    before(async () => {
      b = await make();
    });
    after(async () => b?.stop());

    it("mirrors from the Hub: the needed files, verified, manifest written last", async () => {
      const rec = recording(b.store);
      const r = await mirrorModel(rec.store, { model: MODEL, hub: client(), progress: quiet });
      const truth = new Map(hub.files(MODEL).map((f) => [f.path, f]));
      const sha = r.manifest.commit!;
      assert.match(sha, /^[0-9a-f]{40}$/);
      assert.deepEqual(r.manifest.files.map((f) => f.path), WANTED);
      for (const f of r.manifest.files) {
        assert.equal(f.sha256, truth.get(f.path)!.sha256, f.path);
        assert.equal(f.size, truth.get(f.path)!.size, f.path);
      }
      assert.equal(r.uri, b.store.uri(modelPrefix(MODEL, sha)));
      assert.equal(rec.writes[rec.writes.length - 1], `${modelPrefix(MODEL, sha)}/${MANIFEST}`);
      assert.equal(r.transferred.files, WANTED.length);
      assert.equal(await b.store.head(`${modelPrefix(MODEL, sha)}/pytorch_model.bin`), null);
      assert.equal(await b.store.head(`${modelPrefix(MODEL, sha)}/_ftune_partial.json`), null, "journal removed");
      // No token leaked to the CDN.
      assert.ok(hub.requests.filter((q) => q.host === "cdn").every((q) => !q.authorization));
    });

    it("a second mirror finds the manifest and moves nothing", async () => {
      const before = hub.bytesServed(MODEL, "model-00001-of-00002.safetensors");
      const r = await mirrorModel(b.store, { model: MODEL, hub: client(), progress: quiet });
      assert.equal(r.already, true);
      assert.equal(hub.bytesServed(MODEL, "model-00001-of-00002.safetensors"), before);
    });

    it("pull makes a verified local copy, keeps good files and repairs bad ones", async () => {
      const dir = join(work, `${b.name}-pull`);
      const r = await pullModel(b.store, { model: MODEL, to: dir, hub: client(), progress: quiet });
      assert.equal(r.transferred.files, WANTED.length);
      for (const f of r.manifest.files) assert.equal(sha256(readFileSync(join(dir, f.path))), f.sha256);
      assert.ok(readFileSync(join(dir, MANIFEST), "utf8").includes(r.manifest.commit!));
      const again = await pullModel(b.store, { model: MODEL, to: dir, hub: client(), progress: quiet });
      assert.equal(again.transferred.files, 0);
      assert.equal(again.transferred.reused, WANTED.length);
      writeFileSync(join(dir, "config.json"), '{"tampered":true}');
      const repaired = await pullModel(b.store, { model: MODEL, to: dir, hub: client(), progress: quiet });
      assert.equal(repaired.transferred.files, 1);
      assert.equal(sha256(readFileSync(join(dir, "config.json"))), r.manifest.files[0]!.sha256);
      // By commit sha, without asking the Hub.
      const bySha = await findModel(b.store, MODEL, r.manifest.commit!);
      assert.equal(bySha?.manifest.commit, r.manifest.commit);
    });

    it("an interrupted mirror leaves no manifest; the rerun moves only what is missing", async () => {
      const model = "org/tiny-llama";
      const fresh = b.name === "s3" ? await s3Backend("interrupted", { partSize: 5 * MiB }) : await fileBackend();
      try {
        const cut = "model-00002-of-00002.safetensors";
        hub.failNext({ path: cut, host: "cdn" }, { afterBytes: MiB, times: 6 });
        await assert.rejects(mirrorModel(fresh.store, { model, hub: client(), progress: quiet, concurrency: 4 }));
        const sha = (await client().repo("model", model)).sha;
        const prefix = modelPrefix(model, sha);
        assert.equal(await fresh.store.head(`${prefix}/${MANIFEST}`), null, "no manifest after a failed mirror");
        const journal = JSON.parse((await fresh.store.getBytes(`${prefix}/_ftune_partial.json`))!.toString()) as { path: string }[];
        assert.ok(journal.length > 0 && !journal.some((j) => j.path === cut), JSON.stringify(journal));
        const served = new Map(WANTED.map((p) => [p, hub.bytesServed(model, p)]));
        const r = await mirrorModel(fresh.store, { model, hub: client(), progress: quiet, concurrency: 4 });
        assert.equal(r.already, false);
        for (const j of journal) assert.equal(hub.bytesServed(model, j.path), served.get(j.path), `${j.path} was moved again`);
        assert.equal(hub.bytesServed(model, cut) - served.get(cut)!, 6 * MiB);
        assert.equal(r.transferred.files, WANTED.length - journal.length);
        assert.equal(r.transferred.reused, journal.length);
        assert.ok(await fresh.store.head(`${prefix}/${MANIFEST}`));
      } finally {
        await fresh.stop();
      }
    });

    it("gated models need a token with access; errors name the fix", async () => {
      await assert.rejects(mirrorModel(b.store, { model: GATED, hub: client(), progress: quiet }), (e: unknown) => {
        assert.ok(e instanceof UserError);
        assert.match((e as Error).message, /model org\/gated-llama is gated: accept its terms at .* and provide a HuggingFace token/);
        return true;
      });
      await assert.rejects(mirrorModel(b.store, { model: GATED, hub: client("hf_wrongtokenabcdefghijklmnopqrstuvwx"), progress: quiet }), /this token has no access/);
      const r = await mirrorModel(b.store, { model: GATED, hub: client(TOKEN), progress: quiet });
      assert.equal(r.manifest.files.length, 2);
      await assert.rejects(mirrorModel(b.store, { model: "org/nope", hub: client(), progress: quiet }), /model org\/nope was not found on the Hub/);
      await assert.rejects(mirrorModel(b.store, { model: MODEL, revision: "v9", hub: client(), progress: quiet }), /has no revision "v9"/);
    });

    it("mirrors from a local folder (air-gapped) with the same selection", async () => {
      const src = join(work, `${b.name}-local-model`);
      mkdirSync(join(src, ".cache"), { recursive: true });
      writeFileSync(join(src, "config.json"), '{"a":1}');
      writeFileSync(join(src, "model.safetensors"), Buffer.alloc(7 * MiB, 7));
      writeFileSync(join(src, "pytorch_model.bin"), Buffer.alloc(MiB, 1));
      writeFileSync(join(src, ".cache", "x.lock"), "");
      const r = await mirrorModel(b.store, { model: "local/m", revision: "v1", from: src, progress: quiet });
      assert.deepEqual(r.manifest.files.map((f) => f.path), ["config.json", "model.safetensors"]);
      assert.equal(r.manifest.source, "local");
      assert.equal(r.manifest.files[1]!.sha256, sha256(Buffer.alloc(7 * MiB, 7)));
      assert.equal((await mirrorModel(b.store, { model: "local/m", revision: "v1", from: src, progress: quiet })).already, true);
      const listed = await listModels(b.store);
      assert.deepEqual(listed.map((m) => `${m.model}@${m.revision}:${m.files}`).sort(), [`${GATED}@main:2`, "local/m@v1:2", `${MODEL}@main:${WANTED.length}`].sort());
      await assert.rejects(pullModel(b.store, { model: "local/none", to: join(work, "x"), progress: quiet }), /is not in the store .*run: ftune models mirror local\/none/);
    });

    it("presigned URLs give the box every file with no credentials", async () => {
      const found = await findModel(b.store, "local/m", "v1");
      assert.ok(found);
      const urls = await presignModel(b.store, found.prefix, found.manifest, 3600);
      for (const f of urls) {
        const bytes = f.url.startsWith("file:") ? readFileSync(new URL(f.url)) : Buffer.from(await (await fetch(f.url)).arrayBuffer());
        assert.equal(sha256(bytes), f.sha256, f.path);
      }
    });
  });
}
