// `ftune plan <cfg> [--base <ref>]`: what a run would change, rent and cost, as text or JSON.
import { stringify } from "yaml";
import { isPlan, makePlan, PRICE_TABLE, type KeyChange, type Plan } from "../plan/index.js";
import { EXIT_OK, EXIT_USER } from "../util/errors.js";
import { printDiagnostics } from "./diagnostics-out.js";
import { overridesFrom } from "./store-flags.js";

function show(v: unknown): string {
  if (v === undefined) return "(unset)";
  return typeof v === "string" ? JSON.stringify(v) : JSON.stringify(v);
}

function changeLine(c: KeyChange): string {
  if (!("old" in c)) return `  + ${c.key}: ${show(c.new)}`;
  if (!("new" in c)) return `  - ${c.key}: ${show(c.old)}`;
  return `  ~ ${c.key}: ${show(c.old)} -> ${show(c.new)}`;
}

/** Hourly prices keep AWS's tenths of a cent; totals are rounded to cents. */
const perHour = (n: number): string => `$${n < 10 ? n.toFixed(3) : n.toFixed(2)}/h`;
const usd = (n: number): string => `$${n.toFixed(2)}`;

export function renderPlan(p: Plan, withConfig: boolean): string {
  const c = p.config;
  const lines: string[] = [`plan for ${p.file}  sha256:${p.hash}`];
  if (p.base) {
    const b = p.base;
    const head = `changes vs ${b.ref} (${b.commit.slice(0, 12)})`;
    if (b.status === "new") lines.push(`${head}: new config (not at the base ref); every key is new`);
    else if (b.status === "invalid") lines.push(`${head}: the base version does not validate (${(b.problems ?? []).slice(0, 3).join("; ")}); diffing against nothing`);
    else if (b.status === "unchanged") lines.push(`${head}: no effective change (same hash)`);
    else lines.push(`${head}: ${p.changes.length} key${p.changes.length === 1 ? "" : "s"}`);
    if (b.status !== "new" && b.status !== "invalid") lines.push(...p.changes.map(changeLine));
  }
  lines.push("");
  lines.push(`model    ${c.model.base_model}@${c.model.revision}  quantization ${c.model.quantization}  LoRA r=${c.lora.rank} alpha=${c.lora.alpha} on ${c.lora.target_modules.join(", ")}`);
  const source = c.dataset.huggingface_dataset_path ?? c.dataset.local_dataset_path ?? c.dataset.store_dataset_uri;
  lines.push(`data     ${source}  fields ${typeof c.dataset.fields === "string" ? c.dataset.fields : "custom"}  cutoff ${c.dataset.tokenization.cutoff_len} tokens  val ${c.dataset.val_set_size ?? 0}`);
  lines.push(`train    ${c.trainer.backend}  ${c.training.max_steps ? `${c.training.max_steps} steps` : `${c.training.num_epochs} epoch(s)`}  lr ${c.training.learning_rate}  batch ${c.training.macro_batch_size} (micro ${c.training.micro_batch_size})`);
  const gpus = c.compute.gpus_per_node === null ? "all GPUs" : `${c.compute.gpus_per_node} GPU(s)`;
  lines.push(`compute  ${c.compute.provider}${c.compute.provider === "ec2" ? (c.compute.spot ? " spot" : " on-demand") : ""}  ${c.compute.nodes} node(s) x ${gpus}  TTL ${c.compute.ttl_minutes} min`);
  if (p.gpu_memory_estimate_gib !== undefined) lines.push(`memory   ~${p.gpu_memory_estimate_gib} GiB per GPU (rule of thumb from the model size and quantization)`);
  if (p.instances.length) {
    lines.push("instance types, in the order they are tried:");
    for (const i of p.instances) {
      if (!i.known) lines.push(`  ${i.type.padEnd(14)} not in the price table`);
      else {
        const fit = i.fits === undefined ? "" : i.fits ? "  fits" : "  TOO SMALL for the estimate";
        lines.push(`  ${i.type.padEnd(14)} ${i.gpus}x ${i.gpu ?? "no GPU"} ${i.gpu_memory_gib} GiB  on-demand ${perHour(i.on_demand_per_hour!)}${fit}`);
      }
    }
    if (c.compute.on_demand_fallback && c.compute.spot) lines.push("  then the same types on-demand (on_demand_fallback: true)");
  }
  const k = p.cost;
  if (k.first_choice_per_hour !== undefined) {
    lines.push(`cost     ${perHour(k.first_choice_per_hour)} for the first choice at on-demand prices; at most ${usd(k.ttl_cap!)} if it ran until the TTL`);
  }
  lines.push(`         ${k.note}`);
  if (withConfig) lines.push("", "resolved config:", stringify(c, { lineWidth: 0 }).trimEnd());
  return `${lines.join("\n")}\n`;
}

export function runPlan(path: string, opts: { base?: string; set?: string[]; json?: boolean; config?: boolean }): number {
  const base = opts.base ?? (process.env.GITHUB_BASE_REF ? `origin/${process.env.GITHUB_BASE_REF}` : undefined);
  const p = makePlan(path, { base, sets: overridesFrom(opts.set) });
  if (!isPlan(p)) {
    printDiagnostics(p.diagnostics);
    return EXIT_USER;
  }
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ ...p, price_table: { source: PRICE_TABLE.source, region: PRICE_TABLE.region, retrieved: PRICE_TABLE.retrieved } }, null, 2)}\n`);
  } else {
    process.stdout.write(renderPlan(p, opts.config ?? true));
  }
  return EXIT_OK;
}
