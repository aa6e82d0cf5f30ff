// Proves the S3 stand-in: SDK round trip, ListObjectsV2 pagination past 1,000 keys (the openssl-legacy caveat),
// and the Debian awscli as a reference client in both directions.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  GetObjectCommand,
  PutObjectCommand,
  S3Client,
  paginateListObjectsV2,
} from "@aws-sdk/client-s3";
import { startS3Server, type S3StandIn } from "./support/s3.js";
import { isPidAlive, makeTempDir, runTracked, teardownAll } from "./support/processes.js";

const BUCKET = "ftune-test";
const AWS_CLI = "/usr/bin/aws";

const sha256 = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

async function inBatches<T>(items: T[], width: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++] as T);
  };
  await Promise.all(Array.from({ length: width }, worker));
}

describe("S3 stand-in (s3rver child process)", () => {
  let s3: S3StandIn;
  let client: S3Client;
  let work: string;
  const big = randomBytes(4 * 1024 * 1024);

  before(async () => {
    s3 = await startS3Server({ buckets: [BUCKET] });
    client = new S3Client({
      endpoint: s3.endpoint,
      forcePathStyle: true,
      region: s3.region,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
    });
    work = await makeTempDir("ftune-s3-test");
  });

  after(async () => {
    client?.destroy();
    const pid = s3?.pid;
    await s3?.stop();
    if (pid !== undefined) assert.equal(isPidAlive(pid), false, "s3rver still running after stop()");
    await teardownAll();
  });

  it("round-trips a 4 MB object through the SDK with identical sha256", async () => {
    await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "blobs/big.bin", Body: big }));
    const got = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: "blobs/big.bin" }));
    const bytes = await got.Body?.transformToByteArray();
    assert.ok(bytes);
    assert.equal(bytes.length, big.length);
    assert.equal(sha256(bytes), sha256(big));
  });

  it("lists more than 1,000 keys with continuation tokens", async () => {
    const keys = Array.from({ length: 1100 }, (_, i) => `many/${String(i).padStart(5, "0")}`);
    await inBatches(keys, 16, (Key) => client.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: "x" })));

    const seen: string[] = [];
    let pages = 0;
    for await (const page of paginateListObjectsV2({ client, pageSize: 400 }, { Bucket: BUCKET, Prefix: "many/" })) {
      pages++;
      for (const o of page.Contents ?? []) seen.push(o.Key as string);
    }
    assert.equal(pages, 3);
    assert.deepEqual(seen, keys);
  });

  it("serves the same bytes to /usr/bin/aws s3 cp, and accepts its uploads", async () => {
    const env = s3.awsCliEnv();
    const down = join(work, "down.bin");
    const r = await runTracked(
      AWS_CLI,
      ["--endpoint-url", s3.endpoint, "s3", "cp", "--no-progress", `s3://${BUCKET}/blobs/big.bin`, down],
      { env },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha256(await readFile(down)), sha256(big));

    const upSrc = join(work, "up.bin");
    const up = randomBytes(256 * 1024);
    await writeFile(upSrc, up);
    const u = await runTracked(
      AWS_CLI,
      ["--endpoint-url", s3.endpoint, "s3", "cp", "--no-progress", upSrc, `s3://${BUCKET}/blobs/from-cli.bin`],
      { env },
    );
    assert.equal(u.code, 0, u.stderr);
    const got = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: "blobs/from-cli.bin" }));
    assert.equal(sha256((await got.Body?.transformToByteArray()) ?? new Uint8Array()), sha256(up));
  });
});
