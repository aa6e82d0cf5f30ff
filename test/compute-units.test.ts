// Compute pieces that need no EC2: the per-run user-data (no secret, TTL shutdown), host-key fingerprints from the
// console, sizes, durations, and the local and ssh providers.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import ssh2 from "ssh2";
import { loadConfig } from "../src/config/index.js";
import { hostKeyFingerprint, hostSpec, parseDuration, providerFor, userData, volumeFor } from "../src/compute/index.js";
import { UserError } from "../src/util/errors.js";
import { makeTree, MINIMAL } from "./helpers/tree.js";

describe("ec2 user-data", () => {
  it("installs only the public key and schedules the TTL shutdown", () => {
    const key = ssh2.utils.generateKeyPairSync("ed25519", { comment: "ftune-run" });
    const ud = userData(key.public, "ubuntu", 90);
    assert.match(ud, /^#!\/bin\/bash\n/);
    assert.match(ud, /shutdown -h \+90 /);
    assert.ok(ud.includes(key.public.trim()));
    assert.doesNotMatch(ud, /PRIVATE KEY|AWS_|hf_|token/i);
  });

  it("reads the ED25519 fingerprint cloud-init prints on the console", () => {
    const console = "boot...\n-----BEGIN SSH HOST KEY FINGERPRINTS-----\n256 SHA256:abcDEF123+/xyz= root@ip-10-0-0-1 (ECDSA)\n256 SHA256:Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWo root@ip-10-0-0-1 (ED25519)\n-----END SSH HOST KEY FINGERPRINTS-----\n";
    assert.equal(hostKeyFingerprint(console), "SHA256:Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWo");
    assert.equal(hostKeyFingerprint("still booting"), undefined);
  });
});

describe("sizes and durations", () => {
  it("sizes the root volume for the model and checkpoints, unless configured", () => {
    const tree = makeTree({ "a.yaml": MINIMAL.replace("TinyLlama/TinyLlama-1.1B-Chat-v1.0", "meta-llama/Llama-2-70b-hf"), "b.yaml": `${MINIMAL}compute:\n  volume_gb: 333\n`, "c.yaml": MINIMAL });
    try {
      assert.equal(volumeFor(loadConfig(tree.path("a.yaml")).config!), 341); // 80 + 2 x 140 GB of bf16 weights
      assert.equal(volumeFor(loadConfig(tree.path("b.yaml")).config!), 333);
      assert.equal(volumeFor(loadConfig(tree.path("c.yaml")).config!), 100);
    } finally {
      tree.remove();
    }
  });

  it("parses --older-than durations", () => {
    assert.equal(parseDuration("6h"), 6 * 3_600_000);
    assert.equal(parseDuration("90m"), 90 * 60_000);
    assert.equal(parseDuration("2d"), 2 * 86_400_000);
    assert.equal(parseDuration("six hours"), undefined);
  });
});

describe("local and ssh providers", () => {
  it("local needs nothing and releases nothing", async () => {
    const tree = makeTree({ "c.yaml": `${MINIMAL}compute:\n  provider: local\n  workdir: ${"/tmp"}/ftune-local-work\n` });
    try {
      const cfg = loadConfig(tree.path("c.yaml")).config!;
      const p = providerFor(cfg);
      const host = await p.acquire(hostSpec(cfg, "r1", "proj"));
      assert.deepEqual([host.provider, host.market, host.workdir], ["local", "none", "/tmp/ftune-local-work"]);
      await p.release(host);
      await p.release(host);
    } finally {
      tree.remove();
    }
  });

  it("ssh takes the key from the named variable and insists on a pinned host key", async () => {
    const tree = makeTree({
      "pinned.yaml": `${MINIMAL}compute:\n  provider: ssh\n  ssh:\n    host: gpu.example.com\n    user: ml\n    private_key_env: MY_KEY\n    host_key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n`,
      "unpinned.yaml": `${MINIMAL}compute:\n  provider: ssh\n  ssh:\n    host: gpu.example.com\n`,
    });
    try {
      const pinned = loadConfig(tree.path("pinned.yaml")).config!;
      await assert.rejects(providerFor(pinned).acquire(hostSpec(pinned, "r", "p")), /the environment variable MY_KEY .* holds no private key/);
      process.env.MY_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n";
      const host = await providerFor(pinned).acquire(hostSpec(pinned, "r", "p"));
      assert.equal(host.ssh?.user, "ml");
      assert.match(host.ssh!.hostKey!, /^ssh-ed25519 /);
      const unpinned = loadConfig(tree.path("unpinned.yaml")).config!;
      process.env.FTUNE_SSH_KEY = "k";
      await assert.rejects(providerFor(unpinned).acquire(hostSpec(unpinned, "r", "p")), (e: unknown) => e instanceof UserError && /host_key is not set/.test((e as Error).message));
    } finally {
      delete process.env.MY_KEY;
      delete process.env.FTUNE_SSH_KEY;
      tree.remove();
    }
  });
});
