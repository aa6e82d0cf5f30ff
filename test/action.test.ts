// The composite action's validate step, run the way the runner runs it: its `run:` script under bash with the
// step's `env:` (inputs substituted), GITHUB_ACTION_PATH at this checkout and a real runner environment.
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { ACTION_END, ACTION_START, renderActionReference } from "../scripts/action-reference.js";
import { makeActionsEnv } from "./support/actions-env.js";
import { REPO } from "./helpers/cli.js";
import { makeTree, MINIMAL } from "./helpers/tree.js";

interface Step {
  id?: string;
  name?: string;
  uses?: string;
  run?: string;
  shell?: string;
  env?: Record<string, string>;
}
interface ActionFile {
  inputs: Record<string, { required?: boolean; default?: string }>;
  outputs: Record<string, { value: string }>;
  runs: { using: string; steps: Step[] };
}

const action = parse(readFileSync(join(REPO, "action.yml"), "utf8")) as ActionFile;
const tree = makeTree();
after(() => tree.remove());

/** What the runner does to `${{ inputs.x }}` in a step's env. */
function substitute(value: string, inputs: Record<string, string>): string {
  return value.replace(/\$\{\{\s*inputs\.([A-Za-z0-9_-]+)\s*\}\}/g, (_, name: string) => inputs[name] ?? action.inputs[name]?.default ?? "");
}

async function runValidateStep(inputs: Record<string, string>, workspace: string) {
  const step = action.runs.steps.find((s) => s.id === "validate");
  assert.ok(step?.run, "action.yml has a validate step with a run script");
  const gh = await makeActionsEnv({ event: "pull_request.opened", workspace });
  try {
    const stepEnv = Object.fromEntries(Object.entries(step.env ?? {}).map(([k, v]) => [k, substitute(v, inputs)]));
    const r = spawnSync("bash", ["--noprofile", "--norc", "-e", "-o", "pipefail", "-c", step.run], {
      cwd: workspace,
      env: { ...gh.env, ...stepEnv, GITHUB_ACTION_PATH: REPO },
      encoding: "utf8",
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr, outputs: gh.readOutputs() };
  } finally {
    await gh.cleanup();
  }
}

describe("action.yml", () => {
  it("is a composite action whose scripts never expand ${{ }} expressions (inputs go through env)", () => {
    assert.equal(action.runs.using, "composite");
    for (const s of action.runs.steps) if (s.run) assert.doesNotMatch(s.run, /\$\{\{/, s.name ?? s.id ?? "step");
    assert.equal(action.outputs["config-hash"]?.value, "${{ steps.validate.outputs.config-hash }}");
  });

  it("validates a config with overrides and sets the config-hash output", async () => {
    const r = await runValidateStep({ config: "configs/examples/dry-run.yaml", overrides: "training.learning_rate=1e-4\n  lora.rank=8\n\n" }, REPO);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.outputs["config-hash"] ?? "", /^[0-9a-f]{64}$/);
    const plain = await runValidateStep({ config: "configs/examples/dry-run.yaml" }, REPO);
    assert.notEqual(plain.outputs["config-hash"], r.outputs["config-hash"], "overrides reach the CLI");
  });

  it("takes several configs and folders, and fails with annotations on a bad one", async () => {
    tree.write("configs/ok.yaml", MINIMAL);
    tree.write("configs/bad.yaml", `${MINIMAL}lora:\n  rank: zero\n`);
    const r = await runValidateStep({ config: "configs/ok.yaml\nconfigs/bad.yaml" }, tree.dir);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /^::error title=ftune%3A lora\.rank,file=configs\/bad\.yaml,line=6,col=9::/m);
    assert.equal(r.outputs["config-hash"], undefined);
    tree.write("good/a.yaml", MINIMAL);
    tree.write("good/nested/b.yaml", MINIMAL);
    const folder = await runValidateStep({ config: "good/  configs/ok.yaml" }, tree.dir);
    assert.equal(folder.code, 0, folder.stdout + folder.stderr);
    assert.match(folder.stdout, /3 configs: 3 valid/);
  });

  it("a crafted input is data, not shell", async () => {
    const r = await runValidateStep({ config: "configs/examples/dry-run.yaml", overrides: "project.name=$(touch /tmp/ftune-pwned)" }, REPO);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /project\.name/);
    assert.equal(spawnSync("test", ["-e", "/tmp/ftune-pwned"]).status, 1);
  });

  it("the README's table of inputs and outputs is generated from action.yml and up to date (npm run docs)", () => {
    const readme = readFileSync(join(REPO, "README.md"), "utf8");
    const section = readme.slice(readme.indexOf(ACTION_START), readme.indexOf(ACTION_END) + ACTION_END.length);
    assert.equal(section, renderActionReference(readFileSync(join(REPO, "action.yml"), "utf8")));
    for (const k of [...Object.keys(action.inputs ?? {}), ...Object.keys(action.outputs ?? {})]) assert.ok(section.includes(`| \`${k}\` |`), k);
  });
});
