// The README's first command on a fresh copy of the repository: only tracked files (what a clone has), the first
// line of the "Fresh machine" block run as written except `npm ci`, which is replaced by linking this checkout's
// node_modules (the same lockfile; installing again would only add minutes). HF_ENDPOINT points at a closed port,
// so the run proves it needs no network: the example's data and tokenizer are files the project itself wrote.
// (The block's second command, `bash .ci/run`, is what CI runs around this very suite.)
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { REPO } from "./helpers/cli.js";

const copy = mkdtempSync(join(tmpdir(), "ftune-fresh-"));
after(() => rmSync(copy, { recursive: true, force: true }));

describe("README", () => {
  it("the fresh-machine command runs the whole pipeline offline and ends with a report", () => {
    const readme = readFileSync(join(REPO, "README.md"), "utf8");
    const block = /## Fresh machine: two commands\n\n```sh\n([\s\S]*?)\n```\n/.exec(readme)?.[1];
    assert.ok(block, "the README has the fresh-machine block");
    const first = block.split("\n")[0]!.replace(/\s+#.*$/, "").trim();
    assert.match(first, /^npm ci && npx ftune run configs\/examples\/[\w-]+\.yaml --dry-run$/);
    for (const f of execFileSync("git", ["ls-files", "-z"], { cwd: REPO, encoding: "utf8" }).split("\0").filter(Boolean)) {
      if (!existsSync(join(REPO, f))) continue; // deleted in the working tree
      mkdirSync(dirname(join(copy, f)), { recursive: true });
      copyFileSync(join(REPO, f), join(copy, f));
    }
    symlinkSync(join(REPO, "node_modules"), join(copy, "node_modules"));
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!/^(GITHUB_|RUNNER_|ACTIONS_|FTUNE_|AWS_|HF_)/.test(k)) env[k] = v;
    const r = spawnSync("bash", ["-c", first.replace(/^npm ci && /, "")], { cwd: copy, encoding: "utf8", env: { ...env, HF_ENDPOINT: "http://127.0.0.1:9", FTUNE_DRYRUN_STEP_SECONDS: "0.02" } });
    assert.equal(r.status, 0, r.stderr);
    const report = /report: (\S+report\.md)/.exec(r.stdout)?.[1];
    assert.ok(report && existsSync(report), r.stdout);
    assert.ok(report.startsWith(copy), "written inside the checkout");
    const md = readFileSync(report, "utf8");
    assert.match(md, /dry run: no model was trained/);
    assert.match(md, /\*\*No baseline:\*\*/);
    assert.match(md, /\| final train loss \| \d\.\d{4} \|/);
  });
});
