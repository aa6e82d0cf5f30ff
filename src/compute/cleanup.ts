// `ftune cleanup`: the third safety layer. Whatever the runner and the box's own TTL missed, a scheduled run
// terminates every ftune-tagged instance past its ftune:expires-at (or older than --older-than) and deletes the
// security groups and placement groups of runs whose instances are gone.
import {
  DeletePlacementGroupCommand, DeleteSecurityGroupCommand, DescribeInstancesCommand, DescribePlacementGroupsCommand, DescribeSecurityGroupsCommand, EC2Client,
  TerminateInstancesCommand,
  type Tag,
} from "@aws-sdk/client-ec2";
import { TAG } from "./ec2.js";

export interface CleanupItem {
  kind: "instance" | "security-group" | "placement-group";
  id: string;
  runId?: string;
  state?: string;
  expiresAt?: string;
  action: "terminated" | "deleted" | "would terminate" | "would delete" | "kept" | "failed";
  why: string;
}

const tag = (tags: Tag[] | undefined, key: string): string | undefined => tags?.find((t) => t.Key === key)?.Value;

export interface CleanupOptions {
  olderThanMs?: number;
  dryRun?: boolean;
  now?: Date;
  /**
   * Only this run's resources, whatever their expiry: the action's always() step after the run's job, which may have
   * been killed before it could release its host. Waits for the instances to terminate, then deletes the group.
   */
  runId?: string;
  /** With runId: how long to wait for termination before deleting the security group (default 5 min). */
  waitMs?: number;
  pollMs?: number;
}

export async function cleanup(ec2: EC2Client, opts: CleanupOptions = {}): Promise<CleanupItem[]> {
  const now = opts.now ?? new Date();
  const out: CleanupItem[] = [];
  const liveRuns = new Set<string>();
  const terminated: string[] = [];
  const runFilter = opts.runId ? [{ Name: `tag:${TAG.runId}`, Values: [opts.runId] }] : [{ Name: "tag-key", Values: [TAG.runId] }];
  let token: string | undefined;
  do {
    const r = await ec2.send(
      new DescribeInstancesCommand({
        Filters: [...runFilter, { Name: "instance-state-name", Values: ["pending", "running", "stopping", "stopped", "shutting-down"] }],
        NextToken: token,
      }),
    );
    for (const res of r.Reservations ?? []) {
      for (const i of res.Instances ?? []) {
        const runId = tag(i.Tags, TAG.runId);
        const expiresAt = tag(i.Tags, TAG.expiresAt);
        const launched = i.LaunchTime ? new Date(i.LaunchTime).getTime() : now.getTime();
        const expired = expiresAt !== undefined && !Number.isNaN(Date.parse(expiresAt)) && Date.parse(expiresAt) <= now.getTime();
        const tooOld = opts.olderThanMs !== undefined && now.getTime() - launched >= opts.olderThanMs;
        const item: CleanupItem = { kind: "instance", id: i.InstanceId!, runId, state: i.State?.Name, expiresAt, action: "kept", why: "not expired" };
        if (i.State?.Name === "shutting-down") {
          item.why = "already shutting down";
          terminated.push(i.InstanceId!);
        } else if (expired || tooOld || opts.runId) {
          item.why = opts.runId ? `its run ${opts.runId} is over` : expired ? `expired at ${expiresAt}` : `launched ${Math.round((now.getTime() - launched) / 60_000)} min ago`;
          if (opts.dryRun) item.action = "would terminate";
          else {
            try {
              await ec2.send(new TerminateInstancesCommand({ InstanceIds: [i.InstanceId!] }));
              item.action = "terminated";
              terminated.push(i.InstanceId!);
            } catch (e) {
              item.action = "failed";
              item.why += `; ${(e as Error).message}`;
            }
          }
        }
        // A shutting-down instance still holds its group; with --run-id it is waited for below, so it does not count.
        if (item.action === "kept" && runId && !(opts.runId && i.State?.Name === "shutting-down")) liveRuns.add(runId);
        out.push(item);
      }
    }
    token = r.NextToken;
  } while (token);

  if (opts.runId && terminated.length && !opts.dryRun) {
    // A group cannot be deleted while an instance still holds it.
    const deadline = Date.now() + (opts.waitMs ?? 5 * 60_000);
    while (Date.now() < deadline) {
      const r = await ec2.send(new DescribeInstancesCommand({ InstanceIds: terminated }));
      const states = (r.Reservations ?? []).flatMap((x) => x.Instances ?? []).map((i) => i.State?.Name);
      if (states.every((st) => st === "terminated")) break;
      await new Promise((resolve) => setTimeout(resolve, opts.pollMs ?? 3000));
    }
  }
  // Groups (placement groups of multi-node runs, security groups) go once no live instance of their run holds them.
  const removeGroup = async (kind: CleanupItem["kind"], id: string, tags: Tag[] | undefined, del: () => Promise<unknown>): Promise<void> => {
    const runId = tag(tags, TAG.runId);
    const expiresAt = tag(tags, TAG.expiresAt);
    const item: CleanupItem = { kind, id, runId, expiresAt, action: "kept", why: "its run still has an instance" };
    // A run that is still acquiring has its groups but no instance yet: on a schedule, only expired runs' groups go.
    const young = !opts.runId && expiresAt !== undefined && !(Date.parse(expiresAt) <= now.getTime());
    if (young && (!runId || !liveRuns.has(runId))) item.why = `its run may still be starting (expires at ${expiresAt})`;
    else if (!runId || !liveRuns.has(runId)) {
      item.why = "no live instance of its run";
      if (opts.dryRun) item.action = "would delete";
      else {
        try {
          await del();
          item.action = "deleted";
        } catch (e) {
          // Still held by an instance that is shutting down: the next scheduled run removes it.
          item.action = "failed";
          item.why += `; ${(e as Error).name}: ${(e as Error).message}`;
        }
      }
    }
    out.push(item);
  };
  const placement = await ec2.send(new DescribePlacementGroupsCommand({ Filters: [...runFilter, { Name: "state", Values: ["available"] }] }));
  for (const g of placement.PlacementGroups ?? []) {
    await removeGroup("placement-group", g.GroupName!, g.Tags, () => ec2.send(new DeletePlacementGroupCommand({ GroupName: g.GroupName })));
  }
  const groups = await ec2.send(new DescribeSecurityGroupsCommand({ Filters: runFilter }));
  for (const g of groups.SecurityGroups ?? []) {
    await removeGroup("security-group", g.GroupId!, g.Tags, () => ec2.send(new DeleteSecurityGroupCommand({ GroupId: g.GroupId })));
  }
  return out;
}

/** "6h", "90m", "2d", "3600s" -> milliseconds. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([smhd])$/.exec(text.trim());
  if (!m) return undefined;
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as "s" | "m" | "h" | "d"];
}
