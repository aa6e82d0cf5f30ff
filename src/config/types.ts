// The shape of a resolved config (defaults filled by the schema). Mirrors schema/ftune.schema.json;
// test/config-types.test.ts checks that the two name the same keys.

export type FieldsPreset = "alpaca" | "dolly";
export type FieldsMapping = { instruction: string; input?: string | null; output: string } & Record<string, string | null | undefined>;

export interface PromptTemplate {
  description: string;
  prompt_input: string;
  prompt_no_input: string;
  response_split: string;
}

export interface DatasetConfig {
  huggingface_dataset_path: string | null;
  local_dataset_path: string | null;
  store_dataset_uri: string | null;
  revision: string;
  split: string;
  format: "auto" | "jsonl" | "json" | "parquet" | "csv";
  fields: FieldsPreset | FieldsMapping;
  num_samples: number | null;
  val_set_size: number | null;
  split_seed: number;
  on_bad_rows: "skip" | "fail";
  max_bad_fraction: number;
  tokenizer: string | null;
  prompt_template: PromptTemplate;
  tokenization: { cutoff_len: number; add_eos_token: boolean; train_on_inputs: boolean; overflow: "truncate" | "drop" };
}

export interface ModelConfig {
  base_model: string;
  revision: string;
  allow_patterns: string[] | null;
  ignore_patterns: string[];
  quantization: "none" | "int8" | "nf4";
  hf_token_env: string | null;
  trust_remote_code: boolean;
  resuming_checkpoint_path: string | null;
  model_save_directory: string | null;
}

export interface TrainingConfig {
  num_epochs: number;
  max_steps: number | null;
  micro_batch_size: number;
  macro_batch_size: number;
  learning_rate: number;
  lr_scheduler: string;
  warmup_steps: number;
  weight_decay: number;
  max_grad_norm: number;
  optimizer: string;
  eval_steps: number;
  save_steps: number | null;
  logging_steps: number;
  bf16: boolean | "auto";
  fp16: boolean | null;
  gradient_checkpointing: boolean;
  group_by_length: boolean;
  seed: number;
  cutoff_len: number | null;
  visible_devices: string | number | null;
  master_port: number;
}

export interface LoraConfig {
  rank: number;
  alpha: number;
  dropout: number;
  target_modules: string[];
  bias: "none" | "all" | "lora_only";
  task_type: "CAUSAL_LM";
}

export interface WandbConfig {
  project: string;
  entity: string | null;
  run_name: string | null;
  api_key_env: string;
  log_model: boolean;
}

export interface SshHostConfig {
  host: string;
  port: number;
  user: string;
  private_key_env: string;
  host_key: string | null;
}

export interface ComputeConfig {
  provider: "ec2" | "ssh" | "local";
  region: string | null;
  instance_types: string[];
  availability_zones: string[];
  subnets: string[];
  spot: boolean;
  on_demand_fallback: boolean;
  max_price: number | null;
  nodes: number;
  gpus_per_node: number | null;
  ttl_minutes: number;
  max_attempts: number;
  ami: string | null;
  ami_user: string;
  volume_gb: number | null;
  ssh_port: number;
  ssh_cidr: string | null;
  workdir: string;
  ssh: SshHostConfig | null;
}

export interface StorageConfig {
  url: string;
  region: string | null;
  endpoint: string | null;
  force_path_style: boolean;
  checksums: "when_supported" | "when_required" | null;
  concurrency: number;
  part_size_mb: number;
}

export interface TrainerConfig {
  backend: "axolotl" | "custom" | "dry-run";
  image: string | null;
  command: string | null;
  extra: Record<string, unknown>;
}

export interface ReportConfig {
  baseline: "main" | "none";
  metrics: string[];
  comment: "update" | "off";
}

export interface EventsConfig {
  notify: string[];
  subscribe: string[];
}

export interface FtuneConfig {
  project: { name: string | null; namespace: string | null };
  dataset: DatasetConfig;
  model: ModelConfig;
  training: TrainingConfig;
  lora: LoraConfig;
  wandb: WandbConfig | null;
  compute: ComputeConfig;
  storage: StorageConfig;
  trainer: TrainerConfig;
  report: ReportConfig;
  events: EventsConfig;
}
