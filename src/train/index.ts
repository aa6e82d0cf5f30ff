// The train stage's public interface: train() takes a resolved config to a finished run. It prepares (or finds)
// the dataset, makes sure the base model is in the model store (mirroring it from the Hub if absent; a dry run
// needs no model), runs the trainer on the configured compute (local, or remote hosts with spot recovery), copies
// checkpoints into the run store as they complete, and ends with the adapter, trainer_state.json, logs, the
// resolved config and run.json (status, phases, attempts, GPU time, cost, metrics) in
// runs/<project>/<namespace>/<run-id>/ and in a local artifact folder.
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { FtuneConfig } from "../config/index.js";
import { providerFor, type Provider } from "../compute/index.js";
import type { Ec2Options } from "../compute/ec2.js";
import { prepareDataset } from "../dataprep/index.js";
import { cacheDir } from "../dataprep/source.js";
import type { HubClient } from "../hub/index.js";
import { findModel, mirrorModel, pullModel } from "../models/index.js";
import { datasetPrefix, newRunId, pullDataset, readDatasetManifest, RunStore, type RunRecord, type Store } from "../store/index.js";
import { InfraError, UserError } from "../util/errors.js";
import { CheckpointStore } from "./checkpoints.js";
import { hostPaths, type Backend } from "./launch.js";
import { trainLocal } from "./local.js";
import { publishOutputs, writeLocalRecord } from "./outputs.js";
import { trainRemote, type AttemptRecord } from "./remote.js";

export { axolotlConfig, renderAxolotlYaml, AXOLOTL_CHECKPOINT_TRIGGER } from "./axolotl.js";
export { AXOLOTL_IMAGE, trainerLaunch } from "./launch.js";
export { metricsOf, type RunMetrics } from "./outputs.js";
export type { AttemptRecord } from "./remote.js";

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
  /** Local artifact folder (default .ftune/runs/<run-id>). */
  outDir?: string;
  /** A dataset already prepared in the store (its hash): dataprep is skipped (a dataset repo's dataprep event). */
  datasetHash?: string;
  /** The compute provider (default: the config's, built with `ec2`). */
  provider?: Provider;
  ec2?: Ec2Options;
  /** Secrets for the trainer (HF_TOKEN, WANDB_API_KEY): they reach a remote box over SSH only. */
  secrets?: Record<string, string>;
  log?: (line: string) => void;
  /** Between looks at the trainer's log and checkpoints (default 1000). */
  pollMs?: number;
  /** How often the box agent asks IMDS for a spot notice (default 5 s, what AWS recommends). */
  spotPollSeconds?: number;
  /** The IMDS URL for the box agent, "{instance_id}" replaced per host (tests: the IMDS stand-in). */
  imdsUrl?: string;
}

/** The box-side scripts of this installation: dist/agent/ in the bundle, next to their modules in the sources. */
function boxScript(name: string, sourceDir: string): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const p of [join(here, "agent", name), join(here, "..", sourceDir, name), join(here, name)]) if (existsSync(p)) return p;
  throw new InfraError(`${name} is missing from this ftune installation`);
}

export async function train(cfg: FtuneConfig, o: TrainOptions): Promise<RunRecord> {
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const backend: Backend = o.dryRun ? "dry-run" : cfg.trainer.backend;
  const runs = new RunStore(o.store);
  const runId = o.runId ?? newRunId();
  const outDir = resolve(o.outDir ?? join(".ftune", "runs", runId));
  const checkpoints = new CheckpointStore(o.store, runs.prefix(o.project, o.namespace, runId));
  const phases: Record<string, number> = {};
  const attempts: AttemptRecord[] = [];
  const rec: RunRecord = {
    run_id: runId,
    project: o.project,
    namespace: o.namespace,
    config_name: o.configName,
    config_hash: o.configHash,
    status: "running",
    started_at: new Date().toISOString(),
    dry_run: backend === "dry-run",
    backend,
    provider: cfg.compute.provider,
    artifacts_dir: outDir,
    phases,
    attempts,
  };
  const save = async (): Promise<void> => {
    summarize(rec, attempts);
    await runs.writeRecord(rec);
  };
  await save();
  const timed = async <T>(phase: string, fn: () => Promise<T>): Promise<T> => {
    const t = Date.now();
    try {
      return await fn();
    } finally {
      phases[phase] = Math.round((Date.now() - t) / 100) / 10;
    }
  };
  log(`run ${runId}: ${runs.uri(o.project, o.namespace, runId)}${backend === "dry-run" ? " (dry run: no model is trained)" : ""}`);
  try {
    const dataset = await timed("dataprep", async () => {
      if (!o.datasetHash) return prepareDataset(cfg, { store: o.store, hub: o.hub, configDir: o.configDir });
      const manifest = await readDatasetManifest(o.store, o.datasetHash);
      if (!manifest) throw new UserError(`dataset ${o.datasetHash} is not in ${o.store.uri(datasetPrefix(o.datasetHash))} (was it prepared into another store?)`);
      return { dataset_uri: o.store.uri(datasetPrefix(o.datasetHash)), dataset_hash: o.datasetHash, manifest };
    });
    rec.dataset_uri = dataset.dataset_uri;
    const hasEval = dataset.manifest.files.some((f) => f.path === "eval.jsonl" && f.size > 0);
    const model =
      backend === "dry-run"
        ? undefined
        : await timed("model", async () => {
            let found = await findModel(o.store, cfg.model.base_model, cfg.model.revision, o.hub);
            if (!found) {
              log(`model ${cfg.model.base_model}@${cfg.model.revision} is not in the model store: mirroring it from the Hub`);
              await mirrorModel(o.store, { model: cfg.model.base_model, revision: cfg.model.revision, hub: o.hub, allow: cfg.model.allow_patterns, ignore: cfg.model.ignore_patterns });
              found = await findModel(o.store, cfg.model.base_model, cfg.model.revision, o.hub);
              if (!found) throw new InfraError(`model ${cfg.model.base_model}@${cfg.model.revision} was mirrored but its manifest cannot be read back`);
            }
            return found;
          });
    if (model) rec.model_uri = o.store.uri(model.prefix);

    if (cfg.compute.provider === "local") {
      const attempt: AttemptRecord = { attempt: 1, provider: "local", host: "local", market: "none", started_at: new Date().toISOString(), resumed_from: null, resumed_step: 0, last_step: 0, checkpoints_synced: [] };
      attempts.push(attempt);
      const work = resolve(cfg.compute.workdir === "/opt/ftune" ? join(".ftune", "work") : cfg.compute.workdir, runId);
      const dataDir = join(cacheDir(), "datasets", dataset.dataset_hash);
      const modelDir = join(cacheDir(), "models", `${cfg.model.base_model}@${cfg.model.revision}`);
      await timed("staging", async () => {
        if (!existsSync(join(dataDir, "train.jsonl"))) await pullDataset(o.store, dataset.dataset_hash, dataDir, { progress: { quiet: true } });
        if (model) {
          await pullModel(o.store, { model: cfg.model.base_model, revision: cfg.model.revision, to: modelDir, hub: o.hub });
        }
      });
      const paths = { ...hostPaths(work), bin: dirname(boxScript("dryrun_trainer.py", "train")), data: dataDir, model: modelDir };
      try {
        await timed("training", () => trainLocal({ cfg, backend, runId, paths, checkpoints, hasEval, outDir, attempt, save, log, pollMs: o.pollMs ?? 1000 }));
      } finally {
        attempt.ended_at = new Date().toISOString();
      }
    } else {
      await timed("training", () =>
        trainRemote({
          cfg,
          backend,
          runId,
          project: o.project,
          store: o.store,
          checkpoints,
          dataset: { prefix: datasetPrefix(dataset.dataset_hash), files: dataset.manifest.files, dest: "data" },
          model: model ? { prefix: model.prefix, files: model.manifest.files, dest: "model" } : undefined,
          hasEval,
          provider: o.provider ?? providerFor(cfg, { log, ...o.ec2 }),
          secrets: o.secrets ?? {},
          boxScripts: { agent: boxScript("ftune_agent.py", "agent"), dryRunTrainer: boxScript("dryrun_trainer.py", "train") },
          outDir,
          attempts,
          save,
          log,
          pollMs: o.pollMs ?? 1000,
          spotPollSeconds: o.spotPollSeconds ?? 5,
          imdsUrl: o.imdsUrl,
        }),
      );
    }
    rec.metrics = await timed("upload", () => publishOutputs(o.store, runs, rec, cfg, outDir));
    rec.status = "succeeded";
    return rec;
  } catch (e) {
    rec.status = "failed";
    rec.error = (e as Error).message;
    throw e;
  } finally {
    rec.finished_at = new Date().toISOString();
    summarize(rec, attempts);
    await runs.writeRecord(rec).catch(() => undefined);
    await writeLocalRecord(outDir, rec).catch(() => undefined);
  }
}

/** Run-level totals from the attempts: the last host, GPU time, cost, interruptions and the work they cost. */
function summarize(rec: RunRecord, attempts: AttemptRecord[]): void {
  const last = attempts.at(-1);
  if (last) rec.host = { provider: last.provider, id: last.host, instance_type: last.instance_type, availability_zone: last.availability_zone, market: last.market, price_per_hour: last.price_per_hour };
  const sum = (f: (a: AttemptRecord) => number | undefined): number => attempts.reduce((s, a) => s + (f(a) ?? 0), 0);
  rec.gpu_seconds = sum((a) => a.gpu_seconds);
  rec.cost_usd = attempts.some((a) => a.cost_usd !== undefined) ? Math.round(sum((a) => a.cost_usd) * 10000) / 10000 : null;
  const interrupted = attempts.filter((a) => a.end_reason === "spot-interruption" || a.end_reason === "host-lost");
  rec.recovery = { interruptions: interrupted.length, steps_lost: sum((a) => a.steps_lost), seconds_lost: Math.round(sum((a) => a.seconds_lost) * 10) / 10 };
}
