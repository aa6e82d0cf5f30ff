// The ec2 provider through the real @aws-sdk/client-ec2 against the EC2 stand-in (AWS_ENDPOINT_URL_EC2, as a user
// would point the SDK elsewhere): fallback order, on-demand only when allowed, hardening in the requests, release,
// SIGTERM while waiting, and `ftune cleanup`. The ledger must show no orphan after every test.
import { describe, it, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { userInfo } from "node:os";
import { join } from "node:path";
import { CreateSecurityGroupCommand, EC2Client, RunInstancesCommand, TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import { cleanup, Ec2Provider, type HostSpec } from "../src/compute/index.js";
import { RemoteHost } from "../src/remote/index.js";
import { startEc2StandIn, type Ec2StandIn } from "./support/ec2.js";
import { freePort, teardownAll } from "./support/processes.js";
import { REPO, ftuneAsync } from "./helpers/cli.js";
import { assertNoOrphans } from "./helpers/ec2-run.js";

let ec2: Ec2StandIn;
let sshPort: number;
const awsEnv = (): Record<string, string> => ({
  AWS_ENDPOINT_URL_EC2: ec2.url,
  AWS_ACCESS_KEY_ID: "AKIDEXAMPLE",
  AWS_SECRET_ACCESS_KEY: "secret",
  AWS_REGION: "us-east-1",
  AWS_EC2_METADATA_DISABLED: "true",
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
});

before(async () => {
  sshPort = await freePort();
  ec2 = await startEc2StandIn({ sshPort, bootDelayMs: 200, terminateDelayMs: 100 });
  Object.assign(process.env, awsEnv());
});
afterEach(() => assertNoOrphans(ec2));
after(async () => {
  await ec2?.stop();
  await teardownAll();
});

const logs: string[] = [];
const provider = (): Ec2Provider => new Ec2Provider({ pollMs: 50, bootTimeoutMs: 20_000, publicIp: async () => "203.0.113.7", user: userInfo().username, log: (l) => logs.push(l) }, "us-east-1");
let runs = 0;
const spec = (over: Partial<HostSpec> = {}): HostSpec => ({
  runId: `run${++runs}`,
  project: "proj",
  instanceTypes: ["g5.xlarge", "g6.xlarge"],
  availabilityZones: ["us-east-1a", "us-east-1b"],
  subnets: [],
  spot: true,
  onDemandFallback: false,
  maxPrice: null,
  ttlMinutes: 90,
  ami: null,
  volumeGb: 120,
  sshPort,
  sshCidr: null,
  region: "us-east-1",
  workdir: "/tmp/ftune-work",
  ...over,
});

describe("ec2 provider", () => {
  it("launches a hardened spot instance and releases everything", async () => {
    const p = provider();
    const s = spec();
    const host = await p.acquire(s);
    assert.equal(host.market, "spot");
    assert.equal(host.instanceType, "g5.xlarge");
    assert.equal(host.availabilityZone, "us-east-1a");
    assert.ok(host.pricePerHour! > 0);
    assert.match(host.ssh!.hostKey!, /^SHA256:/);
    assert.equal(host.ssh!.hostKey, ec2.instances[host.id]!.hostKeyFingerprint, "pinned from the console output");
    const launch = ec2.launches.find((l) => l.instanceIds?.includes(host.id))!;
    assert.equal(launch.metadataOptions.httpTokens, "required");
    assert.deepEqual(launch.blockDeviceMappings.map((b) => [b.ebs?.volumeType, b.ebs?.encrypted, b.ebs?.volumeSize, b.ebs?.deleteOnTermination]), [["gp3", true, 120, true]]);
    assert.equal(launch.instanceInitiatedShutdownBehavior, "terminate");
    assert.equal(launch.keyName, undefined);
    for (const res of ["instance", "volume"]) {
      assert.equal(launch.tagSpecifications[res]!["ftune:run-id"], s.runId);
      assert.equal(launch.tagSpecifications[res]!["ftune:project"], "proj");
      assert.ok(Date.parse(launch.tagSpecifications[res]!["ftune:expires-at"]!) > Date.now() + 80 * 60_000);
    }
    assert.match(launch.userData!, /shutdown -h \+90 /);
    assert.doesNotMatch(launch.userData!, /PRIVATE KEY/);
    assert.equal(ec2.instances[host.id]!.ttlMinutes, 90);
    const sg = ec2.securityGroups[host.resources.securityGroup!]!;
    assert.deepEqual(sg.ingress.map((r) => [r.ipProtocol, r.fromPort, r.toPort, r.cidrIp]), [["tcp", sshPort, sshPort, "203.0.113.7/32"]]);
    assert.equal((await p.status(host)).state, "running");
    // The run's key (installed by user-data) logs in, and the host key is checked against the console fingerprint.
    const remote = await RemoteHost.connect(host.ssh!, { attempts: 3 });
    assert.equal((await remote.exec("echo ok")).stdout, "ok\n");
    assert.match(remote.hostKey, /^ssh-ed25519 /);
    await remote.close();
    await assert.rejects(RemoteHost.connect({ ...host.ssh!, hostKey: "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }, { attempts: 3 }), /host key mismatch .*expected SHA256:AAAA.* \(pinned\), the server presented SHA256:/);
    await p.release(host);
    assert.equal(ec2.instances[host.id]!.state, "terminated");
    assert.ok(sg.deletedAt, "security group deleted");
    await p.release(host); // idempotent
  });

  it("falls back over types and AZs in order after capacity errors", async () => {
    ec2.failCapacity({ instanceType: "g5.xlarge", code: "InsufficientInstanceCapacity" });
    ec2.failCapacity({ instanceType: "g6.xlarge", az: "us-east-1a", code: "MaxSpotInstanceCountExceeded" });
    const p = provider();
    const host = await p.acquire(spec());
    assert.deepEqual([host.instanceType, host.availabilityZone, host.market], ["g6.xlarge", "us-east-1b", "spot"]);
    const tried = ec2.launches.slice(-4).map((l) => `${l.instanceType}@${l.availabilityZone}:${l.error ?? "ok"}`);
    assert.deepEqual(tried, ["g5.xlarge@us-east-1a:InsufficientInstanceCapacity", "g5.xlarge@us-east-1b:InsufficientInstanceCapacity", "g6.xlarge@us-east-1a:MaxSpotInstanceCountExceeded", "g6.xlarge@us-east-1b:ok"]);
    await p.release(host);
  });

  it("goes on-demand only when allowed, and says how to allow it", async () => {
    ec2.failCapacity({ market: "spot", code: "InsufficientInstanceCapacity" });
    await assert.rejects(provider().acquire(spec()), /no capacity for any candidate \(spot g5\.xlarge@us-east-1a: InsufficientInstanceCapacity; .*set compute\.on_demand_fallback: true/);
    const p = provider();
    const host = await p.acquire(spec({ onDemandFallback: true }));
    assert.equal(host.market, "on-demand");
    assert.equal(host.pricePerHour, 1.006);
    await p.release(host);
  });

  it("honours max_price (SpotMaxPriceTooLow moves on)", async () => {
    ec2.setSpotPrice("g5.xlarge", 0.9);
    ec2.setSpotPrice("g6.xlarge", 0.3);
    const p = provider();
    const host = await p.acquire(spec({ maxPrice: 0.5, availabilityZones: ["us-east-1a"] }));
    assert.equal(host.instanceType, "g6.xlarge");
    assert.equal(ec2.launches.at(-2)!.error, "SpotMaxPriceTooLow");
    assert.equal(ec2.launches.at(-1)!.spotOptions?.maxPrice, "0.5");
    await p.release(host);
  });

  it("SIGTERM while waiting for the instance terminates it within 10 s", async () => {
    const slow = await startEc2StandIn({ sshPort: await freePort(), bootDelayMs: 30_000, terminateDelayMs: 100 });
    try {
      const child = spawn(process.execPath, ["--import", "tsx", join(REPO, "test", "fixtures", "hold-host.ts"), "sigterm-run", String(sshPort)], {
        env: { ...process.env, ...awsEnv(), AWS_ENDPOINT_URL_EC2: slow.url },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let err = "";
      child.stderr.on("data", (d: Buffer) => (err += d.toString()));
      for (let i = 0; i < 200 && !slow.launches.some((l) => l.instanceIds?.length); i++) await new Promise((r) => setTimeout(r, 50));
      const id = slow.launches.find((l) => l.instanceIds?.length)!.instanceIds![0]!;
      const t0 = Date.now();
      child.kill("SIGTERM");
      const code = await new Promise<number | null>((r) => child.once("exit", r));
      assert.ok(Date.now() - t0 < 10_000, `took ${Date.now() - t0} ms`);
      assert.equal(code, 143, err);
      assert.ok(["shutting-down", "terminated"].includes(slow.instances[id]!.state), slow.instances[id]!.state);
      await slow.waitForState(id, "terminated");
    } finally {
      await slow.stop();
    }
  });
});

describe("ftune cleanup", () => {
  it("terminates expired ftune instances, keeps the others, deletes orphaned groups; --dry-run changes nothing", async () => {
    const client = new EC2Client({ region: "us-east-1" });
    const launch = async (runId: string, expiresAt: string): Promise<string> => {
      const r = await client.send(
        new RunInstancesCommand({
          ImageId: ec2.launches[0]!.imageId!,
          InstanceType: "t3.micro",
          MinCount: 1,
          MaxCount: 1,
          TagSpecifications: [{ ResourceType: "instance", Tags: [{ Key: "ftune:run-id", Value: runId }, { Key: "ftune:expires-at", Value: expiresAt }] }],
        }),
      );
      return r.Instances![0]!.InstanceId!;
    };
    const expired = await launch("old-run", new Date(Date.now() - 60_000).toISOString());
    const fresh = await launch("new-run", new Date(Date.now() + 3_600_000).toISOString());
    const untagged = (await client.send(new RunInstancesCommand({ ImageId: ec2.launches[0]!.imageId!, InstanceType: "t3.micro", MinCount: 1, MaxCount: 1 }))).Instances![0]!.InstanceId!;
    await ec2.waitForState(fresh, "running");
    const leftover = await client.send(new CreateSecurityGroupCommand({ GroupName: "ftune-gone-run", Description: "left by a killed run", TagSpecifications: [{ ResourceType: "security-group", Tags: [{ Key: "ftune:run-id", Value: "gone-run" }] }] }));

    const dry = await ftuneAsync(["cleanup", "--dry-run", "--json"], { env: awsEnv() });
    assert.equal(dry.code, 0, dry.stderr);
    const dryItems = (JSON.parse(dry.stdout) as { items: { id: string; action: string }[] }).items;
    assert.deepEqual(dryItems.filter((i) => i.id === expired).map((i) => i.action), ["would terminate"]);
    assert.equal(ec2.instances[expired]!.state === "terminated", false);

    const items = await cleanup(client);
    assert.deepEqual(items.filter((i) => i.kind === "instance").map((i) => [i.id, i.action]).sort(), [[expired, "terminated"], [fresh, "kept"]].sort());
    assert.ok(!items.some((i) => i.id === untagged), "never touches what ftune did not tag");
    assert.deepEqual(items.filter((i) => i.kind === "security-group").map((i) => [i.id, i.action]), [[leftover.GroupId, "deleted"]]);
    const older = await cleanup(client, { olderThanMs: 0 });
    assert.ok(older.some((i) => i.id === fresh && i.action === "terminated"));
    for (const id of [expired, fresh]) await ec2.waitForState(id, "terminated");
    // The untagged one is the test's own: end it so the ledger is clean.
    await client.send(new TerminateInstancesCommand({ InstanceIds: [untagged] }));
    await ec2.waitForState(untagged, "terminated");
  });

  it("cleanup --run-id after a quick release (a cancel): the run's shutting-down instances are waited for, its groups deleted", async () => {
    const p = provider();
    const s = spec({ nodes: 2 });
    const host = await p.acquire(s);
    const other = await p.acquire(spec());
    await p.release(host, { quick: true }); // what SIGTERM does: terminate, do not wait, leave the group
    // In-process and at once, while the instance is still shutting down (the stand-in takes 100 ms).
    const items = await cleanup(new EC2Client({ region: "us-east-1" }), { runId: s.runId, pollMs: 20 });
    assert.deepEqual(
      items.map((i) => [i.kind, i.action, i.state]),
      [["instance", "kept", "shutting-down"], ["instance", "kept", "shutting-down"], ["placement-group", "deleted", undefined], ["security-group", "deleted", undefined]],
      JSON.stringify(items),
    );
    assert.equal(ec2.orphans().placementGroups.length, 0);
    assert.equal(ec2.securityGroups[host.resources.securityGroup!]!.deletedAt !== undefined, true);
    assert.equal(ec2.instances[other.id]!.state, "running", "another run is not touched");
    await p.release(other);
  });
});
