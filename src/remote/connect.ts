// Opening one SSH connection: retries while a box boots (refused, timed out, reset), the host key pinned and
// checked on every attempt, and the failures that waiting cannot fix (another host key, an unreadable private
// key, nothing in common to negotiate) reported at once.
import ssh2, { type Client as SshClient, type ConnectConfig } from "ssh2";
import type { SshAccess } from "../compute/types.js";
import { InfraError, UserError } from "../util/errors.js";
import { HostKeyMismatch, errorText as describe } from "./errors.js";
import { fingerprint, formatPublicKey, hostKeyAlgorithms, parsePublicKey } from "./hostkey.js";

// ssh2 is CommonJS and Node cannot see its named exports from ESM.
const { Client, utils } = ssh2;

export interface ConnectOptions {
  /** Connection attempts before giving up (default 8). */
  attempts?: number;
  /** Backoff base: attempt n waits about base * 2^(n-1), capped at 15 s (default 500). */
  retryDelayMs?: number;
  /** Per attempt: TCP connect + handshake + authentication (default 20000). */
  readyTimeoutMs?: number;
  keepaliveIntervalMs?: number;
  /** Unanswered keepalives before the connection counts as lost (default 3). */
  keepaliveCountMax?: number;
  /** Accept whatever key the server presents when access.hostKey is null, recording it in `hostKey`. */
  trustOnFirstUse?: boolean;
  signal?: AbortSignal;
  log?: (line: string) => void;
}

const BACKOFF_CAP_MS = 15_000;

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** What the server's host key must be: the pinned key itself, or a key with the pinned SHA256 fingerprint. */
interface Pin {
  expected: string;
  matches(key: Buffer): boolean;
}

function connectOnce(
  access: SshAccess,
  opts: Required<Pick<ConnectOptions, "readyTimeoutMs" | "keepaliveIntervalMs" | "keepaliveCountMax">>,
  pinned: Pin | null,
  algorithms: ConnectConfig["algorithms"],
  seen: { key?: Buffer },
  signal: AbortSignal | undefined,
): Promise<SshClient> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    let settled = false;
    const onAbort = (): void => fail(signal?.reason);
    function fail(e: unknown): void {
      if (settled) return;
      settled = true;
      signal?.removeEventListener("abort", onAbort);
      client.destroy();
      reject(e);
    }
    // Stays attached after "ready" as a no-op until RemoteHost takes over: an unhandled "error" would crash.
    client.on("error", fail);
    client.once("close", () => fail(new Error("connection closed during the handshake")));
    client.once("ready", () => {
      settled = true;
      signal?.removeEventListener("abort", onAbort);
      resolve(client);
    });
    if (signal?.aborted) return fail(signal.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    client.connect({
      host: access.host,
      port: access.port,
      username: access.user,
      privateKey: access.privateKey,
      readyTimeout: opts.readyTimeoutMs,
      keepaliveInterval: opts.keepaliveIntervalMs,
      keepaliveCountMax: opts.keepaliveCountMax,
      algorithms,
      hostVerifier: (key: Buffer) => {
        // Recorded so a refusal can name the key the server presented.
        seen.key = Buffer.from(key);
        return pinned === null || pinned.matches(key);
      },
    });
  });
}

export async function openConnection(access: SshAccess, opts: ConnectOptions = {}): Promise<{ client: SshClient; hostKey: string }> {
  const {
    attempts = 8,
    retryDelayMs = 500,
    readyTimeoutMs = 20_000,
    keepaliveIntervalMs = 5000,
    keepaliveCountMax = 3,
    signal,
    log,
  } = opts;
  const where = `${access.user}@${access.host}:${access.port}`;
  let pinned: Pin | null = null;
  let algorithms: ConnectConfig["algorithms"];
  if (access.hostKey !== null && /^SHA256:/.test(access.hostKey)) {
    // A fingerprint, as cloud-init prints the ED25519 host key on an EC2 instance's console: the key itself is
    // learnt on connect and must hash to it.
    const expected = access.hostKey;
    pinned = { expected, matches: (key) => fingerprint(key) === expected };
    algorithms = { serverHostKey: ["ssh-ed25519"] };
  } else if (access.hostKey !== null) {
    const key = parsePublicKey(access.hostKey);
    pinned = { expected: fingerprint(key.blob), matches: (k) => k.equals(key.blob) };
    const serverHostKey = hostKeyAlgorithms(key.type);
    if (serverHostKey) algorithms = { serverHostKey };
  } else if (!opts.trustOnFirstUse) {
    // Trusting an unknown key blindly would hand the private key's session (and the secrets sent over it) to
    // whoever answers on that address.
    throw new UserError(
      `no host key pinned for ${where}: set compute.ssh.host_key to the server's public key ` +
        `(e.g. the line from ssh-keyscan -t ed25519 -p ${access.port} ${access.host})`,
    );
  }
  // A key ssh2 cannot read fails every attempt the same way; say so now instead of after all the retries.
  // (ssh2 1.17's own generateKeyPairSync("ed25519") makes such a key about once in 256: mscdex/ssh2#1390.)
  const parsedKey = utils.parseKey(access.privateKey);
  if (parsedKey instanceof Error) {
    throw new InfraError(`the SSH private key for ${where} cannot be used: ${parsedKey.message}`);
  }
  for (let attempt = 1; ; attempt++) {
    const seen: { key?: Buffer } = {};
    try {
      const client = await connectOnce(access, { readyTimeoutMs, keepaliveIntervalMs, keepaliveCountMax }, pinned, algorithms, seen, signal);
      const presented = seen.key ?? Buffer.alloc(0);
      if (access.hostKey === null) log?.(`ssh ${where}: trusting host key ${fingerprint(presented)} on first use`);
      if (attempt > 1) log?.(`ssh ${where}: connected on attempt ${attempt}`);
      // The full key from now on, so reconnects pin the key itself even when a fingerprint was given.
      return { client, hostKey: formatPublicKey(presented) };
    } catch (e) {
      if (signal?.aborted) throw signal.reason;
      if (pinned && seen.key && !pinned.matches(seen.key)) {
        // Not retried: another key is not a transient state of a booting box.
        const expected = pinned.expected;
        const actual = fingerprint(seen.key);
        throw new HostKeyMismatch(
          `host key mismatch for ${where}: expected ${expected} (pinned), the server presented ${actual} ` +
            `(${formatPublicKey(seen.key).split(" ")[0]}). Refusing to connect: this may be a different machine.`,
          expected,
          actual,
        );
      }
      // A server without a key of the pinned type (or no common cipher) will not grow one by waiting.
      if (/no matching/i.test(describe(e))) {
        throw new InfraError(`cannot negotiate with ${where}: ${describe(e)}${pinned ? " (is the pinned host key of the right type?)" : ""}`, {
          cause: e,
        });
      }
      if (attempt >= attempts) {
        throw new InfraError(`could not connect to ${where} after ${attempts} attempt(s): ${describe(e)}`, { cause: e });
      }
      // Equal jitter: never much shorter than the backoff step, so a booting box gets its time.
      const step = Math.min(BACKOFF_CAP_MS, retryDelayMs * 2 ** (attempt - 1));
      const waitMs = Math.round(step / 2 + (Math.random() * step) / 2);
      log?.(`ssh ${where}: attempt ${attempt}/${attempts} failed (${describe(e)}); retrying in ${(waitMs / 1000).toFixed(1)} s`);
      await sleep(waitMs, signal);
    }
  }
}
