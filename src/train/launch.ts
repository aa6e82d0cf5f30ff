// How each trainer backend is started on a host, as one bash command plus the files it needs, following the
// trainer contract: FTUNE_CONFIG, FTUNE_DATA_DIR, FTUNE_MODEL_DIR, FTUNE_OUTPUT_DIR, and FTUNE_CHECKPOINT_TRIGGER
// (the file whose appearance asks for a checkpoint now: what a spot notice does).
import { posix } from "node:path";
import type { FtuneConfig } from "../config/index.js";
import { shellQuote as q } from "../remote/index.js";
import { AXOLOTL_CHECKPOINT_TRIGGER, renderAxolotlYaml } from "./axolotl.js";

export type Backend = "axolotl" | "custom" | "dry-run";

/**
 * The axolotl image when trainer.image is unset, pinned by digest so every run of a config trains with the same
 * code: the digest published for docker.io/axolotlai/axolotl:main-20260712-py3.12-cu130-2.12.0. Bump it
 * deliberately (and check `docker buildx imagetools inspect` shows it) together with src/train/axolotl-keys.json.
 */
export const AXOLOTL_IMAGE = "docker.io/axolotlai/axolotl@sha256:c33b21ad322e49fcc2db6116042cc206c69f26716482fc2902179fa303dd60b4";

/** Where things live on a host: one folder per run attempt, so a new host never finds an old host's files. */
export interface HostPaths {
  work: string;
  bin: string;
  data: string;
  model: string;
  output: string;
  config: string;
}

export function hostPaths(work: string): HostPaths {
  return {
    work,
    bin: posix.join(work, "bin"),
    data: posix.join(work, "data"),
    model: posix.join(work, "model"),
    output: posix.join(work, "output"),
    config: posix.join(work, "config.json"),
  };
}

export interface TrainerLaunch {
  /** bash; runs in paths.work. */
  command: string;
  /** Files to write into paths.work first (name -> content). */
  files: Record<string, string>;
  /** The backend's "checkpoint now" file. */
  trigger: string;
  env: Record<string, string>;
}

/** This machine's place in a multi-node run: torchrun's rendezvous is on node 0. */
export interface NodeRole {
  rank: number;
  count: number;
  /** Node 0's address inside the VPC. */
  masterAddr: string;
}

/** Where node 0 listens for the other nodes (torchrun --master_port). */
export const RENDEZVOUS_PORT = 29400;

export function trainerLaunch(cfg: FtuneConfig, backend: Backend, paths: HostPaths, opts: { gpus: number; runId: string; hasEval: boolean; node?: NodeRole }): TrainerLaunch {
  const node = opts.node ?? { rank: 0, count: 1, masterAddr: "127.0.0.1" };
  const env: Record<string, string> = {
    FTUNE_CONFIG: paths.config,
    FTUNE_DATA_DIR: paths.data,
    FTUNE_MODEL_DIR: backend === "dry-run" ? "" : paths.model,
    FTUNE_OUTPUT_DIR: paths.output,
    // The same contract for every backend: which node this is, and where node 0 listens.
    FTUNE_NODE_RANK: String(node.rank),
    FTUNE_NUM_NODES: String(node.count),
    FTUNE_MASTER_ADDR: node.masterAddr,
    FTUNE_MASTER_PORT: String(RENDEZVOUS_PORT),
  };
  if (backend === "dry-run") {
    const trigger = posix.join(paths.work, "checkpoint-now");
    return { command: `python3 ${q(posix.join(paths.bin, "dryrun_trainer.py"))}`, files: {}, trigger, env: { ...env, FTUNE_CHECKPOINT_TRIGGER: trigger } };
  }
  if (backend === "custom") {
    const trigger = posix.join(paths.work, "checkpoint-now");
    return { command: cfg.trainer.command!, files: {}, trigger, env: { ...env, FTUNE_CHECKPOINT_TRIGGER: trigger } };
  }
  const image = cfg.trainer.image ?? AXOLOTL_IMAGE;
  // Accumulation is over every GPU of every node.
  const yaml = renderAxolotlYaml(cfg, { modelDir: paths.model, dataDir: paths.data, outputDir: paths.output }, opts.gpus * node.count, opts.hasEval);
  const torchrun =
    node.count > 1
      ? // The static rendezvous: node_rank is honoured, so node 0 runs global rank 0 (the one that saves checkpoints,
        // writes the adapter and reads the checkpoint trigger). c10d would hand ranks out in host-name order.
        `--nnodes=${node.count} --node_rank=${node.rank} --nproc_per_node=${opts.gpus} --master_addr=${node.masterAddr} --master_port=${RENDEZVOUS_PORT}`
      : `--nproc_per_node=${opts.gpus}`;
  const name = `ftune-${opts.runId}`.replace(/[^A-Za-z0-9_.-]/g, "-");
  const mount = q(`${paths.work}:${paths.work}`);
  const command = [
    "command -v docker >/dev/null || { echo 'ftune: docker is not installed on this host (the axolotl backend runs in a container; use a GPU AMI with docker)' >&2; exit 127; }",
    // A container left by an earlier attempt on this box would hold the GPUs.
    `docker rm -f ${name} >/dev/null 2>&1 || true`,
    `echo "ftune: pulling ${image}"`,
    `docker pull --quiet ${q(image)}`,
    // Attached (signals reach the container through docker's sig-proxy), one torchrun process per GPU, nothing
    // fetched from the Hub (the base model was staged from the model store), telemetry off.
    [
      // The host's network: NCCL and the rendezvous between nodes use the machines' own addresses.
      `docker run --rm --name ${name} --gpus all --ipc=host --network=host --ulimit memlock=-1 --ulimit stack=67108864`,
      "-e AXOLOTL_DO_NOT_TRACK=1 -e HF_HUB_OFFLINE=1 -e HF_HUB_DISABLE_TELEMETRY=1 -e HF_TOKEN -e WANDB_API_KEY",
      `-v ${mount} -w ${q(paths.work)} ${q(image)}`,
      `axolotl train ${q(posix.join(paths.work, "axolotl.yaml"))} --launcher torchrun -- ${torchrun}`,
    ].join(" "),
  ].join("\n");
  return { command, files: { "axolotl.yaml": yaml }, trigger: posix.join(paths.output, AXOLOTL_CHECKPOINT_TRIGGER), env };
}

/**
 * The box-side job: the spot watcher in the background (it creates the trigger on a notice), the inputs fetched
 * through presigned URLs (no credentials on the box), then the trainer. "ftune: inputs staged" marks the end of
 * staging in the log, for the phase timings.
 */
export function boxJobScript(paths: HostPaths, launch: TrainerLaunch, opts: { fetch: boolean; spotPollSeconds: number; watchSpot: boolean }): string {
  const agent = q(posix.join(paths.bin, "ftune_agent.py"));
  // Only a spot instance gets interruption notices; elsewhere (an ssh box) there is no IMDS to poll.
  const watcher = opts.watchSpot
    ? [
        `python3 ${agent} watch-spot --marker ${q(posix.join(paths.work, "spot-notice.json"))} --trigger ${q(launch.trigger)} --output ${q(paths.output)} --stop-after-checkpoint --interval ${opts.spotPollSeconds} &`,
        "spot_watcher=$!",
        "trap 'kill $spot_watcher 2>/dev/null || true' EXIT",
      ]
    : [];
  return [
    "set -euo pipefail",
    `cd ${q(paths.work)}`,
    ...watcher,
    ...(opts.fetch ? ['echo "ftune: staging inputs"', `python3 ${agent} fetch --manifest inputs.json --dest ${q(paths.work)}`, "rm -f inputs.json"] : []),
    'echo "ftune: inputs staged"',
    launch.command,
  ].join("\n");
}
