// The composite action end to end, step by step as the runner runs it (test/support/composite.ts): the real
// pull_request payload in, on the stand-ins (EC2 Query API with sshd instances and IMDS, s3rver as the store, the
// GitHub REST stand-in), a dry run on a spot instance. Out: the sticky PR comment, the step outputs, the artifact
// folder, and zero orphans, also when the train step is killed with SIGKILL (the always() step releases the host).
// Marketplace actions cannot run here; the `uses:` steps are played by the test: setup-node is a no-op (node is
// here), cache restore/save are no-ops (no cache service; ftune's store is the source of truth anyway), and
// upload-artifact copies the folder it is given.
import { describe, it, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RunStore } from "../src/store/index.js";
import { makeActionsEnv } from "./support/actions-env.js";
import { runComposite, type StepResult } from "./support/composite.js";
import { allows, policyActions } from "./support/iam.js";
import { startEc2StandIn, type Ec2StandIn } from "./support/ec2.js";
import { startGitHubStandIn, type GitHubStandIn } from "./support/github.js";
import { freePort, teardownAll } from "./support/processes.js";
import { REPO } from "./helpers/cli.js";
import { assertNoOrphans, ec2ConfigLines, ec2RunEnv } from "./helpers/ec2-run.js";
import { s3Backend, type Backend } from "./helpers/stores.js";

const work = mkdtempSync(join(tmpdir(), "ftune-action-e2e-"));
let ec2: Ec2StandIn;
let s3: Backend;
let gh: GitHubStandIn;
let sshPort: number;

before(async () => {
  sshPort = await freePort();
  ec2 = await startEc2StandIn({ sshPort, bootDelayMs: 200, terminateDelayMs: 100 });
  s3 = await s3Backend("action");
  gh = await startGitHubStandIn();
});
afterEach(() => assertNoOrphans(ec2));
after(async () => {
  await ec2?.stop();
  await s3?.stop();
  await gh?.stop();
  await teardownAll();
  rmSync(work, { recursive: true, force: true });
});

/** A repository checkout with one experiment on ec2, as the workflow's actions/checkout would leave it. */
function workspace(name: string, maxSteps: number): string {
  const ws = join(work, name);
  mkdirSync(join(ws, "configs", "data"), { recursive: true });
  cpSync(join(REPO, "configs", "examples", "data"), join(ws, "configs", "data"), { recursive: true });
  writeFileSync(
    join(ws, "configs", "tiny.yaml"),
    [
      "model:",
      "  base_model: TinyLlama/TinyLlama-1.1B-Chat-v1.0",
      "dataset:",
      "  local_dataset_path: data/tiny-instructions.jsonl",
      "  tokenizer: data/tokenizer.json",
      "  val_set_size: 2",
      "training:",
      `  max_steps: ${maxSteps}`,
      "  micro_batch_size: 2",
      "  macro_batch_size: 4",
      "  eval_steps: 10",
      "  save_steps: 10",
      "  logging_steps: 1",
      ...ec2ConfigLines({ sshPort, workdir: join(ws, ".boxes"), storeUrl: s3.url, s3Endpoint: s3.options.endpoint!, instanceTypes: ["g5.xlarge"] }),
      "trainer:",
      "  backend: dry-run",
    ].join("\n"),
  );
  return ws;
}

async function runAction(ws: string, stepSeconds: number, onStderrLine?: (id: string | undefined, line: string, kill: () => void) => void): Promise<{ steps: StepResult[]; artifacts: string; actions: Awaited<ReturnType<typeof makeActionsEnv>> }> {
  const actions = await makeActionsEnv({ event: "pull_request.opened", repo: "acme/llm", apiUrl: gh.url, token: "ghs_test", workspace: ws });
  const artifacts = join(work, `artifacts-${Date.now()}`);
  const steps = await runComposite({
    actionPath: REPO,
    inputs: { config: "configs/tiny.yaml", "dry-run": "true" },
    env: {
      ...actions.env,
      ...s3.env,
      ...ec2RunEnv(ec2, stepSeconds),
    },
    context: { "github.token": "ghs_test", "runner.temp": actions.env.RUNNER_TEMP!, "runner.os": "Linux", "github.run_id": actions.env.GITHUB_RUN_ID ?? "1" },
    uses: async (step, withValues) => {
      if (step.uses!.startsWith("actions/upload-artifact")) {
        if (existsSync(withValues.path!)) cpSync(withValues.path!, join(artifacts, withValues.name!), { recursive: true });
      }
      return { outcome: "success" };
    },
    onStderrLine,
  });
  return { steps, artifacts, actions };
}

const outcome = (steps: StepResult[], id: string): string | undefined => steps.find((s) => s.id === id)?.outcome;

describe("the composite action, a pull request end to end (stand-ins)", () => {
  it("validates, prepares, trains on spot, reports on the PR, releases and uploads", async () => {
    const ws = workspace("pr", 20);
    const { steps, artifacts, actions } = await runAction(ws, 0.02);
    const failed = steps.filter((s) => s.outcome === "failure");
    assert.deepEqual(failed.map((s) => `${s.name}: ${s.stderr.slice(-2000)}`), []);
    assert.deepEqual(steps.map((s) => [s.name, s.outcome]).filter(([, o]) => o === "skipped"), [["Configs to train for this event", "skipped"]]);
    const runId = steps.find((s) => s.id === "prepare")!.outputs["run-id"]!;
    assert.match(steps.find((s) => s.id === "validate")!.outputs["config-hash"]!, /^[0-9a-f]{64}$/);
    assert.match(steps.find((s) => s.id === "dataprep")!.outputs["dataset-uri"]!, new RegExp(`^${s3.url}/datasets/[0-9a-f]{64}$`));
    const report = steps.find((s) => s.id === "report")!;
    assert.equal(report.outputs["run-id"], runId);
    assert.equal((JSON.parse(report.outputs.metrics!) as { dry_run: boolean }).dry_run, true);
    // The PR comment: one, with the marker, in namespace pr-2 (the payload's PR).
    const comments = gh.comments("acme", "llm", 2);
    assert.equal(comments.length, 1);
    assert.match(comments[0]!.body, /^<!-- ftune-report config=tiny -->/);
    assert.match(comments[0]!.body, /dry run: no model was trained/);
    assert.match(comments[0]!.body, /Run `[^`]+` in namespace `pr-2`/);
    const rec = await new RunStore(s3.store).readRecord("llm", "pr-2", runId);
    assert.equal(rec?.status, "succeeded", "project = the repository's name, namespace = pr-<N>");
    // The artifact folder the upload step got.
    const art = join(artifacts, steps.find((s) => s.id === "prepare")!.outputs.artifact!);
    for (const f of ["adapter/adapter_model.safetensors", "trainer_state.json", "logs/train.log", "report.md", "loss.svg", "run.json", "config.resolved.yaml"]) assert.ok(existsSync(join(art, f)), f);
    assert.match(actions.readSummary(), /## ftune · `tiny`/);
    // A second push to the PR updates the same comment.
    const again = await runAction(ws, 0.02);
    assert.equal(outcome(again.steps, "report"), "success");
    assert.equal(gh.comments("acme", "llm", 2).length, 1, "still one comment");
    await actions.cleanup();
    await again.actions.cleanup();
  });

  it("the train step killed (SIGKILL) mid-run: the always() step terminates the instance", async () => {
    const ws = workspace("killed", 400);
    let launched: string | undefined;
    const { steps, actions } = await runAction(ws, 0.1, (id, line, kill) => {
      launched ??= /ec2: launched \S+ \S+ (i-[0-9a-f]+)/.exec(line)?.[1];
      if (id === "train" && /train: step 5\//.test(line)) kill();
    });
    assert.ok(launched, "an instance was launched");
    assert.equal(outcome(steps, "train"), "failure");
    assert.equal(ec2.instances[launched!]!.state, "terminated", "released by the always() step");
    const release = steps.find((s) => s.name === "Release this run's hosts")!;
    assert.equal(release.outcome, "success", release.stderr);
    assert.match(release.stdout, /terminated\s+instance\s+i-/);
    // The report still ran and says the run did not finish.
    assert.equal(outcome(steps, "report"), "success");
    assert.match(gh.comments("acme", "llm", 2).at(-1)!.body, /ftune · `tiny` · running/);
    await actions.cleanup();
  });

  it("docs/iam-policy.json allows every EC2 call the stand-in saw in these runs", () => {
    const seen = [...new Set(ec2.requests.map((q) => q.action))].sort();
    assert.ok(seen.includes("RunInstances") && seen.includes("TerminateInstances") && seen.includes("GetConsoleOutput"), seen.join(", "));
    assert.deepEqual(seen.filter((a) => !allows(policyActions(REPO), `ec2:${a}`)), []);
  });
});
