// What the end-to-end runs on the EC2 stand-in share: the compute and storage part of a config that trains a dry run
// on stand-in spot instances with s3rver as the store, the environment that points the CLI at the stand-ins (with
// fast polls), and the no-orphans check every such suite runs after each test.
import assert from "node:assert/strict";
import { userInfo } from "node:os";
import type { Ec2StandIn } from "../support/ec2.js";

export interface Ec2RunOptions {
  sshPort: number;
  /** compute.workdir: where each simulated box keeps its run folders. */
  workdir: string;
  storeUrl: string;
  s3Endpoint: string;
  instanceTypes?: string[];
  availabilityZones?: string[];
}

/** YAML lines: compute on the EC2 stand-in (login as this user, SSH only from loopback) and the s3rver store. */
export function ec2ConfigLines(o: Ec2RunOptions): string[] {
  return [
    "compute:",
    "  provider: ec2",
    "  region: us-east-1",
    `  instance_types: [${(o.instanceTypes ?? ["g5.xlarge", "g6.xlarge"]).join(", ")}]`,
    ...(o.availabilityZones ? [`  availability_zones: [${o.availabilityZones.join(", ")}]`] : []),
    `  ami_user: ${userInfo().username}`,
    `  ssh_port: ${o.sshPort}`,
    "  ssh_cidr: 127.0.0.1/32",
    `  workdir: ${o.workdir}`,
    "storage:",
    `  url: ${o.storeUrl}`,
    `  endpoint: ${o.s3Endpoint}`,
    "  force_path_style: true",
    "  checksums: when_required",
  ];
}

/** The CLI's environment for the stand-ins: EC2 endpoint, the IMDS per instance, and polls fast enough for tests. */
export function ec2RunEnv(ec2: Ec2StandIn, stepSeconds: number): Record<string, string> {
  return {
    AWS_ENDPOINT_URL_EC2: ec2.url,
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
    HF_ENDPOINT: "http://127.0.0.1:9",
    FTUNE_DRYRUN_STEP_SECONDS: String(stepSeconds),
    FTUNE_POLL_MS: "150",
    FTUNE_SPOT_POLL_SECONDS: "0.1",
    FTUNE_EC2_POLL_MS: "50",
    FTUNE_TEST_IMDS_URL: `${ec2.imdsUrl}/i/{instance_id}`,
  };
}

/** No instance, security group or placement group may outlive a test. */
export function assertNoOrphans(ec2: Ec2StandIn): void {
  ec2.clearFaults();
  const o = ec2.orphans();
  assert.deepEqual([o.instances.map((i) => i.id), o.securityGroups.map((g) => g.groupId), o.placementGroups.map((g) => g.groupName)], [[], [], []], "orphans left behind");
}
