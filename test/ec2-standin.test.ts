// Proves the EC2 stand-in through the real @aws-sdk/client-ec2: every response parses, a hardened spot launch is
// recorded in full, the instance boots as an sshd that accepts the key from its user-data (host key pinned from the
// console like on EC2), the IMDSv2 stand-in serves a spot interruption notice, capacity/price/throttle faults surface
// as the SDK's error names, termination kills the sshd, and nothing is left at the end.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  AuthorizeSecurityGroupIngressCommand,
  CreatePlacementGroupCommand,
  CreateSecurityGroupCommand,
  DeletePlacementGroupCommand,
  DeleteSecurityGroupCommand,
  DescribePlacementGroupsCommand,
  DescribeAvailabilityZonesCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSpotPriceHistoryCommand,
  DescribeSubnetsCommand,
  EC2Client,
  GetConsoleOutputCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
  type Instance,
  type RunInstancesCommandInput,
} from "@aws-sdk/client-ec2";
import ssh2, { type Client as SshClient } from "ssh2";
import { startEc2StandIn, type Ec2StandIn } from "./support/ec2.js";
import { isPidAlive, teardownAll } from "./support/processes.js";
import { generateKeyPair } from "../src/remote/index.js";

const { Client } = ssh2;

const DLAMI_PATTERN = "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) *";
const SIGNED = { authorization: "AWS4-HMAC-SHA256 Credential=x/20240101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=00" };

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

interface SdkError {
  name: string;
  message: string;
  $metadata: { httpStatusCode?: number; attempts?: number };
}

async function sdkError(p: Promise<unknown>): Promise<SdkError> {
  try {
    await p;
  } catch (e) {
    return e as SdkError;
  }
  assert.fail("expected the call to fail");
}

function connect(host: string, port: number, username: string, privateKey: string, fingerprint: string): Promise<SshClient> {
  return new Promise((resolve, reject) => {
    const c = new Client();
    c.once("ready", () => resolve(c));
    c.once("error", reject);
    c.connect({
      host,
      port,
      username,
      privateKey,
      readyTimeout: 10_000,
      // Pin the key the console printed: SHA256 of the key blob, as ssh-keygen -l shows it.
      hostVerifier: (key: Buffer) => `SHA256:${createHash("sha256").update(key).digest("base64").replace(/=+$/, "")}` === fingerprint,
    });
  });
}

function exec(c: SshClient, cmd: string): Promise<{ stdout: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    c.exec(cmd, (err, ch) => {
      if (err) return reject(err);
      let stdout = "";
      let code: number | null = null;
      ch.on("data", (d: Buffer) => (stdout += d.toString()));
      ch.stderr.on("data", () => undefined);
      ch.on("exit", (c: number | null) => (code = c));
      ch.on("close", () => resolve({ stdout, code }));
    });
  });
}

describe("EC2 stand-in (Query API through @aws-sdk/client-ec2)", () => {
  let standin: Ec2StandIn;
  let ec2: EC2Client;
  let groupId: string;
  let mainId: string;
  const runKey = generateKeyPair("");

  async function describeOne(id: string): Promise<Instance> {
    const r = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
    const inst = r.Reservations?.[0]?.Instances?.[0];
    assert.ok(inst, `DescribeInstances returned no ${id}`);
    return inst;
  }

  /** Polls DescribeInstances, as a provider does. */
  async function waitFor(id: string, state: string, timeoutMs = 10_000): Promise<Instance> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const inst = await describeOne(id);
      if (inst.State?.Name === state) return inst;
      if (Date.now() > deadline) assert.fail(`${id} still ${inst.State?.Name} after ${timeoutMs} ms, wanted ${state}`);
      await sleep(50);
    }
  }

  function launchInput(over: Partial<RunInstancesCommandInput> = {}): RunInstancesCommandInput {
    return { ImageId: "ami-0a1b2c3d4e5f60002", InstanceType: "g5.xlarge", MinCount: 1, MaxCount: 1, ...over };
  }

  /** Launches and terminates at once (before boot, so no sshd ever starts); returns the id. */
  async function launchAndDiscard(input: RunInstancesCommandInput): Promise<Instance> {
    const r = await ec2.send(new RunInstancesCommand(input));
    const inst = r.Instances?.[0];
    assert.ok(inst?.InstanceId);
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [inst.InstanceId] }));
    return inst;
  }

  before(async () => {
    standin = await startEc2StandIn({ bootDelayMs: 300, terminateDelayMs: 200 });
    ec2 = new EC2Client({ endpoint: standin.url, region: "us-east-1", credentials: { accessKeyId: "x", secretAccessKey: "y" } });
  });

  after(async () => {
    const pids = Object.values(standin?.instances ?? {}).flatMap((i) => (i.sshPid === undefined ? [] : [i.sshPid]));
    ec2?.destroy();
    await standin?.stop();
    for (const pid of pids) assert.equal(isPidAlive(pid), false, `sshd ${pid} still running after stop()`);
    await teardownAll();
  });

  it("describes the default network, the newest AMI and spot prices in EC2's shapes", async () => {
    const zones = await ec2.send(new DescribeAvailabilityZonesCommand({}));
    assert.deepEqual(
      zones.AvailabilityZones?.map((z) => [z.ZoneName, z.State]),
      [["us-east-1a", "available"], ["us-east-1b", "available"], ["us-east-1c", "available"]],
    );
    const subnets = await ec2.send(new DescribeSubnetsCommand({ Filters: [{ Name: "default-for-az", Values: ["true"] }] }));
    assert.deepEqual(subnets.Subnets?.map((s) => s.AvailabilityZone), ["us-east-1a", "us-east-1b", "us-east-1c"]);
    assert.equal(new Set(subnets.Subnets?.map((s) => s.VpcId)).size, 1);
    assert.ok(subnets.Subnets?.every((s) => s.DefaultForAz === true && /^subnet-[0-9a-f]{17}$/.test(s.SubnetId ?? "")));

    const images = await ec2.send(
      new DescribeImagesCommand({
        Owners: ["amazon"],
        Filters: [
          { Name: "name", Values: [DLAMI_PATTERN] },
          { Name: "state", Values: ["available"] },
          { Name: "architecture", Values: ["x86_64"] },
        ],
      }),
    );
    // The arm64 and the still-pending newer images are filtered out; "newest" is by CreationDate.
    const newest = [...(images.Images ?? [])].sort((a, b) => (b.CreationDate ?? "").localeCompare(a.CreationDate ?? ""))[0];
    assert.equal(images.Images?.length, 2);
    assert.equal(newest?.ImageId, "ami-0a1b2c3d4e5f60002");
    assert.equal(newest?.RootDeviceName, "/dev/sda1");
    const unknownAmi = await sdkError(ec2.send(new DescribeImagesCommand({ ImageIds: ["ami-0ffffffffffffffff"] })));
    assert.equal(unknownAmi.name, "InvalidAMIID.NotFound");

    const prices = await ec2.send(
      new DescribeSpotPriceHistoryCommand({ InstanceTypes: ["g5.xlarge"], ProductDescriptions: ["Linux/UNIX"], AvailabilityZone: "us-east-1a", StartTime: new Date(), MaxResults: 10 }),
    );
    const p = prices.SpotPriceHistory?.[0];
    assert.equal(prices.SpotPriceHistory?.length, 1);
    assert.equal(p?.InstanceType, "g5.xlarge");
    assert.equal(p?.AvailabilityZone, "us-east-1a");
    assert.equal(p?.ProductDescription, "Linux/UNIX");
    assert.equal(p?.SpotPrice, "0.452300");
    assert.ok(p?.Timestamp instanceof Date);
    standin.setSpotPrice("g5.xlarge", 0.61, "us-east-1a");
    const after = await ec2.send(new DescribeSpotPriceHistoryCommand({ InstanceTypes: ["g5.xlarge"], ProductDescriptions: ["Linux/UNIX"] }));
    assert.deepEqual(
      after.SpotPriceHistory?.map((s) => [s.AvailabilityZone, s.SpotPrice]),
      [["us-east-1a", "0.610000"], ["us-east-1b", "0.430100"], ["us-east-1c", "0.478800"]],
    );
    standin.setSpotPrice("g5.xlarge", 0.4523, "us-east-1a");
  });

  it("launches a hardened spot instance that boots as an sshd accepting the key from its user-data", async () => {
    const sg = await ec2.send(
      new CreateSecurityGroupCommand({
        GroupName: "ftune-run-1",
        Description: "ftune run run-1: SSH from 127.0.0.1/32 only",
        TagSpecifications: [{ ResourceType: "security-group", Tags: [{ Key: "ftune:run-id", Value: "run-1" }] }],
      }),
    );
    assert.match(sg.GroupId ?? "", /^sg-[0-9a-f]{17}$/);
    groupId = sg.GroupId as string;
    await ec2.send(
      new AuthorizeSecurityGroupIngressCommand({
        GroupId: groupId,
        IpPermissions: [{ IpProtocol: "tcp", FromPort: 22, ToPort: 22, IpRanges: [{ CidrIp: "127.0.0.1/32", Description: "ftune runner" }] }],
      }),
    );
    const dup = await sdkError(
      ec2.send(new AuthorizeSecurityGroupIngressCommand({ GroupId: groupId, IpPermissions: [{ IpProtocol: "tcp", FromPort: 22, ToPort: 22, IpRanges: [{ CidrIp: "127.0.0.1/32" }] }] })),
    );
    assert.equal(dup.name, "InvalidPermission.Duplicate");
    const groups = await ec2.send(new DescribeSecurityGroupsCommand({ Filters: [{ Name: "tag:ftune:run-id", Values: ["run-1"] }] }));
    assert.deepEqual(groups.SecurityGroups?.[0]?.IpPermissions?.[0]?.IpRanges, [{ CidrIp: "127.0.0.1/32", Description: "ftune runner" }]);

    const userData = ["#!/bin/bash", 'shutdown -h +90 "ftune: TTL reached"', `echo '${runKey.public}' >> /home/ubuntu/.ssh/authorized_keys`, ""].join("\n");
    const tags = [
      { Key: "ftune:run-id", Value: "run-1" },
      { Key: "Name", Value: "ftune-demo-run-1" },
    ];
    const r = await ec2.send(
      new RunInstancesCommand(
        launchInput({
          UserData: Buffer.from(userData).toString("base64"),
          SecurityGroupIds: [groupId],
          Placement: { AvailabilityZone: "us-east-1b" },
          InstanceMarketOptions: { MarketType: "spot", SpotOptions: { MaxPrice: "0.9", SpotInstanceType: "one-time", InstanceInterruptionBehavior: "terminate" } },
          MetadataOptions: { HttpTokens: "required", HttpEndpoint: "enabled", HttpPutResponseHopLimit: 2 },
          BlockDeviceMappings: [{ DeviceName: "/dev/sda1", Ebs: { VolumeSize: 120, VolumeType: "gp3", Encrypted: true, DeleteOnTermination: true } }],
          InstanceInitiatedShutdownBehavior: "terminate",
          TagSpecifications: [
            { ResourceType: "instance", Tags: tags },
            { ResourceType: "volume", Tags: tags },
          ],
          ClientToken: "run-1-1",
        }),
      ),
    );
    const launched = r.Instances?.[0];
    assert.match(launched?.InstanceId ?? "", /^i-[0-9a-f]{17}$/);
    mainId = launched?.InstanceId as string;
    assert.equal(launched?.State?.Name, "pending");
    assert.equal(launched?.InstanceLifecycle, "spot");
    assert.equal(launched?.Placement?.AvailabilityZone, "us-east-1b");
    assert.equal(launched?.MetadataOptions?.HttpTokens, "required");
    assert.deepEqual(launched?.SecurityGroups?.map((g) => g.GroupId), [groupId]);

    // Everything a hardened launch must carry is in the parsed record.
    const req = standin.launches.at(-1);
    assert.equal(req?.market, "spot");
    assert.deepEqual(req?.spotOptions, { maxPrice: "0.9", spotInstanceType: "one-time", instanceInterruptionBehavior: "terminate" });
    assert.equal(req?.metadataOptions.httpTokens, "required");
    assert.equal(req?.metadataOptions.httpPutResponseHopLimit, 2);
    assert.deepEqual(req?.blockDeviceMappings, [
      { deviceName: "/dev/sda1", ebs: { volumeSize: 120, volumeType: "gp3", encrypted: true, deleteOnTermination: true, iops: undefined, throughput: undefined, kmsKeyId: undefined, snapshotId: undefined } },
    ]);
    assert.equal(req?.instanceInitiatedShutdownBehavior, "terminate");
    assert.equal(req?.keyName, undefined);
    assert.equal(req?.userData, userData);
    assert.deepEqual(req?.tagSpecifications, { instance: { "ftune:run-id": "run-1", Name: "ftune-demo-run-1" }, volume: { "ftune:run-id": "run-1", Name: "ftune-demo-run-1" } });
    assert.equal(req?.clientToken, "run-1-1");
    assert.equal(standin.instances[mainId]?.ttlMinutes, 90);

    // A retried launch with the same ClientToken gets the same instance back, not a second one.
    const again = await ec2.send(new RunInstancesCommand(launchInput({ ClientToken: "run-1-1" })));
    assert.equal(again.Instances?.[0]?.InstanceId, mainId);
    assert.equal(standin.ledger().length, 1);

    const running = await waitFor(mainId, "running");
    const inst = standin.instances[mainId];
    assert.ok(inst?.sshPort && inst.sshUser && inst.sshPid);
    assert.match(running.PrivateIpAddress ?? "", /^127\.0\.10\.\d{1,3}$/);
    assert.equal(running.PublicIpAddress, running.PrivateIpAddress);
    assert.deepEqual(inst.authorizedKeys, [runKey.public.trim()]);

    const tagged = await ec2.send(
      new DescribeInstancesCommand({
        Filters: [
          { Name: "tag:ftune:run-id", Values: ["run-1"] },
          { Name: "tag-key", Values: ["ftune:*"] },
          { Name: "instance-state-name", Values: ["pending", "running"] },
        ],
      }),
    );
    assert.deepEqual(tagged.Reservations?.flatMap((x) => x.Instances?.map((i) => i.InstanceId)), [mainId]);
    const none = await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: "tag:ftune:run-id", Values: ["other"] }] }));
    assert.deepEqual(none.Reservations, []);

    // Pin the host key the way one does on EC2: from cloud-init's fingerprint block on the console.
    const out = await ec2.send(new GetConsoleOutputCommand({ InstanceId: mainId, Latest: true }));
    const text = Buffer.from(out.Output ?? "", "base64").toString("utf8");
    const block = /-----BEGIN SSH HOST KEY FINGERPRINTS-----([\s\S]*?)-----END SSH HOST KEY FINGERPRINTS-----/.exec(text)?.[1] ?? "";
    const fingerprint = /\b(SHA256:[A-Za-z0-9+/=]+)\s+\S+\s+\(ED25519\)/.exec(block)?.[1];
    assert.equal(fingerprint, inst.hostKeyFingerprint);

    const client = await connect(running.PublicIpAddress as string, inst.sshPort, inst.sshUser, runKey.private, fingerprint as string);
    try {
      assert.deepEqual(await exec(client, "echo ok"), { stdout: "ok\n", code: 0 });
    } finally {
      client.end();
    }
    await assert.rejects(connect(running.PublicIpAddress as string, inst.sshPort, inst.sshUser, runKey.private, "SHA256:wrong"));

    // IMDSv2: a token is required, and no interruption is pending.
    const imds = standin.imdsUrlFor(mainId);
    assert.equal((await fetch(`${imds}/latest/meta-data/instance-id`)).status, 401);
    assert.equal((await fetch(`${imds}/latest/api/token`, { method: "PUT" })).status, 400);
    const token = await (await fetch(`${imds}/latest/api/token`, { method: "PUT", headers: { "X-aws-ec2-metadata-token-ttl-seconds": "60" } })).text();
    const headers = { "X-aws-ec2-metadata-token": token };
    assert.equal(await (await fetch(`${imds}/latest/meta-data/instance-id`, { headers })).text(), mainId);
    assert.equal((await fetch(`${imds}/latest/meta-data/spot/instance-action`, { headers })).status, 404);
    assert.equal((await fetch(`${imds}/latest/meta-data/instance-id`, { headers: { "X-aws-ec2-metadata-token": "forged" } })).status, 401);

    const blocked = await sdkError(ec2.send(new DeleteSecurityGroupCommand({ GroupId: groupId })));
    assert.equal(blocked.name, "DependencyViolation");
  });

  it("surfaces capacity faults as the SDK's error names, and falls through to what still has capacity", async () => {
    standin.failCapacity({ instanceType: "g5.xlarge", az: "us-east-1a", market: "spot", code: "InsufficientInstanceCapacity", times: 1 });
    const spot = { InstanceMarketOptions: { MarketType: "spot" as const, SpotOptions: { SpotInstanceType: "one-time" as const } } };
    const err = await sdkError(ec2.send(new RunInstancesCommand(launchInput({ ...spot, Placement: { AvailabilityZone: "us-east-1a" } }))));
    assert.equal(err.name, "InsufficientInstanceCapacity");
    assert.equal(err.$metadata.httpStatusCode, 400);
    assert.match(err.message, /sufficient g5\.xlarge capacity in the Availability Zone you requested \(us-east-1a\)/);
    assert.equal(standin.launches.at(-1)?.error, "InsufficientInstanceCapacity");
    // times: 1 -> the next launch there succeeds.
    await launchAndDiscard(launchInput({ ...spot, Placement: { AvailabilityZone: "us-east-1a" } }));

    standin.failCapacity({ market: "spot", code: "MaxSpotInstanceCountExceeded" });
    assert.equal((await sdkError(ec2.send(new RunInstancesCommand(launchInput(spot))))).name, "MaxSpotInstanceCountExceeded");
    const onDemand = await launchAndDiscard(launchInput());
    assert.equal(onDemand.InstanceLifecycle, undefined);
    standin.clearFaults();

    // Without a placement EC2 chooses: an AZ-specific fault is stepped around.
    standin.failCapacity({ instanceType: "g6.xlarge", az: "us-east-1a", code: "Unsupported" });
    const placed = await launchAndDiscard(launchInput({ InstanceType: "g6.xlarge" }));
    assert.equal(placed.Placement?.AvailabilityZone, "us-east-1b");
    standin.clearFaults();
    standin.failCapacity({ instanceType: "g6.xlarge", code: "InsufficientCapacity" });
    assert.equal((await sdkError(ec2.send(new RunInstancesCommand(launchInput({ InstanceType: "g6.xlarge" }))))).name, "InsufficientCapacity");
    standin.clearFaults();
  });

  it("answers SpotMaxPriceTooLow when MaxPrice is below the spot price", async () => {
    const spot = (max: string) => ({ InstanceMarketOptions: { MarketType: "spot" as const, SpotOptions: { MaxPrice: max, SpotInstanceType: "one-time" as const } } });
    const err = await sdkError(ec2.send(new RunInstancesCommand(launchInput({ ...spot("0.1"), Placement: { AvailabilityZone: "us-east-1a" } }))));
    assert.equal(err.name, "SpotMaxPriceTooLow");
    assert.match(err.message, /price of 0\.1 is lower than the minimum required Spot request fulfillment price of 0\.4523/);
    // Unplaced, EC2 finds the AZ whose price fits (1b: 0.4301).
    const cheap = await launchAndDiscard(launchInput(spot("0.44")));
    assert.equal(cheap.Placement?.AvailabilityZone, "us-east-1b");
  });

  it("placement groups: tagged at creation, required to exist at launch, deleted once", async () => {
    const unknown = await sdkError(ec2.send(new RunInstancesCommand(launchInput({ Placement: { GroupName: "nope" } }))));
    assert.equal(unknown.name, "InvalidPlacementGroup.Unknown");
    await ec2.send(new CreatePlacementGroupCommand({ GroupName: "pg-test", Strategy: "cluster", TagSpecifications: [{ ResourceType: "placement-group", Tags: [{ Key: "ftune:run-id", Value: "r1" }] }] }));
    const dup = await sdkError(ec2.send(new CreatePlacementGroupCommand({ GroupName: "pg-test", Strategy: "cluster" })));
    assert.equal(dup.name, "InvalidPlacementGroup.Duplicate");
    const listed = await ec2.send(new DescribePlacementGroupsCommand({ Filters: [{ Name: "tag:ftune:run-id", Values: ["r1"] }] }));
    assert.deepEqual(listed.PlacementGroups?.map((g) => [g.GroupName, g.Strategy, g.State]), [["pg-test", "cluster", "available"]]);
    await ec2.send(new DeletePlacementGroupCommand({ GroupName: "pg-test" }));
    assert.equal((await sdkError(ec2.send(new DeletePlacementGroupCommand({ GroupName: "pg-test" })))).name, "InvalidPlacementGroup.Unknown");
  });

  it("throttles with 503 RequestLimitExceeded, which the SDK retries by itself", async () => {
    const before = standin.requests.length;
    standin.throttle(2);
    const r = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [mainId] }));
    assert.equal(r.$metadata.attempts, 3);
    assert.deepEqual(
      standin.requests.slice(before).map((q) => [q.action, q.status, q.code]),
      [
        ["DescribeInstances", 503, "RequestLimitExceeded"],
        ["DescribeInstances", 503, "RequestLimitExceeded"],
        ["DescribeInstances", 200, undefined],
      ],
    );
  });

  it("answers protocol errors in EC2's XML error shape", async () => {
    const unknown = await fetch(standin.url, { method: "POST", headers: { ...SIGNED, "content-type": "application/x-www-form-urlencoded" }, body: "Action=Frobnicate&Version=2016-11-15" });
    assert.equal(unknown.status, 400);
    assert.match(await unknown.text(), /^<\?xml[^>]*>\s*<Response><Errors><Error><Code>InvalidAction<\/Code><Message>[^<]+<\/Message><\/Error><\/Errors><RequestID>[0-9a-f-]{36}<\/RequestID><\/Response>$/);
    const unsigned = await fetch(standin.url, { method: "POST", body: "Action=DescribeInstances&Version=2016-11-15" });
    assert.equal(unsigned.status, 401);
    assert.equal((await sdkError(ec2.send(new DescribeInstancesCommand({ InstanceIds: ["i-0123456789abcdef0"] })))).name, "InvalidInstanceID.NotFound");
    assert.equal((await sdkError(ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: "nonsense", Values: ["x"] }] })))).name, "InvalidParameterValue");
    const plain = await sdkError(ec2.send(new RunInstancesCommand(launchInput({ UserData: "#!/bin/bash\necho not base64\n" }))));
    assert.equal(plain.name, "InvalidParameterValue");
    assert.match(plain.message, /BASE64/);
    assert.equal((await sdkError(ec2.send(new RunInstancesCommand(launchInput({ KeyName: "my-key" }))))).name, "InvalidKeyPair.NotFound");
  });

  it("interrupts a spot instance: IMDSv2 notice first, then Server.SpotInstanceTermination", async () => {
    const r = await ec2.send(new RunInstancesCommand(launchInput({ InstanceMarketOptions: { MarketType: "spot" }, MetadataOptions: { HttpTokens: "required" } })));
    const id = r.Instances?.[0]?.InstanceId as string;
    await waitFor(id, "running");
    const pid = standin.instances[id]?.sshPid as number;
    assert.ok(isPidAlive(pid));

    const imds = standin.imdsUrlFor(id);
    const token = await (await fetch(`${imds}/latest/api/token`, { method: "PUT", headers: { "X-aws-ec2-metadata-token-ttl-seconds": "300" } })).text();
    const headers = { "X-aws-ec2-metadata-token": token };
    // A token is per instance.
    assert.equal((await fetch(`${standin.imdsUrlFor(mainId)}/latest/meta-data/instance-id`, { headers })).status, 401);

    const t0 = Date.now();
    standin.interrupt(id, { noticeMs: 700 });
    const notice = await fetch(`${imds}/latest/meta-data/spot/instance-action`, { headers });
    assert.equal(notice.status, 200);
    const body = (await notice.json()) as { action: string; time: string };
    assert.equal(body.action, "terminate");
    assert.match(body.time, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    assert.ok(Math.abs(Date.parse(body.time) - (t0 + 700)) < 1500);
    assert.equal((await describeOne(id)).State?.Name, "running", "still running during the notice");

    const gone = await waitFor(id, "terminated");
    assert.ok(Date.now() - t0 >= 700);
    assert.equal(gone.StateReason?.Code, "Server.SpotInstanceTermination");
    assert.equal(isPidAlive(pid), false);
  });

  it("terminates: shutting-down, then terminated with the sshd gone; then the security group deletes", async () => {
    const pid = standin.instances[mainId]?.sshPid as number;
    assert.ok(isPidAlive(pid));
    const r = await ec2.send(new TerminateInstancesCommand({ InstanceIds: [mainId] }));
    assert.deepEqual(r.TerminatingInstances?.[0]?.PreviousState, { Code: 16, Name: "running" });
    assert.deepEqual(r.TerminatingInstances?.[0]?.CurrentState, { Code: 32, Name: "shutting-down" });
    assert.equal((await sdkError(ec2.send(new DeleteSecurityGroupCommand({ GroupId: groupId })))).name, "DependencyViolation");

    const gone = await waitFor(mainId, "terminated");
    assert.equal(gone.StateReason?.Code, "Client.UserInitiatedShutdown");
    assert.equal(isPidAlive(pid), false);
    assert.ok(standin.ledger().find((e) => e.id === mainId)?.terminatedAt instanceof Date);

    await ec2.send(new DeleteSecurityGroupCommand({ GroupId: groupId }));
    assert.equal((await sdkError(ec2.send(new DescribeSecurityGroupsCommand({ GroupIds: [groupId] })))).name, "InvalidGroup.NotFound");
  });

  it("a lost RunInstances response is retried by the SDK with the same idempotency token: one instance", async () => {
    const before = standin.ledger().length;
    standin.dropResponse("RunInstances");
    const r = await ec2.send(new RunInstancesCommand(launchInput({ InstanceType: "t3.micro" })));
    assert.equal(r.$metadata.attempts, 2);
    const sent = standin.requests.filter((q) => q.action === "RunInstances").slice(-2);
    assert.deepEqual(sent.map((q) => q.dropped), [true, undefined]);
    // The SDK fills ClientToken itself (an idempotency token) and reuses it on the retry.
    assert.match(sent[0]?.params["ClientToken"] ?? "", /^[0-9a-f-]{36}$/);
    assert.equal(sent[1]?.params["ClientToken"], sent[0]?.params["ClientToken"]);
    assert.equal(standin.ledger().length, before + 1);
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [r.Instances?.[0]?.InstanceId as string] }));
  });

  it("a shutdown from inside the box stops the instance unless it launched with shutdown behaviour terminate", async () => {
    const r = await ec2.send(new RunInstancesCommand(launchInput({ InstanceType: "t3.micro" })));
    const id = r.Instances?.[0]?.InstanceId as string;
    await waitFor(id, "running");
    standin.shutdownFromInside(id); // e.g. the user-data TTL fired
    const stopped = await waitFor(id, "stopped");
    assert.equal(stopped.StateReason?.Code, "Client.InstanceInitiatedShutdown");
    assert.deepEqual(standin.orphans().instances.map((e) => [e.id, e.state]), [[id, "stopped"]]);
    assert.equal(isPidAlive(standin.instances[id]?.sshPid as number), false);
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
    await waitFor(id, "terminated");
  });

  it("leaves no orphans: every instance launched here ended terminated", async () => {
    for (const e of standin.ledger()) if (e.state !== "terminated") await standin.waitForState(e.id, "terminated");
    assert.deepEqual(standin.orphans(), { instances: [], securityGroups: [], placementGroups: [] });
    const ledger = standin.ledger();
    assert.equal(ledger.length, 8);
    assert.ok(ledger.every((e) => e.terminatedAt instanceof Date && e.launchedAt <= e.terminatedAt));
    assert.deepEqual(
      ledger.filter((e) => e.market === "on-demand").map((e) => e.type),
      ["g5.xlarge", "g6.xlarge", "t3.micro", "t3.micro"],
    );
  });
});
