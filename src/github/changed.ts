// Which configs a workflow run should train, as a matrix: the experiments a pull request (or push) changed, counting
// a change anywhere in a config's extends chain or in its local data; the configs subscribed to a dataset whose
// dataprep event arrived; or the ones a person named when dispatching by hand. Base files (configs that others
// extend) are not experiments of their own.
import { basename, extname, relative, resolve } from "node:path";
import { expandConfigPaths, loadConfig, type ConfigResult } from "../config/index.js";
import { UserError } from "../util/errors.js";

export interface MatrixEntry {
  /** The config file, relative to the repository root. */
  config: string;
  /** Its name: runs, baselines and the PR comment are per name. */
  name: string;
  /** A prepared dataset to train on (from a dataprep event). */
  dataset_uri?: string;
  /** Why it is in the matrix. */
  reason: string;
}

interface Experiment {
  result: ConfigResult;
  /** Absolute path. */
  abs: string;
  rel: string;
}

/** Every experiment config under `paths` (files other configs extend are bases, not experiments). */
export function experiments(paths: readonly string[], top: string): Experiment[] {
  const files = expandConfigPaths(paths, top);
  // Loaded whole: an invalid experiment still lands in the matrix, where its run fails with the located errors.
  const results = files.map((f) => ({ abs: f, result: loadConfig(f) }));
  const bases = new Set(results.flatMap((r) => r.result.files.slice(1)));
  return results.filter((r) => !bases.has(r.abs)).map((r) => ({ ...r, rel: relative(top, r.abs).split("\\").join("/") }));
}

export const entry = (e: Experiment, reason: string, datasetUri?: string): MatrixEntry => ({
  config: e.rel,
  name: basename(e.rel, extname(e.rel)),
  ...(datasetUri ? { dataset_uri: datasetUri } : {}),
  reason,
});

/** Local files an experiment reads besides its config chain: the dataset and a tokenizer.json. */
function dataFiles(e: Experiment): string[] {
  const d = e.result.config?.dataset;
  const dir = resolve(e.abs, "..");
  const out: string[] = [];
  const local = d?.local_dataset_path;
  if (typeof local === "string" && !local.includes("://")) out.push(resolve(dir, local));
  const tok = d?.tokenizer;
  if (typeof tok === "string" && tok.endsWith(".json")) out.push(resolve(dir, tok));
  return out;
}

export function changedExperiments(paths: readonly string[], top: string, changedFiles: readonly string[]): MatrixEntry[] {
  const changed = new Set(changedFiles.map((f) => resolve(top, f)));
  const out: MatrixEntry[] = [];
  for (const e of experiments(paths, top)) {
    const chain = e.result.files;
    const hit = chain.find((f) => changed.has(f));
    if (hit) {
      out.push(entry(e, hit === e.abs ? "changed" : `extends ${relative(top, hit)}, which changed`));
      continue;
    }
    // A dataset folder: any changed file inside it.
    const data = dataFiles(e).find((p) => [...changed].some((c) => c === p || c.startsWith(`${p}/`)));
    if (data) out.push(entry(e, `its data ${relative(top, data)} changed`));
  }
  return out;
}

/**
 * The experiments subscribed to a dataprep event: `events.subscribe` names the dataset by its source (Hub id or
 * path, as the dataset repo's dataprep recorded it) or by the sending project's name (the event type's prefix).
 */
export function subscribedExperiments(paths: readonly string[], top: string, eventType: string, payload: Record<string, unknown>): MatrixEntry[] {
  if (!eventType.endsWith(".dataprep")) return [];
  const project = eventType.slice(0, -".dataprep".length);
  const source = typeof payload.source === "string" ? payload.source : undefined;
  const uri = typeof payload.dataset_uri === "string" ? payload.dataset_uri : undefined;
  if (!uri) throw new UserError(`repository_dispatch ${eventType}: client_payload.dataset_uri is missing (send it with ftune dataprep --publish)`);
  const out: MatrixEntry[] = [];
  for (const e of experiments(paths, top)) {
    const subs = e.result.config?.events.subscribe ?? [];
    const match = subs.find((s) => s === project || (source !== undefined && s === source));
    if (match) out.push(entry(e, `subscribed to ${match}`, uri));
  }
  return out;
}

/** Configs named by hand (workflow_dispatch): each must exist and be an experiment. */
export function namedExperiments(names: readonly string[], top: string): MatrixEntry[] {
  return names.map((n) => {
    const abs = resolve(top, n);
    const r = loadConfig(abs);
    if (!r.files.length) throw new UserError(`config ${n} does not exist (relative to the repository root)`);
    return entry({ result: r, abs, rel: relative(top, abs).split("\\").join("/") }, "named in the dispatch");
  });
}
