// The plan stage's public interface: what `ftune run` would do with a config, without doing it:
// the resolved config, what changed against the base ref, the instances it would try and what it may cost.
import { dirname, resolve } from "node:path";
import { loadConfig, type ConfigResult, type FtuneConfig } from "../config/index.js";
import { diffConfigs, type KeyChange } from "./diff.js";
import { estimateCost, estimateGpuMemoryGib, instanceChoices, type CostEstimate, type InstanceChoice } from "./estimate.js";
import { gitRefReader } from "./git.js";

export type { KeyChange } from "./diff.js";
export { PRICE_TABLE } from "./estimate.js";

export interface BaseComparison {
  ref: string;
  commit: string;
  /** new: the config does not exist at the base ref. */
  status: "new" | "changed" | "unchanged" | "invalid";
  hash?: string;
  /** Diagnostics of the base version when it does not validate (the diff is then against nothing). */
  problems?: string[];
}

export interface Plan {
  file: string;
  hash: string;
  config: FtuneConfig;
  base?: BaseComparison;
  changes: KeyChange[];
  gpu_memory_estimate_gib?: number;
  instances: InstanceChoice[];
  cost: CostEstimate;
}

export interface PlanOptions {
  base?: string;
  sets?: readonly string[];
  cwd?: string;
}

/** Returns the failed ConfigResult when the config itself does not validate. */
export function makePlan(path: string, opts: PlanOptions = {}): Plan | ConfigResult {
  const cwd = opts.cwd ?? process.cwd();
  const current = loadConfig(path, { sets: opts.sets, cwd });
  if (!current.ok || !current.config || !current.hash) return current;
  const cfg = current.config;

  let base: BaseComparison | undefined;
  let changes: KeyChange[] = [];
  if (opts.base) {
    const reader = gitRefReader(opts.base, dirname(resolve(cwd, path)));
    const old = loadConfig(path, { cwd, readFile: reader.readFile });
    const missing = old.files.length === 0;
    if (missing) {
      base = { ref: opts.base, commit: reader.commit, status: "new" };
      changes = diffConfigs(undefined, cfg);
    } else if (!old.ok || !old.config) {
      base = { ref: opts.base, commit: reader.commit, status: "invalid", problems: old.diagnostics.filter((d) => d.severity === "error").map((d) => d.message) };
      changes = diffConfigs(undefined, cfg);
    } else {
      changes = diffConfigs(old.config, cfg);
      base = { ref: opts.base, commit: reader.commit, status: changes.length ? "changed" : "unchanged", hash: old.hash };
    }
  }
  const instances = instanceChoices(cfg);
  return {
    file: current.file,
    hash: current.hash,
    config: cfg,
    base,
    changes,
    gpu_memory_estimate_gib: estimateGpuMemoryGib(cfg),
    instances,
    cost: estimateCost(cfg, instances),
  };
}

export function isPlan(x: Plan | ConfigResult): x is Plan {
  return "changes" in x;
}
