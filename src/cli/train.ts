// `ftune train <cfg> [--dry-run]`: prepare the data, run the trainer, sync its checkpoints and record the run.
import * as core from "@actions/core";
import { Command } from "commander";
import type { FtuneConfig } from "../config/index.js";
import { basename, dirname, extname, resolve } from "node:path";
import { HubClient } from "../hub/index.js";
import { runNamespace } from "../github/context.js";
import { newRunId, RunStore, type RunRecord, type Store } from "../store/index.js";
import { train, type TrainOptions } from "../train/index.js";
import { EXIT_OK, UserError } from "../util/errors.js";
import { inGitHubActions } from "./diagnostics-out.js";
import { projectName } from "./project.js";
import { addStoreFlags, ec2PollFromEnv, hfToken, loadValidConfig, numberFromEnv, overridesFrom, setOption, storeFromFlags, type StoreFlags } from "./store-flags.js";


/** What the trainer needs from the runner's secrets; masked in Actions logs, sent to a box over SSH only. */
function trainerSecrets(cfg: FtuneConfig): Record<string, string> {
  const out: Record<string, string> = {};
  const hf = hfToken(cfg);
  if (hf) out.HF_TOKEN = hf;
  const wandb = cfg.wandb ? process.env[cfg.wandb.api_key_env] : undefined;
  if (wandb) {
    if (process.env.GITHUB_ACTIONS === "true") core.setSecret(wandb);
    out.WANDB_API_KEY = wandb;
  }
  return out;
}

export type TrainFlags = Omit<StoreFlags, "config"> & { dryRun?: boolean; namespace?: string; out?: string; set?: string[]; runId?: string; datasetUri?: string };

/** The options train and run share. */
export function addTrainFlags(cmd: Command): Command {
  cmd
    .option("--dry-run", "use ftune's dry-run trainer: the real output layout from a synthetic curve, no model is trained")
    .option("--namespace <ns>", "where the run is recorded (default: project.namespace if set, else pr-<N> in a pull request, the branch in Actions, local elsewhere; a pull request never writes main)")
    .addOption(setOption())
    .option("--run-id <id>", "the run's id (default: a new one); the action picks it first so its cleanup step can find the run's hosts")
    .option("--dataset-uri <uri>", "train on this already prepared dataset (<store>/datasets/<sha256>, e.g. from a dataprep event) instead of preparing one")
    .option("--out <dir>", "local folder for the run's outputs (adapter, trainer_state.json, logs, run.json); default .ftune/runs/<run-id>");
  return addStoreFlags(cmd, false);
}

/** Loads the config, picks the namespace and store, and trains. The run record is returned whether or not it succeeded. */
export async function trainFromFlags(configPath: string, flags: TrainFlags): Promise<{ rec: RunRecord; store: Store; error?: unknown }> {
  const { config: cfg, hash } = loadValidConfig(configPath, flags.set);
  const { store } = storeFromFlags(flags, cfg);
  const namespace = runNamespace(flags.namespace ?? cfg.project.namespace, process.env, overridesFrom(flags.set).length > 0);
  if (flags.runId !== undefined && !/^[A-Za-z0-9._-]+$/.test(flags.runId)) throw new UserError(`--run-id ${flags.runId}: only letters, digits, '.', '_' and '-'`);
  let datasetHash: string | undefined;
  if (flags.datasetUri) {
    datasetHash = /^(?:.*\/datasets\/)?([0-9a-f]{64})\/?$/.exec(flags.datasetUri)?.[1];
    if (!datasetHash) throw new UserError(`--dataset-uri ${flags.datasetUri}: expected <store>/datasets/<sha256> as ftune dataprep prints it`);
    if (flags.datasetUri.includes("://") && !flags.datasetUri.startsWith(store.uri("datasets/"))) {
      throw new UserError(`--dataset-uri ${flags.datasetUri} is not in this run's store (${store.url}); use the same storage.url as the dataset repo`);
    }
  }
  const o: TrainOptions = {
    store,
    hub: new HubClient({ token: hfToken(cfg) }),
    configDir: dirname(resolve(configPath)),
    configName: basename(configPath, extname(configPath)),
    configHash: hash,
    project: projectName(cfg.project.name),
    namespace,
    dryRun: flags.dryRun,
    runId: flags.runId,
    datasetHash,
    outDir: flags.out,
    secrets: trainerSecrets(cfg),
    pollMs: numberFromEnv("FTUNE_POLL_MS") ?? 1000,
    spotPollSeconds: numberFromEnv("FTUNE_SPOT_POLL_SECONDS"),
    // Test hooks: the EC2 stand-in's IMDS ("{instance_id}" per host) and a faster EC2 state poll.
    imdsUrl: process.env.FTUNE_TEST_IMDS_URL,
    ec2: ec2PollFromEnv(),
  };
  const runId = o.runId ?? newRunId();
  try {
    return { rec: await train(cfg, { ...o, runId }), store };
  } catch (error) {
    // train() recorded the failure; the caller decides what to report and how to exit.
    const rec = await new RunStore(store).readRecord(o.project, namespace, runId).catch(() => null);
    if (!rec) throw error;
    return { rec, store, error };
  }
}

export function trainCommand(setExit: (code: number) => void): Command {
  const cmd = new Command("train")
    .description("train a config: dataprep, base model in the store, a host (local, ssh or ec2 spot with recovery), the trainer, checkpoint sync, outputs and run record")
    .argument("<config>", "config file")
    .option("--json", "print the run record as one JSON object");
  addTrainFlags(cmd);
  cmd.action(async (configPath: string, flags: TrainFlags & { json?: boolean }) => {
    const { rec, store, error } = await trainFromFlags(configPath, flags);
    if (inGitHubActions()) core.setOutput("run-id", rec.run_id);
    if (error) throw error;
    if (flags.json) process.stdout.write(`${JSON.stringify(rec)}\n`);
    else process.stdout.write(`run ${rec.run_id} ${rec.status}${rec.dry_run ? " (dry run: no model was trained)" : ""}: ${store.uri(`runs/${rec.project}`)}\n`);
    setExit(EXIT_OK);
  });
  return cmd;
}
