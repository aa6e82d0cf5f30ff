// The box agent (python3 standard library only): fetches inputs through presigned URLs with sha256 checks and
// uploads outputs through presigned PUTs, against s3rver and a local store.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes, createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { presignFiles, type FileEntry } from "../src/store/index.js";
import { teardownAll } from "./support/processes.js";
import { REPO } from "./helpers/cli.js";
import { fileBackend, s3Backend, type Backend } from "./helpers/stores.js";

const AGENT = join(REPO, "src", "agent", "ftune_agent.py");
const work = mkdtempSync(join(tmpdir(), "ftune-agent-test-"));
const sha256 = (b: Buffer): string => createHash("sha256").update(b).digest("hex");
after(async () => {
  rmSync(work, { recursive: true, force: true });
  await teardownAll();
});

function agent(...args: string[]): { code: number | null; stderr: string } {
  const r = spawnSync("python3", [AGENT, ...args], { encoding: "utf8", env: { PATH: process.env.PATH!, HOME: work } });
  return { code: r.status, stderr: r.stderr };
}

for (const make of [fileBackend, () => s3Backend("agent")]) {
  describe("box agent", () => {
    let b: Backend;
    const files: FileEntry[] = [];
    before(async () => {
      b = await make();
      for (const [path, size] of [["model/config.json", 100], ["model/model.safetensors", 5 << 20], ["data/train.jsonl", 30_000]] as const) {
        const data = randomBytes(size);
        await b.store.putBytes(`inputs/${path}`, data);
        files.push({ path, size, sha256: sha256(data) });
      }
    });
    after(async () => b?.stop());

    it("fetches every input through presigned URLs, verified, and keeps what is already right", async () => {
      const manifest = join(work, `${b.name}-inputs.json`);
      writeFileSync(manifest, JSON.stringify(await presignFiles(b.store, "inputs", files, 3600)));
      const dest = join(work, `${b.name}-box`);
      const first = agent("fetch", "--manifest", manifest, "--dest", dest);
      assert.equal(first.code, 0, first.stderr);
      assert.match(first.stderr, /fetched 3/);
      for (const f of files) assert.equal(sha256(readFileSync(join(dest, f.path))), f.sha256);
      const again = agent("fetch", "--manifest", manifest, "--dest", dest);
      assert.match(again.stderr, /kept 3/);
    });

    it("refuses a file that does not match its sha256 and leaves no partial file", async () => {
      const bad = (await presignFiles(b.store, "inputs", files, 3600)).map((f, i) => (i === 1 ? { ...f, sha256: "0".repeat(64) } : f));
      const manifest = join(work, `${b.name}-bad.json`);
      writeFileSync(manifest, JSON.stringify(bad));
      const dest = join(work, `${b.name}-box-bad`);
      const r = agent("fetch", "--manifest", manifest, "--dest", dest);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /FAILED model\/model\.safetensors: .*does not match the manifest's 0{64}/);
      assert.equal(existsSync(join(dest, "model/model.safetensors")), false);
      assert.equal(existsSync(join(dest, "model/model.safetensors.ftune-part")), false);
      assert.equal(agent("fetch", "--manifest", join(work, "missing.json"), "--dest", dest).code, 1);
    });

    if (make !== fileBackend) {
      it("uploads outputs through presigned PUT URLs", async () => {
        const local = join(work, "adapter_model.safetensors");
        const data = randomBytes(200_000);
        writeFileSync(local, data);
        const manifest = join(work, "outputs.json");
        writeFileSync(manifest, JSON.stringify([{ path: local, url: await b.store.presignPut("outputs/adapter_model.safetensors", 3600) }]));
        const r = agent("upload", "--manifest", manifest);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(sha256((await b.store.getBytes("outputs/adapter_model.safetensors"))!), sha256(data));
      });
    }
  });
}

/** A running spot instance on a fresh EC2 stand-in (its IMDS serves the notices), terminated and stopped after fn. */
async function withSpotInstance(fn: (ec2: import("./support/ec2.js").Ec2StandIn, id: string) => Promise<void>): Promise<void> {
  const { startEc2StandIn } = await import("./support/ec2.js");
  const { EC2Client, RunInstancesCommand, TerminateInstancesCommand } = await import("@aws-sdk/client-ec2");
  const ec2 = await startEc2StandIn({ bootDelayMs: 50 });
  try {
    const client = new EC2Client({ region: "us-east-1", endpoint: ec2.url, credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "x" } });
    const imageId = ec2.images.find((i) => i.architecture === "x86_64")!.imageId;
    const id = (await client.send(new RunInstancesCommand({ ImageId: imageId, InstanceType: "g5.xlarge", MinCount: 1, MaxCount: 1, InstanceMarketOptions: { MarketType: "spot" } }))).Instances![0]!.InstanceId!;
    await ec2.waitForState(id, "running");
    try {
      await fn(ec2, id);
    } finally {
      await client.send(new TerminateInstancesCommand({ InstanceIds: [id] })).catch(() => undefined);
      await ec2.waitForState(id, "terminated", 15_000).catch(() => undefined);
    }
  } finally {
    await ec2.stop();
  }
}

describe("box agent: spot notices", () => {
  it("creates the checkpoint trigger and writes the marker as soon as IMDSv2 shows a spot interruption notice", async () => {
    const { spawnTracked, killTracked } = await import("./support/processes.js");
    await withSpotInstance(async (ec2, id) => {
      const marker = join(work, "spot-notice.json");
      const heartbeat = join(work, "heartbeat");
      const trigger = join(work, "checkpoint-now");
      const child = spawnTracked("python3", [AGENT, "watch-spot", "--marker", marker, "--trigger", trigger, "--interval", "0.1", "--heartbeat", heartbeat], {
        env: { PATH: process.env.PATH!, FTUNE_IMDS_URL: ec2.imdsUrlFor(id) },
        stdio: "ignore",
      });
      const waitFor = async (path: string): Promise<boolean> => {
        for (let i = 0; i < 100; i++) {
          if (existsSync(path)) return true;
          await new Promise((r) => setTimeout(r, 50));
        }
        return false;
      };
      assert.ok(await waitFor(heartbeat), "agent heartbeat");
      assert.equal(existsSync(marker), false, "no notice before the interruption");
      assert.equal(existsSync(trigger), false, "no checkpoint request before the interruption");
      ec2.interrupt(id, { noticeMs: 4000 });
      assert.ok(await waitFor(marker), "marker written after the notice");
      assert.ok(existsSync(trigger), "the trainer's checkpoint trigger is created with the marker");
      const notice = JSON.parse(readFileSync(marker, "utf8")) as { action: string; time: string; noticed_at: string };
      assert.equal(notice.action, "terminate");
      assert.ok(Date.parse(notice.time) > 0 && Date.parse(notice.noticed_at) > 0);
      assert.ok(ec2.imdsRequests.some((q) => q.method === "PUT"), "IMDSv2 token requested first");
      await killTracked(child);
      await ec2.waitForState(id, "terminated", 15_000);
    });
  });

  it("stops its job's process group once a checkpoint newer than the notice is complete", async () => {
    const { spawnTracked, isPidAlive } = await import("./support/processes.js");
    const { mkdirSync } = await import("node:fs");
    await withSpotInstance(async (ec2, id) => {
      const out = join(work, "stop-output");
      const checkpoint = (step: number): void => {
        mkdirSync(join(out, `checkpoint-${step}`), { recursive: true });
        writeFileSync(join(out, `checkpoint-${step}`, "trainer_state.json"), "{}");
      };
      checkpoint(10);
      mkdirSync(join(out, "checkpoint-20")); // being written: no trainer_state.json yet
      const marker = join(work, "stop-notice.json");
      // The job: a "trainer" (sleep) and the agent in one process group, as the box job script runs them.
      const job = spawnTracked("bash", ["-c", `sleep 60 & python3 ${AGENT} watch-spot --marker ${marker} --trigger ${join(work, "stop-trigger")} --output ${out} --stop-after-checkpoint --interval 0.05; wait`], {
        env: { PATH: process.env.PATH!, FTUNE_IMDS_URL: ec2.imdsUrlFor(id) },
        stdio: "ignore",
        detached: true,
      });
      const exited = new Promise<NodeJS.Signals | null>((r) => job.once("exit", (_code, sig) => r(sig)));
      const until = async (what: string, ok: () => boolean): Promise<void> => {
        for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 25));
        assert.ok(ok(), what);
      };
      ec2.interrupt(id, { noticeMs: 10_000 });
      await until("the notice marker", () => existsSync(marker));
      const notice = JSON.parse(readFileSync(marker, "utf8")) as { checkpoint_step_at_notice: number; stopped_after?: string };
      assert.equal(notice.checkpoint_step_at_notice, 10, "an incomplete checkpoint does not count");
      await new Promise((r) => setTimeout(r, 200));
      assert.ok(isPidAlive(job.pid!), "no stop before a new checkpoint is complete");
      checkpoint(20);
      assert.equal(await exited, "SIGTERM", "the job was stopped");
      assert.equal((JSON.parse(readFileSync(marker, "utf8")) as { stopped_after?: string }).stopped_after, "checkpoint-20");
      await until("the trainer stopped with its group", () => {
        try {
          process.kill(-job.pid!, 0);
          return false;
        } catch {
          return true;
        }
      });
    });
  });
});
