// Training on this machine (compute.provider local): the trainer runs detached in its own process group, its log
// becomes progress lines, and each complete checkpoint is copied into the run store as it appears. There is no spot
// market here, so there is one attempt and nothing to recover.
import { copyFileSync, existsSync, readdirSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { FtuneConfig } from "../config/index.js";
import { InfraError, UserError } from "../util/errors.js";
import { checkpointStep, type CheckpointStore } from "./checkpoints.js";
import { trainerLaunch, type Backend, type HostPaths } from "./launch.js";
import { readNewLines, startLocalJob } from "./local-job.js";
import { finalFiles } from "./outputs.js";
import { TrainProgress } from "./progress.js";
import type { AttemptRecord } from "./remote.js";

export interface LocalTrainContext {
  cfg: FtuneConfig;
  backend: Backend;
  runId: string;
  /** Local folders; bin is where ftune's dry-run trainer lives in this installation. */
  paths: HostPaths;
  checkpoints: CheckpointStore;
  hasEval: boolean;
  outDir: string;
  attempt: AttemptRecord;
  save: () => Promise<void>;
  log: (line: string) => void;
  pollMs: number;
}

export async function trainLocal(ctx: LocalTrainContext): Promise<void> {
  const { paths, log } = ctx;
  if (ctx.backend === "axolotl") {
    throw new UserError("trainer.backend axolotl needs a GPU host with docker; on compute.provider local use trainer.backend custom or --dry-run");
  }
  const launch = trainerLaunch(ctx.cfg, ctx.backend, paths, { gpus: 1, runId: ctx.runId, hasEval: ctx.hasEval });
  await mkdir(paths.output, { recursive: true });
  await writeFile(paths.config, JSON.stringify(ctx.cfg));
  const env = { ...process.env, ...launch.env };
  const logFile = join(paths.work, "train.log");
  const progress = new TrainProgress(log, ctx.backend === "dry-run" ? " [dry run]" : "");
  const synced = new Set<string>();
  const syncCheckpoints = async (): Promise<void> => {
    const complete = readdirSync(paths.output).filter((n) => checkpointStep(n) !== undefined && existsSync(join(paths.output, n, "trainer_state.json")));
    // Newest first: it is the one a resume needs; older ones follow (a user may want the best-eval checkpoint).
    for (const name of complete.filter((n) => !synced.has(n)).sort((a, b) => checkpointStep(b)! - checkpointStep(a)!)) {
      synced.add(name);
      await ctx.checkpoints.save(join(paths.output, name), name);
      ctx.attempt.checkpoints_synced.push(name);
      log(`checkpoint ${name} synced to ${ctx.checkpoints.uri(name)}`);
    }
  };

  const job = startLocalJob("bash", ["-c", launch.command], env, logFile, paths.work);
  const onSignal = (): void => job.kill();
  process.once("SIGTERM", onSignal);
  process.once("SIGINT", onSignal);
  let offset = 0;
  let done = false;
  void job.exited.then(() => (done = true));
  let exitCode: number | null;
  try {
    for (;;) {
      const { text, offset: next } = readNewLines(job.log, offset);
      offset = next;
      progress.feed(text);
      await syncCheckpoints();
      if (done) break;
      await new Promise((r) => setTimeout(r, ctx.pollMs));
    }
    progress.feed(readNewLines(job.log, offset).text);
    await syncCheckpoints();
    exitCode = await job.exited;
  } catch (e) {
    // A sync that failed ends the run: the trainer must not go on alone (nor keep this process waiting for it).
    job.kill();
    throw e;
  } finally {
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
    ctx.attempt.last_step = progress.lastStep;
    ctx.attempt.seconds_per_step = progress.secondsPerStep();
  }
  if (exitCode !== 0) {
    ctx.attempt.end_reason = "trainer-failed";
    throw new InfraError(`the trainer exited with ${exitCode}; its log is ${logFile}; the end of it:\n${progress.lastLines(20)}`);
  }
  const sources: Record<string, string> = { "train.log": logFile };
  for (const [name, to] of Object.entries(finalFiles(ctx.outDir))) {
    const from = sources[name] ?? join(paths.output, name);
    if (!existsSync(from)) continue;
    await mkdir(dirname(to), { recursive: true });
    copyFileSync(from, to);
  }
  ctx.attempt.end_reason = "completed";
}
