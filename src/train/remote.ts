// Training on a remote host (compute.provider ec2 or ssh), with recovery. One attempt = one host: acquire it, stage
// the inputs (dataset, base model, the newest checkpoint of this run) onto it through presigned URLs, start the
// trainer detached, follow its log, and copy every complete checkpoint into the run store as soon as it appears.
// A spot notice makes the box-side agent ask the trainer for a checkpoint; once that checkpoint is complete the
// trainer is stopped (whatever it does after that would be lost with the box) and the checkpoint is pulled. When
// the host is lost, with or without a notice, the next attempt acquires a new host (the pool that lost it tried
// last) and resumes from the newest checkpoint in the run store. Attempts are bounded by compute.max_attempts.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, posix } from "node:path";
import { fileURLToPath } from "node:url";
import type { FtuneConfig } from "../config/index.js";
import { holdHost, hostSpec, type Host, type HostNode, type Provider } from "../compute/index.js";
import { PRICE_TABLE } from "../plan/index.js";
import { ConnectionLost, RemoteHost, killJob, shellQuote as q, startDetached, watchJob, type DetachedJob } from "../remote/index.js";
import { presignFiles, type FileEntry, type Store } from "../store/index.js";
import { InfraError, UserError } from "../util/errors.js";
import { checkpointStep, type CheckpointStore, type StoredCheckpoint } from "./checkpoints.js";
import { finalFiles } from "./outputs.js";
import { boxJobScript, hostPaths, trainerLaunch, type Backend, type HostPaths } from "./launch.js";
import { TrainProgress } from "./progress.js";

export type EndReason = "completed" | "spot-interruption" | "host-lost" | "trainer-failed" | "error";

/** One host's part of a run, as run.json records it. */
export interface AttemptRecord {
  attempt: number;
  provider: Host["provider"];
  /** Node 0's id (the one instance for a single node). */
  host?: string;
  /** Every machine, node 0 first, when the host is several nodes. */
  nodes?: string[];
  instance_type?: string;
  availability_zone?: string;
  market?: Host["market"];
  price_per_hour?: number | null;
  started_at: string;
  /** When the instance(s) were launched: billing starts here. */
  launched_at?: string;
  acquired_at?: string;
  staged_at?: string;
  ended_at?: string;
  end_reason?: EndReason;
  /** The checkpoint this host started from (null: from the beginning). */
  resumed_from: string | null;
  resumed_step: number;
  /** The newest step the trainer logged on this host. */
  last_step: number;
  seconds_per_step?: number;
  checkpoints_synced: string[];
  spot_notice_at?: string;
  /** The newest checkpoint on the host when the notice came: the run resumes from a later one when it can. */
  checkpoint_step_at_notice?: number;
  /** Steps this host computed that the next one had to compute again, and their time at this host's pace. */
  steps_lost?: number;
  seconds_lost?: number;
  gpu_seconds?: number;
  cost_usd?: number;
  error?: string;
}

/** One input set staged onto the host: files of one store prefix into a folder below the attempt's work dir. */
interface InputSet {
  prefix: string;
  files: readonly FileEntry[];
  dest: string;
}

export interface RemoteTrainContext {
  cfg: FtuneConfig;
  backend: Backend;
  runId: string;
  project: string;
  store: Store;
  checkpoints: CheckpointStore;
  dataset: InputSet;
  model?: InputSet;
  hasEval: boolean;
  provider: Provider;
  /** HF_TOKEN / WANDB_API_KEY for the trainer: they reach the box over SSH only. */
  secrets: Record<string, string>;
  /** The box-side scripts shipped with ftune (ftune_agent.py, dryrun_trainer.py). */
  boxScripts: { agent: string; dryRunTrainer: string };
  /** Local folder that receives the final outputs (adapter, trainer_state.json, train.log). */
  outDir: string;
  attempts: AttemptRecord[];
  /** Persists run.json (called as attempts start and end). */
  save: () => Promise<void>;
  log: (line: string) => void;
  pollMs: number;
  spotPollSeconds: number;
  /** Test hook for the stand-in IMDS: "{instance_id}" is replaced by the host's id. Unset on real boxes. */
  imdsUrl?: string;
}

/** Another node's part of the run ended on its own: the run cannot go on (not a lost host, not retried here). */
class NodeFailed extends Error {}

type Outcome = { kind: "completed" } | { kind: "lost"; reason: "spot-interruption" | "host-lost"; detail: string };


function gpusOf(cfg: FtuneConfig, host: Host): number {
  return cfg.compute.gpus_per_node ?? (host.instanceType ? PRICE_TABLE.instances[host.instanceType]?.gpus : undefined) ?? 1;
}

export async function trainRemote(ctx: RemoteTrainContext): Promise<void> {
  const { cfg, log } = ctx;
  const avoid: { instanceType: string; availabilityZone?: string }[] = [];
  for (let n = 1; ; n++) {
    const resume = await ctx.checkpoints.newest();
    const previous = ctx.attempts.at(-1);
    if (previous && previous.end_reason !== "completed") {
      // The work the lost host did past the checkpoint this host starts from is done again.
      previous.steps_lost = Math.max(0, previous.last_step - (resume?.step ?? 0));
      previous.seconds_lost = previous.seconds_per_step !== undefined ? Math.round(previous.steps_lost * previous.seconds_per_step * 10) / 10 : undefined;
    }
    const att: AttemptRecord = { attempt: n, provider: cfg.compute.provider as Host["provider"], started_at: new Date().toISOString(), resumed_from: resume?.name ?? null, resumed_step: resume?.step ?? 0, last_step: resume?.step ?? 0, checkpoints_synced: [] };
    ctx.attempts.push(att);
    await ctx.save();
    const spec = { ...hostSpec(cfg, ctx.runId, ctx.project), attempt: n, avoid: [...avoid] };
    let outcome: Outcome;
    let held: Host | undefined;
    try {
      outcome = await holdHost(ctx.provider, spec, (host, signal) => {
        held = host;
        return attempt(ctx, host, att, resume, signal);
      }, log);
    } catch (e) {
      att.end_reason ??= "error";
      att.error = (e as Error).message;
      throw e;
    } finally {
      finishAttempt(att, held, gpusOf(cfg, held ?? ({} as Host)));
      await ctx.save();
    }
    att.end_reason = outcome.kind === "completed" ? "completed" : outcome.reason;
    if (outcome.kind === "completed") return;
    const newest = await ctx.checkpoints.newest();
    if (n >= cfg.compute.max_attempts) {
      throw new InfraError(
        `attempt ${n} of ${cfg.compute.max_attempts} lost its host (${outcome.detail}); compute.max_attempts is spent. ` +
          `${newest ? `The newest checkpoint, ${newest.name}, is in ${ctx.checkpoints.uri(newest.name)}` : "No checkpoint was saved"}`,
      );
    }
    if (held?.instanceType) avoid.push({ instanceType: held.instanceType, availabilityZone: held.availabilityZone });
    log(`attempt ${n}: ${outcome.detail}; acquiring a new host to resume from ${newest ? newest.name : "the start"} (attempt ${n + 1} of ${cfg.compute.max_attempts})`);
  }
}

function finishAttempt(att: AttemptRecord, host: Host | undefined, gpus: number): void {
  att.ended_at = new Date().toISOString();
  if (!host) return;
  // Billing runs from launch to termination, for every machine of the host; it was released (or lost) by now.
  const seconds = Math.max(0, (Date.parse(att.ended_at) - Date.parse(host.launchedAt)) / 1000);
  const machines = host.nodes?.length ?? 1;
  att.gpu_seconds = Math.round(seconds * machines * (host.instanceType ? (PRICE_TABLE.instances[host.instanceType]?.gpus ?? 0) : gpus));
  if (host.pricePerHour !== undefined) att.cost_usd = Math.round((seconds / 3600) * host.pricePerHour * machines * 10000) / 10000;
}

async function attempt(ctx: RemoteTrainContext, host: Host, att: AttemptRecord, resume: StoredCheckpoint | undefined, signal: AbortSignal): Promise<Outcome> {
  const { cfg, log } = ctx;
  if (host.nodes) att.nodes = host.nodes.map((n) => n.id);
  Object.assign(att, { launched_at: host.launchedAt, host: host.id, instance_type: host.instanceType, availability_zone: host.availabilityZone, market: host.market, price_per_hour: host.pricePerHour ?? null, acquired_at: new Date().toISOString() });
  await ctx.save();
  if (!host.ssh) throw new InfraError(`${host.provider} host ${host.id} has no SSH access`);
  const where = `${host.provider} host ${host.id}${host.instanceType ? ` (${host.market} ${host.instanceType}${host.availabilityZone ? ` in ${host.availabilityZone}` : ""})` : ""}`;
  // Any failure to reach or use the host is first checked against the provider: a host that is going away is a
  // lost host (retry elsewhere), anything else is an error of this run.
  const lostOr = async (e: unknown): Promise<Outcome> => {
    const s = await ctx.provider.status(host).catch(() => ({ state: "unknown" as const, reason: undefined }));
    if (s.state === "stopping" || s.state === "terminated") {
      return { kind: "lost", reason: stepAtNotice !== undefined || s.reason === "Server.SpotInstanceTermination" ? "spot-interruption" : "host-lost", detail: `${where} went ${s.state}${s.reason ? ` (${s.reason})` : ""}` };
    }
    throw e;
  };
  /** The newest checkpoint step on node 0 when a spot notice was seen (undefined: no notice): any later one is kept. */
  let stepAtNotice: number | undefined;
  const paths = hostPaths(posix.join(host.workdir, ctx.runId, `attempt-${att.attempt}`));
  let remote: RemoteHost;
  let job: DetachedJob;
  try {
    remote = await RemoteHost.connect(host.ssh, { signal, log });
  } catch (e) {
    return lostOr(e);
  }
  const access = { ...host.ssh, hostKey: remote.hostKey };
  let remoteOpen = true;
  void remote.closed.then(() => (remoteOpen = false));
  // The other machines of a multi-node host: each gets the same inputs and starts its part of the run; node 0
  // (`remote`) is the one watched, whose checkpoints are synced, and which a spot notice on any node is relayed to.
  const extras: { node: HostNode; remote: RemoteHost; paths: HostPaths; job?: DetachedJob }[] = [];
  const nodeCount = host.nodes?.length ?? 1;
  /** Node 0's "checkpoint now" file. */
  let relayTrigger = "";
  /** Stages a node's inputs and returns how to start its part of the run (all nodes are staged before any starts). */
  const stageNode = async (box: RemoteHost, boxPaths: HostPaths, rank: number, instanceId: string): Promise<() => Promise<DetachedJob>> => {
    const node = { rank, count: nodeCount, masterAddr: host.nodes?.[0]?.privateIp ?? "127.0.0.1" };
    const launch = trainerLaunch(cfg, ctx.backend, boxPaths, { gpus: gpusOf(cfg, host), runId: ctx.runId, hasEval: ctx.hasEval, node });
    if (rank === 0) relayTrigger = launch.trigger;
    const sets = [ctx.dataset, ...(ctx.model ? [ctx.model] : []), ...(resume ? [{ prefix: resume.prefix, files: resume.files, dest: `output/${resume.name}` }] : [])];
    const fetch = await stageInputs(ctx, box, boxPaths, sets, launch.files);
    const env: Record<string, string> = { ...launch.env, ...ctx.secrets };
    if (ctx.imdsUrl) env.FTUNE_IMDS_URL = ctx.imdsUrl.replace("{instance_id}", instanceId);
    // The dry-run trainer's pace (seconds per step), when the runner sets it.
    if (process.env.FTUNE_DRYRUN_STEP_SECONDS) env.FTUNE_DRYRUN_STEP_SECONDS = process.env.FTUNE_DRYRUN_STEP_SECONDS;
    return () => startDetached(box, { workdir: boxPaths.work, id: "train", command: boxJobScript(boxPaths, launch, { fetch, spotPollSeconds: ctx.spotPollSeconds, watchSpot: host.market === "spot" }), env });
  };
  const stopExtras = async (): Promise<void> => {
    for (const x of extras) {
      if (x.job) await killJob(x.remote, x.job, "TERM").catch(() => undefined);
      await x.remote.close();
    }
  };
  try {
    log(`staging inputs on ${where}${nodeCount > 1 ? ` (${nodeCount} nodes)` : ""}${resume ? ` (resuming from ${resume.name})` : ""}`);
    for (const [k, node] of (host.nodes ?? []).entries()) {
      if (k === 0) continue;
      const box = await RemoteHost.connect(node.ssh, { signal, log });
      extras.push({ node, remote: box, paths: hostPaths(`${paths.work}-node-${k}`) });
    }
    const starts = [];
    for (const [i, x] of extras.entries()) starts.push(await stageNode(x.remote, x.paths, i + 1, x.node.id));
    const startNode0 = await stageNode(remote, paths, 0, host.nodes?.[0]?.id ?? host.id);
    for (const [i, x] of extras.entries()) x.job = await starts[i]!();
    job = await startNode0();
  } catch (e) {
    await stopExtras();
    await remote.close();
    if (e instanceof UserError) throw e;
    return lostOr(e);
  }

  const progress = new TrainProgress(log, ctx.backend === "dry-run" ? " [dry run]" : "");
  progress.lastStep = att.resumed_step;
  const watchAbort = new AbortController();
  const onAbort = (): void => watchAbort.abort(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  let stopSync = false;
  /** The first checkpoint completed after the spot notice: the trainer is stopped once it exists. */
  let noticeCheckpoint: string | undefined;
  let hostGone: Outcome | undefined;
  const synced = new Set<string>(resume ? [resume.name] : []);

  /** One look at the box: the notice marker and the complete checkpoints; syncs the newest new one. */
  const tick = async (box: RemoteHost): Promise<void> => {
    const r = await box.exec(
      `bash -c ${q(`cd ${q(paths.work)} 2>/dev/null || exit 0; [ -f spot-notice.json ] && echo "notice $(tr -d '\\n' < spot-notice.json)"; ` +
        `for d in output/checkpoint-*; do [ -f "$d/trainer_state.json" ] && echo "ckpt \${d#output/}"; done; true`)}`,
      { timeoutMs: 60_000 },
    );
    const lines = r.stdout.split("\n");
    const complete = lines.filter((l) => l.startsWith("ckpt ")).map((l) => l.slice(5)).filter((n) => checkpointStep(n) !== undefined);
    const notice = lines.find((l) => l.startsWith("notice "));
    if (notice && stepAtNotice === undefined) {
      const body = JSON.parse(notice.slice(7)) as { time?: string; noticed_at?: string; checkpoint_step_at_notice?: number; stopped_after?: string };
      stepAtNotice = body.checkpoint_step_at_notice ?? 0;
      att.checkpoint_step_at_notice = stepAtNotice;
      att.spot_notice_at = body.noticed_at ?? new Date().toISOString();
      log(`spot interruption notice on ${where} (termination at ${body.time ?? "?"}); the trainer was asked to checkpoint now`);
      await ctx.save();
    }
    // Newest first: it is the one a resume needs. Older ones follow, unless the box is about to go.
    const pending = complete.filter((n) => !synced.has(n)).sort((a, b) => checkpointStep(b)! - checkpointStep(a)!);
    for (const name of stepAtNotice !== undefined ? pending.slice(0, 1) : pending) {
      if (stepAtNotice !== undefined && checkpointStep(name)! > stepAtNotice && !noticeCheckpoint) {
        // The checkpoint the notice asked for: stop the trainer, whatever it computes from here is lost anyway.
        noticeCheckpoint = name;
        await killJob(box, job, "TERM").catch(() => undefined);
        log(`${name} is complete; trainer stopped on ${where} before the interruption`);
      }
      await pullCheckpoint(ctx, box, paths, name);
      synced.add(name);
      att.checkpoints_synced.push(name);
      await ctx.save();
      log(`checkpoint ${name} synced to ${ctx.checkpoints.uri(name)}`);
    }
  };

  /**
   * A spot notice on another node: the whole run dies with it, so node 0 (where rank 0 saves) is asked for the
   * checkpoint, exactly as if its own agent had seen the notice.
   */
  let relayed = false;
  /** An extra node's command, over a new connection if its one dropped. */
  const onExtra = async (x: (typeof extras)[number], command: string): Promise<string> => {
    try {
      return (await x.remote.exec(command, { timeoutMs: 30_000 })).stdout;
    } catch {
      await x.remote.close();
      x.remote = await RemoteHost.connect(x.node.ssh, { signal: watchAbort.signal, attempts: 2, log });
      return (await x.remote.exec(command, { timeoutMs: 30_000 })).stdout;
    }
  };
  const relayNotice = async (box: RemoteHost): Promise<void> => {
    if (relayed) return;
    for (const x of extras) {
      const text = (await onExtra(x, `cat ${q(posix.join(x.paths.work, "spot-notice.json"))} 2>/dev/null || true`).catch(() => "")).trim();
      if (!text) continue;
      relayed = true;
      // Node 0's own agent may have seen the notice too: then its marker (and its checkpoint step) stands.
      if ((await box.exec(`test -e ${q(posix.join(paths.work, "spot-notice.json"))}`, { timeoutMs: 30_000 })).code === 0) return;
      const listing = await box.exec(`bash -c ${q(`cd ${q(paths.output)} 2>/dev/null && for d in checkpoint-*; do [ -f "$d/trainer_state.json" ] && echo "$d"; done; true`)}`, { timeoutMs: 30_000 });
      const steps = listing.stdout.split("\n").map((n) => checkpointStep(n.trim()) ?? 0);
      const body = { ...(JSON.parse(text) as Record<string, unknown>), relayed_from: x.node.id, checkpoint_step_at_notice: Math.max(0, ...steps) };
      // The trigger first (the checkpoint starts), then the marker, written whole (temp file, then renamed).
      await box.writeFile(relayTrigger, "");
      const marker = posix.join(paths.work, "spot-notice.json");
      await box.writeFile(`${marker}.relay`, JSON.stringify(body), 0o600);
      await box.exec(`mv -f ${q(`${marker}.relay`)} ${q(marker)}`, { timeoutMs: 30_000 });
      log(`spot interruption notice on node ${x.node.id}: relayed to node 0`);
      return;
    }
  };

  /**
   * The other nodes' health, every few rounds: a lost machine or a part of the run that ended leaves node 0 waiting
   * in a collective (NCCL, the rendezvous) for a long timeout while every machine is billed.
   */
  let round = 0;
  const checkExtras = async (): Promise<void> => {
    if (!extras.length || ++round % 5 !== 0) return;
    const s = await ctx.provider.status(host);
    if (s.state === "stopping" || s.state === "terminated") throw new InfraError(`a node of ${where} went ${s.state}`);
    for (const [i, x] of extras.entries()) {
      if (!x.job) continue;
      const state = (await onExtra(x, `d=${q(x.job.dir)}; [ -f "$d/job.exit" ] && echo "exit $(cat "$d/job.exit")" || echo running`).catch(() => "unknown")).trim();
      if (state.startsWith("exit ")) throw new NodeFailed(`node ${i + 1} (${x.node.id}) of ${where}: its part of the run ended (${state}) while node 0 trains; see ${x.job.dir}/job.log there`);
    }
  };

  const syncLoop = async (): Promise<void> => {
    let box: RemoteHost | undefined = remote;
    while (!stopSync) {
      try {
        box ??= await RemoteHost.connect(access, { signal: watchAbort.signal, attempts: 2, log });
        if (stepAtNotice === undefined) await relayNotice(box);
        await tick(box);
        await checkExtras();
      } catch (e) {
        if (watchAbort.signal.aborted) break;
        if (!(e instanceof ConnectionLost) && !(e instanceof InfraError)) throw e;
        await box?.close();
        box = undefined;
        try {
          await lostOr(e);
        } catch {
          // The host is still there: the connection dropped. Reconnect on the next round.
          log(`checkpoint sync: ${(e as Error).message}; retrying`);
          await new Promise((r) => setTimeout(r, ctx.pollMs));
          continue;
        }
        hostGone = await lostOr(e);
        watchAbort.abort(new Error("host lost"));
        break;
      }
      await new Promise((r) => setTimeout(r, ctx.pollMs));
    }
    if (box && box !== remote) await box.close();
  };

  let exitCode: number | null = null;
  let watchError: unknown;
  // Handled at once: an unexpected failure of the sync stops the watch (and so the attempt, which releases the host).
  const syncing = syncLoop().catch((e: unknown) => {
    watchError ??= e;
    watchAbort.abort(e);
  });
  try {
    const w = await watchJob(access, job, {
      onOutput: (text) => {
        if (!att.staged_at && text.includes("ftune: inputs staged")) att.staged_at = new Date().toISOString();
        progress.feed(text);
        att.last_step = progress.lastStep;
      },
      pollMs: ctx.pollMs,
      signal: watchAbort.signal,
      connect: { log, attempts: 4 },
    });
    exitCode = w.aborted ? null : w.exitCode;
  } catch (e) {
    watchError = e;
  } finally {
    stopSync = true;
    signal.removeEventListener("abort", onAbort);
  }
  await syncing;
  /** The last checkpoint, then the final outputs and the whole log, over a new connection if this one dropped. */
  const collect = async (): Promise<Outcome> => {
    if (!remoteOpen) remote = await RemoteHost.connect(access, { signal, log });
    await tick(remote);
    for (const [from, to] of Object.entries(finalFiles(ctx.outDir))) {
      await mkdir(dirname(to), { recursive: true });
      await remote.get(posix.join(from === "train.log" ? job.dir : paths.output, from === "train.log" ? "job.log" : from), to).catch((e: unknown) => {
        // The adapter is required; trainers differ on what else they leave.
        if (from === "adapter_model.safetensors" || from === "adapter_config.json") throw e;
      });
    }
    return { kind: "completed" };
  };
  att.last_step = progress.lastStep;
  att.seconds_per_step = progress.secondsPerStep();
  try {
    return await decide();
  } catch (e) {
    // The run ends here with an error or a cancel: stop the trainer too (an ssh box is not terminated by release).
    if (remoteOpen) await killJob(remote, job, "TERM").catch(() => undefined);
    throw e;
  } finally {
    await stopExtras();
    await remote.close();
  }

  async function decide(): Promise<Outcome> {
    signal.throwIfAborted();
    if (hostGone) return hostGone;
    // Finished (even if a notice came at the very end): collect the outputs; a box that dies meanwhile is a lost host.
    if (exitCode === 0 && !watchError) return await collect().catch((e: unknown) => lostOr(e));
    if (!noticeCheckpoint) {
      // The box agent stops the trainer itself once the checkpoint after a notice is complete, which can end the
      // job before the sync loop looked: one more look tells a stop for a notice from a crash.
      if (!remoteOpen) remote = await RemoteHost.connect(access, { signal, log, attempts: 2 }).catch(() => remote);
      await tick(remote).catch(() => undefined);
    }
    if (noticeCheckpoint) return { kind: "lost", reason: "spot-interruption", detail: `spot interruption notice on ${where}; the trainer stopped after saving ${noticeCheckpoint}` };
    // The job vanished (JobLost) or the box stopped answering: lost if the provider says the host is going away.
    if (watchError) return await lostOr(watchError);
    const gone = await lostOr(new Error("trainer failed")).catch(() => undefined);
    if (gone) return gone;
    att.end_reason = "trainer-failed";
    throw new InfraError(`the trainer exited with ${exitCode ?? "no status"} on ${where}; the end of its log:\n${progress.lastLines(20)}`);
  }
}

/** Puts the trainer's files on the host and the inputs: presigned URLs for the agent (s3), or SFTP (file store). */
async function stageInputs(ctx: RemoteTrainContext, remote: RemoteHost, paths: HostPaths, sets: InputSet[], files: Record<string, string>): Promise<boolean> {
  const dirs = new Set([paths.bin, paths.output, ...sets.flatMap((s) => s.files.map((f) => posix.dirname(posix.join(paths.work, s.dest, f.path))))]);
  const r = await remote.exec(`mkdir -p ${[...dirs].map(q).join(" ")} && chmod 700 ${q(paths.work)}`, { timeoutMs: 60_000 });
  if (r.code !== 0) throw new InfraError(`preparing ${paths.work} on the host failed: ${r.stderr.trim()}`);
  for (const [name, src] of [["ftune_agent.py", ctx.boxScripts.agent], ["dryrun_trainer.py", ctx.boxScripts.dryRunTrainer]] as const) {
    await remote.writeFile(posix.join(paths.bin, name), readFileSync(src), 0o700);
  }
  await remote.writeFile(paths.config, JSON.stringify(ctx.cfg), 0o600);
  for (const [name, content] of Object.entries(files)) await remote.writeFile(posix.join(paths.work, name), content, 0o600);
  if (ctx.store.kind === "s3") {
    // Long enough for a slow first download; the URLs are only readable on the box, and deleted after the fetch.
    const expires = ctx.cfg.compute.ttl_minutes * 60;
    const entries = (await Promise.all(sets.map(async (s) => (await presignFiles(ctx.store, s.prefix, s.files, expires)).map((f) => ({ ...f, path: `${s.dest}/${f.path}` }))))).flat();
    await remote.writeFile(posix.join(paths.work, "inputs.json"), JSON.stringify(entries), 0o600);
    return true;
  }
  // A file:// store lives on this machine, which the box cannot read: copy over SSH.
  for (const s of sets) {
    for (const f of s.files) await remote.put(fileURLToPath(ctx.store.uri(`${s.prefix}/${f.path}`)), posix.join(paths.work, s.dest, f.path));
  }
  return false;
}

/** Copies a complete checkpoint folder from the host into the run store (through a local temp folder). */
async function pullCheckpoint(ctx: RemoteTrainContext, box: RemoteHost, paths: HostPaths, name: string): Promise<void> {
  const dir = posix.join(paths.output, name);
  const r = await box.exec(`cd ${q(dir)} && find . -type f ! -name '*.tmp' -printf '%P\\n'`, { timeoutMs: 60_000 });
  if (r.code !== 0) throw new InfraError(`listing ${dir} on the host failed: ${r.stderr.trim()}`);
  const tmp = mkdtempSync(join(tmpdir(), "ftune-ckpt-"));
  try {
    for (const rel of r.stdout.split("\n").filter(Boolean)) {
      await mkdir(join(tmp, posix.dirname(rel)), { recursive: true });
      await box.get(posix.join(dir, rel), join(tmp, rel));
    }
    await ctx.checkpoints.save(tmp, name);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

