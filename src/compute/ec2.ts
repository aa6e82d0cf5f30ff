// The ec2 provider: a spot GPU for one run. Spot first over instance types x subnets/AZs, moving on after capacity
// errors; on-demand only when allowed. Every instance is hardened (IMDSv2 only, encrypted gp3 root, a per-run
// security group open to one /32, tags with an expiry) and kills itself at its TTL: user-data schedules a shutdown
// and InstanceInitiatedShutdownBehavior=terminate turns that into a termination, whatever happens to the runner.
// No secret goes into user-data: it carries the run's SSH *public* key only.
import {
  AuthorizeSecurityGroupIngressCommand, CreatePlacementGroupCommand, CreateSecurityGroupCommand, DeletePlacementGroupCommand, DeleteSecurityGroupCommand, DescribeImagesCommand,
  DescribeInstancesCommand, DescribeSpotPriceHistoryCommand, DescribeSubnetsCommand, EC2Client, GetConsoleOutputCommand,
  RunInstancesCommand, TerminateInstancesCommand, type Instance, type RunInstancesCommandInput, type Tag,
} from "@aws-sdk/client-ec2";
import { generateKeyPair } from "../remote/index.js";
import { setTimeout as sleep } from "node:timers/promises";
import { PRICE_TABLE } from "../plan/index.js";
import { InfraError, UserError } from "../util/errors.js";
import type { Host, HostNode, HostSpec, HostStatus, Provider } from "./types.js";

/** Newest AWS Deep Learning GPU AMI for Ubuntu 22.04 (NVIDIA driver, CUDA, Docker with the NVIDIA runtime). */
export const DEFAULT_AMI_NAME = "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) *";
const CAPACITY_CODES = new Set([
  "InsufficientInstanceCapacity", "InsufficientCapacity", "InsufficientHostCapacity", "SpotMaxPriceTooLow",
  "MaxSpotInstanceCountExceeded", "Unsupported", "InsufficientFreeAddressesInSubnet", "InstanceLimitExceeded",
  "VcpuLimitExceeded", "SpotCapacityNotAvailable",
]);
export const TAG = { runId: "ftune:run-id", project: "ftune:project", expiresAt: "ftune:expires-at" } as const;

export interface Ec2Options {
  client?: EC2Client;
  /** Login user of the AMI (ubuntu for the Deep Learning Ubuntu AMIs). */
  user?: string;
  /** Polling interval while waiting for state changes. */
  pollMs?: number;
  /** How long to wait for `running`, and for the console to show the host key. */
  bootTimeoutMs?: number;
  /** How the runner's public address is found when compute.ssh_cidr is not set. */
  publicIp?: () => Promise<string>;
  log?: (line: string) => void;
}

interface Attempt {
  type: string;
  az?: string;
  subnet?: string;
  market: "spot" | "on-demand";
  error?: string;
}

function errorCode(e: unknown): string {
  const err = e as { name?: string; Code?: string; code?: string };
  return err.name ?? err.Code ?? err.code ?? "Error";
}

async function checkIp(): Promise<string> {
  const res = await fetch("https://checkip.amazonaws.com", { signal: AbortSignal.timeout(10_000) });
  const ip = (await res.text()).trim();
  if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(ip)) throw new InfraError(`could not find this runner's public address (checkip answered ${JSON.stringify(ip.slice(0, 40))}); set compute.ssh_cidr`);
  return ip;
}

/** The per-run user-data: install the run's public key, schedule the TTL shutdown. A bash script cloud-init runs once. */
export function userData(publicKey: string, user: string, ttlMinutes: number): string {
  return [
    "#!/bin/bash",
    "# ftune: per-run access and a hard time limit. Contains no secret.",
    "set -eu",
    `shutdown -h +${ttlMinutes} "ftune: TTL of ${ttlMinutes} minutes reached" || systemd-run --on-active=${ttlMinutes}m /sbin/shutdown -h now`,
    `home=$(getent passwd ${user} | cut -d: -f6)`,
    `install -d -m 700 -o ${user} -g ${user} "$home/.ssh"`,
    `echo '${publicKey.trim()}' >> "$home/.ssh/authorized_keys"`,
    `chown ${user}:${user} "$home/.ssh/authorized_keys"`,
    `chmod 600 "$home/.ssh/authorized_keys"`,
    "",
  ].join("\n");
}

/** cloud-init prints the host key fingerprints to the console; that is how the key is pinned on first contact. */
export function hostKeyFingerprint(consoleOutput: string): string | undefined {
  const block = /-----BEGIN SSH HOST KEY FINGERPRINTS-----([\s\S]*?)-----END SSH HOST KEY FINGERPRINTS-----/.exec(consoleOutput)?.[1];
  return block ? /\b(SHA256:[A-Za-z0-9+/=]+)\s+\S+\s+\(ED25519\)/.exec(block)?.[1] : undefined;
}

export class Ec2Provider implements Provider {
  private readonly ec2: EC2Client;
  private readonly user: string;
  private readonly pollMs: number;
  private readonly bootTimeoutMs: number;
  private readonly log: (line: string) => void;

  constructor(private readonly opts: Ec2Options = {}, region?: string | null) {
    this.ec2 = opts.client ?? new EC2Client({ ...(region ? { region } : {}), maxAttempts: 6 });
    this.user = opts.user ?? "ubuntu";
    this.pollMs = opts.pollMs ?? 3000;
    this.bootTimeoutMs = opts.bootTimeoutMs ?? 10 * 60_000;
    this.log = opts.log ?? ((l) => process.stderr.write(`${l}\n`));
  }

  private async image(spec: HostSpec): Promise<{ id: string; rootDevice: string }> {
    const r = await this.ec2.send(
      new DescribeImagesCommand(
        spec.ami
          ? { ImageIds: [spec.ami] }
          : { Owners: ["amazon"], Filters: [{ Name: "name", Values: [DEFAULT_AMI_NAME] }, { Name: "state", Values: ["available"] }, { Name: "architecture", Values: ["x86_64"] }] },
      ),
    );
    const newest = [...(r.Images ?? [])].sort((a, b) => (b.CreationDate ?? "").localeCompare(a.CreationDate ?? ""))[0];
    if (!newest?.ImageId) throw new UserError(spec.ami ? `AMI ${spec.ami} was not found in this region` : `no AMI named "${DEFAULT_AMI_NAME}" in this region; set compute.ami`);
    return { id: newest.ImageId, rootDevice: newest.RootDeviceName ?? "/dev/sda1" };
  }

  private tags(spec: HostSpec, expiresAt: string): Tag[] {
    return [
      { Key: TAG.runId, Value: spec.runId },
      { Key: TAG.project, Value: spec.project },
      { Key: TAG.expiresAt, Value: expiresAt },
      { Key: "Name", Value: `ftune-${spec.project}-${spec.runId}` },
    ];
  }

  private async securityGroup(spec: HostSpec, expiresAt: string, subnet?: string): Promise<string> {
    const nodes = spec.nodes ?? 1;
    const subnets = await this.ec2.send(new DescribeSubnetsCommand(subnet ? { SubnetIds: [subnet] } : { Filters: [{ Name: "default-for-az", Values: ["true"] }] }));
    const vpc = subnets.Subnets?.[0]?.VpcId;
    const cidr = spec.sshCidr ?? `${await (this.opts.publicIp ?? checkIp)()}/32`;
    const sg = await this.ec2.send(
      new CreateSecurityGroupCommand({
        GroupName: `ftune-${spec.runId}`,
        Description: `ftune run ${spec.runId}: SSH from ${cidr} only`,
        VpcId: vpc,
        TagSpecifications: [{ ResourceType: "security-group", Tags: this.tags(spec, expiresAt) }],
      }),
    );
    await this.ec2.send(
      new AuthorizeSecurityGroupIngressCommand({
        GroupId: sg.GroupId,
        IpPermissions: [
          { IpProtocol: "tcp", FromPort: spec.sshPort, ToPort: spec.sshPort, IpRanges: [{ CidrIp: cidr, Description: "ftune runner" }] },
          // Several nodes talk to each other (torchrun's rendezvous, NCCL): anything from the group itself.
          ...(nodes > 1 ? [{ IpProtocol: "-1", UserIdGroupPairs: [{ GroupId: sg.GroupId, Description: "ftune nodes of this run" }] }] : []),
        ],
      }),
    );
    return sg.GroupId!;
  }

  private async spotPrice(type: string, az?: string): Promise<number | undefined> {
    try {
      const r = await this.ec2.send(new DescribeSpotPriceHistoryCommand({ InstanceTypes: [type as never], ProductDescriptions: ["Linux/UNIX"], AvailabilityZone: az, StartTime: new Date(), MaxResults: 10 }));
      const p = r.SpotPriceHistory?.find((h) => !az || h.AvailabilityZone === az)?.SpotPrice;
      return p ? Number(p) : undefined;
    } catch {
      return undefined;
    }
  }

  private async describe(id: string): Promise<Instance | undefined> {
    const r = await this.ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
    return r.Reservations?.[0]?.Instances?.[0];
  }

  async acquire(spec: HostSpec, signal?: AbortSignal): Promise<Host> {
    const launchedAt = new Date();
    const expiresAt = new Date(launchedAt.getTime() + spec.ttlMinutes * 60_000).toISOString();
    const image = await this.image(spec);
    const key = generateKeyPair(`ftune-${spec.runId}`);
    const sg = await this.securityGroup(spec, expiresAt, spec.subnets[0]);
    const resources: Record<string, string> = { securityGroup: sg };
    const nodes = spec.nodes ?? 1;
    const placements: { az?: string; subnet?: string }[] = spec.subnets.length
      ? spec.subnets.map((subnet) => ({ subnet }))
      : spec.availabilityZones.length
        ? spec.availabilityZones.map((az) => ({ az }))
        : [{}];
    const markets: ("spot" | "on-demand")[] = spec.spot ? (spec.onDemandFallback ? ["spot", "on-demand"] : ["spot"]) : ["on-demand"];
    const attempts: Attempt[] = [];
    let instance: Instance | undefined;
    let launched: Instance[] = [];
    let market: "spot" | "on-demand" = "spot";
    try {
      if (nodes > 1) {
        // Launched together into one cluster placement group: low latency between the nodes, and all or nothing.
        const name = `ftune-${spec.runId}-${spec.attempt ?? 1}`.slice(0, 255);
        await this.ec2.send(new CreatePlacementGroupCommand({ GroupName: name, Strategy: "cluster", TagSpecifications: [{ ResourceType: "placement-group", Tags: this.tags(spec, expiresAt) }] }));
        resources.placementGroup = name;
      }
      // Every (type, placement) pair in the configured order, except that pools which just lost a host go last.
      const avoided = (type: string, p: { az?: string }): boolean => (spec.avoid ?? []).some((a) => a.instanceType === type && (!a.availabilityZone || !p.az || a.availabilityZone === p.az));
      const pools = spec.instanceTypes.flatMap((type) => placements.map((p) => ({ type, p })));
      const ordered = [...pools.filter((x) => !avoided(x.type, x.p)), ...pools.filter((x) => avoided(x.type, x.p))];
      search: for (const m of markets) {
        for (const { type, p } of ordered) {
          signal?.throwIfAborted();
          const attempt: Attempt = { type, market: m, ...p };
          attempts.push(attempt);
          const input: RunInstancesCommandInput = {
            ImageId: image.id,
            InstanceType: type as never,
            MinCount: nodes,
            MaxCount: nodes,
            UserData: Buffer.from(userData(key.public, this.user, spec.ttlMinutes)).toString("base64"),
            SecurityGroupIds: [sg],
            SubnetId: p.subnet,
            Placement: p.az || resources.placementGroup ? { AvailabilityZone: p.az, GroupName: resources.placementGroup } : undefined,
            InstanceInitiatedShutdownBehavior: "terminate",
            MetadataOptions: { HttpTokens: "required", HttpEndpoint: "enabled", HttpPutResponseHopLimit: 2 },
            BlockDeviceMappings: [{ DeviceName: image.rootDevice, Ebs: { VolumeSize: spec.volumeGb, VolumeType: "gp3", Encrypted: true, DeleteOnTermination: true } }],
            TagSpecifications: [
              { ResourceType: "instance", Tags: this.tags(spec, expiresAt) },
              { ResourceType: "volume", Tags: this.tags(spec, expiresAt) },
            ],
            ClientToken: `${spec.runId}-${spec.attempt ?? 1}-${attempts.length}`.slice(0, 64),
            InstanceMarketOptions:
              m === "spot"
                ? { MarketType: "spot", SpotOptions: { SpotInstanceType: "one-time", InstanceInterruptionBehavior: "terminate", MaxPrice: spec.maxPrice ? String(spec.maxPrice) : undefined } }
                : undefined,
          };
          try {
            const r = await this.ec2.send(new RunInstancesCommand(input), { abortSignal: signal });
            launched = r.Instances ?? [];
            instance = launched[0];
            market = m;
            break search;
          } catch (e) {
            const code = errorCode(e);
            attempt.error = code;
            if (!CAPACITY_CODES.has(code)) throw e;
            this.log(`ec2: no ${m} ${type}${p.az ? ` in ${p.az}` : p.subnet ? ` in ${p.subnet}` : ""} (${code}); trying the next`);
          }
        }
      }
      if (!instance?.InstanceId) {
        const tried = attempts.map((a) => `${a.market} ${a.type}${a.az ? `@${a.az}` : a.subnet ? `@${a.subnet}` : ""}: ${a.error}`).join("; ");
        throw new InfraError(`no capacity for any candidate (${tried})${spec.spot && !spec.onDemandFallback ? "; set compute.on_demand_fallback: true to allow on-demand" : ""}`);
      }
      const id = instance.InstanceId;
      const host: Host = {
        provider: "ec2",
        id,
        workdir: spec.workdir,
        instanceType: instance.InstanceType,
        availabilityZone: instance.Placement?.AvailabilityZone,
        market,
        launchedAt: launchedAt.toISOString(),
        resources,
      };
      const ids = launched.map((i) => i.InstanceId!);
      if (ids.length > 1) host.resources.instances = ids.join(",");
      this.log(`ec2: launched ${market} ${instance.InstanceType} ${ids.join(", ")} in ${host.availabilityZone ?? "?"}; waiting for ${ids.length > 1 ? "them" : "it"} to run`);
      try {
        const nodeList: HostNode[] = [];
        for (const nodeId of ids) {
          const running = await this.waitFor(nodeId, "running", signal);
          const address = running.PublicIpAddress ?? running.PrivateIpAddress;
          if (!address) throw new InfraError(`${nodeId} is running but has no address (is the subnet public?)`);
          const ssh = { host: address, port: spec.sshPort, user: this.user, privateKey: key.private, hostKey: await this.hostKey(nodeId, signal) };
          nodeList.push({ id: nodeId, ssh, privateIp: running.PrivateIpAddress ?? address });
        }
        host.pricePerHour = market === "spot" ? await this.spotPrice(host.instanceType!, host.availabilityZone) : PRICE_TABLE.instances[host.instanceType!]?.on_demand;
        host.ssh = nodeList[0]!.ssh;
        if (nodeList.length > 1) host.nodes = nodeList;
        return host;
      } catch (e) {
        await this.release(host).catch(() => undefined);
        throw e;
      }
    } catch (e) {
      if (!instance?.InstanceId) {
        await this.deleteGroup(sg).catch(() => undefined);
        if (resources.placementGroup) await this.deletePlacementGroup(resources.placementGroup).catch(() => undefined);
      }
      throw e;
    }
  }

  /** Every instance of a host: its nodes, or the one. */
  private instanceIds(host: Host): string[] {
    return host.resources.instances ? host.resources.instances.split(",") : [host.id];
  }

  private deletePlacementGroup(name: string): Promise<void> {
    // The group is in use until every instance in it is fully terminated.
    return this.deleteWhenFree(() => this.ec2.send(new DeletePlacementGroupCommand({ GroupName: name })), "InvalidPlacementGroup.Unknown", "InvalidPlacementGroup.InUse");
  }

  /** The ED25519 host key fingerprint cloud-init prints on the console (the key itself never leaves the box). */
  private async hostKey(id: string, signal?: AbortSignal): Promise<string | null> {
    const deadline = Date.now() + this.bootTimeoutMs;
    while (Date.now() < deadline) {
      signal?.throwIfAborted();
      const out = await this.ec2.send(new GetConsoleOutputCommand({ InstanceId: id, Latest: true }));
      const text = out.Output ? Buffer.from(out.Output, "base64").toString("utf8") : "";
      const fp = hostKeyFingerprint(text);
      if (fp) return fp;
      await sleep(this.pollMs, undefined, { signal });
    }
    throw new InfraError(`${id}: the console never showed the SSH host key fingerprints within ${Math.round(this.bootTimeoutMs / 1000)} s (phase: host key)`);
  }

  private async waitFor(id: string, state: "running" | "terminated", signal?: AbortSignal): Promise<Instance> {
    const deadline = Date.now() + this.bootTimeoutMs;
    for (;;) {
      signal?.throwIfAborted();
      const i = await this.describe(id).catch((e: unknown) => {
        if (errorCode(e) === "InvalidInstanceID.NotFound") return undefined; // eventual consistency right after launch
        throw e;
      });
      const now = i?.State?.Name;
      if (now === state) return i!;
      if (state === "running" && (now === "terminated" || now === "shutting-down")) {
        throw new InfraError(`${id} went ${now} while booting (phase: boot): ${i?.StateReason?.Code ?? ""} ${i?.StateReason?.Message ?? ""}`.trim());
      }
      if (Date.now() > deadline) throw new InfraError(`${id} did not become ${state} within ${Math.round(this.bootTimeoutMs / 1000)} s (phase: ${state === "running" ? "boot" : "terminate"}; last state ${now ?? "unknown"})`);
      await sleep(this.pollMs, undefined, { signal });
    }
  }

  private deleteGroup(id: string): Promise<void> {
    // The group stays attached until the instance is fully terminated.
    return this.deleteWhenFree(() => this.ec2.send(new DeleteSecurityGroupCommand({ GroupId: id })), "InvalidGroup.NotFound", "DependencyViolation");
  }

  /** Deletes something that cannot go while an instance still holds it: retried on `busy`, done on `gone`. */
  private async deleteWhenFree(del: () => Promise<unknown>, gone: string, busy: string): Promise<void> {
    const deadline = Date.now() + this.bootTimeoutMs;
    for (;;) {
      try {
        await del();
        return;
      } catch (e) {
        const code = errorCode(e);
        if (code === gone) return;
        if (code !== busy || Date.now() > deadline) throw e;
        await sleep(this.pollMs);
      }
    }
  }


  async release(host: Host, opts: { quick?: boolean } = {}): Promise<void> {
    const ids = this.instanceIds(host);
    try {
      await this.ec2.send(new TerminateInstancesCommand({ InstanceIds: ids }));
    } catch (e) {
      if (errorCode(e) !== "InvalidInstanceID.NotFound") throw e;
      // One unknown id fails the whole call (right after launch an id may not be visible yet): one by one, and a
      // missing one again after a pause, so no node is left running because of another.
      for (const id of ids) {
        await this.ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] })).catch(async (err: unknown) => {
          if (errorCode(err) !== "InvalidInstanceID.NotFound") throw err;
          await sleep(this.pollMs);
          await this.ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] })).catch((again: unknown) => {
            if (errorCode(again) !== "InvalidInstanceID.NotFound") throw again;
          });
        });
      }
    }
    if (opts.quick) return;
    for (const id of ids) {
      await this.waitFor(id, "terminated").catch((e: unknown) => {
        if (errorCode(e) !== "InvalidInstanceID.NotFound") throw e;
      });
    }
    // Both groups are tried even if one fails: each leftover counts against a per-region limit.
    const deletes = await Promise.allSettled([
      host.resources.securityGroup ? this.deleteGroup(host.resources.securityGroup) : Promise.resolve(),
      host.resources.placementGroup ? this.deletePlacementGroup(host.resources.placementGroup) : Promise.resolve(),
    ]);
    const failed = deletes.find((d): d is PromiseRejectedResult => d.status === "rejected");
    if (failed) throw failed.reason;
  }

  /** The worst state among the host's nodes: one lost node is a lost host. */
  async status(host: Host): Promise<HostStatus> {
    const rank = { terminated: 0, stopping: 1, unknown: 2, pending: 3, running: 4 } as const;
    let worst: HostStatus | undefined;
    for (const id of this.instanceIds(host)) {
      const i = await this.describe(id).catch(() => undefined);
      const s = i?.State?.Name;
      const state = s === "pending" || s === "running" || s === "terminated" ? s : s === "shutting-down" || s === "stopping" || s === "stopped" ? "stopping" : "unknown";
      if (!worst || rank[state] < rank[worst.state]) worst = { state, reason: i?.StateReason?.Code };
    }
    return worst!;
  }
}
