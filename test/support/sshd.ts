// A private OpenSSH server per simulated host, each on its own loopback address 127.0.10.<n>, with its own host key
// and authorized key, so tests exercise real SSH/SFTP (and host-key pinning) without touching the system sshd.
import type { ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { chmod, chown, mkdir, writeFile } from "node:fs/promises";
import { userInfo } from "node:os";
import { join } from "node:path";
import { generateKeyPair } from "../../src/remote/index.js";
import { freePort, killTracked, makeTempDir, removeTempDir, runTracked, spawnTracked, waitForPort } from "./processes.js";

const SSHD = "/usr/sbin/sshd";

export interface SshHost {
  host: string;
  port: number;
  user: string;
  /** Client key authorized for `user`, OpenSSH private key format. */
  privateKey: string;
  publicKey: string;
  /** The server's host key, "ssh-ed25519 AAAA...", for pinning. */
  hostPublicKey: string;
  /** "SHA256:..." as ssh-keygen -l prints it. */
  hostKeyFingerprint: string;
  dir: string;
  /** A directory inside dir owned by `user`: the simulated instance's working directory. */
  workDir: string;
  pid: number;
  /** sshd's own log (it runs with -e), for failure messages. */
  logs(): string;
  stop(): Promise<void>;
}

export interface SshHostOptions {
  /** n in 127.0.10.<n>, 1..254. Default: unique within this process and spread by pid across processes. */
  index?: number;
  /** Login user; by default the user running the tests (root here, `runner` on GitHub's runners, where an
   * unprivileged sshd can only log in as itself). Any other name is created with useradd if missing. */
  user?: string;
  /** Default: a free port on the host's address. */
  port?: number;
  startTimeoutMs?: number;
}

let nextIndex = 0;
// Test files run as parallel processes with nearby pids; a stride coprime to 254 keeps their address ranges apart.
const pidOffset = (process.pid * 37) % 254;

function allocateIndex(): number {
  return 1 + ((pidOffset + nextIndex++) % 254);
}

/** Base64 of the wire-format key blob, as in "ssh-ed25519 <blob>". */
function keyBlob(openSshPublic: string): Buffer {
  const b64 = openSshPublic.trim().split(/\s+/)[1];
  if (!b64) throw new Error(`not an OpenSSH public key: ${openSshPublic}`);
  return Buffer.from(b64, "base64");
}

export function sshFingerprint(openSshPublic: string): string {
  return `SHA256:${createHash("sha256").update(keyBlob(openSshPublic)).digest("base64").replace(/=+$/, "")}`;
}

async function ensureUser(user: string): Promise<{ uid: number; gid: number }> {
  const probe = await runTracked("id", ["-u", user]);
  if (probe.code !== 0) {
    const add = await runTracked("useradd", ["-m", "-s", "/bin/bash", user]);
    // 9: created meanwhile by a parallel test file.
    if (add.code !== 0 && add.code !== 9) throw new Error(`useradd ${user} failed: ${add.stderr}`);
  }
  // A locked account ("!") is refused even for key logins when PAM is off; "*" means "no password, not locked".
  const mod = await runTracked("usermod", ["-p", "*", user]);
  if (mod.code !== 0) throw new Error(`usermod -p '*' ${user} failed: ${mod.stderr}`);
  const uid = Number((await runTracked("id", ["-u", user])).stdout.trim());
  const gid = Number((await runTracked("id", ["-g", user])).stdout.trim());
  return { uid, gid };
}

function sshdConfig(o: { host: string; port: number; dir: string; user: string }): string {
  return [
    `ListenAddress ${o.host}:${o.port}`,
    `HostKey ${join(o.dir, "ssh_host_ed25519_key")}`,
    `PidFile ${join(o.dir, "sshd.pid")}`,
    `AuthorizedKeysFile ${join(o.dir, "authorized_keys")}`,
    `AllowUsers ${o.user}`,
    "PubkeyAuthentication yes",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "PermitRootLogin prohibit-password",
    "UsePAM no",
    "StrictModes no",
    "UseDNS no",
    "PrintMotd no",
    "PrintLastLog no",
    "X11Forwarding no",
    // Tests open many connections at once (parallel transfers); the default 10 unauthenticated would drop some.
    "MaxStartups 100:30:200",
    "MaxSessions 64",
    "Subsystem sftp internal-sftp",
    "LogLevel INFO",
    "",
  ].join("\n");
}

function exitedEarly(child: ChildProcess): Promise<never> {
  return new Promise((_, reject) =>
    child.once("close", (code, sig) => reject(new Error(`sshd exited during start-up (code ${code}, signal ${sig})`))),
  );
}

export async function startSshHost(opts: SshHostOptions = {}): Promise<SshHost> {
  const me = userInfo();
  const { user = me.username, startTimeoutMs = 15_000 } = opts;
  const index = opts.index ?? allocateIndex();
  if (!Number.isInteger(index) || index < 1 || index > 254) throw new Error(`index out of range: ${index}`);
  const host = `127.0.10.${index}`;

  // sshd insists on its privilege-separation directory even when started by hand (.ci/run creates it with
  // sudo where the tests are not root).
  if (me.uid === 0) await mkdir("/run/sshd", { recursive: true, mode: 0o755 });
  const owner = user === me.username ? { uid: me.uid, gid: me.gid } : await ensureUser(user);

  const dir = await makeTempDir("ftune-sshd");
  // sshd reads authorized_keys as the login user, so that user must be able to traverse dir.
  await chmod(dir, 0o755);
  const workDir = join(dir, "work");
  await mkdir(workDir);
  if (owner.uid !== me.uid) await chown(workDir, owner.uid, owner.gid);

  // ssh2's generator makes a pair its own parser rejects about once in 256 (mscdex/ssh2#1390): the shared helper
  // throws those away.
  const hostKey = generateKeyPair("ftune-test-host");
  const clientKey = generateKeyPair("ftune-test-client");
  // sshd refuses a host key file that group or others can read.
  await writeFile(join(dir, "ssh_host_ed25519_key"), hostKey.private, { mode: 0o600 });
  await writeFile(join(dir, "ssh_host_ed25519_key.pub"), `${hostKey.public}\n`, { mode: 0o644 });
  await writeFile(join(dir, "authorized_keys"), `${clientKey.public}\n`, { mode: 0o644 });

  let log = "";
  const attempts = opts.port === undefined ? 3 : 1;
  for (let attempt = 1; ; attempt++) {
    const port = opts.port ?? (await freePort(host));
    const conf = join(dir, "sshd_config");
    await writeFile(conf, sshdConfig({ host, port, dir, user }));
    const child = spawnTracked(SSHD, ["-D", "-e", "-f", conf], { stdio: ["ignore", "ignore", "pipe"] });
    child.stderr?.setEncoding("utf8").on("data", (d: string) => {
      log = (log + d).slice(-65_536);
    });
    try {
      await Promise.race([waitForPort(host, port, startTimeoutMs), exitedEarly(child)]);
    } catch (e) {
      await killTracked(child);
      // The probed port can be taken between probe and bind by a parallel test; pick another.
      if (attempt < attempts && /Address already in use/.test(log)) continue;
      await removeTempDir(dir);
      throw new Error(`${(e as Error).message}\nsshd log:\n${log}`);
    }
    return {
      host,
      port,
      user,
      privateKey: clientKey.private,
      publicKey: clientKey.public,
      hostPublicKey: hostKey.public,
      hostKeyFingerprint: sshFingerprint(hostKey.public),
      dir,
      workDir,
      pid: child.pid as number,
      logs: () => log,
      async stop() {
        // killTracked also takes down per-connection sshd children, which a SIGTERM to the listener leaves running.
        await killTracked(child);
        await removeTempDir(dir);
      },
    };
  }
}
