// Spot recovery benchmark: GPU work lost per interruption (steps computed twice x step time), with the 2-minute
// notice and every box-side interval scaled down by the same factor. `ftune train --dry-run` runs on the EC2
// stand-in with s3rver as the store; an interruption is injected at a different point of the checkpoint interval
// in each round. Reported per round, as ratios: the work lost against one checkpoint interval (target <= 1), and
// against the reference measured in the same round, a restart from the last periodic checkpoint (what a spot
// setup without notice handling loses). The scaled loss is also given as its 2-minute-notice equivalent (target
// <= 30 s); fixed costs (SSH and S3 round trips) do not shrink with the scale, so that figure errs high.
import { spawn } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { mirrorModel } from "../src/models/index.js";
import { openStore } from "../src/store/index.js";
import { startEc2StandIn } from "../test/support/ec2.js";
import { startS3Server } from "../test/support/s3.js";
import { freePort, teardownAll } from "../test/support/processes.js";
import { ec2ConfigLines, ec2RunEnv } from "../test/helpers/ec2-run.js";

const SCALE = Number(process.env.FTUNE_BENCH_SCALE ?? 60); // 120 s notice -> 2 s
const STEP_S = 6 / SCALE; // a 6 s optimizer step (7B LoRA, A10G) -> 0.1 s
const SAVE_STEPS = 50; // a checkpoint every 5 minutes of training
const MAX_STEPS = 200;
const NOTICE_MS = (120 * 1000) / SCALE;
const AGENT_POLL_S = 5 / SCALE; // AWS's recommended 5 s IMDS poll, scaled
const ROUNDS = [8, 22, 37, 61]; // the step at which the notice comes, spread over the checkpoint interval

const REPO = resolve(import.meta.dirname, "..");
const work = mkdtempSync(join(tmpdir(), "ftune-bench-recovery-"));
const sshPort = await freePort();
const ec2 = await startEc2StandIn({ sshPort, bootDelayMs: 300, terminateDelayMs: 100 });
const s3 = await startS3Server({ buckets: ["bench"] });
const storeOpts = { endpoint: s3.endpoint, forcePathStyle: true, checksums: "when_required" as const };
Object.assign(process.env, s3.awsCliEnv());
try {
  const store = openStore("s3://bench/recovery", storeOpts);
  const model = join(work, "model");
  mkdirSync(model);
  copyFileSync(resolve(REPO, "..", "shared", "data", "tokenizer-tinyllama-1.1b-chat.json"), join(model, "tokenizer.json"));
  writeFileSync(join(model, "config.json"), "{}");
  await mirrorModel(store, { model: "TinyLlama/TinyLlama-1.1B-Chat-v1.0", from: model, progress: { quiet: true } });
  const cfg = join(work, "bench.yaml");
  writeFileSync(
    cfg,
    [
      `extends: ${join(REPO, "configs", "examples", "dry-run.yaml")}`,
      "dataset:",
      `  local_dataset_path: ${join(REPO, "configs", "examples", "data", "tiny-instructions.jsonl")}`,
      "training:",
      `  max_steps: ${MAX_STEPS}`,
      `  save_steps: ${SAVE_STEPS}`,
      `  eval_steps: ${SAVE_STEPS}`,
      ...ec2ConfigLines({ sshPort, workdir: join(work, "boxes"), storeUrl: "s3://bench/recovery", s3Endpoint: s3.endpoint }),
    ].join("\n"),
  );
  const env = {
    ...process.env,
    ...ec2RunEnv(ec2, STEP_S),
    FTUNE_POLL_MS: "100",
    FTUNE_SPOT_POLL_SECONDS: String(AGENT_POLL_S),
    FTUNE_CACHE_DIR: join(work, "cache"),
  };
  console.log(`notice ${NOTICE_MS} ms = 120 s / ${SCALE}; step ${STEP_S.toFixed(3)} s = 6 s / ${SCALE}; checkpoint every ${SAVE_STEPS} steps; agent poll ${AGENT_POLL_S.toFixed(3)} s`);
  // Whole steps redone come from the run record; the step in flight when the trainer is stopped is wasted too,
  // so the bound counts it as a whole step.
  console.log("notice at step | steps redone | bound incl. step in flight | bound / interval | bound / restart-from-periodic | 2-min equivalent (bound)");
  const totals = { lost: 0, reference: 0 };
  for (const at of ROUNDS) {
    let first: string | undefined;
    let fired = false;
    const out = await new Promise<string>((done, fail) => {
      const child = spawn(process.execPath, [join(REPO, "dist", "cli.js"), "train", cfg, "--dry-run", "--json"], { cwd: work, env });
      let stdout = "";
      let partial = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => {
        const lines = (partial + d.toString()).split("\n");
        partial = lines.pop() ?? "";
        for (const line of lines) {
          first ??= /ec2: launched \S+ \S+ (i-[0-9a-f]+)/.exec(line)?.[1];
          const step = Number(/train: step (\d+)\//.exec(line)?.[1] ?? 0);
          if (!fired && first && step >= at) {
            fired = true;
            ec2.interrupt(first, { noticeMs: NOTICE_MS });
          }
        }
      });
      child.once("close", (code) => (code === 0 ? done(stdout) : fail(new Error(`ftune train exited ${code}`))));
    });
    const rec = JSON.parse(out) as { attempts: { last_step: number; steps_lost?: number; seconds_per_step?: number; checkpoint_step_at_notice?: number; end_reason: string }[] };
    const lost = rec.attempts[0]!;
    if (lost.end_reason !== "spot-interruption") throw new Error(`round at step ${at}: the first attempt ended ${lost.end_reason}`);
    const steps = lost.steps_lost ?? 0;
    // The reference: a trainer that ignores the notice runs until the box dies (the notice's length after it came),
    // and the next host restarts from the last periodic checkpoint before that.
    const killedAt = at + Math.round(NOTICE_MS / 1000 / STEP_S);
    const reference = Math.max(1, killedAt - Math.floor(killedAt / SAVE_STEPS) * SAVE_STEPS);
    const bound = steps + 1;
    totals.lost += bound;
    totals.reference += reference;
    console.log(`${String(at).padStart(14)} | ${String(steps).padStart(12)} | ${String(bound).padStart(26)} | ${(bound / SAVE_STEPS).toFixed(3).padStart(16)} | ${(bound / reference).toFixed(3).padStart(29)} | ${bound * 6} s (target <= 30 s)`);
  }
  console.log(`all rounds: at most ${totals.lost} steps lost vs ${totals.reference} for restart-from-periodic: ratio ${(totals.lost / totals.reference).toFixed(3)}; at most ${((totals.lost / ROUNDS.length) * 6).toFixed(1)} s of 2-minute-notice work per interruption`);
} finally {
  await ec2.stop();
  await s3.stop();
  await teardownAll();
  rmSync(work, { recursive: true, force: true });
}
