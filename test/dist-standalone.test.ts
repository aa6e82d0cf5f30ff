// The action runs dist/cli.js from its checkout with no node_modules: the bundle and the native tokenizer it
// ships in dist/native must work on their own. Copies dist/ somewhere with no node_modules above it and runs it.
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { REPO } from "./helpers/cli.js";

const work = mkdtempSync(join(tmpdir(), "ftune-dist-"));
after(() => rmSync(work, { recursive: true, force: true }));

describe("dist/ on its own", () => {
  it("validates, mirrors a model and prepares a dataset with the bundled native tokenizer", () => {
    cpSync(join(REPO, "dist"), join(work, "dist"), { recursive: true });
    mkdirSync(join(work, "model"));
    copyFileSync(resolve(REPO, "..", "shared", "data", "tokenizer-tinyllama-1.1b-chat.json"), join(work, "model", "tokenizer.json"));
    writeFileSync(join(work, "model", "config.json"), "{}");
    const data = resolve(REPO, "..", "shared", "data", "dolly-15k-head.jsonl");
    writeFileSync(join(work, "exp.yaml"), `model:\n  base_model: org/tiny\ndataset:\n  local_dataset_path: ${data}\n  fields: dolly\n  val_set_size: 10\n`);
    const env = { PATH: process.env.PATH!, HOME: work, HF_ENDPOINT: "http://127.0.0.1:9", FTUNE_CACHE_DIR: join(work, "cache") };
    const run = (...args: string[]) => spawnSync(process.execPath, [join(work, "dist", "cli.js"), ...args], { cwd: work, env, encoding: "utf8" });
    assert.equal(run("validate", "exp.yaml").status, 0);
    const m = run("models", "mirror", "org/tiny", "--from", "model", "--store", "file://store");
    assert.equal(m.status, 0, m.stderr);
    const d = run("dataprep", "exp.yaml", "--store", "file://store", "--json");
    assert.equal(d.status, 0, d.stderr);
    const out = JSON.parse(d.stdout) as { counts: { input: number; eval: number } };
    assert.equal(out.counts.input, 382);
    assert.equal(out.counts.eval, 10);
  });
});
