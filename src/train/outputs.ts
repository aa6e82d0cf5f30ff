// A finished run's outputs, laid out the same way in the local artifact folder (for the action's upload) and in the
// run store: adapter/ (PEFT files), trainer_state.json (HF log_history), logs/train.log, config.resolved.yaml,
// run.json. The metrics summary in run.json is read from trainer_state.json, never from the log.
import { existsSync, readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { stringify } from "yaml";
import type { FtuneConfig } from "../config/index.js";
import { uploadFiles, type RunRecord, type RunStore, type Store } from "../store/index.js";
import { InfraError } from "../util/errors.js";
import { entryOf } from "./checkpoints.js";

export const ADAPTER_FILES = ["adapter_config.json", "adapter_model.safetensors"];

/** Where each trainer output goes in the artifact folder: trainer file name -> local path. */
export function finalFiles(outDir: string): Record<string, string> {
  return {
    "adapter_config.json": join(outDir, "adapter", "adapter_config.json"),
    "adapter_model.safetensors": join(outDir, "adapter", "adapter_model.safetensors"),
    "trainer_state.json": join(outDir, "trainer_state.json"),
    "train.log": join(outDir, "logs", "train.log"),
  };
}

interface LogEntry {
  loss?: number;
  eval_loss?: number;
  train_loss?: number;
  train_runtime?: number;
  train_samples_per_second?: number;
  step?: number;
}

export interface RunMetrics {
  final_train_loss: number | null;
  train_loss: number | null;
  best_eval_loss: number | null;
  steps: number | null;
  train_runtime_s: number | null;
  train_samples_per_second: number | null;
}

export function metricsOf(trainerState: { log_history: LogEntry[] }): RunMetrics {
  const history = trainerState.log_history;
  const evals = history.filter((e) => typeof e.eval_loss === "number").map((e) => e.eval_loss!);
  const summary = [...history].reverse().find((e) => e.train_runtime !== undefined);
  return {
    final_train_loss: [...history].reverse().find((e) => typeof e.loss === "number")?.loss ?? null,
    train_loss: summary?.train_loss ?? null,
    best_eval_loss: evals.length ? Math.min(...evals) : null,
    steps: history.at(-1)?.step ?? null,
    train_runtime_s: summary?.train_runtime ?? null,
    train_samples_per_second: summary?.train_samples_per_second ?? null,
  };
}

/** Writes the resolved config next to the outputs, uploads everything to the run store, returns the metrics. */
export async function publishOutputs(store: Store, runs: RunStore, rec: RunRecord, cfg: FtuneConfig, outDir: string): Promise<RunMetrics> {
  const files = finalFiles(outDir);
  for (const f of ADAPTER_FILES) {
    if (!existsSync(files[f]!)) throw new InfraError(`the trainer finished without writing ${f} (the PEFT adapter) to its output folder`);
  }
  const resolved = `# The resolved config of run ${rec.run_id} (extends and --set applied, defaults filled in).\n${stringify(cfg, { lineWidth: 0 })}`;
  await writeFile(join(outDir, "config.resolved.yaml"), resolved);
  const prefix = runs.prefix(rec.project, rec.namespace, rec.run_id);
  const adapterDir = join(outDir, "adapter");
  await uploadFiles(store, adapterDir, `${prefix}/adapter`, await Promise.all(ADAPTER_FILES.map((f) => entryOf(adapterDir, f))), { label: "adapter", progress: { quiet: true } });
  await runs.writeFile(rec.project, rec.namespace, rec.run_id, "config.resolved.yaml", resolved);
  if (existsSync(files["train.log"]!)) await runs.writeFile(rec.project, rec.namespace, rec.run_id, "logs/train.log", readFileSync(files["train.log"]!));
  if (!existsSync(files["trainer_state.json"]!)) throw new InfraError("the trainer finished without writing trainer_state.json (HF log_history), so the run has no metrics");
  const state = readFileSync(files["trainer_state.json"]!);
  await runs.writeFile(rec.project, rec.namespace, rec.run_id, "trainer_state.json", state);
  return metricsOf(JSON.parse(state.toString("utf8")) as { log_history: LogEntry[] });
}

/** run.json in the artifact folder too, so the uploaded artifact is self-describing. */
export async function writeLocalRecord(outDir: string, rec: RunRecord): Promise<void> {
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, "run.json"), `${JSON.stringify(rec, null, 2)}\n`);
}
