// Turns a thrown error into the CLI's message and exit code. Credentials, regions, buckets and permissions are
// the user's to fix (exit 1, no stack); a service or network failure is infrastructure (exit 2); anything else
// is a bug and keeps its stack.
import { EXIT_INFRA, EXIT_USER, InfraError, UserError } from "../util/errors.js";

interface SdkError {
  name?: string;
  message?: string;
  Code?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
  $fault?: "client" | "server";
  stack?: string;
}

const USER_CODES: Record<string, string> = {
  CredentialsProviderError: "no AWS credentials found: use aws-actions/configure-aws-credentials (OIDC) in Actions, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile locally",
  InvalidAccessKeyId: "the AWS access key id is not valid for this endpoint",
  SignatureDoesNotMatch: "the AWS secret key does not match the access key id",
  ExpiredToken: "the AWS session token has expired; re-run aws-actions/configure-aws-credentials or refresh the profile",
  AccessDenied: "AWS denied access: the role or user needs s3:GetObject, s3:PutObject, s3:DeleteObject and s3:ListBucket on the store prefix",
  NoSuchBucket: "the S3 bucket does not exist (check --store / storage.url and the region)",
  PermanentRedirect: "the bucket is in another region: set --region / storage.region",
};

export function describeFailure(e: unknown): { code: number; message: string } {
  if (e instanceof UserError) return { code: EXIT_USER, message: e.message };
  if (e instanceof InfraError) return { code: EXIT_INFRA, message: e.message };
  const err = (e ?? {}) as SdkError;
  const name = err.name ?? err.Code ?? "";
  if (USER_CODES[name]) return { code: EXIT_USER, message: `${USER_CODES[name]} (${name}: ${err.message ?? ""})` };
  if (/Region is missing/i.test(err.message ?? "")) return { code: EXIT_USER, message: "no AWS region: set AWS_REGION, --region or storage.region" };
  if (err.$metadata || err.$fault || (typeof err.code === "string" && /^E[A-Z]+$/.test(err.code))) {
    return { code: EXIT_INFRA, message: `${name || err.code}: ${err.message ?? "request failed"}${err.$metadata?.httpStatusCode ? ` (HTTP ${err.$metadata.httpStatusCode})` : ""}` };
  }
  return { code: EXIT_INFRA, message: `internal error: ${err.stack ?? String(e)}` };
}
