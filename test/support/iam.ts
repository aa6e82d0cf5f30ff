// The minimal IAM policy ftune documents (docs/iam-policy.json), and what a call needs from it: tests check that
// every API call ftune makes (seen by the stand-ins, or written in its sources) is allowed by some statement.
import { readFileSync } from "node:fs";
import { join } from "node:path";

interface Statement {
  Effect: string;
  Action: string | string[];
}

export function policyActions(repo: string): string[] {
  const policy = JSON.parse(readFileSync(join(repo, "docs", "iam-policy.json"), "utf8")) as { Statement: Statement[] };
  return policy.Statement.filter((s) => s.Effect === "Allow").flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action]));
}

export function allows(actions: readonly string[], needed: string): boolean {
  return actions.some((a) => new RegExp(`^${a.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*")}$`, "i").test(needed));
}

/** The IAM action an S3 API operation is authorized by (the SDK's command names). */
export const S3_IAM: Record<string, string[]> = {
  GetObject: ["s3:GetObject"],
  HeadObject: ["s3:GetObject"],
  PutObject: ["s3:PutObject"],
  CreateMultipartUpload: ["s3:PutObject"],
  UploadPart: ["s3:PutObject"],
  CompleteMultipartUpload: ["s3:PutObject"],
  AbortMultipartUpload: ["s3:AbortMultipartUpload"],
  DeleteObject: ["s3:DeleteObject"],
  DeleteObjects: ["s3:DeleteObject"],
  ListObjectsV2: ["s3:ListBucket"],
};
