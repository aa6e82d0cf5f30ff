// The train stage's public interface. This version runs trainers on compute.provider local: the dataset is
// prepared (or found) in the store, the trainer runs detached with the backend contract (FTUNE_CONFIG,
// FTUNE_DATA_DIR, FTUNE_MODEL_DIR, FTUNE_OUTPUT_DIR), its log becomes progress lines, every checkpoint is copied
// into the run store as soon as it is complete, and the run ends with the adapter, trainer_state.json and run.json
// (status, phase timings, metrics) in runs/<project>/<namespace>/<run-id>/.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { FtuneConfig } from "../config/index.js";
import { prepareDataset } from "../dataprep/index.js";
import { cacheDir } from "../dataprep/source.js";
import type { HubClient } from "../hub/index.js";
import { pullModel, mirrorModel, findModel } from "../models/index.js";
import { newRunId, pullDataset, RunStore, sha256File, uploadFiles, type FileEntry, type RunRecord, type Store } from "../store/index.js";
import { InfraError, UserError } from "../util/errors.js";
import { readNewLines, startLocalJob } from "./local-job.js";

export { axolotlConfig, renderAxolotlYaml, AXOLOTL_CHECKPOINT_TRIGGER } from "./axolotl.js";

export interface TrainOptions {
  store: Store;
  hub: HubClient;
  configDir: string;
  configName: string;
  configHash: string;
  project: string;
  namespace: string;
  dryRun?: boolean;
  runId?: string;
  /** Seconds per dry-run step (tests make it short). */
  dryRunStepSeconds?: number;
  log?: (line: string) => void;
  pollMs?: number;
}

function dryRunTrainer(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  // The bundle ships it in dist/agent/; from the sources it sits next to this file.
  for (const p of [join(here, "agent", "dryrun_trainer.py"), join(here, "dryrun_trainer.py")]) if (existsSync(p)) return p;
  throw new InfraError("the dry-run trainer (dryrun_trainer.py) is missing from this ftune installation");
}

async function entryOf(dir: string, path: string): Promise<FileEntry> {
  return { path, size: statSync(join(dir, path)).size, sha256: await sha256File(join(dir, path)) };
}

async function filesOf(dir: string, rel = ""): Promise<FileEntry[]> {
  const out: FileEntry[] = [];
  for (const name of readdirSync(join(dir, rel)).sort()) {
    const p = rel ? `${rel}/${name}` : name;
    if (statSync(join(dir, p)).isDirectory()) out.push(...(await filesOf(dir, p)));
    else out.push(await entryOf(dir, p));
  }
  return out;
}

interface LogEntry {
  loss?: number;
  eval_loss?: number;
  train_loss?: number;
  train_runtime?: number;
  step?: number;
}

export async function train(cfg: FtuneConfig, o: TrainOptions): Promise<RunRecord> {
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  if (cfg.compute.provider !== "local") {
    throw new UserError(`ftune train runs compute.provider local in this version; ${cfg.compute.provider} hosts are acquired by ftune's compute stage but not yet driven by train`);
  }
  const backend = o.dryRun ? "dry-run" : cfg.trainer.backend;
  const runs = new RunStore(o.store);
  const runId = o.runId ?? newRunId();
  const started = new Date();
  const phases: Record<string, number> = {};
  const rec: RunRecord = {
    run_id: runId,
    project: o.project,
    namespace: o.namespace,
    config_name: o.configName,
    config_hash: o.configHash,
    status: "running",
    started_at: started.toISOString(),
    dry_run: backend === "dry-run",
    backend,
    host: { provider: "local", market: "none" },
  };
  await runs.writeRecord(rec);
  const timed = async <T>(phase: string, fn: () => Promise<T>): Promise<T> => {
    const t = Date.now();
    try {
      return await fn();
    } finally {
      phases[phase] = Math.round((Date.now() - t) / 100) / 10;
    }
  };
  try {
    const dataset = await timed("dataprep", () => prepareDataset(cfg, { store: o.store, hub: o.hub, configDir: o.configDir }));
    rec.dataset_uri = dataset.dataset_uri;
    const work = resolve(cfg.compute.workdir === "/opt/ftune" ? join(".ftune", "work") : cfg.compute.workdir, runId);
    const dataDir = join(cacheDir(), "datasets", dataset.dataset_hash);
    let modelDir = "";
    await timed("staging", async () => {
      if (!existsSync(join(dataDir, "train.jsonl"))) await pullDataset(o.store, dataset.dataset_hash, dataDir, { progress: { quiet: true } });
      if (backend !== "dry-run") {
        if (!(await findModel(o.store, cfg.model.base_model, cfg.model.revision, o.hub))) {
          await mirrorModel(o.store, { model: cfg.model.base_model, revision: cfg.model.revision, hub: o.hub, allow: cfg.model.allow_patterns, ignore: cfg.model.ignore_patterns });
        }
        modelDir = join(cacheDir(), "models", `${cfg.model.base_model}@${cfg.model.revision}`);
        await pullModel(o.store, { model: cfg.model.base_model, revision: cfg.model.revision, to: modelDir, hub: o.hub });
      }
      await mkdir(join(work, "output"), { recursive: true });
      await writeFile(join(work, "config.json"), JSON.stringify(cfg));
    });
    const out = join(work, "output");
    const env = {
      ...process.env,
      FTUNE_CONFIG: join(work, "config.json"),
      FTUNE_DATA_DIR: dataDir,
      FTUNE_MODEL_DIR: modelDir,
      FTUNE_OUTPUT_DIR: out,
      FTUNE_CHECKPOINT_TRIGGER: join(work, "checkpoint-now"),
      ...(o.dryRunStepSeconds !== undefined ? { FTUNE_DRYRUN_STEP_SECONDS: String(o.dryRunStepSeconds) } : {}),
    };
    let command: [string, string[]];
    if (backend === "dry-run") command = ["python3", [dryRunTrainer()]];
    else if (backend === "custom") command = ["bash", ["-c", cfg.trainer.command!]];
    else throw new UserError("trainer.backend axolotl needs a GPU host with docker; on compute.provider local use trainer.backend custom or --dry-run");

    const synced = new Set<string>();
    const syncCheckpoints = async (): Promise<void> => {
      for (const name of readdirSync(out).filter((n) => /^checkpoint-\d+$/.test(n)).sort()) {
        if (synced.has(name) || !existsSync(join(out, name, "trainer_state.json"))) continue;
        synced.add(name);
        await uploadFiles(o.store, join(out, name), `${runs.prefix(o.project, o.namespace, runId)}/checkpoints/${name}`, await filesOf(join(out, name)), { label: `sync ${name}`, progress: { quiet: true } });
        log(`checkpoint ${name} synced to ${runs.uri(o.project, o.namespace, runId)}/checkpoints/${name}`);
      }
    };
    const exitCode = await timed("training", async () => {
      const job = startLocalJob(command[0], command[1], env, join(work, "train.log"), work);
      const onSignal = (): void => job.kill();
      process.once("SIGTERM", onSignal);
      process.once("SIGINT", onSignal);
      let offset = 0;
      let done = false;
      let lastLoss: string | undefined;
      const t0 = Date.now();
      void job.exited.then(() => (done = true));
      try {
        for (;;) {
          const { text, offset: next } = readNewLines(job.log, offset);
          offset = next;
          for (const line of text.split("\n")) {
            const loss = /'loss': ([\d.]+)/.exec(line)?.[1];
            if (loss) lastLoss = loss;
            const m = /(\d+)\/(\d+) \[/.exec(line);
            if (m) {
              const step = Number(m[1]);
              const total = Number(m[2]);
              const eta = step > 0 ? ((Date.now() - t0) / step) * (total - step) : 0;
              log(`train: step ${step}/${total} (${Math.round((100 * step) / total)}%) loss ${lastLoss ?? "-"} ETA ${Math.round(eta / 1000)}s${backend === "dry-run" ? " [dry run]" : ""}`);
            }
          }
          await syncCheckpoints();
          if (done) break;
          await new Promise((r) => setTimeout(r, o.pollMs ?? 1000));
        }
        const rest = readNewLines(job.log, offset);
        if (rest.text) log(rest.text.trimEnd());
        await syncCheckpoints();
        return await job.exited;
      } finally {
        process.off("SIGTERM", onSignal);
        process.off("SIGINT", onSignal);
      }
    });
    if (exitCode !== 0) throw new InfraError(`the trainer exited with ${exitCode}; its log is ${join(work, "train.log")}`);

    await timed("upload", async () => {
      const finals = ["adapter_config.json", "adapter_model.safetensors"].filter((f) => existsSync(join(out, f)));
      const entries = await Promise.all(finals.map((f) => entryOf(out, f)));
      await uploadFiles(o.store, out, `${runs.prefix(o.project, o.namespace, runId)}/adapter`, entries, { label: "adapter", progress: { quiet: true } });
      const state = readFileSync(join(out, "trainer_state.json"));
      await runs.writeFile(o.project, o.namespace, runId, "trainer_state.json", state);
      await runs.writeFile(o.project, o.namespace, runId, "logs/train.log", readFileSync(join(work, "train.log")));
      const history = (JSON.parse(state.toString()) as { log_history: LogEntry[] }).log_history;
      const evals = history.filter((e) => e.eval_loss !== undefined).map((e) => e.eval_loss!);
      rec.metrics = {
        final_train_loss: [...history].reverse().find((e) => e.loss !== undefined)?.loss ?? null,
        train_loss: history.at(-1)?.train_loss ?? null,
        best_eval_loss: evals.length ? Math.min(...evals) : null,
        steps: history.at(-1)?.step ?? null,
      };
    });
    rec.status = "succeeded";
    return rec;
  } catch (e) {
    rec.status = "failed";
    rec.error = (e as Error).message;
    throw e;
  } finally {
    rec.finished_at = new Date().toISOString();
    rec.phases = phases;
    await runs.writeRecord(rec).catch(() => undefined);
  }
}
