// The compute stage's public interface: a provider for the config (ec2 | ssh | local), the host spec for a run, and
// holdHost(), which keeps the first safety promise: SIGINT/SIGTERM release whatever this process acquired, at once.
import type { FtuneConfig } from "../config/index.js";
import { paramsFromName } from "../plan/estimate.js";
import { Ec2Provider, type Ec2Options } from "./ec2.js";
import { LocalProvider } from "./local.js";
import { SshProvider } from "./ssh.js";
import type { Host, HostSpec, Provider } from "./types.js";

export type { Host, HostNode, HostSpec, HostStatus, Market, Provider, SshAccess } from "./types.js";
export { Ec2Provider, DEFAULT_AMI_NAME, TAG, userData, hostKeyFingerprint } from "./ec2.js";
export { cleanup, parseDuration, type CleanupItem } from "./cleanup.js";

export function providerFor(cfg: FtuneConfig, ec2?: Ec2Options): Provider {
  switch (cfg.compute.provider) {
    case "ec2":
      return new Ec2Provider({ user: cfg.compute.ami_user, ...ec2 }, cfg.compute.region);
    case "ssh":
      return new SshProvider(cfg.compute.ssh!);
    default:
      return new LocalProvider();
  }
}

/** Root volume: the AMI and the trainer image (~80 GiB), plus the base model twice over (weights and checkpoints). */
export function volumeFor(cfg: FtuneConfig): number {
  if (cfg.compute.volume_gb) return cfg.compute.volume_gb;
  const params = paramsFromName(cfg.model.base_model) ?? 7e9;
  return Math.max(100, Math.ceil(80 + (2 * params * 2) / 2 ** 30));
}

export function hostSpec(cfg: FtuneConfig, runId: string, project: string): HostSpec {
  const c = cfg.compute;
  return {
    runId,
    project,
    instanceTypes: c.instance_types,
    availabilityZones: c.availability_zones,
    subnets: c.subnets,
    spot: c.spot,
    onDemandFallback: c.on_demand_fallback,
    maxPrice: c.max_price,
    ttlMinutes: c.ttl_minutes,
    ami: c.ami,
    volumeGb: volumeFor(cfg),
    sshPort: c.ssh_port,
    sshCidr: c.ssh_cidr,
    region: c.region,
    workdir: c.workdir,
    nodes: c.nodes,
  };
}

/**
 * Acquires a host, runs `work` with it and releases it, whatever happens: an error, or SIGINT/SIGTERM (a cancelled
 * workflow, a killed runner) while acquiring or working, which aborts `work` through its signal, releases the host
 * and exits 130/143. Release is idempotent, so the action's always() cleanup step may repeat it safely.
 */
export async function holdHost<T>(provider: Provider, spec: HostSpec, work: (host: Host, signal: AbortSignal) => Promise<T>, log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): Promise<T> {
  const abort = new AbortController();
  let host: Host | undefined;
  let releasing: Promise<void> | undefined;
  const release = (quick = false): Promise<void> =>
    (releasing ??= host ? provider.release(host, { quick }).then(() => log(`released ${host!.provider} host ${host!.id}`)) : Promise.resolve());
  const onSignal = (sig: NodeJS.Signals): void => {
    log(`${sig}: releasing ${host ? `${host.provider} host ${host.id}` : "what was being acquired"} now`);
    abort.abort(new Error(`interrupted by ${sig}`));
    // Give the aborted acquire a moment to hand over an instance it just launched, then release and leave.
    void (async () => {
      await acquiring.catch(() => undefined);
      await release(true).catch((e: unknown) => log(`release failed: ${(e as Error).message}; run ftune cleanup`));
      process.exit(sig === "SIGINT" ? 130 : 143);
    })();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const acquiring = provider.acquire(spec, abort.signal).then((h) => {
    host = h;
    return h;
  });
  try {
    const h = await acquiring;
    return await work(h, abort.signal);
  } finally {
    await release();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
