// Both store backends for a shared suite: a temp folder (file://) and s3rver (s3://, through the real AWS
// credential chain: the environment variables, as in CI with OIDC-provided keys).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStore, type Store, type StoreOptions } from "../../src/store/index.js";
import { startS3Server, type S3StandIn } from "../support/s3.js";

export interface Backend {
  name: "file" | "s3";
  store: Store;
  url: string;
  /** Store options that reach this backend (s3: endpoint, path style, checksums). */
  options: StoreOptions;
  /** Environment for a child process (CLI, awscli) that should reach the same store. */
  env: Record<string, string>;
  s3?: S3StandIn;
  stop(): Promise<void>;
}


export const BUCKET = "ftune-store";

/** Points this process's AWS SDK at the stand-in, like `aws configure` would. */
function useS3Env(s3: S3StandIn): Record<string, string> {
  const env = {
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    AWS_REGION: s3.region,
    AWS_EC2_METADATA_DISABLED: "true",
  };
  for (const k of ["AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_CA_BUNDLE"]) delete process.env[k];
  Object.assign(process.env, env);
  return env;
}

export async function fileBackend(): Promise<Backend> {
  const dir = mkdtempSync(join(tmpdir(), "ftune-filestore-"));
  const url = `file://${dir}`;
  return { name: "file", store: openStore(url), url, options: {}, env: {}, stop: async () => rmSync(dir, { recursive: true, force: true }) };
}

export async function s3Backend(prefix = "pre/fix", extra: StoreOptions = {}): Promise<Backend> {
  const s3 = await startS3Server({ buckets: [BUCKET] });
  const env = useS3Env(s3);
  const options: StoreOptions = { endpoint: s3.endpoint, forcePathStyle: true, checksums: "when_required", ...extra };
  const url = `s3://${BUCKET}/${prefix}`;
  return { name: "s3", store: openStore(url, options), url, options, env, s3, stop: () => s3.stop() };
}
