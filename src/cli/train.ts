// `ftune train <cfg> [--dry-run]`: prepare the data, run the trainer, sync its checkpoints and record the run.
import * as core from "@actions/core";
import { Command } from "commander";
import type { FtuneConfig } from "../config/index.js";
import { basename, dirname, extname, resolve } from "node:path";
import { HubClient } from "../hub/index.js";
import { train } from "../train/index.js";
import { EXIT_OK, UserError } from "../util/errors.js";
import { projectName } from "./project.js";
import { addStoreFlags, hfToken, loadValidConfig, setOption, storeFromFlags, type StoreFlags } from "./store-flags.js";

type Flags = Omit<StoreFlags, "config"> & { dryRun?: boolean; namespace?: string; json?: boolean; out?: string; set?: string[] };

const numberFromEnv = (name: string): number | undefined => (process.env[name] ? Number(process.env[name]) : undefined);

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

export function trainCommand(setExit: (code: number) => void): Command {
  const cmd = new Command("train")
    .description("train a config: dataprep, base model in the store, a host (local, ssh or ec2 spot with recovery), the trainer, checkpoint sync, outputs and run record")
    .argument("<config>", "config file")
    .option("--dry-run", "use ftune's dry-run trainer: the real output layout from a synthetic curve, no model is trained")
    .option("--namespace <ns>", "where the run is recorded (default: project.namespace, else local)")
    .addOption(setOption())
    .option("--out <dir>", "local folder for the run's outputs (adapter, trainer_state.json, logs, run.json); default .ftune/runs/<run-id>")
    .option("--json", "print the run record as one JSON object");
  addStoreFlags(cmd, false);
  cmd.action(async (configPath: string, flags: Flags) => {
    const { config: cfg, hash } = loadValidConfig(configPath, flags.set);
    const { store } = storeFromFlags(flags, cfg);
    const namespace = flags.namespace ?? cfg.project.namespace ?? "local";
    if (namespace === "main" && process.env.GITHUB_EVENT_NAME === "pull_request") throw new UserError("a pull request never writes to namespace main");
    const rec = await train(cfg, {
      store,
      hub: new HubClient({ token: hfToken(cfg) }),
      configDir: dirname(resolve(configPath)),
      configName: basename(configPath, extname(configPath)),
      configHash: hash,
      project: projectName(cfg.project.name),
      namespace,
      dryRun: flags.dryRun,
      outDir: flags.out,
      secrets: trainerSecrets(cfg),
      pollMs: numberFromEnv("FTUNE_POLL_MS") ?? 1000,
      spotPollSeconds: numberFromEnv("FTUNE_SPOT_POLL_SECONDS"),
      // Test hooks: the EC2 stand-in's IMDS ("{instance_id}" per host) and a faster EC2 state poll.
      imdsUrl: process.env.FTUNE_TEST_IMDS_URL,
      ec2: numberFromEnv("FTUNE_EC2_POLL_MS") ? { pollMs: numberFromEnv("FTUNE_EC2_POLL_MS") } : undefined,
    });
    if (flags.json) process.stdout.write(`${JSON.stringify(rec)}\n`);
    else process.stdout.write(`run ${rec.run_id} ${rec.status}${rec.dry_run ? " (dry run: no model was trained)" : ""}: ${store.uri(`runs/${rec.project}`)}\n`);
    setExit(EXIT_OK);
  });
  return cmd;
}
