// Runs s3rver in its own process so it can get NODE_OPTIONS=--openssl-legacy-provider (its ListObjectsV2
// continuation tokens use DES) without weakening the test process. Plain .mjs: the parent starts it with bare node.
// argv: <directory> <comma-separated buckets>. Prints "S3RVER_READY <port>" once listening.
import S3rver from "s3rver";

const [directory, bucketList = ""] = process.argv.slice(2);
if (!directory) {
  console.error("usage: s3rver-child.mjs <directory> [bucket,bucket...]");
  process.exit(2);
}
const buckets = bucketList.split(",").filter((b) => b.length > 0);

const server = new S3rver({
  address: "127.0.0.1",
  port: 0,
  silent: true,
  directory,
  configureBuckets: buckets.map((name) => ({ name })),
});
const { port } = await server.run();
process.stdout.write(`S3RVER_READY ${port}\n`);

// The parent holds our stdin open; when it dies (even by SIGKILL) the pipe closes and we must not outlive it.
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
// server.close() would wait for idle keep-alive sockets; the store has nothing to flush, so just go.
process.on("SIGTERM", () => process.exit(0));
