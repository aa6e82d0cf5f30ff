// `ftune cleanup [--older-than 6h] [--dry-run]`: terminate ftune-tagged instances past their expiry and delete the
// security groups left by runs that are gone. Meant for a scheduled workflow (the third safety layer).
import { EC2Client } from "@aws-sdk/client-ec2";
import { Command } from "commander";
import { cleanup, parseDuration } from "../compute/index.js";
import { EXIT_INFRA, EXIT_OK, UserError } from "../util/errors.js";
import { ec2PollFromEnv, loadValidConfig, setOption } from "./store-flags.js";

export function cleanupCommand(setExit: (code: number) => void): Command {
  return new Command("cleanup")
    .description("terminate ftune-tagged EC2 instances past their ftune:expires-at (or older than --older-than) and delete orphaned security groups")
    .option("--older-than <duration>", "also terminate instances launched longer ago than this (e.g. 6h, 90m, 2d)")
    .option("--dry-run", "list what would be removed, remove nothing")
    .option("--region <region>", "AWS region (default: the config's compute.region, else AWS_REGION)")
    .option("--run-id <id>", "only this run's instances and security group, expired or not (the action's always() step)")
    .option("--config <file>", "with --run-id: the run's config; nothing to do unless its compute.provider is ec2")
    .addOption(setOption())
    .option("--json", "print one JSON object: {items: [{kind, id, runId, state, expiresAt, action, why}]}")
    .action(async (flags: { olderThan?: string; dryRun?: boolean; region?: string; json?: boolean; runId?: string; config?: string; set?: string[] }) => {
      const cfg = flags.config ? loadValidConfig(flags.config, flags.set).config : undefined;
      if (cfg && cfg.compute.provider !== "ec2") {
        process.stdout.write(flags.json ? `${JSON.stringify({ items: [] })}\n` : `nothing to release: compute.provider is ${cfg.compute.provider}\n`);
        return setExit(EXIT_OK);
      }
      const region = flags.region ?? cfg?.compute.region ?? undefined;
      const olderThanMs = flags.olderThan === undefined ? undefined : parseDuration(flags.olderThan);
      if (flags.olderThan !== undefined && olderThanMs === undefined) throw new UserError(`--older-than ${flags.olderThan}: expected a duration like 6h, 90m, 2d`);
      const ec2 = new EC2Client({ ...(region ? { region } : {}), maxAttempts: 6 });
      const items = await cleanup(ec2, { olderThanMs, dryRun: flags.dryRun, runId: flags.runId, pollMs: ec2PollFromEnv()?.pollMs });
      if (flags.json) process.stdout.write(`${JSON.stringify({ items })}\n`);
      else if (items.length === 0) process.stdout.write("no ftune-tagged instances or security groups\n");
      else for (const i of items) process.stdout.write(`${i.action.padEnd(15)} ${i.kind.padEnd(14)} ${i.id.padEnd(22)} run ${i.runId ?? "?"}: ${i.why}\n`);
      setExit(items.some((i) => i.action === "failed") ? EXIT_INFRA : EXIT_OK);
    });
}
