// Where a command's store is and how to reach it: --store and the S3 flags, else the config's storage group,
// else FTUNE_STORE, else the embedded default (file://.ftune/store). The AWS SDK's own environment
// (AWS_REGION, AWS_ENDPOINT_URL_S3, AWS_*_CHECKSUM_*) applies to whatever is left unset, as for awscli.
import * as core from "@actions/core";
import { Command, Option } from "commander";
import { loadConfig, type FtuneConfig } from "../config/index.js";
import { DEFAULT_STORE_URL, openStore, storeOptionsFromConfig, type Store, type StoreOptions } from "../store/index.js";
import { UserError } from "../util/errors.js";
import { printDiagnostics } from "./diagnostics-out.js";

export interface StoreFlags {
  store?: string;
  config?: string;
  endpoint?: string;
  region?: string;
  pathStyle?: boolean;
  checksums?: "when_supported" | "when_required";
  concurrency?: number;
}

/** `withConfig`: add --config (commands whose config is a positional argument leave it out). */
export function addStoreFlags(cmd: Command, withConfig = true): Command {
  cmd.option("--store <url>", `store URL: file://<dir> or s3://bucket/prefix (default: the config's storage.url, $FTUNE_STORE, ${DEFAULT_STORE_URL})`);
  if (withConfig) cmd.option("--config <file>", "take storage settings (and model file patterns, HF token variable) from this config");
  return cmd
    .option("--endpoint <url>", "S3 endpoint for S3-compatible stores (default: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL)")
    .option("--region <region>", "S3 region (default: AWS_REGION)")
    .option("--path-style", "address buckets as <endpoint>/<bucket> (MinIO, Ceph, most S3-compatible stores)")
    .addOption(new Option("--checksums <mode>", "when_required for stores that do not decode the SDK's flexible checksums (MinIO, R2, Ceph)").choices(["when_supported", "when_required"]))
    .addOption(new Option("--concurrency <n>", "transfer requests in flight").argParser((v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 256) throw new UserError(`--concurrency ${v}: expected a whole number from 1 to 256`);
      return n;
    }));
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** `--set key=value`, repeatable; the values are typed by the schema when the config loads. */
export const setOption = (): Option => new Option("--set <key=value>", "override a config value (repeatable), typed by the schema, e.g. --set training.learning_rate=1e-4").argParser(collect);

/**
 * The overrides to apply: FTUNE_OVERRIDES first (one key=value per line: how the action hands its `overrides` input
 * to every step), then the --set flags.
 */
export function overridesFrom(sets: string[] = []): string[] {
  const fromEnv = (process.env.FTUNE_OVERRIDES ?? "").split("\n").map((l) => l.trim()).filter(Boolean);
  return [...fromEnv, ...sets];
}

/** A config file (with the overrides), validated; a bad one stops the command here with its located errors. */
export function loadValidConfig(path: string, sets: string[] = []): { config: FtuneConfig; hash: string } {
  const r = loadConfig(path, { sets: overridesFrom(sets) });
  printDiagnostics(r.diagnostics);
  if (!r.ok || !r.config || !r.hash) throw new UserError(`${path} is not a valid config (see above)`);
  return { config: r.config, hash: r.hash };
}

/** The config named by --config, if any. */
export function configFromFlags(flags: StoreFlags): FtuneConfig | undefined {
  return flags.config ? loadValidConfig(flags.config).config : undefined;
}

export function storeFromFlags(flags: StoreFlags, cfg?: FtuneConfig): { store: Store; options: StoreOptions } {
  const fromConfig = storeOptionsFromConfig(cfg?.storage);
  const options: StoreOptions = {
    ...fromConfig,
    ...(flags.endpoint !== undefined && { endpoint: flags.endpoint }),
    ...(flags.region !== undefined && { region: flags.region }),
    ...(flags.pathStyle && { forcePathStyle: true }),
    ...(flags.checksums !== undefined && { checksums: flags.checksums }),
    ...(flags.concurrency !== undefined && { concurrency: flags.concurrency }),
  };
  const configUrl = cfg && cfg.storage.url !== DEFAULT_STORE_URL ? cfg.storage.url : undefined;
  const url = flags.store ?? configUrl ?? process.env.FTUNE_STORE ?? DEFAULT_STORE_URL;
  return { store: openStore(url, options), options };
}

/** The HuggingFace token from the variable the config names (HF_TOKEN by default), masked in Actions logs. */
export function hfToken(cfg?: FtuneConfig): string | undefined {
  const name = cfg?.model.hf_token_env ?? "HF_TOKEN";
  const token = process.env[name] || process.env.HUGGING_FACE_HUB_TOKEN || undefined;
  if (token && process.env.GITHUB_ACTIONS === "true") core.setSecret(token);
  return token;
}

/** A number from the environment, or undefined when the variable is unset or empty. */
export function numberFromEnv(name: string): number | undefined {
  return process.env[name] ? Number(process.env[name]) : undefined;
}

/** FTUNE_EC2_POLL_MS: how often EC2 states are polled (a test hook; the provider's default otherwise). */
export function ec2PollFromEnv(): { pollMs: number } | undefined {
  const pollMs = numberFromEnv("FTUNE_EC2_POLL_MS");
  return pollMs ? { pollMs } : undefined;
}
