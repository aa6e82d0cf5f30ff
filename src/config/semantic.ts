// Checks that need more than one value at a time, which JSON Schema cannot say well: batch arithmetic,
// the dataset source, template placeholders against the field mapping, and the seed's implicit meanings.
// Written defensively: they also run on configs that failed the schema, so that all errors come at once.
import type { Diagnostic } from "./diagnostics.js";
import type { Locate } from "./schema-errors.js";
import axolotlKeys from "../train/axolotl-keys.json" with { type: "json" };
import { getAt, isPlainObject, pathKey, type PathSeg } from "./paths.js";
import { closest } from "./suggest.js";

const AXOLOTL_KEYS = new Set(axolotlKeys.keys);

export const FIELD_PRESETS: Record<string, Record<string, string>> = {
  alpaca: { instruction: "instruction", input: "input", output: "output" },
  dolly: { instruction: "instruction", input: "context", output: "response", category: "category" },
};

export const DATASET_SOURCES = ["huggingface_dataset_path", "local_dataset_path", "store_dataset_uri"] as const;

/** Placeholder names in a str.format-style template ({name}; {{ and }} are literal braces). */
export function placeholders(template: string): string[] {
  const names: string[] = [];
  const re = /\{\{|\}\}|\{([^{}]*)\}/g;
  for (let m = re.exec(template); m; m = re.exec(template)) if (m[1] !== undefined) names.push(m[1]);
  return names;
}

/** The prompt fields a dataset provides: keys of the preset or custom mapping (null-mapped keys are absent). */
export function providedFields(fields: unknown): string[] | undefined {
  if (typeof fields === "string") return FIELD_PRESETS[fields] ? Object.keys(FIELD_PRESETS[fields]) : undefined;
  if (isPlainObject(fields)) return Object.entries(fields).filter(([, v]) => typeof v === "string").map(([k]) => k);
  return undefined;
}

export function semanticDiagnostics(resolved: unknown, raw: unknown, locate: Locate, partial: boolean): Diagnostic[] {
  const out: Diagnostic[] = [];
  const at = (segs: PathSeg[]): unknown => getAt(resolved, segs);
  const isSet = (segs: PathSeg[]): boolean => getAt(raw, segs) !== undefined;
  const num = (segs: PathSeg[]): number | undefined => {
    const v = at(segs);
    return typeof v === "number" ? v : undefined;
  };
  const error = (segs: PathSeg[], message: string, prefer: "key" | "value" = "value"): void => {
    out.push({ severity: "error", pos: locate(segs, prefer), key: pathKey(segs), message });
  };
  const warn = (segs: PathSeg[], message: string, prefer: "key" | "value" = "value"): void => {
    out.push({ severity: "warning", pos: locate(segs, prefer), key: pathKey(segs), message });
  };

  // Batches: gradient accumulation = macro / (micro x GPUs) must be whole.
  const micro = num(["training", "micro_batch_size"]);
  const macro = num(["training", "macro_batch_size"]);
  const gpus = (num(["compute", "gpus_per_node"]) ?? 1) * (num(["compute", "nodes"]) ?? 1);
  if (micro !== undefined && macro !== undefined && micro > 0 && macro % (micro * gpus) !== 0) {
    const per = gpus > 1 ? `micro_batch_size x GPUs (${micro} x ${gpus} = ${micro * gpus})` : `micro_batch_size (${micro})`;
    error(["training", "macro_batch_size"], `must be a multiple of ${per}; gradient accumulation would be ${(macro / (micro * gpus)).toFixed(2)} steps`);
  }

  const targets = at(["lora", "target_modules"]);
  if (Array.isArray(targets) && targets.length === 0) {
    error(["lora", "target_modules"], "must name at least one module (e.g. [q_proj, v_proj]); with none, LoRA trains nothing");
  }

  // Dataset source: exactly one.
  const sources = DATASET_SOURCES.filter((s) => {
    const v = at(["dataset", s]);
    return v !== null && v !== undefined;
  });
  if (sources.length > 1) {
    for (const s of sources) {
      error(["dataset", s], `set only one dataset source, but ${sources.map((x) => `dataset.${x}`).join(" and ")} are all set; remove all but one`, "key");
    }
  } else if (sources.length === 0 && !partial) {
    error(["dataset"], `no dataset source: set one of ${DATASET_SOURCES.map((x) => `dataset.${x}`).join(", ")}`, "key");
  }

  const val = num(["dataset", "val_set_size"]);
  const samples = num(["dataset", "num_samples"]);
  if (val !== undefined && val >= 1 && !Number.isInteger(val)) {
    error(["dataset", "val_set_size"], `${val} is neither a row count (a whole number) nor a fraction below 1`);
  } else if (val !== undefined && val >= 1 && samples !== undefined && val >= samples) {
    error(["dataset", "val_set_size"], `${val} eval rows leaves nothing to train on with dataset.num_samples: ${samples}; make it smaller than num_samples`);
  }

  // Templates may only use the fields the mapping provides, and must not leak the answer into the prompt.
  const fields = providedFields(at(["dataset", "fields"]));
  if (fields) {
    for (const which of ["prompt_input", "prompt_no_input"] as const) {
      const segs: PathSeg[] = ["dataset", "prompt_template", which];
      const tpl = at(segs);
      if (typeof tpl !== "string") continue;
      for (const name of new Set(placeholders(tpl))) {
        if (name === "output") error(segs, "the prompt must not contain {output}: that is the answer the model is trained to produce");
        else if (!fields.includes(name)) {
          error(segs, `uses {${name}} but dataset.fields provides only ${fields.filter((f) => f !== "output").map((f) => `{${f}}`).join(", ")}`);
        }
      }
      if (which === "prompt_no_input" && placeholders(tpl).includes("input")) {
        warn(segs, "uses {input}, which is always empty for the rows this template is for");
      }
      if (which === "prompt_input" && fields.includes("input") && !placeholders(tpl).includes("input")) {
        warn(segs, "does not use {input}: the input of rows that have one would be dropped");
      }
    }
  }

  // The seed's fp16 flag also chose quantization (load_in_8bit = not fp16); ftune says it explicitly.
  const fp16 = at(["training", "fp16"]);
  if (typeof fp16 === "boolean" && !isSet(["model", "quantization"])) {
    const quant = fp16 ? "none" : "int8";
    const meant = fp16 ? "loaded the model in fp16 without quantization" : "loaded the model in int8";
    warn(["training", "fp16"], `with fp16: ${fp16} the seed ${meant}; ftune's default is model.quantization: nf4. Add \`model.quantization: ${quant}\` to keep the seed's behaviour (or set nf4 explicitly to silence this)`);
  }
  if (fp16 === true && at(["training", "bf16"]) === true) error(["training", "fp16"], "fp16 and bf16 cannot both be true");

  const seedCutoff = at(["training", "cutoff_len"]);
  const cutoff = at(["dataset", "tokenization", "cutoff_len"]);
  if (typeof seedCutoff === "number" && isSet(["dataset", "tokenization", "cutoff_len"]) && seedCutoff !== cutoff) {
    error(["training", "cutoff_len"], `is ${seedCutoff} but dataset.tokenization.cutoff_len is ${String(cutoff)}; keep only dataset.tokenization.cutoff_len`);
  }
  if (at(["training", "visible_devices"]) !== null && at(["training", "visible_devices"]) !== undefined) {
    warn(["training", "visible_devices"], "is ignored: ftune uses the host's GPUs; set compute.gpus_per_node to use fewer");
  }
  const maxSteps = num(["training", "max_steps"]);
  const warmup = num(["training", "warmup_steps"]);
  if (maxSteps !== undefined && warmup !== undefined && warmup >= maxSteps) {
    warn(["training", "warmup_steps"], `${warmup} warmup steps >= training.max_steps ${maxSteps}: the learning rate never reaches its peak`);
  }

  // Compute and trainer: what each choice needs.
  const provider = at(["compute", "provider"]);
  if (provider === "ssh" && !isPlainObject(at(["compute", "ssh"])) && !partial) {
    error(["compute", "provider"], "provider ssh needs compute.ssh: {host, user, private_key_env, host_key}");
  }
  if (provider !== "ssh" && isPlainObject(at(["compute", "ssh"]))) {
    warn(["compute", "ssh"], `is ignored with compute.provider: ${String(provider)}`, "key");
  }
  if (at(["compute", "spot"]) === false && typeof at(["compute", "max_price"]) === "number") {
    warn(["compute", "max_price"], "is a spot price limit and is ignored with compute.spot: false");
  }
  const backend = at(["trainer", "backend"]);
  if (backend === "custom" && (at(["trainer", "command"]) === null || at(["trainer", "command"]) === undefined) && !partial) {
    error(["trainer", "backend"], "backend custom needs trainer.command");
  }
  if (backend !== "custom" && typeof at(["trainer", "command"]) === "string") {
    warn(["trainer", "command"], `is only used by trainer.backend: custom (this config uses ${String(backend)})`);
  }
  const nodes = num(["compute", "nodes"]);
  if (nodes !== undefined && nodes > 1 && at(["compute", "provider"]) !== "ec2") {
    error(["compute", "nodes"], `${nodes} machines need compute.provider ec2 (they are launched together into one placement group); an ssh box or this machine is one node`);
  }
  const types = at(["compute", "instance_types"]);
  const burstable = Array.isArray(types) ? types.filter((t) => typeof t === "string" && /^t\d[a-z]*\./.test(t)) : [];
  if (nodes !== undefined && nodes > 1 && burstable.length) {
    error(["compute", "instance_types"], `${burstable.join(", ")}: a cluster placement group (how several nodes are launched) does not take burstable t* types; use e.g. c5.large for a dry run`);
  }
  // axolotl drops keys it does not know without a word: a typo in trainer.extra would silently change nothing.
  const extra = at(["trainer", "extra"]);
  if (isPlainObject(extra)) {
    for (const k of Object.keys(extra)) {
      if (AXOLOTL_KEYS.has(k)) continue;
      const near = closest(k, axolotlKeys.keys);
      error(["trainer", "extra", k], `${JSON.stringify(k)} is not an axolotl config key (axolotl ${axolotlKeys.commit.slice(0, 12)}, the pinned image's version, would silently ignore it)${near ? `; did you mean ${near}?` : ""}`, "key");
    }
  }
  return out;
}
