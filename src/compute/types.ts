// What every compute provider (ec2, ssh, local) offers: get a host the trainer can run on, say how it is, give
// it back. A Host carries what src/remote needs to reach it; for `local` there is nothing to reach.

export interface HostSpec {
  runId: string;
  project: string;
  /** Instance types to try, in order (ec2). */
  instanceTypes: string[];
  availabilityZones: string[];
  subnets: string[];
  spot: boolean;
  onDemandFallback: boolean;
  /** USD per instance-hour; null: up to the on-demand price. */
  maxPrice: number | null;
  ttlMinutes: number;
  ami: string | null;
  volumeGb: number;
  sshPort: number;
  /** CIDR allowed to reach SSH; null: the runner's own public address /32. */
  sshCidr: string | null;
  region: string | null;
  /** Where jobs live on the host. */
  workdir: string;
  /** Which acquisition of this run this is (1, 2, ... after interruptions): keeps EC2 client tokens unique. */
  attempt?: number;
  /** Machines launched together for one multi-node run (one cluster placement group); default 1. */
  nodes?: number;
  /** Capacity pools that just lost a host (a spot interruption): tried last, since AWS reclaimed capacity there. */
  avoid?: { instanceType: string; availabilityZone?: string }[];
}

export interface SshAccess {
  host: string;
  port: number;
  user: string;
  /** OpenSSH private key (PEM); never logged, never written to the repo. */
  privateKey: string;
  /** The host's public key ("ssh-ed25519 AAAA..."), pinned: a different key refuses the connection. */
  hostKey: string | null;
}

export type Market = "spot" | "on-demand" | "none";

/** One machine of a multi-node host. */
export interface HostNode {
  id: string;
  ssh: SshAccess;
  /** Its address inside the VPC: where the other nodes reach it (torchrun's rendezvous on node 0). */
  privateIp: string;
}

export interface Host {
  provider: "ec2" | "ssh" | "local";
  /** Instance id (ec2), host name (ssh) or "local". */
  id: string;
  /** How to reach it over SSH; absent for local. With several nodes: node 0's. */
  ssh?: SshAccess;
  /** Every node, node 0 first, when the host is several machines launched together (compute.nodes > 1). */
  nodes?: HostNode[];
  workdir: string;
  instanceType?: string;
  availabilityZone?: string;
  market: Market;
  /** USD per hour at launch (spot price from DescribeSpotPriceHistory, or on-demand), when known. */
  pricePerHour?: number;
  launchedAt: string;
  /** Provider-specific leftovers to remove at release (security group id, ...). */
  resources: Record<string, string>;
}

export interface HostStatus {
  state: "pending" | "running" | "stopping" | "terminated" | "unknown";
  reason?: string;
}

export interface Provider {
  acquire(spec: HostSpec, signal?: AbortSignal): Promise<Host>;
  /**
   * Idempotent: releasing a released host is not an error. `quick`: send the termination and return without waiting
   * for it to finish (on SIGTERM the runner gives seconds; leftovers like the security group go to `ftune cleanup`).
   */
  release(host: Host, opts?: { quick?: boolean }): Promise<void>;
  status(host: Host): Promise<HostStatus>;
}
