// Proves the SSH host stand-in: key login, host-key pinning (a wrong pin is refused), exec with separate
// stdout/stderr/exit code, SFTP transfer, and that stop() leaves no sshd behind.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import ssh2, { type Client as SshClient, type ConnectConfig, type SFTPWrapper } from "ssh2";
import { sshFingerprint, startSshHost, type SshHost } from "./support/sshd.js";
import { isPidAlive, makeTempDir, teardownAll } from "./support/processes.js";

const { Client, utils } = ssh2;

function pinnedVerifier(openSshPublic: string): (key: Buffer) => boolean {
  const pinned = Buffer.from(openSshPublic.trim().split(/\s+/)[1] ?? "", "base64");
  return (key) => key.equals(pinned);
}

function connect(h: SshHost, pin: string): Promise<SshClient> {
  const cfg: ConnectConfig = {
    host: h.host,
    port: h.port,
    username: h.user,
    privateKey: h.privateKey,
    hostVerifier: pinnedVerifier(pin),
    readyTimeout: 10_000,
  };
  return new Promise((resolve, reject) => {
    const c = new Client();
    c.once("ready", () => resolve(c));
    c.once("error", reject);
    c.connect(cfg);
  });
}

function exec(c: SshClient, cmd: string): Promise<{ stdout: string; stderr: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    c.exec(cmd, (err, ch) => {
      if (err) return reject(err);
      let stdout = "";
      let stderr = "";
      let code: number | null = null;
      ch.on("data", (d: Buffer) => (stdout += d.toString()));
      ch.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      ch.on("exit", (c: number | null) => (code = c));
      ch.on("close", () => resolve({ stdout, stderr, code }));
    });
  });
}

function sftp(c: SshClient): Promise<SFTPWrapper> {
  return new Promise((resolve, reject) => c.sftp((err, s) => (err ? reject(err) : resolve(s))));
}

describe("SSH host stand-in (private sshd)", () => {
  let h: SshHost;
  let client: SshClient | undefined;

  before(async () => {
    h = await startSshHost();
  });

  after(async () => {
    client?.end();
    const pid = h?.pid;
    await h?.stop();
    if (pid !== undefined) assert.equal(isPidAlive(pid), false, "sshd still running after stop()");
    await teardownAll();
  });

  it("listens on its own 127.0.10.x address and reports a matching fingerprint", () => {
    assert.match(h.host, /^127\.0\.10\.\d{1,3}$/);
    assert.match(h.hostPublicKey, /^ssh-ed25519 AAAA/);
    assert.match(h.hostKeyFingerprint, /^SHA256:[A-Za-z0-9+/]{43}$/);
    assert.equal(sshFingerprint(h.hostPublicKey), h.hostKeyFingerprint);
  });

  it("logs in with the private key when the pinned host key matches", async () => {
    client = await connect(h, h.hostPublicKey);
  });

  it("refuses a connection pinned to a different host key", async () => {
    const wrong = utils.generateKeyPairSync("ed25519").public;
    await assert.rejects(connect(h, wrong), /verification failed/i);
  });

  it("runs a command with separate stdout, stderr and exit code", async () => {
    assert.ok(client);
    const r = await exec(client, "echo hello; echo err >&2; exit 3");
    assert.deepEqual(r, { stdout: "hello\n", stderr: "err\n", code: 3 });
  });

  it("transfers a file over SFTP", async () => {
    assert.ok(client);
    const s = await sftp(client);
    const local = await makeTempDir("ftune-sshd-test");
    const data = randomBytes(256 * 1024);
    const src = join(local, "src.bin");
    const back = join(local, "back.bin");
    const remote = join(h.workDir, "payload.bin");
    await writeFile(src, data);
    await new Promise<void>((res, rej) => s.fastPut(src, remote, (e) => (e ? rej(e) : res())));
    await new Promise<void>((res, rej) => s.fastGet(remote, back, (e) => (e ? rej(e) : res())));
    s.end();
    assert.ok((await readFile(back)).equals(data));
    // The "box" is this machine, so the upload is also visible on the local filesystem.
    assert.ok((await readFile(remote)).equals(data));
  });
});
