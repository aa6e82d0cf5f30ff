// Process, port and temp-dir bookkeeping for the test bed. Every process a test starts goes through spawnTracked so
// teardown can kill it by PID (never by name) and a suite that leaves one behind fails.
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { readdirSync, readFileSync } from "node:fs";
import { createServer, connect } from "node:net";
import { constants, tmpdir } from "node:os";
import { join } from "node:path";

const tracked = new Set<ChildProcess>();
const tempDirs = new Set<string>();

export function spawnTracked(cmd: string, args: readonly string[], opts: SpawnOptions = {}): ChildProcess {
  const child = spawn(cmd, args, opts);
  // spawn failures (ENOENT) are reported asynchronously; without a listener they would crash the test process.
  child.on("error", () => undefined);
  if (child.pid !== undefined) tracked.add(child);
  return child;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a short-lived tracked command to completion, capturing its output. */
export function runTracked(
  cmd: string,
  args: readonly string[],
  opts: SpawnOptions & { timeoutMs?: number; input?: string } = {},
): Promise<RunResult> {
  const { timeoutMs = 60_000, input, ...spawnOpts } = opts;
  return new Promise((resolve, reject) => {
    const child = spawnTracked(cmd, args, { ...spawnOpts, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout?.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr?.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.stdin?.end(input ?? "");
    const timer = setTimeout(() => {
      void killTracked(child);
      reject(new Error(`${cmd} ${args.join(" ")} timed out after ${timeoutMs} ms\nstderr: ${stderr}`));
    }, timeoutMs);
    child.once("error", (err) => {
      clearTimeout(timer);
      tracked.delete(child);
      reject(err);
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      tracked.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** True while the PID exists and is not a zombie (a zombie is dead; it just awaits reaping by a parent). */
export function isPidAlive(pid: number): boolean {
  if (!pidExists(pid)) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat[stat.lastIndexOf(")") + 2] !== "Z";
  } catch {
    return false;
  }
}

/**
 * Descendants of pid, read from /proc. Needed because some servers (sshd) fork per-connection children that
 * outlive a SIGTERM to the listener.
 */
export function descendantPids(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, "utf8");
    } catch {
      continue;
    }
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(name));
    children.set(ppid, list);
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const c of children.get(queue.shift() as number) ?? []) {
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function exited(child: ChildProcess): Promise<void> {
  if (hasExited(child)) return Promise.resolve();
  return new Promise((r) => child.once("exit", () => r()));
}

async function until(done: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) return false;
    await sleep(20);
  }
  return true;
}

/**
 * Teardown kill: descendants first, then the child itself; SIGTERM, then SIGKILL after graceMs; resolves once all
 * are dead. Descendants go first so their own parent is still alive to reap them: an orphan that dies later
 * lingers as a zombie until PID 1 reaps it, which container init processes do late or never.
 */
export async function killTracked(child: ChildProcess, graceMs = 3000): Promise<void> {
  const pid = child.pid;
  if (pid === undefined) return;
  if (!hasExited(child)) {
    const descendants = descendantPids(pid);
    for (const p of descendants) signal(p, "SIGTERM");
    if (!(await until(() => !descendants.some(isPidAlive), graceMs))) {
      for (const p of descendants) if (isPidAlive(p)) signal(p, "SIGKILL");
    }
    await until(() => !descendants.some(pidExists), 1000);
    signal(pid, "SIGTERM");
    if (!(await until(() => hasExited(child), graceMs))) signal(pid, "SIGKILL");
    await exited(child);
  }
  tracked.delete(child);
}

export async function killAllTracked(): Promise<void> {
  await Promise.all([...tracked].map((c) => killTracked(c)));
}

/**
 * Fails the suite if any tracked process is still running. The leftovers are killed first, so a failing suite
 * does not leak them into the next one.
 */
export async function assertNoTrackedAlive(): Promise<void> {
  const alive = [...tracked].filter((c) => !hasExited(c));
  for (const c of tracked) if (hasExited(c)) tracked.delete(c);
  if (alive.length === 0) return;
  const names = alive.map((c) => `${c.pid}: ${c.spawnargs.join(" ")}`);
  await Promise.all(alive.map((c) => killTracked(c, 500)));
  throw new Error(`processes left running at teardown (now killed):\n${names.join("\n")}`);
}

// Last resort if a test process dies before its teardown ran: children must not outlive it. A signal's default
// action skips "exit" handlers, so signals are turned into exits. (SIGKILL cannot be caught; s3rver watches its
// stdin for that case, sshd does not.)
process.on("exit", () => {
  for (const c of tracked) if (!hasExited(c) && c.pid !== undefined) signal(c.pid, "SIGKILL");
});
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.once(sig, () => process.exit(128 + constants.signals[sig]));
}

/** A port nobody listens on at this moment; the OS picks it, so parallel test files do not collide. */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen({ host, port: 0, exclusive: true }, () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port"))));
    });
  });
}

function tryConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    sock.setTimeout(1000);
    sock.once("connect", () => {
      sock.destroy();
      resolve(true);
    });
    sock.once("timeout", () => {
      sock.destroy();
      resolve(false);
    });
    sock.once("error", () => resolve(false));
  });
}

export async function waitForPort(host: string, port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await tryConnect(host, port))) {
    if (Date.now() > deadline) throw new Error(`nothing listening on ${host}:${port} after ${timeoutMs} ms`);
    await sleep(50);
  }
}

export async function makeTempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix.endsWith("-") ? prefix : `${prefix}-`));
  tempDirs.add(dir);
  return dir;
}

export async function removeTempDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

export async function removeAllTempDirs(): Promise<void> {
  await Promise.all([...tempDirs].map(removeTempDir));
}

/**
 * End-of-suite check: removes every temp dir made here and fails if a tracked process was still running
 * (killing it first). Call it after the suite's own stop()s, so it only catches what they missed.
 */
export async function teardownAll(): Promise<void> {
  try {
    await assertNoTrackedAlive();
  } finally {
    await removeAllTempDirs();
  }
}
