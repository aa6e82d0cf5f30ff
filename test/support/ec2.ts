// An EC2 stand-in at the wire level: an HTTP server speaking the EC2 Query API (form-encoded POST, XML answers in
// the real shapes, real error codes and HTTP statuses) for exactly the actions a spot-GPU provider calls, so
// @aws-sdk/client-ec2 runs unmodified against it with `endpoint`. Instances "boot" as a private sshd each
// (startSshHost, own 127.0.10.<n> address) with the SSH keys found in their user-data authorized, print their host
// key fingerprints on the console like cloud-init, and die (sshd killed by PID) when terminated or interrupted.
// A separate IMDSv2 stand-in serves each instance under /i/<instance-id>/latest/... (spot/instance-action notice).
// Fault hooks: capacity errors per type/AZ/market, throttling, dropped responses, spot interruption,
// instance-initiated shutdown. A ledger of every instance and security group backs "zero orphans" assertions.
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { appendFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { join } from "node:path";
import { startSshHost, type SshHost } from "./sshd.js";
import { listen, readBody } from "./http.js";

export const EC2_XMLNS = "http://ec2.amazonaws.com/doc/2016-11-15/";
export const EC2_API_VERSION = "2016-11-15";

export type InstanceStateName = "pending" | "running" | "shutting-down" | "terminated" | "stopping" | "stopped";
export type Market = "spot" | "on-demand";

const STATE_CODES: Record<InstanceStateName, number> = {
  pending: 0,
  running: 16,
  "shutting-down": 32,
  terminated: 48,
  stopping: 64,
  stopped: 80,
};

export type CapacityCode =
  | "InsufficientInstanceCapacity"
  | "SpotMaxPriceTooLow"
  | "MaxSpotInstanceCountExceeded"
  | "Unsupported"
  | "InsufficientCapacity"
  | "VcpuLimitExceeded"
  | "InstanceLimitExceeded";

export interface CapacityFault {
  /** Only launches of this type fail; default any. */
  instanceType?: string;
  /** Only launches placed in this AZ fail; default any. */
  az?: string;
  /** Only launches in this market fail; default any. */
  market?: Market;
  code: CapacityCode;
  /** How many matching launches fail; default: every one until clearFaults(). */
  times?: number;
}

export interface TypePrice {
  /** USD/hour; one price for every AZ or one per AZ (AZs missing from the map use the first value). */
  spot: number | Record<string, number>;
  onDemand: number;
}

export interface Ec2Image {
  imageId: string;
  name: string;
  ownerId: string;
  /** "amazon" for AWS-owned images; matched by Owner=amazon. */
  ownerAlias?: string;
  /** ISO 8601 as EC2 prints it, e.g. "2024-08-15T09:12:44.000Z"; the newest is picked by sorting on it. */
  creationDate: string;
  architecture: "x86_64" | "arm64";
  state: "available" | "pending" | "failed" | "deregistered";
  description?: string;
  rootDeviceName?: string;
}

export interface Ec2Subnet {
  subnetId: string;
  vpcId: string;
  az: string;
  cidr: string;
  defaultForAz: boolean;
}

export interface IngressRule {
  /** A source security group instead of a CIDR (UserIdGroupPairs, e.g. the group itself for node-to-node traffic). */
  sourceGroupId?: string;
  ipProtocol: string;
  fromPort?: number;
  toPort?: number;
  cidrIp?: string;
  description?: string;
  ruleId: string;
}

export interface Ec2SecurityGroup {
  groupId: string;
  groupName: string;
  description: string;
  vpcId: string;
  tags: Record<string, string>;
  ingress: IngressRule[];
  createdAt: Date;
  deletedAt?: Date;
  /** The default VPC's "default" group: never counted as an orphan, cannot be deleted. */
  isDefault: boolean;
}

export interface EbsRequest {
  volumeSize?: number;
  volumeType?: string;
  encrypted?: boolean;
  deleteOnTermination?: boolean;
  iops?: number;
  throughput?: number;
  kmsKeyId?: string;
  snapshotId?: string;
}

/** A RunInstances request as parsed from the form, recorded whether it succeeded or not. */
export interface LaunchRequest {
  at: Date;
  /** Placement.GroupName: a placement group the instances must land in. */
  placementGroup?: string;
  imageId?: string;
  instanceType?: string;
  minCount?: number;
  maxCount?: number;
  /** Present only if the caller sent one (ftune should not: it authorizes a per-run key through user-data). */
  keyName?: string;
  userDataBase64?: string;
  /** Decoded user-data text. */
  userData?: string;
  subnetId?: string;
  availabilityZone?: string;
  securityGroupIds: string[];
  market: Market;
  spotOptions?: { maxPrice?: string; spotInstanceType?: string; instanceInterruptionBehavior?: string };
  metadataOptions: { httpTokens?: string; httpEndpoint?: string; httpPutResponseHopLimit?: number; instanceMetadataTags?: string };
  blockDeviceMappings: { deviceName?: string; ebs?: EbsRequest }[];
  instanceInitiatedShutdownBehavior?: string;
  iamInstanceProfile?: { arn?: string; name?: string };
  /** Tags per resource type, e.g. {instance: {...}, volume: {...}}. */
  tagSpecifications: Record<string, Record<string, string>>;
  clientToken?: string;
  dryRun: boolean;
  /** The launched instance ids, or the error code the launch was answered with. */
  instanceIds?: string[];
  error?: string;
}

export interface StateReason {
  code: string;
  message: string;
}

export interface Ec2Instance {
  id: string;
  placementGroup?: string;
  reservationId: string;
  type: string;
  az: string;
  subnetId: string;
  vpcId: string;
  market: Market;
  imageId: string;
  state: InstanceStateName;
  stateReason?: StateReason;
  /** EC2's free-text StateTransitionReason, e.g. "User initiated (2024-06-01 10:00:00 GMT)". */
  stateTransitionReason: string;
  tags: Record<string, string>;
  securityGroupIds: string[];
  launchedAt: Date;
  terminatedAt?: Date;
  launch: LaunchRequest;
  /** Decoded user-data (cloud-init would run it). */
  userData: string;
  /** Best effort: N from `shutdown -h +N` or `systemd-run --on-active=Nm` in the user-data. */
  ttlMinutes?: number;
  /** Spot price (spot) or on-demand price at launch, USD/hour. */
  hourlyPrice: number;
  spotInstanceRequestId?: string;
  clientToken?: string;
  /** 127.0.10.<n>, known from launch on (the sshd binds it once running). */
  privateIpAddress: string;
  /** Same address, set once running (as a public IP shows up on EC2). */
  publicIpAddress?: string;
  /** The sshd's port (real EC2: 22); set once running. */
  sshPort?: number;
  sshUser?: string;
  /** "ssh-ed25519 AAAA..." of the instance's sshd; set once running. */
  hostKey?: string;
  /** "SHA256:..." of hostKey. */
  hostKeyFingerprint?: string;
  /** PID of the instance's sshd; kept after it was killed, for assertions. */
  sshPid?: number;
  /** The live sshd (undefined before boot and after it was killed). */
  ssh?: SshHost;
  /** Public keys found in the user-data and appended to the sshd's authorized_keys. */
  authorizedKeys: string[];
  /** Serial console text, with cloud-init's host key blocks once booted. */
  consoleOutput: string;
  /** The spot/instance-action notice IMDS serves once interrupt() was called. */
  instanceAction?: { action: "terminate" | "stop" | "hibernate"; time: string };
  metadataOptions: { httpTokens: string; httpEndpoint: string; httpPutResponseHopLimit: number };
  instanceInitiatedShutdownBehavior: "stop" | "terminate";
  /** One EBS volume id per block device mapping. */
  volumeIds: string[];
  /** Why the sshd could not start (the instance then ends terminated with Server.InternalError). */
  bootError?: string;
}

export interface LedgerEntry {
  id: string;
  type: string;
  az: string;
  market: Market;
  state: InstanceStateName;
  tags: Record<string, string>;
  launchedAt: Date;
  terminatedAt?: Date;
  stateReason?: string;
  hourlyPrice: number;
  securityGroupIds: string[];
}

export interface Ec2PlacementGroup {
  groupName: string;
  groupId: string;
  strategy: string;
  tags: Record<string, string>;
  createdAt: Date;
  deletedAt?: Date;
}

export interface Orphans {
  /** Every placement group not deleted. */
  placementGroups: Ec2PlacementGroup[];
  /** Every instance not terminated (pending, running, shutting-down, stopping, stopped). */
  instances: LedgerEntry[];
  /** Every non-default security group not deleted. */
  securityGroups: Ec2SecurityGroup[];
}

export interface Ec2Request {
  action: string;
  /** The form as sent, flat: {"Filter.1.Name": "tag:x", ...}. */
  params: Record<string, string>;
  status: number;
  code?: string;
  /** The action ran but its response was dropped (dropResponse). */
  dropped?: boolean;
  at: Date;
}

export interface ImdsRequest {
  method: string;
  path: string;
  instanceId?: string;
  tokenOk: boolean;
  status: number;
}

export interface Ec2StandInOptions {
  /** Region of the signing scope the stand-in accepts and the AZ names derive from. Default us-east-1. */
  region?: string;
  /** AZ suffixes; default ["a", "b", "c"]: one default subnet each in the default VPC. */
  azs?: string[];
  accountId?: string;
  /** pending -> running after this long (then the sshd starts). Default 300. */
  bootDelayMs?: number;
  /** shutting-down -> terminated after at least this long (and once the sshd is dead). Default 200. */
  terminateDelayMs?: number;
  /** Merged over the defaults (g5.xlarge, g6.xlarge, g5.2xlarge, g4dn.xlarge, t3.micro). */
  prices?: Record<string, TypePrice>;
  /** Replace the default images (Deep Learning Base OSS Nvidia GPU AMIs, Ubuntu). */
  images?: Ec2Image[];
  /** Login user of the instances' sshd; default the user running the tests (see startSshHost). */
  sshUser?: string;
  /** Bind every instance's sshd to this port on its own address (22 works as root); default a free port. */
  sshPort?: number;
}

export interface Ec2StandIn {
  /** EC2Client `endpoint`. */
  url: string;
  /** Base of the IMDS stand-in; instances live under imdsUrlFor(id). */
  imdsUrl: string;
  /** `${imdsUrl}/i/<id>`: what the box-side agent uses instead of http://169.254.169.254. */
  imdsUrlFor(instanceId: string): string;
  region: string;
  accountId: string;
  /** Live instance records by id (never removed; terminated ones stay). */
  instances: Record<string, Ec2Instance>;
  securityGroups: Record<string, Ec2SecurityGroup>;
  subnets: Ec2Subnet[];
  images: Ec2Image[];
  prices: Record<string, TypePrice>;
  /** Every RunInstances request, parsed. */
  launches: LaunchRequest[];
  requests: Ec2Request[];
  imdsRequests: ImdsRequest[];
  ledger(): LedgerEntry[];
  orphans(): Orphans;
  failCapacity(fault: CapacityFault): void;
  clearFaults(): void;
  /** The next n requests (any action) answer 503 RequestLimitExceeded. */
  throttle(n: number): void;
  /** The next `times` requests of this action run, but their connection is cut before the answer (a lost response). */
  dropResponse(action: string, times?: number): void;
  setSpotPrice(instanceType: string, price: number, az?: string): void;
  spotPrice(instanceType: string, az: string): number | undefined;
  /** Spot interruption: IMDS serves the notice at once; after noticeMs (default 2000) the instance shuts down with
   * Server.SpotInstanceTermination. */
  interrupt(instanceId: string, opts?: { noticeMs?: number }): void;
  /** `shutdown -h now` inside the box (e.g. its TTL fired): terminates or stops per InstanceInitiatedShutdownBehavior. */
  shutdownFromInside(instanceId: string): void;
  /** Resolves once the instance reaches the state (polling the record, not the API). */
  waitForState(instanceId: string, state: InstanceStateName, timeoutMs?: number): Promise<Ec2Instance>;
  /** Kills every sshd, closes both servers. */
  stop(): Promise<void>;
}

export const DEFAULT_PRICES: Record<string, TypePrice> = {
  "g5.xlarge": { spot: { a: 0.4523, b: 0.4301, c: 0.4788 }, onDemand: 1.006 },
  "g6.xlarge": { spot: 0.3711, onDemand: 0.8048 },
  "g5.2xlarge": { spot: 0.5312, onDemand: 1.212 },
  "g4dn.xlarge": { spot: 0.2155, onDemand: 0.526 },
  "t3.micro": { spot: 0.0035, onDemand: 0.0104 },
};

const DLAMI = "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04)";
export const DEFAULT_IMAGES: Ec2Image[] = [
  { imageId: "ami-0a1b2c3d4e5f60001", name: `${DLAMI} 20240610`, ownerId: "898082745236", ownerAlias: "amazon", creationDate: "2024-06-11T08:15:10.000Z", architecture: "x86_64", state: "available" },
  { imageId: "ami-0a1b2c3d4e5f60002", name: `${DLAMI} 20240815`, ownerId: "898082745236", ownerAlias: "amazon", creationDate: "2024-08-16T07:41:52.000Z", architecture: "x86_64", state: "available" },
  // Newer, but arm64 and still pending: a correct "newest available x86_64" query skips both.
  { imageId: "ami-0a1b2c3d4e5f60003", name: `${DLAMI} 20240901`, ownerId: "898082745236", ownerAlias: "amazon", creationDate: "2024-09-02T06:03:11.000Z", architecture: "arm64", state: "available" },
  { imageId: "ami-0a1b2c3d4e5f60004", name: `${DLAMI} 20241001`, ownerId: "898082745236", ownerAlias: "amazon", creationDate: "2024-10-02T05:00:00.000Z", architecture: "x86_64", state: "pending" },
  { imageId: "ami-0c7217cdde317cfec", name: "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20240701", ownerId: "099720109477", creationDate: "2024-07-01T12:00:00.000Z", architecture: "x86_64", state: "available" },
];

/** A thrown EC2 API error; the handler turns it into the XML error body. */
class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------- XML

function esc(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&apos;" })[c] as string);
}

type XmlValue = string | number | boolean | Date | undefined | null | XmlValue[] | { xml: string };

/** One element; undefined/null omits it, an array concatenates children, {xml} is pre-built markup. */
function el(name: string, v: XmlValue): string {
  if (v === undefined || v === null) return "";
  return `<${name}>${inner(v)}</${name}>`;
}

function inner(v: XmlValue): string {
  if (v === undefined || v === null) return "";
  if (Array.isArray(v)) return v.map(inner).join("");
  if (v instanceof Date) return v.toISOString();
  if (typeof v === "object") return v.xml;
  return esc(String(v));
}

function raw(xml: string): { xml: string } {
  return { xml };
}

/** A Query-API list: <name><item>..</item>...</name>; omitted when empty unless keepEmpty. */
function set(name: string, items: string[], keepEmpty = false): string {
  if (items.length === 0) return keepEmpty ? `<${name}/>` : "";
  return `<${name}>${items.map((i) => `<item>${i}</item>`).join("")}</${name}>`;
}

function tagSet(tags: Record<string, string>): string {
  return set(
    "tagSet",
    Object.entries(tags).map(([k, v]) => el("key", k) + el("value", v)),
  );
}

function response(action: string, requestId: string, body: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${EC2_XMLNS}"><requestId>${requestId}</requestId>${body}</${action}Response>`;
}

function errorBody(code: string, message: string, requestId: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${esc(code)}</Code><Message>${esc(message)}</Message></Error></Errors><RequestID>${requestId}</RequestID></Response>`;
}

// ---------------------------------------------------------------- form parameters

class Form {
  constructor(readonly raw: Record<string, string>) {}

  get(key: string): string | undefined {
    return this.raw[key];
  }

  /** Sorted N of every `${prefix}.N` / `${prefix}.N.*` key. */
  indices(prefix: string): number[] {
    const out = new Set<number>();
    const p = `${prefix}.`;
    for (const k of Object.keys(this.raw)) {
      if (!k.startsWith(p)) continue;
      const n = Number(k.slice(p.length).split(".")[0]);
      if (Number.isInteger(n) && n > 0) out.add(n);
    }
    return [...out].sort((a, b) => a - b);
  }

  /** Values of `${prefix}.N`. */
  strings(prefix: string): string[] {
    return this.indices(prefix)
      .map((n) => this.raw[`${prefix}.${n}`])
      .filter((v): v is string => v !== undefined);
  }

  int(key: string): number | undefined {
    const v = this.raw[key];
    if (v === undefined) return undefined;
    if (!/^-?\d+$/.test(v)) throw new ApiError("InvalidParameterValue", `Value (${v}) for parameter ${key} is invalid. Expected an integer.`);
    return Number(v);
  }

  bool(key: string): boolean | undefined {
    const v = this.raw[key];
    if (v === undefined) return undefined;
    if (v !== "true" && v !== "false") throw new ApiError("InvalidParameterValue", `Value (${v}) for parameter ${key} is invalid. Expected a boolean.`);
    return v === "true";
  }

  required(key: string): string {
    const v = this.raw[key];
    if (v === undefined || v === "") throw new ApiError("MissingParameter", `The request must contain the parameter ${key}`);
    return v;
  }

  filters(): { name: string; values: string[] }[] {
    return this.indices("Filter").map((n) => ({
      name: this.raw[`Filter.${n}.Name`] ?? "",
      values: this.strings(`Filter.${n}.Value`),
    }));
  }

  /** TagSpecification.N.{ResourceType, Tag.M.Key/Value} -> {resourceType: tags}. */
  tagSpecifications(): Record<string, Record<string, string>> {
    const out: Record<string, Record<string, string>> = {};
    for (const n of this.indices("TagSpecification")) {
      const type = this.raw[`TagSpecification.${n}.ResourceType`] ?? "";
      out[type] = { ...out[type], ...this.tags(`TagSpecification.${n}.Tag`) };
    }
    return out;
  }

  tags(prefix: string): Record<string, string> {
    const out: Record<string, string> = {};
    for (const n of this.indices(prefix)) {
      const key = this.raw[`${prefix}.${n}.Key`];
      if (key === undefined) continue;
      if (key.toLowerCase().startsWith("aws:")) throw new ApiError("InvalidParameterValue", `Tag keys starting with 'aws:' are reserved for internal use`);
      out[key] = this.raw[`${prefix}.${n}.Value`] ?? "";
    }
    return out;
  }
}

// ---------------------------------------------------------------- helpers

function hex(n: number): string {
  return randomBytes(Math.ceil(n / 2)).toString("hex").slice(0, n);
}

function glob(pattern: string): RegExp {
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${re}$`, "s");
}

function matchesAny(value: string | undefined, patterns: string[]): boolean {
  return value !== undefined && patterns.some((p) => glob(p).test(value));
}

function tagFilter(name: string, values: string[], tags: Record<string, string>): boolean | undefined {
  if (name.startsWith("tag:")) return matchesAny(tags[name.slice(4)], values);
  if (name === "tag-key") return Object.keys(tags).some((k) => matchesAny(k, values));
  if (name === "tag-value") return Object.values(tags).some((v) => matchesAny(v, values));
  return undefined;
}

function invalidFilter(name: string): ApiError {
  return new ApiError("InvalidParameterValue", `The filter '${name}' is invalid`);
}

function gmt(d: Date): string {
  return `${d.toISOString().replace("T", " ").replace(/\.\d{3}Z$/, "")} GMT`;
}

function isoSeconds(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, "Z");
}

function fingerprint(openSshPublic: string): string {
  const blob = Buffer.from(openSshPublic.trim().split(/\s+/)[1] ?? "", "base64");
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

const PUBLIC_KEY_RE = /\b(?:ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)) AAAA[A-Za-z0-9+/]+=*/g;

export function parseTtlMinutes(userData: string): number | undefined {
  const sd = /\bshutdown\s+(?:-[hHP]\s+|--poweroff\s+|--halt\s+)*\+(\d+)\b/.exec(userData);
  if (sd) return Number(sd[1]);
  const sr = /--on-active[= ](\d+)(m|min|h|s)?\b/.exec(userData);
  if (!sr) return undefined;
  const n = Number(sr[1]);
  return sr[2] === "h" ? n * 60 : sr[2] === "s" || sr[2] === undefined ? n / 60 : n;
}

function cloudInitConsole(inst: Ec2Instance, hostKey: string): string {
  const host = `ip-${inst.privateIpAddress.replace(/\./g, "-")}`;
  const when = new Date();
  return [
    `[    0.000000] Linux version 6.5.0-1022-aws (buildd@lcy02-amd64-060) #22~22.04.1-Ubuntu SMP`,
    `[    4.211873] cloud-init[512]: Cloud-init v. 24.1.3-0ubuntu1~22.04.1 running 'init' at ${when.toUTCString()}.`,
    `ec2: `,
    `ec2: #############################################################`,
    `ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----`,
    `ec2: 256 ${fingerprint(hostKey)} root@${host} (ED25519)`,
    `ec2: -----END SSH HOST KEY FINGERPRINTS-----`,
    `ec2: #############################################################`,
    `-----BEGIN SSH HOST KEY KEYS-----`,
    `${hostKey.trim()} root@${host}`,
    `-----END SSH HOST KEY KEYS-----`,
    `[   12.402111] cloud-init[901]: Cloud-init v. 24.1.3-0ubuntu1~22.04.1 finished at ${when.toUTCString()}. Datasource DataSourceEc2Local.  Up 12.39 seconds`,
    "",
  ].join("\n");
}



function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

let nextAddress = 0;
// Spread across parallel test processes like sshd.ts does, with another stride so the two rarely meet (a shared
// address is harmless anyway: every sshd has its own port).
const addressOffset = (process.pid * 53 + 101) % 254;

function allocateIndex(): number {
  return 1 + ((addressOffset + nextAddress++) % 254);
}

// ---------------------------------------------------------------- the stand-in

interface Internal {
  bootTimer?: NodeJS.Timeout;
  booting?: Promise<void>;
  interruptTimer?: NodeJS.Timeout;
  index: number;
}

export async function startEc2StandIn(opts: Ec2StandInOptions = {}): Promise<Ec2StandIn> {
  const region = opts.region ?? "us-east-1";
  const accountId = opts.accountId ?? "123456789012";
  const bootDelayMs = opts.bootDelayMs ?? 300;
  const terminateDelayMs = opts.terminateDelayMs ?? 200;
  const azSuffixes = opts.azs ?? ["a", "b", "c"];
  const azs = azSuffixes.map((s) => `${region}${s}`);

  const prices: Record<string, TypePrice> = structuredClone({ ...DEFAULT_PRICES, ...opts.prices });
  const images: Ec2Image[] = structuredClone(opts.images ?? DEFAULT_IMAGES);
  const vpcId = `vpc-0${hex(16)}`;
  const subnets: Ec2Subnet[] = azs.map((az, i) => ({
    subnetId: `subnet-0${hex(16)}`,
    vpcId,
    az,
    cidr: `172.31.${i * 16}.0/20`,
    defaultForAz: true,
  }));
  const instances: Record<string, Ec2Instance> = {};
  const internal = new Map<string, Internal>();
  const reservations = new Map<string, { id: string; instanceIds: string[] }>();
  const securityGroups: Record<string, Ec2SecurityGroup> = {};
  const placementGroups: Record<string, Ec2PlacementGroup> = {};
  const defaultGroupId = `sg-0${hex(16)}`;
  securityGroups[defaultGroupId] = {
    groupId: defaultGroupId,
    groupName: "default",
    description: "default VPC security group",
    vpcId,
    tags: {},
    ingress: [],
    createdAt: new Date(),
    isDefault: true,
  };
  const launches: LaunchRequest[] = [];
  const requests: Ec2Request[] = [];
  const imdsRequests: ImdsRequest[] = [];
  const faults: CapacityFault[] = [];
  const drops = new Map<string, number>();
  const tokens = new Map<string, { instanceId: string; expires: number }>();
  const clientTokens = new Map<string, string>();
  const timers = new Set<NodeJS.Timeout>();
  // sshd kills in flight (a termination started them); stop() waits for them so teardown finds no live process.
  const kills = new Set<Promise<void>>();
  let throttleLeft = 0;
  let closed = false;

  function later(ms: number, fn: () => void): NodeJS.Timeout {
    const t = setTimeout(() => {
      timers.delete(t);
      if (!closed) fn();
    }, ms);
    timers.add(t);
    return t;
  }

  function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        timers.delete(t);
        resolve();
      }, ms);
      timers.add(t);
    });
  }

  function cancel(t: NodeJS.Timeout | undefined): void {
    if (t === undefined) return;
    clearTimeout(t);
    timers.delete(t);
  }

  function spotPrice(type: string, az: string): number | undefined {
    const p = prices[type]?.spot;
    if (p === undefined) return undefined;
    if (typeof p === "number") return p;
    const suffix = az.slice(region.length);
    return p[az] ?? p[suffix] ?? Object.values(p)[0];
  }

  function instanceOf(id: string): Ec2Instance {
    if (!/^i-[0-9a-f]{8}(?:[0-9a-f]{9})?$/.test(id)) throw new ApiError("InvalidInstanceID.Malformed", `Invalid id: "${id}"`);
    const inst = instances[id];
    if (!inst) throw new ApiError("InvalidInstanceID.NotFound", `The instance ID '${id}' does not exist`);
    return inst;
  }

  function groupOf(id: string): Ec2SecurityGroup {
    if (!/^sg-[0-9a-f]{8}(?:[0-9a-f]{9})?$/.test(id)) throw new ApiError("InvalidGroupId.Malformed", `Invalid id: "${id}" (expecting "sg-...")`);
    const g = securityGroups[id];
    if (!g || g.deletedAt) throw new ApiError("InvalidGroup.NotFound", `The security group '${id}' does not exist`);
    return g;
  }

  // ---------------------------------------------------------------- lifecycle

  async function boot(inst: Ec2Instance): Promise<void> {
    const host = await startSshHost({ index: internal.get(inst.id)?.index, user: opts.sshUser, port: opts.sshPort });
    // What cloud-init does with the user-data's keys (ftune's script appends to ~/.ssh/authorized_keys).
    const keys = [...inst.userData.matchAll(PUBLIC_KEY_RE)].map((m) => m[0]);
    if (keys.length > 0) await appendFile(join(host.dir, "authorized_keys"), keys.map((k) => `${k}\n`).join(""));
    inst.ssh = host;
    inst.sshPid = host.pid;
    inst.sshPort = host.port;
    inst.sshUser = host.user;
    inst.hostKey = host.hostPublicKey;
    inst.hostKeyFingerprint = host.hostKeyFingerprint;
    inst.authorizedKeys = keys;
    if (closed || inst.state !== "pending") return; // stop() or a termination meanwhile: they stop the host
    inst.publicIpAddress = host.host;
    inst.consoleOutput = cloudInitConsole(inst, host.hostPublicKey);
    inst.state = "running";
  }

  function startBoot(inst: Ec2Instance): void {
    const int = internal.get(inst.id) as Internal;
    int.bootTimer = later(bootDelayMs, () => {
      int.bootTimer = undefined;
      int.booting = boot(inst).catch((e: unknown) => {
        inst.bootError = (e as Error).message;
        if (inst.state !== "pending") return;
        inst.state = "terminated";
        inst.terminatedAt = new Date();
        inst.stateReason = { code: "Server.InternalError", message: "Server.InternalError: Internal error on launch" };
        inst.stateTransitionReason = `Server.InternalError (${gmt(new Date())})`;
      });
    });
  }

  /** Starts shutting-down (or stopping); the sshd dies, then the final state is reached. */
  function shutDown(inst: Ec2Instance, to: "terminated" | "stopped", reason: StateReason, transition: string): void {
    if (inst.state === "terminated" || inst.state === "shutting-down") return;
    if (to === "stopped" && (inst.state === "stopping" || inst.state === "stopped")) return;
    const int = internal.get(inst.id) as Internal;
    cancel(int.bootTimer);
    int.bootTimer = undefined;
    cancel(int.interruptTimer);
    int.interruptTimer = undefined;
    inst.state = to === "terminated" ? "shutting-down" : "stopping";
    inst.stateReason = reason;
    inst.stateTransitionReason = transition;
    const kill = (async () => {
      await int.booting;
      const host = inst.ssh;
      inst.ssh = undefined;
      await host?.stop();
    })().catch(() => undefined); // stop() and teardownAll's process check catch an sshd that outlived this
    kills.add(kill);
    void kill.finally(() => kills.delete(kill));
    void Promise.all([kill, sleep(terminateDelayMs)]).then(() => {
      if (closed) return;
      inst.state = to;
      if (to === "terminated") inst.terminatedAt = new Date();
      if (to === "stopped") inst.publicIpAddress = undefined;
    });
  }

  function terminate(inst: Ec2Instance): void {
    shutDown(inst, "terminated", { code: "Client.UserInitiatedShutdown", message: "Client.UserInitiatedShutdown: User initiated shutdown" }, `User initiated (${gmt(new Date())})`);
  }

  // ---------------------------------------------------------------- capacity

  function faultFor(type: string, az: string, market: Market): CapacityFault | undefined {
    return faults.find(
      (f) => (f.instanceType === undefined || f.instanceType === type) && (f.az === undefined || f.az === az) && (f.market === undefined || f.market === market) && (f.times === undefined || f.times > 0),
    );
  }

  function capacityError(f: CapacityFault, type: string, az: string, maxPrice?: string): ApiError {
    if (f.times !== undefined) f.times--;
    const others = azs.filter((a) => a !== az).join(", ");
    switch (f.code) {
      case "InsufficientInstanceCapacity":
        return new ApiError(
          f.code,
          `We currently do not have sufficient ${type} capacity in the Availability Zone you requested (${az}). Our system will be working on provisioning additional capacity. You can currently get ${type} capacity by not specifying an Availability Zone in your request or choosing ${others}.`,
        );
      case "SpotMaxPriceTooLow":
        return new ApiError(f.code, `Your Spot request price of ${maxPrice ?? "0"} is lower than the minimum required Spot request fulfillment price of ${spotPrice(type, az) ?? 0}.`);
      case "MaxSpotInstanceCountExceeded":
        return new ApiError(f.code, "Max spot instance count exceeded");
      case "Unsupported":
        return new ApiError(
          f.code,
          `Your requested instance type (${type}) is not supported in your requested Availability Zone (${az}). Please retry your request by not specifying an Availability Zone or choosing ${others}.`,
        );
      case "InsufficientCapacity":
        return new ApiError(f.code, "There is no Spot capacity available that matches your request.");
      case "VcpuLimitExceeded":
        return new ApiError(f.code, "You have requested more vCPU capacity than your current vCPU limit of 0 allows for the instance bucket that the specified instance type belongs to. Please visit http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit.");
      case "InstanceLimitExceeded":
        return new ApiError(f.code, `You have requested more instances (1) than your current instance limit of 0 allows for the specified instance type. Please visit http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit.`);
    }
  }

  // ---------------------------------------------------------------- XML of records

  function instanceXml(i: Ec2Instance): string {
    const bdm = i.launch.blockDeviceMappings.map(
      (b, k) =>
        el("deviceName", b.deviceName ?? "/dev/sda1") +
        el("ebs", [raw(el("volumeId", i.volumeIds[k])), raw(el("status", i.state === "terminated" ? "detached" : "attached")), raw(el("attachTime", i.launchedAt)), raw(el("deleteOnTermination", b.ebs?.deleteOnTermination ?? true))]),
    );
    return [
      el("instanceId", i.id),
      el("imageId", i.imageId),
      el("instanceState", [raw(el("code", STATE_CODES[i.state])), raw(el("name", i.state))]),
      el("privateDnsName", i.state === "terminated" ? "" : `ip-${i.privateIpAddress.replace(/\./g, "-")}.ec2.internal`),
      el("dnsName", ""),
      el("reason", i.stateTransitionReason),
      el("amiLaunchIndex", 0),
      el("instanceType", i.type),
      el("launchTime", i.launchedAt),
      el("placement", [raw(el("availabilityZone", i.az)), raw(el("groupName", i.placementGroup ?? "")), raw(el("tenancy", "default"))]),
      el("monitoring", [raw(el("state", "disabled"))]),
      i.state === "terminated" ? "" : el("subnetId", i.subnetId),
      i.state === "terminated" ? "" : el("vpcId", i.vpcId),
      i.state === "terminated" ? "" : el("privateIpAddress", i.privateIpAddress),
      el("ipAddress", i.state === "running" || i.state === "stopping" ? i.publicIpAddress : undefined),
      el("sourceDestCheck", true),
      set("groupSet", i.state === "terminated" ? [] : i.securityGroupIds.map((g) => el("groupId", g) + el("groupName", securityGroups[g]?.groupName ?? ""))),
      i.stateReason ? el("stateReason", [raw(el("code", i.stateReason.code)), raw(el("message", i.stateReason.message))]) : "",
      el("architecture", images.find((im) => im.imageId === i.imageId)?.architecture ?? "x86_64"),
      el("rootDeviceType", "ebs"),
      el("rootDeviceName", i.launch.blockDeviceMappings[0]?.deviceName ?? "/dev/sda1"),
      set("blockDeviceMapping", i.state === "terminated" ? [] : bdm),
      i.market === "spot" ? el("instanceLifecycle", "spot") : "",
      el("spotInstanceRequestId", i.spotInstanceRequestId),
      el("virtualizationType", "hvm"),
      el("clientToken", i.clientToken ?? ""),
      tagSet(i.tags),
      el("hypervisor", "xen"),
      el("ebsOptimized", true),
      el("enaSupport", true),
      el("metadataOptions", [
        raw(el("state", "applied")),
        raw(el("httpTokens", i.metadataOptions.httpTokens)),
        raw(el("httpPutResponseHopLimit", i.metadataOptions.httpPutResponseHopLimit)),
        raw(el("httpEndpoint", i.metadataOptions.httpEndpoint)),
        raw(el("httpProtocolIpv6", "disabled")),
        raw(el("instanceMetadataTags", "disabled")),
      ]),
      el("bootMode", "uefi-preferred"),
      el("currentInstanceBootMode", "legacy-bios"),
    ].join("");
  }

  function reservationXml(reservationId: string, insts: Ec2Instance[]): string {
    return [
      el("reservationId", reservationId),
      el("ownerId", accountId),
      set("groupSet", [], true),
      set("instancesSet", insts.map(instanceXml), true),
    ].join("");
  }

  function groupXml(g: Ec2SecurityGroup): string {
    const perms = g.ingress.map(
      (r) =>
        el("ipProtocol", r.ipProtocol) +
        el("fromPort", r.fromPort) +
        el("toPort", r.toPort) +
        set("groups", [], true) +
        set("ipRanges", r.cidrIp ? [el("cidrIp", r.cidrIp) + el("description", r.description)] : [], true) +
        set("ipv6Ranges", [], true) +
        set("prefixListIds", [], true),
    );
    const egress = el("ipProtocol", "-1") + set("groups", [], true) + set("ipRanges", [el("cidrIp", "0.0.0.0/0")]) + set("ipv6Ranges", [], true) + set("prefixListIds", [], true);
    return [
      el("ownerId", accountId),
      el("groupId", g.groupId),
      el("groupName", g.groupName),
      el("groupDescription", g.description),
      set("ipPermissions", perms, true),
      set("ipPermissionsEgress", [egress]),
      el("vpcId", g.vpcId),
      el("securityGroupArn", `arn:aws:ec2:${region}:${accountId}:security-group/${g.groupId}`),
      tagSet(g.tags),
    ].join("");
  }

  // ---------------------------------------------------------------- actions

  function parseLaunch(f: Form): LaunchRequest {
    const bdms = f.indices("BlockDeviceMapping").map((n) => {
      const p = `BlockDeviceMapping.${n}`;
      const hasEbs = Object.keys(f.raw).some((k) => k.startsWith(`${p}.Ebs.`));
      return {
        deviceName: f.get(`${p}.DeviceName`),
        ebs: hasEbs
          ? {
              volumeSize: f.int(`${p}.Ebs.VolumeSize`),
              volumeType: f.get(`${p}.Ebs.VolumeType`),
              encrypted: f.bool(`${p}.Ebs.Encrypted`),
              deleteOnTermination: f.bool(`${p}.Ebs.DeleteOnTermination`),
              iops: f.int(`${p}.Ebs.Iops`),
              throughput: f.int(`${p}.Ebs.Throughput`),
              kmsKeyId: f.get(`${p}.Ebs.KmsKeyId`),
              snapshotId: f.get(`${p}.Ebs.SnapshotId`),
            }
          : undefined,
      };
    });
    const market: Market = f.get("InstanceMarketOptions.MarketType") === "spot" ? "spot" : "on-demand";
    const spot = "InstanceMarketOptions.SpotOptions";
    const userDataBase64 = f.get("UserData");
    let userData: string | undefined;
    if (userDataBase64 !== undefined) {
      if (!/^[A-Za-z0-9+/\r\n]*={0,2}$/.test(userDataBase64) || userDataBase64.replace(/[\r\n]/g, "").length % 4 !== 0) {
        throw new ApiError("InvalidParameterValue", "Invalid BASE64 encoding of user data.");
      }
      const bytes = Buffer.from(userDataBase64, "base64");
      if (bytes.length > 16_384) throw new ApiError("InvalidParameterValue", "User data is limited to 16384 bytes");
      userData = bytes.toString("utf8");
    }
    return {
      at: new Date(),
      imageId: f.get("ImageId"),
      instanceType: f.get("InstanceType"),
      minCount: f.int("MinCount"),
      maxCount: f.int("MaxCount"),
      keyName: f.get("KeyName"),
      userDataBase64,
      userData,
      subnetId: f.get("SubnetId"),
      availabilityZone: f.get("Placement.AvailabilityZone"),
      placementGroup: f.get("Placement.GroupName"),
      securityGroupIds: f.strings("SecurityGroupId"),
      market,
      spotOptions:
        market === "spot"
          ? {
              maxPrice: f.get(`${spot}.MaxPrice`),
              spotInstanceType: f.get(`${spot}.SpotInstanceType`),
              instanceInterruptionBehavior: f.get(`${spot}.InstanceInterruptionBehavior`),
            }
          : undefined,
      metadataOptions: {
        httpTokens: f.get("MetadataOptions.HttpTokens"),
        httpEndpoint: f.get("MetadataOptions.HttpEndpoint"),
        httpPutResponseHopLimit: f.int("MetadataOptions.HttpPutResponseHopLimit"),
        instanceMetadataTags: f.get("MetadataOptions.InstanceMetadataTags"),
      },
      blockDeviceMappings: bdms,
      instanceInitiatedShutdownBehavior: f.get("InstanceInitiatedShutdownBehavior"),
      iamInstanceProfile:
        f.get("IamInstanceProfile.Arn") !== undefined || f.get("IamInstanceProfile.Name") !== undefined
          ? { arn: f.get("IamInstanceProfile.Arn"), name: f.get("IamInstanceProfile.Name") }
          : undefined,
      tagSpecifications: f.tagSpecifications(),
      clientToken: f.get("ClientToken"),
      dryRun: f.bool("DryRun") ?? false,
    };
  }

  function runInstances(f: Form, launch: LaunchRequest): string {
    const imageId = f.required("ImageId");
    const type = f.required("InstanceType");
    const minCount = launch.minCount ?? Number(f.required("MinCount"));
    const maxCount = launch.maxCount ?? Number(f.required("MaxCount"));
    if (minCount < 1 || maxCount < minCount) throw new ApiError("InvalidParameterValue", `Invalid value '${minCount}' for minCount. Must be between 1 and maxCount.`);

    if (launch.clientToken !== undefined) {
      const existing = clientTokens.get(launch.clientToken);
      if (existing) {
        const res = reservations.get(existing);
        if (res) {
          launch.instanceIds = [...res.instanceIds];
          return reservationXml(res.id, res.instanceIds.map((id) => instances[id] as Ec2Instance));
        }
      }
    }

    if (!/^ami-[0-9a-f]{8}(?:[0-9a-f]{9})?$/.test(imageId)) throw new ApiError("InvalidAMIID.Malformed", `Invalid id: "${imageId}" (expecting "ami-...")`);
    const image = images.find((i) => i.imageId === imageId);
    if (!image || image.state === "deregistered") throw new ApiError("InvalidAMIID.NotFound", `The image id '[${imageId}]' does not exist`);
    if (image.state !== "available") throw new ApiError("InvalidAMIID.Unavailable", `The image id '[${imageId}]' is not available`);
    const price = prices[type];
    if (!price) throw new ApiError("InvalidParameterValue", `Invalid value '${type}' for InstanceType.`);
    if (launch.keyName !== undefined) throw new ApiError("InvalidKeyPair.NotFound", `The key pair '${launch.keyName}' does not exist`);
    const behaviour = launch.instanceInitiatedShutdownBehavior;
    if (behaviour !== undefined && behaviour !== "stop" && behaviour !== "terminate") {
      throw new ApiError("InvalidParameterValue", `Value (${behaviour}) for parameter instanceInitiatedShutdownBehavior is invalid.`);
    }
    if (launch.metadataOptions.httpTokens !== undefined && !["required", "optional"].includes(launch.metadataOptions.httpTokens)) {
      throw new ApiError("InvalidParameterValue", `Value (${launch.metadataOptions.httpTokens}) for parameter HttpTokens is invalid.`);
    }
    for (const b of launch.blockDeviceMappings) {
      if (b.ebs?.volumeType !== undefined && !["gp2", "gp3", "io1", "io2", "st1", "sc1", "standard"].includes(b.ebs.volumeType)) {
        throw new ApiError("InvalidParameterValue", `Value (${b.ebs.volumeType}) for parameter volumeType is invalid.`);
      }
    }
    for (const t of Object.keys(launch.tagSpecifications)) {
      if (!["instance", "volume", "network-interface", "spot-instances-request"].includes(t)) {
        throw new ApiError("InvalidParameterValue", `'${t}' is not a valid taggable resource type for this operation.`);
      }
    }
    const spotOpts = launch.spotOptions;
    if (spotOpts?.spotInstanceType === "one-time" && spotOpts.instanceInterruptionBehavior !== undefined && spotOpts.instanceInterruptionBehavior !== "terminate") {
      throw new ApiError("InvalidParameterCombination", "One-time Spot Instances can only be configured to terminate on interruption.");
    }

    // Placement: a subnet fixes the AZ; an explicit AZ picks its default subnet; neither lets EC2 choose.
    let subnet: Ec2Subnet | undefined;
    if (launch.subnetId !== undefined) {
      subnet = subnets.find((s) => s.subnetId === launch.subnetId);
      if (!subnet) throw new ApiError("InvalidSubnetID.NotFound", `The subnet ID '${launch.subnetId}' does not exist`);
      if (launch.availabilityZone !== undefined && launch.availabilityZone !== subnet.az) {
        throw new ApiError("InvalidParameterValue", `Value (${launch.availabilityZone}) for parameter availabilityZone is invalid. Subnet '${subnet.subnetId}' is in the availability zone ${subnet.az}`);
      }
    } else if (launch.availabilityZone !== undefined) {
      if (!azs.includes(launch.availabilityZone)) throw new ApiError("InvalidParameterValue", `Invalid availability zone: [${launch.availabilityZone}]`);
      subnet = subnets.find((s) => s.az === launch.availabilityZone && s.defaultForAz);
    }
    if (launch.placementGroup !== undefined) {
      const pg = placementGroups[launch.placementGroup];
      if (!pg || pg.deletedAt) throw new ApiError("InvalidPlacementGroup.Unknown", `The Placement Group '${launch.placementGroup}' is unknown.`);
    }
    const groupIds = launch.securityGroupIds.length > 0 ? launch.securityGroupIds : [defaultGroupId];
    for (const g of groupIds) {
      const group = groupOf(g);
      const vpc = subnet?.vpcId ?? vpcId;
      if (group.vpcId !== vpc) throw new ApiError("InvalidParameter", `Security group ${g} and subnet ${subnet?.subnetId ?? ""} belong to different networks.`);
    }
    // Like EC2, a dry run checks the request and permissions, not capacity or price.
    if (launch.dryRun) throw new ApiError("DryRunOperation", "Request would have succeeded, but DryRun flag is set.", 412);
    const market = launch.market;
    const maxPrice = spotOpts?.maxPrice === undefined ? undefined : Number(spotOpts.maxPrice);
    if (maxPrice !== undefined && !(maxPrice > 0)) throw new ApiError("InvalidParameterValue", `Value (${spotOpts?.maxPrice}) for parameter maxPrice is invalid.`);

    const fits = (az: string): boolean => market !== "spot" || maxPrice === undefined || (spotPrice(type, az) ?? 0) <= maxPrice;
    let az: string;
    if (subnet) {
      az = subnet.az;
    } else {
      az = azs.find((a) => !faultFor(type, a, market) && fits(a)) ?? azs.find((a) => !faultFor(type, a, market)) ?? (azs[0] as string);
      subnet = subnets.find((s) => s.az === az && s.defaultForAz);
    }
    if (!subnet) throw new ApiError("MissingInput", `No subnets found for the default VPC '${vpcId}'. Please specify a subnet.`);
    const fault = faultFor(type, az, market);
    if (fault) throw capacityError(fault, type, az, spotOpts?.maxPrice);
    const current = spotPrice(type, az) ?? 0;
    if (market === "spot" && maxPrice !== undefined && maxPrice < current) {
      throw new ApiError("SpotMaxPriceTooLow", `Your Spot request price of ${spotOpts?.maxPrice} is lower than the minimum required Spot request fulfillment price of ${current}.`);
    }
    const reservationId = `r-0${hex(16)}`;
    const ids: string[] = [];
    for (let k = 0; k < maxCount; k++) {
      const id = `i-0${hex(16)}`;
      const index = allocateIndex();
      const inst: Ec2Instance = {
        id,
        reservationId,
        type,
        az,
        subnetId: subnet.subnetId,
        vpcId: subnet.vpcId,
        market,
        imageId,
        state: "pending",
        stateTransitionReason: "",
        tags: { ...launch.tagSpecifications["instance"] },
        placementGroup: launch.placementGroup,
        securityGroupIds: groupIds,
        launchedAt: new Date(),
        launch,
        userData: launch.userData ?? "",
        ttlMinutes: parseTtlMinutes(launch.userData ?? ""),
        hourlyPrice: market === "spot" ? current : price.onDemand,
        spotInstanceRequestId: market === "spot" ? `sir-${hex(8)}` : undefined,
        clientToken: launch.clientToken,
        privateIpAddress: `127.0.10.${index}`,
        authorizedKeys: [],
        consoleOutput: "",
        metadataOptions: {
          httpTokens: launch.metadataOptions.httpTokens ?? "optional",
          httpEndpoint: launch.metadataOptions.httpEndpoint ?? "enabled",
          httpPutResponseHopLimit: launch.metadataOptions.httpPutResponseHopLimit ?? 1,
        },
        instanceInitiatedShutdownBehavior: launch.instanceInitiatedShutdownBehavior === "terminate" ? "terminate" : "stop",
        volumeIds: launch.blockDeviceMappings.map(() => `vol-0${hex(16)}`),
      };
      instances[id] = inst;
      internal.set(id, { index });
      ids.push(id);
      startBoot(inst);
    }
    reservations.set(reservationId, { id: reservationId, instanceIds: ids });
    if (launch.clientToken !== undefined) clientTokens.set(launch.clientToken, reservationId);
    launch.instanceIds = ids;
    return reservationXml(reservationId, ids.map((id) => instances[id] as Ec2Instance));
  }

  function describeInstances(f: Form): string {
    const ids = f.strings("InstanceId");
    const selected = ids.length > 0 ? ids.map(instanceOf) : Object.values(instances);
    const filters = f.filters();
    const keep = selected.filter((i) =>
      filters.every(({ name, values }) => {
        const byTag = tagFilter(name, values, i.tags);
        if (byTag !== undefined) return byTag;
        switch (name) {
          case "instance-state-name":
            return matchesAny(i.state, values);
          case "instance-state-code":
            return matchesAny(String(STATE_CODES[i.state]), values);
          case "instance-id":
            return matchesAny(i.id, values);
          case "instance-type":
            return matchesAny(i.type, values);
          case "availability-zone":
            return matchesAny(i.az, values);
          case "instance-lifecycle":
            return i.market === "spot" && matchesAny("spot", values);
          case "image-id":
            return matchesAny(i.imageId, values);
          case "vpc-id":
            return matchesAny(i.vpcId, values);
          case "subnet-id":
            return matchesAny(i.subnetId, values);
          case "client-token":
            return matchesAny(i.clientToken, values);
          case "instance.group-id":
            return i.securityGroupIds.some((g) => matchesAny(g, values));
          case "private-ip-address":
            return matchesAny(i.privateIpAddress, values);
          case "ip-address":
            return matchesAny(i.publicIpAddress, values);
          case "reservation-id":
            return matchesAny(i.reservationId, values);
          default:
            throw invalidFilter(name);
        }
      }),
    );
    const byReservation = new Map<string, Ec2Instance[]>();
    for (const i of keep) byReservation.set(i.reservationId, [...(byReservation.get(i.reservationId) ?? []), i]);
    return set(
      "reservationSet",
      [...byReservation].map(([rid, insts]) => reservationXml(rid, insts)),
      true,
    );
  }

  function terminateInstances(f: Form): string {
    const ids = f.strings("InstanceId");
    if (ids.length === 0) throw new ApiError("MissingParameter", "The request must contain the parameter InstanceId");
    const insts = ids.map(instanceOf);
    if (f.bool("DryRun")) throw new ApiError("DryRunOperation", "Request would have succeeded, but DryRun flag is set.", 412);
    const items = insts.map((i) => {
      const previous = i.state;
      terminate(i);
      return (
        el("instanceId", i.id) +
        el("currentState", [raw(el("code", STATE_CODES[i.state])), raw(el("name", i.state))]) +
        el("previousState", [raw(el("code", STATE_CODES[previous])), raw(el("name", previous))])
      );
    });
    return set("instancesSet", items, true);
  }

  function describeInstanceStatus(f: Form): string {
    const ids = f.strings("InstanceId");
    const all = f.bool("IncludeAllInstances") ?? false;
    const selected = (ids.length > 0 ? ids.map(instanceOf) : Object.values(instances)).filter((i) => all || i.state === "running");
    const filters = f.filters();
    const keep = selected.filter((i) =>
      filters.every(({ name, values }) => {
        if (name === "instance-state-name") return matchesAny(i.state, values);
        if (name === "availability-zone") return matchesAny(i.az, values);
        throw invalidFilter(name);
      }),
    );
    const summary = (i: Ec2Instance, name: string): string =>
      i.state === "running"
        ? el("status", "ok") + set("details", [el("name", name) + el("status", "passed")])
        : el("status", "not-applicable");
    return set(
      "instanceStatusSet",
      keep.map(
        (i) =>
          el("instanceId", i.id) +
          el("availabilityZone", i.az) +
          el("instanceState", [raw(el("code", STATE_CODES[i.state])), raw(el("name", i.state))]) +
          el("systemStatus", raw(summary(i, "reachability"))) +
          el("instanceStatus", raw(summary(i, "reachability"))),
      ),
      true,
    );
  }

  function describeSpotPriceHistory(f: Form): string {
    const types = f.strings("InstanceType");
    const products = f.strings("ProductDescription");
    const az = f.get("AvailabilityZone");
    if (az !== undefined && !azs.includes(az)) throw new ApiError("InvalidParameterValue", `Invalid availability zone: [${az}]`);
    const filters = f.filters();
    const timestamp = new Date(Date.now() - 37 * 60_000);
    const items: string[] = [];
    for (const type of types.length > 0 ? types : Object.keys(prices)) {
      if (!prices[type]) continue;
      for (const zone of az !== undefined ? [az] : azs) {
        for (const product of products.length > 0 ? products : ["Linux/UNIX"]) {
          if (!product.startsWith("Linux/UNIX")) continue;
          const keep = filters.every(({ name, values }) => {
            if (name === "instance-type") return matchesAny(type, values);
            if (name === "availability-zone") return matchesAny(zone, values);
            if (name === "product-description") return matchesAny(product, values);
            if (name === "spot-price" || name === "timestamp") return true;
            throw invalidFilter(name);
          });
          if (!keep) continue;
          const p = spotPrice(type, zone) ?? 0;
          items.push(
            el("instanceType", type) +
              el("productDescription", product) +
              el("spotPrice", p.toFixed(6)) +
              el("timestamp", timestamp) +
              el("availabilityZone", zone) +
              el("availabilityZoneId", `use1-az${azs.indexOf(zone) + 1}`),
          );
        }
      }
    }
    return el("nextToken", "") + set("spotPriceHistorySet", items, true);
  }

  function describeImages(f: Form): string {
    const ids = f.strings("ImageId");
    const owners = f.strings("Owner");
    for (const id of ids) {
      if (!images.some((i) => i.imageId === id && i.state !== "deregistered")) throw new ApiError("InvalidAMIID.NotFound", `The image id '[${id}]' does not exist`);
    }
    const filters = f.filters();
    const keep = images.filter((i) => {
      if (i.state === "deregistered") return false;
      if (ids.length > 0 && !ids.includes(i.imageId)) return false;
      if (owners.length > 0 && !owners.some((o) => o === i.ownerId || (o === "self" && i.ownerId === accountId) || (i.ownerAlias !== undefined && o === i.ownerAlias))) return false;
      return filters.every(({ name, values }) => {
        switch (name) {
          case "name":
            return matchesAny(i.name, values);
          case "state":
            return matchesAny(i.state, values);
          case "architecture":
            return matchesAny(i.architecture, values);
          case "image-id":
            return matchesAny(i.imageId, values);
          case "owner-id":
            return matchesAny(i.ownerId, values);
          case "owner-alias":
            return matchesAny(i.ownerAlias, values);
          case "root-device-type":
            return matchesAny("ebs", values);
          case "virtualization-type":
            return matchesAny("hvm", values);
          case "image-type":
            return matchesAny("machine", values);
          case "is-public":
            return matchesAny(String(i.ownerId !== accountId), values);
          default:
            throw invalidFilter(name);
        }
      });
    });
    return set(
      "imagesSet",
      keep.map(
        (i) =>
          el("imageId", i.imageId) +
          el("imageLocation", `${i.ownerAlias ?? i.ownerId}/${i.name}`) +
          el("imageState", i.state) +
          el("imageOwnerId", i.ownerId) +
          el("creationDate", i.creationDate) +
          el("isPublic", i.ownerId !== accountId) +
          el("architecture", i.architecture) +
          el("imageType", "machine") +
          el("name", i.name) +
          el("description", i.description ?? i.name) +
          el("imageOwnerAlias", i.ownerAlias) +
          el("rootDeviceType", "ebs") +
          el("rootDeviceName", i.rootDeviceName ?? "/dev/sda1") +
          set("blockDeviceMapping", [
            el("deviceName", i.rootDeviceName ?? "/dev/sda1") +
              el("ebs", raw(el("snapshotId", `snap-0${createHash("sha256").update(i.imageId).digest("hex").slice(0, 16)}`) + el("volumeSize", 75) + el("deleteOnTermination", true) + el("volumeType", "gp3") + el("encrypted", false))),
          ]) +
          el("virtualizationType", "hvm") +
          el("hypervisor", "xen") +
          el("enaSupport", true) +
          el("sriovNetSupport", "simple") +
          el("platformDetails", "Linux/UNIX") +
          el("usageOperation", "RunInstances") +
          el("bootMode", "uefi-preferred") +
          el("imdsSupport", "v2.0"),
      ),
      true,
    );
  }

  function describeSubnets(f: Form): string {
    const ids = f.strings("SubnetId");
    for (const id of ids) if (!subnets.some((s) => s.subnetId === id)) throw new ApiError("InvalidSubnetID.NotFound", `The subnet ID '${id}' does not exist`);
    const filters = f.filters();
    const keep = subnets.filter(
      (s) =>
        (ids.length === 0 || ids.includes(s.subnetId)) &&
        filters.every(({ name, values }) => {
          switch (name) {
            case "default-for-az":
            case "defaultForAz":
              return matchesAny(String(s.defaultForAz), values);
            case "availability-zone":
            case "availabilityZone":
              return matchesAny(s.az, values);
            case "vpc-id":
            case "vpcId":
              return matchesAny(s.vpcId, values);
            case "subnet-id":
            case "subnetId":
              return matchesAny(s.subnetId, values);
            case "state":
              return matchesAny("available", values);
            case "map-public-ip-on-launch":
              return matchesAny("true", values);
            default:
              throw invalidFilter(name);
          }
        }),
    );
    return set(
      "subnetSet",
      keep.map(
        (s) =>
          el("subnetId", s.subnetId) +
          el("subnetArn", `arn:aws:ec2:${region}:${accountId}:subnet/${s.subnetId}`) +
          el("state", "available") +
          el("ownerId", accountId) +
          el("vpcId", s.vpcId) +
          el("cidrBlock", s.cidr) +
          set("ipv6CidrBlockAssociationSet", [], true) +
          el("availableIpAddressCount", 4091) +
          el("availabilityZone", s.az) +
          el("availabilityZoneId", `use1-az${azs.indexOf(s.az) + 1}`) +
          el("defaultForAz", s.defaultForAz) +
          el("mapPublicIpOnLaunch", true) +
          el("assignIpv6AddressOnCreation", false),
      ),
      true,
    );
  }

  function describeAvailabilityZones(f: Form): string {
    const names = f.strings("ZoneName");
    for (const n of names) if (!azs.includes(n)) throw new ApiError("InvalidParameterValue", `Invalid availability zone: [${n}]`);
    const filters = f.filters();
    const keep = azs.filter(
      (az) =>
        (names.length === 0 || names.includes(az)) &&
        filters.every(({ name, values }) => {
          if (name === "zone-name") return matchesAny(az, values);
          if (name === "state") return matchesAny("available", values);
          if (name === "region-name") return matchesAny(region, values);
          if (name === "zone-type") return matchesAny("availability-zone", values);
          if (name === "opt-in-status") return matchesAny("opt-in-not-required", values);
          throw invalidFilter(name);
        }),
    );
    return set(
      "availabilityZoneInfo",
      keep.map(
        (az) =>
          el("zoneName", az) +
          el("zoneState", "available") +
          el("regionName", region) +
          el("zoneId", `use1-az${azs.indexOf(az) + 1}`) +
          el("zoneType", "availability-zone") +
          el("optInStatus", "opt-in-not-required") +
          el("groupName", region) +
          el("networkBorderGroup", region) +
          set("messageSet", [], true),
      ),
      true,
    );
  }

  function placementGroupXml(g: Ec2PlacementGroup): string {
    return el("groupName", g.groupName) + el("groupId", g.groupId) + el("strategy", g.strategy) + el("state", g.deletedAt ? "deleted" : "available") + tagSet(g.tags);
  }

  function createPlacementGroup(f: Form): string {
    const name = f.required("GroupName");
    const strategy = f.get("Strategy") ?? "cluster";
    if (!["cluster", "spread", "partition"].includes(strategy)) throw new ApiError("InvalidParameterValue", `Value (${strategy}) for parameter strategy is invalid.`);
    if (placementGroups[name] && !placementGroups[name].deletedAt) throw new ApiError("InvalidPlacementGroup.Duplicate", `The Placement Group '${name}' already exists.`);
    const specs = f.tagSpecifications();
    for (const t of Object.keys(specs)) if (t !== "placement-group") throw new ApiError("InvalidParameterValue", `'${t}' is not a valid taggable resource type for this operation.`);
    const g: Ec2PlacementGroup = { groupName: name, groupId: `pg-0${hex(16)}`, strategy, tags: { ...specs["placement-group"] }, createdAt: new Date() };
    placementGroups[name] = g;
    return el("placementGroup", [raw(placementGroupXml(g))]);
  }

  function deletePlacementGroup(f: Form): string {
    const name = f.required("GroupName");
    const g = placementGroups[name];
    if (!g || g.deletedAt) throw new ApiError("InvalidPlacementGroup.Unknown", `The Placement Group '${name}' is unknown.`);
    if (Object.values(instances).some((i) => i.placementGroup === name && i.state !== "terminated")) {
      throw new ApiError("InvalidPlacementGroup.InUse", `The placement group '${name}' is in use and may not be deleted.`);
    }
    g.deletedAt = new Date();
    return el("return", true);
  }

  function describePlacementGroups(f: Form): string {
    const names = f.strings("GroupName");
    const filters = f.filters();
    const keep = Object.values(placementGroups).filter(
      (g) => !g.deletedAt && (names.length === 0 || names.includes(g.groupName)) && filters.every(({ name, values }) => tagFilter(name, values, g.tags) ?? (name === "group-name" ? values.includes(g.groupName) : true)),
    );
    return set("placementGroupSet", keep.map(placementGroupXml));
  }

  function createSecurityGroup(f: Form): string {
    const name = f.required("GroupName");
    const description = f.required("GroupDescription");
    const vpc = f.get("VpcId") ?? vpcId;
    if (vpc !== vpcId) throw new ApiError("InvalidVpcID.NotFound", `The vpc ID '${vpc}' does not exist`);
    if (name.toLowerCase().startsWith("sg-")) throw new ApiError("InvalidParameterValue", "Group names may not be in the format sg-*");
    if (Object.values(securityGroups).some((g) => !g.deletedAt && g.vpcId === vpc && g.groupName === name)) {
      throw new ApiError("InvalidGroup.Duplicate", `The security group '${name}' already exists for VPC '${vpc}'`);
    }
    const specs = f.tagSpecifications();
    for (const t of Object.keys(specs)) if (t !== "security-group") throw new ApiError("InvalidParameterValue", `'${t}' is not a valid taggable resource type for this operation.`);
    if (f.bool("DryRun")) throw new ApiError("DryRunOperation", "Request would have succeeded, but DryRun flag is set.", 412);
    const groupId = `sg-0${hex(16)}`;
    const tags = { ...specs["security-group"] };
    securityGroups[groupId] = { groupId, groupName: name, description, vpcId: vpc, tags, ingress: [], createdAt: new Date(), isDefault: false };
    return el("return", true) + el("groupId", groupId) + el("securityGroupArn", `arn:aws:ec2:${region}:${accountId}:security-group/${groupId}`) + tagSet(tags);
  }

  function authorizeIngress(f: Form): string {
    const g = groupOf(f.required("GroupId"));
    const rules: IngressRule[] = [];
    const add = (ipProtocol: string, fromPort: number | undefined, toPort: number | undefined, cidrIp: string | undefined, description: string | undefined): void => {
      if (!["tcp", "udp", "icmp", "-1", "6", "17", "1"].includes(ipProtocol)) throw new ApiError("InvalidParameterValue", `Invalid value '${ipProtocol}' for IP protocol. Unknown protocol.`);
      if (cidrIp !== undefined && !/^\d{1,3}(?:\.\d{1,3}){3}\/\d{1,2}$/.test(cidrIp)) throw new ApiError("InvalidParameterValue", `CIDR block ${cidrIp} is malformed`);
      if (ipProtocol !== "-1" && (fromPort === undefined || toPort === undefined)) throw new ApiError("MissingParameter", "The request must contain the parameter FromPort/ToPort");
      const dup = [...g.ingress, ...rules].some((r) => r.ipProtocol === ipProtocol && r.fromPort === fromPort && r.toPort === toPort && r.cidrIp === cidrIp);
      if (dup) throw new ApiError("InvalidPermission.Duplicate", `the specified rule "peer: ${cidrIp ?? ""}, ${ipProtocol.toUpperCase()}, from port: ${fromPort}, to port: ${toPort}, ALLOW" already exists`);
      rules.push({ ipProtocol, fromPort, toPort, cidrIp, description, ruleId: `sgr-0${hex(16)}` });
    };
    for (const n of f.indices("IpPermissions")) {
      const p = `IpPermissions.${n}`;
      const proto = f.get(`${p}.IpProtocol`) ?? "-1";
      const ranges = f.indices(`${p}.IpRanges`);
      const pairs = f.indices(`${p}.Groups`);
      if (ranges.length === 0 && pairs.length === 0) throw new ApiError("InvalidParameterValue", "The request must contain a source: IpRanges, Ipv6Ranges, PrefixListIds or UserIdGroupPairs");
      for (const m of ranges) add(proto, f.int(`${p}.FromPort`), f.int(`${p}.ToPort`), f.get(`${p}.IpRanges.${m}.CidrIp`), f.get(`${p}.IpRanges.${m}.Description`));
      for (const m of pairs) {
        const source = groupOf(f.required(`${p}.Groups.${m}.GroupId`)).groupId;
        if (proto !== "-1" && (f.int(`${p}.FromPort`) === undefined || f.int(`${p}.ToPort`) === undefined)) throw new ApiError("MissingParameter", "The request must contain the parameter FromPort/ToPort");
        rules.push({ ipProtocol: proto, fromPort: f.int(`${p}.FromPort`), toPort: f.int(`${p}.ToPort`), sourceGroupId: source, description: f.get(`${p}.Groups.${m}.Description`), ruleId: `sgr-0${hex(16)}` });
      }
    }
    if (f.get("IpProtocol") !== undefined) add(f.get("IpProtocol") as string, f.int("FromPort"), f.int("ToPort"), f.get("CidrIp"), undefined);
    if (rules.length === 0) throw new ApiError("MissingParameter", "The request must contain the parameter IpPermissions");
    if (f.bool("DryRun")) throw new ApiError("DryRunOperation", "Request would have succeeded, but DryRun flag is set.", 412);
    g.ingress.push(...rules);
    return (
      el("return", true) +
      set(
        "securityGroupRuleSet",
        rules.map(
          (r) =>
            el("securityGroupRuleId", r.ruleId) +
            el("groupId", g.groupId) +
            el("groupOwnerId", accountId) +
            el("isEgress", false) +
            el("ipProtocol", r.ipProtocol) +
            el("fromPort", r.fromPort) +
            el("toPort", r.toPort) +
            el("cidrIpv4", r.cidrIp) +
            el("description", r.description) +
            el("securityGroupRuleArn", `arn:aws:ec2:${region}:${accountId}:security-group-rule/${r.ruleId}`),
        ),
      )
    );
  }

  function deleteSecurityGroup(f: Form): string {
    const id = f.get("GroupId");
    let g: Ec2SecurityGroup | undefined;
    if (id !== undefined) g = groupOf(id);
    else {
      const name = f.required("GroupName");
      g = Object.values(securityGroups).find((s) => !s.deletedAt && s.groupName === name && s.vpcId === vpcId);
      if (!g) throw new ApiError("InvalidGroup.NotFound", `The security group '${name}' does not exist in default VPC '${vpcId}'`);
    }
    if (g.isDefault) throw new ApiError("CannotDelete", `the specified group: "${g.groupId}" name: "default" cannot be deleted by a user`);
    if (Object.values(instances).some((i) => i.state !== "terminated" && i.securityGroupIds.includes((g as Ec2SecurityGroup).groupId))) {
      throw new ApiError("DependencyViolation", `resource ${g.groupId} has a dependent object`);
    }
    if (f.bool("DryRun")) throw new ApiError("DryRunOperation", "Request would have succeeded, but DryRun flag is set.", 412);
    g.deletedAt = new Date();
    return el("return", true) + el("groupId", g.groupId);
  }

  function describeSecurityGroups(f: Form): string {
    const ids = f.strings("GroupId");
    const names = f.strings("GroupName");
    const selected = ids.length > 0 ? ids.map(groupOf) : Object.values(securityGroups).filter((g) => !g.deletedAt);
    for (const n of names) if (!selected.some((g) => g.groupName === n)) throw new ApiError("InvalidGroup.NotFound", `The security group '${n}' does not exist in default VPC '${vpcId}'`);
    const filters = f.filters();
    const keep = selected.filter(
      (g) =>
        (names.length === 0 || names.includes(g.groupName)) &&
        filters.every(({ name, values }) => {
          const byTag = tagFilter(name, values, g.tags);
          if (byTag !== undefined) return byTag;
          switch (name) {
            case "group-id":
              return matchesAny(g.groupId, values);
            case "group-name":
              return matchesAny(g.groupName, values);
            case "vpc-id":
              return matchesAny(g.vpcId, values);
            case "description":
              return matchesAny(g.description, values);
            default:
              throw invalidFilter(name);
          }
        }),
    );
    return set("securityGroupInfo", keep.map(groupXml), true);
  }

  function createTags(f: Form): string {
    const ids = f.strings("ResourceId");
    if (ids.length === 0) throw new ApiError("MissingParameter", "The request must contain the parameter ResourceId");
    const tags = f.tags("Tag");
    const targets = ids.map((id): { tags: Record<string, string> } => {
      if (id.startsWith("i-")) return instanceOf(id);
      if (id.startsWith("sg-")) return groupOf(id);
      throw new ApiError("InvalidID", `The ID '${id}' is not valid`);
    });
    if (f.bool("DryRun")) throw new ApiError("DryRunOperation", "Request would have succeeded, but DryRun flag is set.", 412);
    for (const t of targets) Object.assign(t.tags, tags);
    return el("return", true);
  }

  function getConsoleOutput(f: Form): string {
    const inst = instanceOf(f.required("InstanceId"));
    return el("instanceId", inst.id) + el("timestamp", new Date()) + (inst.consoleOutput ? el("output", Buffer.from(inst.consoleOutput).toString("base64")) : "");
  }

  const ACTIONS: Record<string, (f: Form) => string> = {
    RunInstances: (f) => {
      let launch: LaunchRequest;
      try {
        launch = parseLaunch(f);
      } catch (e) {
        launches.push({ at: new Date(), securityGroupIds: [], market: "on-demand", metadataOptions: {}, blockDeviceMappings: [], tagSpecifications: {}, dryRun: false, error: (e as ApiError).code });
        throw e;
      }
      launches.push(launch);
      try {
        return runInstances(f, launch);
      } catch (e) {
        launch.error = e instanceof ApiError ? e.code : "InternalError";
        throw e;
      }
    },
    DescribeInstances: describeInstances,
    TerminateInstances: terminateInstances,
    DescribeInstanceStatus: describeInstanceStatus,
    DescribeSpotPriceHistory: describeSpotPriceHistory,
    DescribeImages: describeImages,
    DescribeSubnets: describeSubnets,
    DescribeAvailabilityZones: describeAvailabilityZones,
    CreateSecurityGroup: createSecurityGroup,
    AuthorizeSecurityGroupIngress: authorizeIngress,
    DeleteSecurityGroup: deleteSecurityGroup,
    DescribeSecurityGroups: describeSecurityGroups,
    CreateTags: createTags,
    GetConsoleOutput: getConsoleOutput,
    CreatePlacementGroup: createPlacementGroup,
    DeletePlacementGroup: deletePlacementGroup,
    DescribePlacementGroups: describePlacementGroups,
  };

  // ---------------------------------------------------------------- EC2 server

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    const url = new URL(req.url ?? "/", "http://x");
    const params: Record<string, string> = {};
    for (const [k, v] of url.searchParams) params[k] = v;
    if (req.method === "POST") for (const [k, v] of new URLSearchParams(body)) params[k] = v;
    const action = params["Action"] ?? "";
    const requestId = randomUUID();
    const record: Ec2Request = { action, params, status: 200, at: new Date() };
    requests.push(record);

    const send = (status: number, xml: string): void => {
      record.status = status;
      const left = drops.get(action) ?? 0;
      if (status === 200 && left > 0) {
        drops.set(action, left - 1);
        record.dropped = true;
        req.socket.destroy();
        return;
      }
      res.writeHead(status, { "content-type": "text/xml;charset=UTF-8", "x-amzn-requestid": requestId, server: "AmazonEC2" });
      res.end(xml);
    };
    const fail = (e: ApiError): void => {
      record.code = e.code;
      send(e.status, errorBody(e.code, e.message, requestId));
    };

    if (throttleLeft > 0) {
      throttleLeft--;
      return fail(new ApiError("RequestLimitExceeded", "Request limit exceeded.", 503));
    }
    const auth = req.headers.authorization ?? "";
    const scope = /Credential=[^/]+\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request/.exec(auth);
    if (!scope) return fail(new ApiError("AuthFailure", "AWS was not able to validate the provided access credentials", 401));
    if (scope[1] !== region) return fail(new ApiError("AuthFailure", `Credential should be scoped to a valid region, not '${scope[1]}'. `, 401));
    if (!action) return fail(new ApiError("MissingAction", "The request must contain the parameter Action"));
    const run = ACTIONS[action];
    if (!run) return fail(new ApiError("InvalidAction", `The action ${action} is not valid for this web service.`));
    if (params["Version"] !== EC2_API_VERSION) return fail(new ApiError("InvalidParameterValue", `Invalid API version: ${params["Version"] ?? "(none)"}`));
    try {
      send(200, response(action, requestId, run(new Form(params))));
    } catch (e) {
      if (e instanceof ApiError) return fail(e);
      fail(new ApiError("InternalError", `An internal error has occurred: ${(e as Error).message}`, 500));
    }
  }

  // ---------------------------------------------------------------- IMDS server

  function handleImds(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://x");
    const rec: ImdsRequest = { method: req.method ?? "", path: url.pathname, tokenOk: false, status: 200 };
    imdsRequests.push(rec);
    const reply = (status: number, text: string, type = "text/plain"): void => {
      rec.status = status;
      res.writeHead(status, { "content-type": type, server: "EC2ws" });
      res.end(text);
    };
    const m = /^\/i\/([^/]+)(\/.*)$/.exec(url.pathname);
    const inst = m ? instances[m[1] as string] : undefined;
    if (!m || !inst) return reply(404, "Not Found: use imdsUrlFor(instanceId)");
    rec.instanceId = inst.id;
    const path = m[2] as string;
    if (inst.metadataOptions.httpEndpoint === "disabled") return reply(403, "Forbidden");

    if (path === "/latest/api/token") {
      if (req.method !== "PUT") return reply(405, "Method Not Allowed");
      const ttlRaw = req.headers["x-aws-ec2-metadata-token-ttl-seconds"];
      const ttl = Number(ttlRaw);
      if (ttlRaw === undefined || !Number.isInteger(ttl) || ttl < 1 || ttl > 21_600) return reply(400, "Bad Request");
      if (req.headers["x-forwarded-for"] !== undefined) return reply(403, "Forbidden");
      const token = randomBytes(42).toString("base64");
      tokens.set(token, { instanceId: inst.id, expires: Date.now() + ttl * 1000 });
      rec.tokenOk = true;
      res.setHeader("x-aws-ec2-metadata-token-ttl-seconds", String(ttl));
      return reply(200, token);
    }
    if (req.method !== "GET" && req.method !== "HEAD") return reply(405, "Method Not Allowed");
    const header = req.headers["x-aws-ec2-metadata-token"];
    const token = typeof header === "string" ? tokens.get(header) : undefined;
    rec.tokenOk = token !== undefined && token.instanceId === inst.id && token.expires > Date.now();
    if (header !== undefined && !rec.tokenOk) return reply(401, "Unauthorized");
    if (!rec.tokenOk && inst.metadataOptions.httpTokens === "required") return reply(401, "Unauthorized");

    const md: Record<string, string | undefined> = {
      "instance-id": inst.id,
      "instance-type": inst.type,
      "ami-id": inst.imageId,
      "placement/availability-zone": inst.az,
      "placement/region": region,
      "local-ipv4": inst.privateIpAddress,
      "public-ipv4": inst.publicIpAddress,
      "instance-life-cycle": inst.market === "spot" ? "spot" : "on-demand",
      "spot/instance-action": inst.instanceAction ? JSON.stringify(inst.instanceAction) : undefined,
      "spot/termination-time": inst.instanceAction?.time,
    };
    if (path === "/latest/user-data") return inst.userData ? reply(200, inst.userData, "application/octet-stream") : reply(404, "Not Found");
    const key = path.startsWith("/latest/meta-data/") ? path.slice("/latest/meta-data/".length) : undefined;
    if (key === "") return reply(200, Object.keys(md).filter((k) => md[k] !== undefined && !k.includes("/")).concat("placement/", "spot/").join("\n"));
    const value = key === undefined ? undefined : md[key];
    if (value === undefined) return reply(404, "Not Found");
    return reply(200, value, key === "spot/instance-action" ? "application/json" : "text/plain");
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(e));
    });
  });
  const imds = createServer(handleImds);
  const url = await listen(server);
  const imdsUrl = await listen(imds);

  function entry(i: Ec2Instance): LedgerEntry {
    return {
      id: i.id,
      type: i.type,
      az: i.az,
      market: i.market,
      state: i.state,
      tags: { ...i.tags },
      launchedAt: i.launchedAt,
      terminatedAt: i.terminatedAt,
      stateReason: i.stateReason?.code,
      hourlyPrice: i.hourlyPrice,
      securityGroupIds: [...i.securityGroupIds],
    };
  }

  return {
    url,
    imdsUrl,
    imdsUrlFor: (id) => `${imdsUrl}/i/${id}`,
    region,
    accountId,
    instances,
    securityGroups,
    subnets,
    images,
    prices,
    launches,
    requests,
    imdsRequests,
    ledger: () => Object.values(instances).map(entry),
    orphans: () => ({
      instances: Object.values(instances)
        .filter((i) => i.state !== "terminated")
        .map(entry),
      securityGroups: Object.values(securityGroups).filter((g) => !g.isDefault && !g.deletedAt),
      placementGroups: Object.values(placementGroups).filter((g) => !g.deletedAt),
    }),
    failCapacity(fault) {
      faults.push({ ...fault });
    },
    clearFaults() {
      faults.length = 0;
    },
    throttle(n) {
      throttleLeft = n;
    },
    dropResponse(action, times = 1) {
      drops.set(action, (drops.get(action) ?? 0) + times);
    },
    setSpotPrice(type, price, az) {
      const p = prices[type] ?? { spot: price, onDemand: price * 2.5 };
      if (az === undefined) p.spot = price;
      else {
        const per: Record<string, number> = Object.fromEntries(azs.map((a) => [a, spotPrice(type, a) ?? price]));
        per[az] = price;
        p.spot = per;
      }
      prices[type] = p;
    },
    spotPrice,
    interrupt(id, o = {}) {
      const inst = instances[id];
      if (!inst) throw new Error(`no instance ${id}`);
      if (inst.market !== "spot") throw new Error(`${id} is an on-demand instance; only spot instances are interrupted`);
      const noticeMs = o.noticeMs ?? 2000;
      inst.instanceAction = { action: "terminate", time: isoSeconds(new Date(Date.now() + noticeMs)) };
      const int = internal.get(id) as Internal;
      cancel(int.interruptTimer);
      int.interruptTimer = later(noticeMs, () => {
        int.interruptTimer = undefined;
        shutDown(inst, "terminated", { code: "Server.SpotInstanceTermination", message: "Server.SpotInstanceTermination: Spot instance termination" }, `Service initiated (${gmt(new Date())})`);
      });
    },
    shutdownFromInside(id) {
      const inst = instances[id];
      if (!inst) throw new Error(`no instance ${id}`);
      const reason = { code: "Client.InstanceInitiatedShutdown", message: "Client.InstanceInitiatedShutdown: Instance initiated shutdown" };
      shutDown(inst, inst.instanceInitiatedShutdownBehavior === "terminate" ? "terminated" : "stopped", reason, `Client.InstanceInitiatedShutdown (${gmt(new Date())})`);
    },
    async waitForState(id, state, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const inst = instances[id];
        if (inst?.state === state) return inst;
        if (Date.now() > deadline) throw new Error(`${id} did not reach ${state} within ${timeoutMs} ms (now ${inst?.state ?? "unknown"})`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async stop() {
      if (closed) return;
      closed = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      await Promise.allSettled([...internal.values()].map((i) => i.booting));
      await Promise.allSettled([...kills]);
      await Promise.allSettled(
        Object.values(instances).map(async (i) => {
          const host = i.ssh;
          i.ssh = undefined;
          await host?.stop();
        }),
      );
      await Promise.all([close(server), close(imds)]);
    },
  };
}
