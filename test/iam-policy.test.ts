// docs/iam-policy.json allows every AWS call written in ftune's sources (the action pipeline test also checks the
// calls the EC2 stand-in saw during a run), and nothing ftune does not call.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { allows, policyActions, S3_IAM } from "./support/iam.js";
import { REPO } from "./helpers/cli.js";

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith(".ts") ? [p] : [];
  });
}

/** Every EC2 and S3 operation the sources can call: SDK commands, the ListObjectsV2 paginator, lib-storage's multipart calls. */
function calledOperations(): { ec2: Set<string>; s3: Set<string> } {
  const ec2 = new Set<string>();
  const s3 = new Set<string>();
  for (const f of sources(join(REPO, "src"))) {
    const text = readFileSync(f, "utf8");
    const fromEc2 = /@aws-sdk\/client-ec2/.test(text);
    for (const m of text.matchAll(/new ([A-Z][A-Za-z0-9]+)Command\(/g)) (fromEc2 ? ec2 : s3).add(m[1]!);
    if (/paginateListObjectsV2/.test(text)) s3.add("ListObjectsV2");
    if (/new Upload\(/.test(text)) for (const op of ["PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "AbortMultipartUpload"]) s3.add(op);
  }
  return { ec2, s3 };
}

describe("the minimal IAM policy (docs/iam-policy.json)", () => {
  const actions = policyActions(REPO);
  const { ec2, s3 } = calledOperations();

  it("allows every EC2 call in the sources", () => {
    assert.ok(ec2.size >= 10, [...ec2].join(", "));
    assert.deepEqual([...ec2].filter((op) => !allows(actions, `ec2:${op}`)), []);
  });

  it("allows every S3 call in the sources (presigned URLs use the same GetObject/PutObject)", () => {
    assert.ok(s3.has("GetObject") && s3.has("ListObjectsV2"));
    const missing = [...s3].filter((op) => !S3_IAM[op] || !S3_IAM[op]!.every((a) => allows(actions, a)));
    assert.deepEqual(missing, []);
  });

  it("grants nothing ftune does not call (no wildcards beyond tag-scoped ones)", () => {
    const needed = new Set([...[...ec2].map((op) => `ec2:${op}`), ...[...s3].flatMap((op) => S3_IAM[op] ?? []), "ec2:CreateTags"]);
    assert.deepEqual(actions.filter((a) => a.includes("*") || !needed.has(a)), []);
    // The check can fail: an action ftune never calls is noticed.
    assert.equal(allows(actions, "ec2:StopInstances"), false);
  });
});
