// Store transfer benchmark: a ~1 GB model-shaped folder (large safetensors shards + small config/tokenizer files)
// uploaded with `ftune models mirror --from` and downloaded with `ftune models pull`, against
// `/usr/bin/aws s3 cp --recursive` (default settings) on the same s3rver in the same run. Prints both times, the
// ratios and ftune's peak RSS (VmHWM from /proc). Size with FTUNE_BENCH_MB (default 1024).
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startS3Server } from "../test/support/s3.js";
import { teardownAll } from "../test/support/processes.js";

const MB = 1_000_000;
const MiB = 1 << 20;
const totalMB = Number(process.env.FTUNE_BENCH_MB ?? 1024);
const work = mkdtempSync(join(tmpdir(), "ftune-bench-store-"));
const src = join(work, "model");

/** Shards like a 7B checkpoint split small: 3 equal big files, one smaller, plus the small files around them. */
function makeModel(): number {
  mkdirSync(src, { recursive: true });
  const block = randomBytes(16 * MiB);
  const shard = Math.floor((totalMB * MB * 0.3) / MiB) * MiB;
  const sizes: Record<string, number> = {
    "model-00001-of-00004.safetensors": shard,
    "model-00002-of-00004.safetensors": shard,
    "model-00003-of-00004.safetensors": shard,
    "model-00004-of-00004.safetensors": Math.floor((totalMB * MB * 0.1) / MiB) * MiB,
    "tokenizer.json": 1_800_000,
    "tokenizer.model": 500_000,
  };
  let total = 0;
  let n = 0;
  for (const [name, size] of Object.entries(sizes)) {
    const parts: Buffer[] = [];
    for (let off = 0; off < size; off += block.length) {
      const piece = Buffer.from(block.subarray(0, Math.min(block.length, size - off)));
      piece.writeUInt32LE(n++, 0); // no two blocks alike
      parts.push(piece);
    }
    writeFileSync(join(src, name), Buffer.concat(parts));
    total += size;
  }
  for (const name of ["config.json", "generation_config.json", "tokenizer_config.json", "special_tokens_map.json", "model.safetensors.index.json"]) {
    const body = JSON.stringify({ name, pad: "x".repeat(500) });
    writeFileSync(join(src, name), body);
    total += body.length;
  }
  return total;
}

interface Timed {
  seconds: number;
  peakRssMB?: number;
  stdout: string;
}

/** Runs a command, timing it and sampling its peak RSS (VmHWM is a high-water mark, so sampling finds the peak). */
function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let peak = 0;
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const poll = setInterval(() => {
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"));
        if (m) peak = Math.max(peak, Number(m[1]) / 1024);
      } catch {
        // exited between checks
      }
    }, 20);
    child.once("error", reject);
    child.once("exit", (code) => {
      clearInterval(poll);
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      if (code !== 0) reject(new Error(`${cmd} ${args.join(" ")} exited ${code}: ${stderr}`));
      else resolve({ seconds, peakRssMB: peak || undefined, stdout });
    });
  });
}

const s3 = await startS3Server({ buckets: ["bench"] });
try {
  console.log(`preparing a ${totalMB} MB model-shaped folder...`);
  const bytes = makeModel();
  const env = { ...process.env, ...s3.awsCliEnv(), AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" };
  const store = ["--store", "s3://bench/ftune", "--endpoint", s3.endpoint, "--path-style", "--checksums", "when_required"];
  const cli = [process.execPath, "dist/cli.js"] as const;
  const aws = (args: string[]): Promise<Timed> => timed("/usr/bin/aws", ["--endpoint-url", s3.endpoint, "--only-show-errors", ...args], env);

  const ftuneUp = await timed(cli[0], [cli[1], "models", "mirror", "bench/model", "--from", src, "--revision", "v1", ...store, "--json"], env);
  const awsUp = await aws(["s3", "cp", "--recursive", src, "s3://bench/aws/"]);
  const ftuneDown = await timed(cli[0], [cli[1], "models", "pull", "bench/model", "--revision", "v1", "--to", join(work, "ftune-pulled"), ...store, "--json"], env);
  const awsDown = await aws(["s3", "cp", "--recursive", "s3://bench/aws/", join(work, "aws-pulled")]);

  const mbps = (t: Timed): string => `${(bytes / MB / t.seconds).toFixed(0)} MB/s`;
  const row = (what: string, f: Timed, a: Timed): void => {
    console.log(
      `${what.padEnd(9)} ftune ${f.seconds.toFixed(2)} s (${mbps(f)}), awscli ${a.seconds.toFixed(2)} s (${mbps(a)}): ftune is ${(a.seconds / f.seconds).toFixed(2)}x awscli; ftune peak RSS ${f.peakRssMB?.toFixed(0)} MB, awscli ${a.peakRssMB?.toFixed(0)} MB`,
    );
  };
  console.log(`\nstore: ${(bytes / MB).toFixed(0)} MB in ${Object.keys(JSON.parse(ftuneUp.stdout) as object).length ? (JSON.parse(ftuneUp.stdout) as { files: number }).files : "?"} files, s3rver on loopback, same run`);
  row("upload", ftuneUp, awsUp);
  row("download", ftuneDown, awsDown);
  console.log("targets: upload >= 1.5x awscli, download >= 3x awscli (ftune verifies sha256 of every file; awscli does not)");
} finally {
  await s3.stop();
  rmSync(work, { recursive: true, force: true });
  await teardownAll();
}
