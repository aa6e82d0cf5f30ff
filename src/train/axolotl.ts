// The axolotl backend's config: the resolved ftune config rendered as the axolotl YAML the pinned image runs.
// Data comes pre-split and pre-templated from dataprep as input_output segments (label false = masked prompt),
// so axolotl neither re-splits nor re-templates it. trainer.extra passes other axolotl keys through, but never
// over a key ftune sets itself (that would silently make the PR comment's config diff untrue).
import { stringify } from "yaml";
import type { FtuneConfig } from "../config/index.js";
import { UserError } from "../util/errors.js";

export interface AxolotlPaths {
  /** The base model's files on the box (pulled from the model store). */
  modelDir: string;
  /** The prepared dataset on the box: train.jsonl and eval.jsonl. */
  dataDir: string;
  outputDir: string;
}

/**
 * The file axolotl's dynamic checkpointing looks for in output_dir (DynamicCheckpointConfig.trigger_file_path, a
 * name inside output_dir; axolotl's own default, set explicitly so a change of default cannot break spot safety).
 * Rank 0 checks it every check_interval steps, deletes it, saves a checkpoint and trains on.
 */
export const AXOLOTL_CHECKPOINT_TRIGGER = "axolotl_checkpoint.save";

export function axolotlConfig(cfg: FtuneConfig, paths: AxolotlPaths, gpus: number, hasEval = true): Record<string, unknown> {
  const t = cfg.training;
  const q = cfg.model.quantization;
  const perStep = t.micro_batch_size * gpus;
  if (t.macro_batch_size % perStep !== 0) {
    throw new UserError(`training.macro_batch_size ${t.macro_batch_size} is not a multiple of micro_batch_size x GPUs (${t.micro_batch_size} x ${gpus})`);
  }
  const allLinear = cfg.lora.target_modules.includes("all-linear");
  const out: Record<string, unknown> = {
    base_model: paths.modelDir,
    trust_remote_code: cfg.model.trust_remote_code,
    load_in_8bit: q === "int8",
    load_in_4bit: q === "nf4",
    adapter: q === "nf4" ? "qlora" : "lora",
    lora_r: cfg.lora.rank,
    lora_alpha: cfg.lora.alpha,
    lora_dropout: cfg.lora.dropout,
    ...(allLinear ? { lora_target_linear: true } : { lora_target_modules: cfg.lora.target_modules }),
    sequence_len: cfg.dataset.tokenization.cutoff_len,
    datasets: [{ path: `${paths.dataDir}/train.jsonl`, ds_type: "json", type: "input_output" }],
    ...(hasEval ? { test_datasets: [{ path: `${paths.dataDir}/eval.jsonl`, ds_type: "json", type: "input_output", split: "train" }] } : {}),
    val_set_size: 0,
    train_on_inputs: cfg.dataset.tokenization.train_on_inputs,
    num_epochs: t.num_epochs,
    ...(t.max_steps ? { max_steps: t.max_steps } : {}),
    micro_batch_size: t.micro_batch_size,
    gradient_accumulation_steps: t.macro_batch_size / perStep,
    learning_rate: t.learning_rate,
    optimizer: t.optimizer,
    lr_scheduler: t.lr_scheduler,
    warmup_steps: t.warmup_steps,
    weight_decay: t.weight_decay,
    max_grad_norm: t.max_grad_norm,
    eval_steps: hasEval ? t.eval_steps : undefined,
    save_steps: t.save_steps ?? t.eval_steps,
    logging_steps: t.logging_steps,
    seed: t.seed,
    bf16: t.bf16,
    fp16: t.fp16 === true && t.bf16 !== true ? true : false,
    gradient_checkpointing: t.gradient_checkpointing,
    group_by_length: t.group_by_length,
    output_dir: paths.outputDir,
    // Spot safety: restart from the newest checkpoint, and checkpoint on demand when the agent sees a notice.
    auto_resume_from_checkpoints: true,
    dynamic_checkpoint: { enabled: true, check_interval: 1, trigger_file_path: AXOLOTL_CHECKPOINT_TRIGGER },
  };
  if (cfg.wandb) {
    Object.assign(out, {
      wandb_project: cfg.wandb.project,
      wandb_entity: cfg.wandb.entity ?? undefined,
      wandb_name: cfg.wandb.run_name ?? undefined,
      wandb_log_model: cfg.wandb.log_model ? "end" : undefined,
    });
  }
  for (const [k, v] of Object.entries(cfg.trainer.extra)) {
    if (k in out && out[k] !== undefined) {
      throw new UserError(`trainer.extra.${k}: ftune sets ${k} itself from the config; change the ftune field instead, so the run's config diff stays true`);
    }
    out[k] = v;
  }
  for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k];
  return out;
}

export function renderAxolotlYaml(cfg: FtuneConfig, paths: AxolotlPaths, gpus: number, hasEval = true): string {
  return `# Rendered by ftune from the resolved config; do not edit (change the ftune config instead).\n${stringify(axolotlConfig(cfg, paths, gpus, hasEval), { lineWidth: 0 })}`;
}
