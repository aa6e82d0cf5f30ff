// `ftune train --dry-run` on compute.provider ec2, end to end on the stand-ins: the EC2 Query API stand-in (each
// instance boots as its own sshd on 127.0.10.<n>, with an IMDS stand-in for spot notices), s3rver as the store (the
// box fetches its inputs through presigned URLs), and the real CLI. Faults are injected at moments read from the
// CLI's own log: a spot interruption mid-training, one during staging, every SSH connection killed mid-run, and a
// trainer that crashes. After each: the run record tells what happened, the final trainer_state.json is whole
// (strictly increasing steps up to the planned count) and the EC2 ledger shows no orphan.
import { describe, it, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { mirrorModel } from "../src/models/index.js";
import { openStore, RunStore, type Store } from "../src/store/index.js";
import { startEc2StandIn, type Ec2StandIn } from "./support/ec2.js";
import { startSshHost } from "./support/sshd.js";
import { descendantPids, freePort, teardownAll } from "./support/processes.js";
import { REPO, ftuneAsync } from "./helpers/cli.js";
import { assertNoOrphans, ec2ConfigLines, ec2RunEnv } from "./helpers/ec2-run.js";
import { s3Backend, type Backend } from "./helpers/stores.js";

const work = mkdtempSync(join(tmpdir(), "ftune-train-remote-"));
let ec2: Ec2StandIn;
let s3: Backend;
let store: Store;
let sshPort: number;
const MAX_STEPS = 40;
const SAVE_STEPS = 10;

interface Attempt {
  attempt: number;
  host: string;
  instance_type: string;
  availability_zone: string;
  market: string;
  end_reason: string;
  resumed_from: string | null;
  resumed_step: number;
  last_step: number;
  steps_lost?: number;
  seconds_lost?: number;
  spot_notice_at?: string;
  checkpoint_step_at_notice?: number;
  checkpoints_synced: string[];
  gpu_seconds?: number;
  cost_usd?: number;
}
interface Rec {
  run_id: string;
  status: string;
  error?: string;
  attempts: Attempt[];
  gpu_seconds: number;
  cost_usd: number | null;
  recovery: { interruptions: number; steps_lost: number; seconds_lost: number };
  metrics?: { steps: number };
}

before(async () => {
  sshPort = await freePort();
  ec2 = await startEc2StandIn({ sshPort, bootDelayMs: 200, terminateDelayMs: 100 });
  s3 = await s3Backend("train");
  store = s3.store;
  // The tokenizer dataprep counts with, from the model store (no Hub here).
  const model = join(work, "model");
  mkdirSync(model);
  copyFileSync(resolve(REPO, "..", "shared", "data", "tokenizer-tinyllama-1.1b-chat.json"), join(model, "tokenizer.json"));
  writeFileSync(join(model, "config.json"), "{}");
  await mirrorModel(store, { model: "TinyLlama/TinyLlama-1.1B-Chat-v1.0", from: model, progress: { quiet: true } });
});
afterEach(() => assertNoOrphans(ec2));
after(async () => {
  await ec2?.stop();
  await s3?.stop();
  await teardownAll();
  rmSync(work, { recursive: true, force: true });
});

let configs = 0;
function config(extra = ""): string {
  const path = join(work, `run-${++configs}.yaml`);
  writeFileSync(
    path,
    [
      `extends: ${join(REPO, "configs", "examples", "dry-run.yaml")}`,
      "dataset:",
      `  local_dataset_path: ${join(REPO, "configs", "examples", "data", "tiny-instructions.jsonl")}`,
      "training:",
      `  max_steps: ${MAX_STEPS}`,
      `  save_steps: ${SAVE_STEPS}`,
      "  eval_steps: 20",
      ...ec2ConfigLines({ sshPort, workdir: join(work, "boxes"), storeUrl: s3.url, s3Endpoint: s3.options.endpoint!, availabilityZones: ["us-east-1a", "us-east-1b"] }),
      extra,
    ].join("\n"),
  );
  return path;
}

function env(stepSeconds = 0.1): Record<string, string> {
  return {
    ...s3.env,
    ...ec2RunEnv(ec2, stepSeconds),
    FTUNE_CACHE_DIR: join(work, "cache"),
  };
}

/** The run's trainer_state.json from the run store: its log_history steps. */
async function historySteps(runId: string): Promise<number[]> {
  const body = await new RunStore(store).readFile("ftune-experiments", "local", runId, "trainer_state.json");
  assert.ok(body, "trainer_state.json in the run store");
  return (JSON.parse(body.toString("utf8")) as { log_history: { step: number; loss?: number }[] }).log_history.filter((e) => e.loss !== undefined).map((e) => e.step);
}

function assertWholeCurve(steps: number[]): void {
  for (let i = 1; i < steps.length; i++) assert.ok(steps[i]! > steps[i - 1]!, `log_history steps strictly increase (${steps[i - 1]} then ${steps[i]})`);
  assert.deepEqual(steps, Array.from({ length: MAX_STEPS }, (_, i) => i + 1), "every step logged once, up to the planned count");
}

const launched = (line: string): string | undefined => /ec2: launched \S+ \S+ (i-[0-9a-f]+)/.exec(line)?.[1];

describe("ftune train on ec2 (stand-ins)", () => {
  it("a dry run completes on a spot instance: checkpoints synced, outputs and run record written, host released", async () => {
    const out = join(work, "out-ok");
    const r = await ftuneAsync(["train", config(), "--dry-run", "--out", out, "--json"], { cwd: work, env: env(0.02) });
    assert.equal(r.code, 0, r.stderr);
    const rec = JSON.parse(r.stdout) as Rec;
    assert.equal(rec.status, "succeeded");
    assert.equal(rec.attempts.length, 1);
    const [a] = rec.attempts;
    assert.deepEqual([a!.market, a!.instance_type, a!.end_reason, a!.resumed_from], ["spot", "g5.xlarge", "completed", null]);
    assert.deepEqual([...a!.checkpoints_synced].sort(), ["checkpoint-10", "checkpoint-20", "checkpoint-30", "checkpoint-40"]);
    assert.ok(rec.gpu_seconds > 0 && rec.cost_usd! > 0, "GPU time and cost recorded");
    assert.equal(rec.metrics?.steps, MAX_STEPS);
    assertWholeCurve(await historySteps(rec.run_id));
    assert.match(r.stderr, /staging inputs on ec2 host i-/);
    assert.match(r.stderr, /train: step 40\/40 \(100%\)/);
    assert.ok(readFileSync(join(out, "adapter", "adapter_model.safetensors")).length > 0);
    // Inputs came through presigned URLs: the box never got credentials, and the URL list was deleted after use.
    assert.match(readFileSync(join(out, "logs", "train.log"), "utf8"), /ftune: inputs staged/);
  });

  it("a spot interruption mid-training: checkpoint on notice, resume on a new host from it, whole curve", async () => {
    let first: string | undefined;
    let interrupted = false;
    const r = await ftuneAsync(["train", config(), "--dry-run", "--json"], {
      cwd: work,
      env: env(0.1),
      onStderrLine: (line) => {
        first ??= launched(line);
        if (!interrupted && first && /train: step 1[4-9]\//.test(line)) {
          interrupted = true;
          ec2.interrupt(first, { noticeMs: 5000 });
        }
      },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(interrupted, "the fault was injected");
    const rec = JSON.parse(r.stdout) as Rec;
    assert.equal(rec.status, "succeeded");
    assert.deepEqual(rec.attempts.map((a) => a.end_reason), ["spot-interruption", "completed"]);
    const [lost, resumed] = rec.attempts as [Attempt, Attempt];
    assert.equal(lost.host, first);
    assert.ok(lost.spot_notice_at, "the notice was seen");
    assert.notEqual(resumed.host, lost.host);
    assert.notDeepEqual([resumed.instance_type, resumed.availability_zone], [lost.instance_type, lost.availability_zone], "the pool that lost the host is tried last");
    // The checkpoint the notice asked for is what the new host resumed from (not the last periodic one).
    assert.ok(resumed.resumed_from, "resumed from a checkpoint");
    assert.ok(resumed.resumed_step > lost.checkpoint_step_at_notice!, `resumed from a checkpoint saved after the notice (newest before it: ${lost.checkpoint_step_at_notice}), got ${resumed.resumed_from}`);
    assert.ok(lost.steps_lost! <= SAVE_STEPS, `at most one checkpoint interval lost, got ${lost.steps_lost}`);
    assert.equal(rec.recovery.interruptions, 1);
    assert.match(r.stderr, /spot interruption notice on ec2 host/);
    assert.match(r.stderr, /Resuming training from checkpoint/);
    assertWholeCurve(await historySteps(rec.run_id));
  });

  it("an interruption during staging: the next host starts over cleanly", async () => {
    let first: string | undefined;
    let interrupted = false;
    const r = await ftuneAsync(["train", config(), "--dry-run", "--json"], {
      cwd: work,
      env: env(0.02),
      onStderrLine: (line) => {
        first ??= launched(line);
        if (!interrupted && first && /staging inputs on/.test(line)) {
          interrupted = true;
          ec2.interrupt(first, { noticeMs: 0 });
        }
      },
    });
    assert.equal(r.code, 0, r.stderr);
    const rec = JSON.parse(r.stdout) as Rec;
    assert.deepEqual(rec.attempts.map((a) => [a.end_reason, a.resumed_from]), [["spot-interruption", null], ["completed", null]]);
    assertWholeCurve(await historySteps(rec.run_id));
  });

  it("every SSH connection killed mid-run: the watcher reattaches and nothing is lost or repeated", async () => {
    let first: string | undefined;
    let killed = 0;
    const r = await ftuneAsync(["train", config(), "--dry-run", "--json"], {
      cwd: work,
      env: env(0.1),
      onStderrLine: (line) => {
        first ??= launched(line);
        if (!killed && first && /train: step 1[2-9]\//.test(line)) {
          // sshd's per-connection children: the connections drop, the listener (and the detached job) stay.
          const sshd = ec2.instances[first]!.sshPid!;
          for (const pid of descendantPids(sshd)) {
            try {
              process.kill(pid, "SIGKILL");
              killed++;
            } catch {
              // already gone
            }
          }
        }
      },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(killed > 0, "connections were killed");
    const rec = JSON.parse(r.stdout) as Rec;
    assert.deepEqual(rec.attempts.map((a) => a.end_reason), ["completed"], "same host, one attempt");
    assert.match(r.stderr, /reconnected, continuing from log offset \d+/);
    const steps = [...r.stderr.matchAll(/train: step (\d+)\/40/g)].map((m) => Number(m[1]));
    assert.deepEqual(steps, Array.from({ length: MAX_STEPS }, (_, i) => i + 1), "each progress line once, in order");
    assertWholeCurve(await historySteps(rec.run_id));
  });

  it("a trainer crash fails the run with the end of its log and releases the host", async () => {
    const cfg = config("trainer:\n  backend: custom\n  command: \"echo loading shards; echo 'CUDA error: out of memory' >&2; exit 3\"");
    const r = await ftuneAsync(["train", cfg, "--json"], { cwd: work, env: env() });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /the trainer exited with 3 on ec2 host i-[0-9a-f]+[^\n]*; the end of its log:\n(.*\n)*.*CUDA error: out of memory/);
    const runs = new RunStore(store);
    const ids = await runs.listRuns("ftune-experiments", "local");
    const recs = await Promise.all(ids.map((id) => runs.readRecord("ftune-experiments", "local", id)));
    const failed = recs.find((x) => x?.status === "failed") as unknown as Rec;
    assert.ok(failed, "a failed run record");
    assert.deepEqual(failed.attempts.map((a) => a.end_reason), ["trainer-failed"]);
    assert.match(String(failed.error), /exited with 3/);
    assert.match(r.stderr, /released ec2 host i-/);
  });
});

describe("ftune train on several nodes (ec2 stand-in)", () => {
  it("launches the nodes together into one placement group, trains, and releases everything", async () => {
    const r = await ftuneAsync(["train", config(), "--dry-run", "--set", "compute.nodes=2", "--json"], { cwd: work, env: env(0.02) });
    assert.equal(r.code, 0, r.stderr);
    const rec = JSON.parse(r.stdout) as Rec;
    assert.deepEqual(rec.attempts.map((a) => a.end_reason), ["completed"]);
    const launch = ec2.launches.find((l) => l.instanceIds?.includes(rec.attempts[0]!.host))!;
    assert.equal(launch.instanceIds!.length, 2, "one RunInstances for both nodes");
    assert.match(launch.placementGroup ?? "", /^ftune-.+-1$/);
    const a = rec.attempts[0] as Attempt & { nodes: string[] };
    assert.deepEqual(a.nodes, launch.instanceIds, "both machines recorded");
    // Both machines are billed: GPU time is 2 machines x 1 GPU x the time from launch to release.
    const t = a as unknown as { launched_at: string; ended_at: string };
    const seconds = (Date.parse(t.ended_at) - Date.parse(t.launched_at)) / 1000;
    assert.ok(Math.abs(a.gpu_seconds! - 2 * seconds) <= 1, `${a.gpu_seconds} GPU-seconds over ${seconds} s on 2 x 1 GPU`);
    assertWholeCurve(await historySteps(rec.run_id));
  });

  it("a spot notice on node 1 is relayed to node 0: checkpoint, stop, resume on a new pair, whole curve", async () => {
    let second: string | undefined;
    let interrupted = false;
    const r = await ftuneAsync(["train", config(), "--dry-run", "--set", "compute.nodes=2", "--json"], {
      cwd: work,
      // Slow enough that the run cannot finish within the notice: the relay, not the clock, must end the attempt.
      env: env(0.2),
      onStderrLine: (line) => {
        second ??= /ec2: launched \S+ \S+ i-[0-9a-f]+, (i-[0-9a-f]+)/.exec(line)?.[1];
        if (!interrupted && second && /train: step 1[4-9]\//.test(line)) {
          interrupted = true;
          ec2.interrupt(second, { noticeMs: 5000 });
        }
      },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(interrupted, "the fault was injected");
    const rec = JSON.parse(r.stdout) as Rec;
    assert.deepEqual(rec.attempts.map((a) => a.end_reason), ["spot-interruption", "completed"]);
    assert.match(r.stderr, /spot interruption notice on node i-[0-9a-f]+: relayed to node 0/);
    const [lost, resumed] = rec.attempts as [Attempt, Attempt];
    assert.ok(resumed.resumed_step > lost.checkpoint_step_at_notice!, `resumed from the checkpoint saved after the notice, got ${resumed.resumed_from}`);
    assertWholeCurve(await historySteps(rec.run_id));
  });
});

describe("ftune train on an ssh host (a box you already have)", () => {
  it("stages over SFTP from a file:// store, trains, and the box's job has ended", async () => {
    const box = await startSshHost();
    try {
      const storeDir = join(work, "file-store");
      const fileStore = openStore(`file://${storeDir}`);
      const model = join(work, "model");
      await mirrorModel(fileStore, { model: "TinyLlama/TinyLlama-1.1B-Chat-v1.0", from: model, progress: { quiet: true } });
      const cfg = join(work, "ssh.yaml");
      writeFileSync(
        cfg,
        [
          `extends: ${join(REPO, "configs", "examples", "dry-run.yaml")}`,
          "dataset:",
          `  local_dataset_path: ${join(REPO, "configs", "examples", "data", "tiny-instructions.jsonl")}`,
          "compute:",
          "  provider: ssh",
          `  workdir: ${box.workDir}`,
          "  ssh:",
          `    host: ${box.host}`,
          `    port: ${box.port}`,
          `    user: ${box.user}`,
          "    private_key_env: FTUNE_TEST_BOX_KEY",
          `    host_key: ${box.hostPublicKey}`,
          "storage:",
          `  url: file://${storeDir}`,
        ].join("\n"),
      );
      const r = await ftuneAsync(["train", cfg, "--dry-run", "--json"], { cwd: work, env: { ...env(0.02), FTUNE_TEST_BOX_KEY: box.privateKey } });
      assert.equal(r.code, 0, r.stderr);
      const rec = JSON.parse(r.stdout) as Rec;
      assert.deepEqual(rec.attempts.map((a) => [a.end_reason, a.market]), [["completed", "none"]]);
      assert.equal(rec.cost_usd, null, "nothing rented, no cost claimed");
      const state = await new RunStore(fileStore).readFile("ftune-experiments", "local", rec.run_id, "trainer_state.json");
      assert.equal((JSON.parse(state!.toString()) as { global_step: number }).global_step, 20);
      assert.doesNotMatch(r.stderr, /BEGIN OPENSSH PRIVATE KEY/, "the key is never logged");
      assert.equal(readFileSync(join(box.workDir, rec.run_id, "attempt-1", "jobs", "train", "job.exit"), "utf8").trim(), "0", "the job ended with the trainer's status");
    } finally {
      await box.stop();
    }
  });
});
