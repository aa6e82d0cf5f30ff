// `ftune train <cfg> [--dry-run]`: prepare the data, run the trainer, sync its checkpoints and record the run.
import { Command } from "commander";
import { basename, dirname, extname, resolve } from "node:path";
import { HubClient } from "../hub/index.js";
import { train } from "../train/index.js";
import { EXIT_OK, UserError } from "../util/errors.js";
import { projectName } from "./project.js";
import { addStoreFlags, hfToken, loadValidConfig, storeFromFlags, type StoreFlags } from "./store-flags.js";

type Flags = Omit<StoreFlags, "config"> & { dryRun?: boolean; namespace?: string; json?: boolean };

export function trainCommand(setExit: (code: number) => void): Command {
  const cmd = new Command("train")
    .description("run the trainer for a config (compute.provider local in this version): dataprep, train, checkpoint sync, run record")
    .argument("<config>", "config file")
    .option("--dry-run", "use ftune's dry-run trainer: the real output layout from a synthetic curve, no model is trained")
    .option("--namespace <ns>", "where the run is recorded (default: project.namespace, else local)")
    .option("--json", "print the run record as one JSON object");
  addStoreFlags(cmd, false);
  cmd.action(async (configPath: string, flags: Flags) => {
    const { config: cfg, hash } = loadValidConfig(configPath);
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
      dryRunStepSeconds: process.env.FTUNE_DRYRUN_STEP_SECONDS ? Number(process.env.FTUNE_DRYRUN_STEP_SECONDS) : undefined,
      pollMs: 250,
    });
    if (flags.json) process.stdout.write(`${JSON.stringify(rec)}\n`);
    else process.stdout.write(`run ${rec.run_id} ${rec.status}${rec.dry_run ? " (dry run: no model was trained)" : ""}: ${store.uri(`runs/${rec.project}`)}\n`);
    setExit(EXIT_OK);
  });
  return cmd;
}
