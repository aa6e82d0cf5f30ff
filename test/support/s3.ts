// An S3 stand-in: s3rver in a child process on 127.0.0.1, with its own temp dir and a port the OS picked.
import type { ChildProcess } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { killTracked, makeTempDir, removeTempDir, spawnTracked } from "./processes.js";

export interface S3StandIn {
  endpoint: string;
  port: number;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** Where s3rver keeps buckets and objects. */
  dir: string;
  pid: number;
  /** Environment for a child that talks to this server with the AWS CLI: the caller's env minus every AWS_*
   * setting (profiles, CA bundles, real credentials), plus this server's credentials and region. */
  awsCliEnv(base?: NodeJS.ProcessEnv): Record<string, string>;
  stop(): Promise<void>;
}

export interface S3StandInOptions {
  buckets?: string[];
  startTimeoutMs?: number;
}

const CHILD = fileURLToPath(new URL("./s3rver-child.mjs", import.meta.url));
// s3rver accepts exactly this key pair and does not check V4 signatures.
const ACCESS_KEY = "S3RVER";
const SECRET_KEY = "S3RVER";
const REGION = "us-east-1";

function waitReady(child: ChildProcess, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let out = "";
    let err = "";
    const fail = (why: string): void => {
      clearTimeout(timer);
      reject(new Error(`s3rver did not start: ${why}\nstdout: ${out}\nstderr: ${err}`));
    };
    const timer = setTimeout(() => fail(`no READY line after ${timeoutMs} ms`), timeoutMs);
    child.stderr?.setEncoding("utf8").on("data", (d: string) => (err += d));
    child.stdout?.setEncoding("utf8").on("data", (d: string) => {
      out += d;
      const m = /^S3RVER_READY (\d+)$/m.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once("close", (code, sig) => fail(`exited early (code ${code}, signal ${sig})`));
    child.once("error", (e) => fail(e.message));
  });
}

export async function startS3Server(opts: S3StandInOptions = {}): Promise<S3StandIn> {
  const { buckets = [], startTimeoutMs = 20_000 } = opts;
  for (const b of buckets) if (b.includes(",")) throw new Error(`bad bucket name: ${b}`);
  const dir = await makeTempDir("ftune-s3");
  const child = spawnTracked(process.execPath, [CHILD, join(dir, "data"), buckets.join(",")], {
    stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, NODE_OPTIONS: "--openssl-legacy-provider" },
  });
  let port: number;
  try {
    port = await waitReady(child, startTimeoutMs);
  } catch (e) {
    await killTracked(child);
    await removeTempDir(dir);
    throw e;
  }
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    port,
    accessKeyId: ACCESS_KEY,
    secretAccessKey: SECRET_KEY,
    region: REGION,
    dir,
    pid: child.pid as number,
    awsCliEnv(base = process.env) {
      const env: Record<string, string> = {};
      for (const [k, v] of Object.entries(base)) if (v !== undefined && !k.startsWith("AWS_")) env[k] = v;
      return {
        ...env,
        AWS_ACCESS_KEY_ID: ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY: SECRET_KEY,
        AWS_DEFAULT_REGION: REGION,
        AWS_REGION: REGION,
        // Keep the CLI off ~/.aws and off the instance-metadata address (169.254.169.254 is not loopback).
        AWS_CONFIG_FILE: join(dir, "aws-config-absent"),
        AWS_SHARED_CREDENTIALS_FILE: join(dir, "aws-credentials-absent"),
        AWS_EC2_METADATA_DISABLED: "true",
        AWS_PAGER: "",
      };
    },
    async stop() {
      await killTracked(child);
      await removeTempDir(dir);
    },
  };
}
