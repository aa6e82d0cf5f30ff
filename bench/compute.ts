// Compute overhead benchmark: with a simulated boot delay B and a known input size, how long ftune itself adds
// between `acquire` and "trainer process started" — launch calls, waiting for the console host key, SSH connect,
// uploading the agent, starting the detached job — excluding B and the input transfer (timed separately in the same
// run). Target: < 3 s. Runs the EC2 stand-in (instances boot as sshd on loopback) and s3rver for the inputs.
import { randomBytes } from "node:crypto";
import { userInfo } from "node:os";
import { resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { Ec2Provider } from "../src/compute/index.js";
import { RemoteHost, startDetached, pollJob } from "../src/remote/index.js";
import { openStore, presignFiles, sha256Hex } from "../src/store/index.js";
import { startEc2StandIn } from "../test/support/ec2.js";
import { startS3Server } from "../test/support/s3.js";
import { freePort, teardownAll } from "../test/support/processes.js";

const BOOT_MS = Number(process.env.FTUNE_BENCH_BOOT_MS ?? 3000);
const INPUT_MB = Number(process.env.FTUNE_BENCH_INPUT_MB ?? 64);
const sshPort = await freePort();
const ec2 = await startEc2StandIn({ sshPort, bootDelayMs: BOOT_MS, terminateDelayMs: 100 });
const s3 = await startS3Server({ buckets: ["bench"] });
Object.assign(process.env, s3.awsCliEnv(), { AWS_ENDPOINT_URL_EC2: ec2.url, AWS_REGION: "us-east-1" });
try {
  const store = openStore("s3://bench/inputs", { endpoint: s3.endpoint, forcePathStyle: true, checksums: "when_required" });
  const data = randomBytes(INPUT_MB << 20);
  await store.putBytes("model.safetensors", data);
  const inputs = await presignFiles(store, "", [{ path: "model.safetensors", size: data.length, sha256: sha256Hex(data) }], 3600);

  const provider = new Ec2Provider({ pollMs: 100, publicIp: async () => "127.0.0.1", user: userInfo().username, log: () => undefined }, "us-east-1");
  const t0 = performance.now();
  const host = await provider.acquire({
    runId: "bench", project: "bench", instanceTypes: ["g5.xlarge"], availabilityZones: [], subnets: [], spot: true, onDemandFallback: false, maxPrice: null,
    ttlMinutes: 60, ami: null, volumeGb: 100, sshPort, sshCidr: null, region: "us-east-1", workdir: "/tmp",
  });
  const tAcquired = performance.now();
  const remote = await RemoteHost.connect(host.ssh!);
  const workdir = ec2.instances[host.id]!.ssh?.workDir ?? "/tmp";
  await remote.put(resolve(import.meta.dirname, "..", "src", "agent", "ftune_agent.py"), `${workdir}/ftune_agent.py`);
  await remote.writeFile(`${workdir}/inputs.json`, JSON.stringify(inputs));
  const tFetch = performance.now();
  const fetched = await remote.exec(`python3 ${workdir}/ftune_agent.py fetch --manifest ${workdir}/inputs.json --dest ${workdir}/in`);
  if (fetched.code !== 0) throw new Error(fetched.stderr);
  const fetchMs = performance.now() - tFetch;
  const job = await startDetached(remote, { workdir, id: "trainer", command: "echo started; sleep 2" });
  let started = false;
  for (let i = 0; i < 100 && !started; i++) started = (await pollJob(remote, job, 0)).output.includes("started");
  const tStarted = performance.now();
  await remote.close();
  await provider.release(host);

  const total = tStarted - t0;
  const overhead = total - BOOT_MS - fetchMs;
  console.log(`compute: acquire -> trainer started ${(total / 1000).toFixed(2)} s = simulated boot ${(BOOT_MS / 1000).toFixed(2)} s + input transfer (${INPUT_MB} MB) ${(fetchMs / 1000).toFixed(2)} s + ftune's own ${(overhead / 1000).toFixed(2)} s`);
  console.log(`ftune's own time is ${(overhead / BOOT_MS).toFixed(2)}x the simulated boot (acquire alone ${((tAcquired - t0 - BOOT_MS) / 1000).toFixed(2)} s past the boot); target < 3 s`);
} finally {
  await ec2.stop();
  await s3.stop();
  await teardownAll();
}
