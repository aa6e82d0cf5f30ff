// Detached jobs: the trainer runs on the box under a small runner script, in its own session, so it outlives the
// SSH connection that started it. The runner keeps everything a watcher needs in one directory:
//   job.pid   the runner's pid (also the process group id: the runner is a session leader), written first
//   job.log   the command's stdout+stderr, appended
//   job.exit  the command's exit status, written atomically (temp + mv) when it ends
// A watcher only reads these, so it can drop, reconnect and continue from the last log offset it delivered.
import { randomBytes } from "node:crypto";
import { posix } from "node:path";
import type { SshAccess } from "../compute/types.js";
import { InfraError } from "../util/errors.js";
import { ConnectionLost, JobLost } from "./errors.js";
import { RemoteHost, type ConnectOptions } from "./host.js";
import { exportLines, shellQuote as q } from "./shell.js";
import { completeUtf8Length } from "./utf8.js";

export interface DetachedJob {
  id: string;
  /** Absolute remote directory holding run.sh, job.log, job.pid and job.exit. */
  dir: string;
}

export interface JobUpdate {
  /** New log text since `offset`, decoded; a trailing partial UTF-8 character waits for the next poll. */
  output: string;
  /** Byte offset just past `output`: pass it to the next poll. */
  offset: number;
  /** Set once the job is over: its exit status, or null when it vanished without leaving one. */
  exitCode?: number | null;
  running: boolean;
}

export interface WatchOptions {
  onOutput: (text: string) => void;
  /** Between polls while the job runs (default 1000). */
  pollMs?: number;
  /** For every (re)connection; its `log` also hears about drops and reconnects. */
  connect?: ConnectOptions;
  signal?: AbortSignal;
  /** Log offset to continue from (a previous watch's `offset`). */
  from?: number;
}

export interface WatchResult {
  exitCode: number | null;
  offset: number;
  reconnects: number;
  /** True when the signal stopped the watch; the job keeps running and `offset` says where to continue. */
  aborted?: boolean;
}

const RUNNER = "run.sh";
const COMMAND = "cmd.sh";
/** Per poll; a bigger backlog (after a long disconnect) comes over several polls without waiting in between. */
const MAX_READ = 16 * 1024 * 1024;
const SCRIPT_TIMEOUT_MS = 60_000;

/**
 * A shell function `alive PID`: is PID this job's runner (runnerPath, a shell word)? kill -0 alone is not enough:
 * a reboot reuses pids, and an exited runner whose new parent does not reap it stays a zombie, which kill -0
 * still finds. A zombie has an empty cmdline, and another process has another one.
 */
function aliveFn(runnerPath: string): string {
  return (
    `alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 1; [ -d /proc/self ] || return 0; ` +
    `tr '\\0' '\\n' < "/proc/$1/cmdline" 2>/dev/null | grep -qxF -- ${runnerPath}; }`
  );
}

const runnerOf = (dir: string): string => q(posix.join(dir, RUNNER));

/** Runs a script under bash whatever the login shell is. */
async function runScript(remote: RemoteHost, script: string, what: string): Promise<string> {
  const r = await remote.exec(`bash -c ${q(script)}`, { timeoutMs: SCRIPT_TIMEOUT_MS });
  if (r.code !== 0) {
    throw new InfraError(`${what} failed (exit ${r.code ?? r.signal}): ${r.stderr.trim() || r.stdout.trim()}`);
  }
  return r.stdout;
}

function runnerScript(dir: string, workdir: string, env: Record<string, string>): string {
  return [
    "#!/bin/bash",
    "# ftune job runner. Mode 0600: the exports below may hold secrets, which must not be on a command line.",
    `cd ${q(dir)} || exit 1`,
    ...exportLines(env),
    // A TERM/INT for the process group reaches the command directly. Trapped (not ignored, which the command
    // would inherit), it is handled only after the command ends, so the runner lives to record its status.
    "trap : TERM INT",
    `echo "$$" > job.pid.tmp && mv -f job.pid.tmp job.pid`,
    // The command starts in the workdir; the job directory is bookkeeping.
    `(cd ${q(workdir)} && exec bash ${q(posix.join(dir, COMMAND))}) >> job.log 2>&1 < /dev/null`,
    "code=$?",
    `printf '%s\\n' "$code" > job.exit.tmp && mv -f job.exit.tmp job.exit`,
    "",
  ].join("\n");
}

/**
 * Starts `command` (bash) detached on the box, in `workdir` (absolute, or relative to the login directory), with
 * `env` exported. Idempotent per id while the job runs: a second start returns the running job.
 */
export async function startDetached(
  remote: RemoteHost,
  opts: { workdir: string; id: string; command: string; env?: Record<string, string> },
): Promise<DetachedJob> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(opts.id)) throw new TypeError(`invalid job id: ${JSON.stringify(opts.id)}`);
  // Quoted paths get no tilde expansion, but a relative path starts at the login directory just the same.
  const workdir = opts.workdir.replace(/^~(\/|$)/, "") || ".";
  const wanted = posix.join(workdir, "jobs", opts.id);
  // Resolve the directory once: every later check compares the runner's command line against this exact path.
  const prepared = await runScript(
    remote,
    `mkdir -p ${q(wanted)} && chmod 700 ${q(wanted)} && cd ${q(wanted)} && d=$(pwd -P) && echo "$d" && ` +
      `${aliveFn(`"$d/${RUNNER}"`)}; ` +
      `if alive "$(cat job.pid 2>/dev/null)"; then echo running; else echo idle; fi`,
    `preparing job ${opts.id}`,
  );
  // From the end: a chatty login profile may print before the script does.
  const answer = prepared.trim().split("\n");
  const state = answer.pop();
  const dir = answer.pop();
  if (!dir?.startsWith("/")) throw new InfraError(`preparing job ${opts.id}: unexpected answer ${JSON.stringify(prepared)}`);
  const job = { id: opts.id, dir };
  // Rewriting run.sh under a running bash would corrupt it (bash reads scripts as it goes): leave a live job be.
  if (state === "running") return job;

  const nonce = randomBytes(6).toString("hex");
  await remote.writeFile(posix.join(dir, `${RUNNER}.${nonce}`), runnerScript(dir, posix.dirname(posix.dirname(dir)), opts.env ?? {}), 0o600);
  await remote.writeFile(posix.join(dir, `${COMMAND}.${nonce}`), `${opts.command}\n`, 0o600);
  const launched = await runScript(
    remote,
    [
      `cd ${q(dir)} || exit 1`,
      aliveFn(runnerOf(dir)),
      // Two starts of one id at once: the second waits here, then finds the first one's runner alive.
      "exec 9>>start.lock",
      "if command -v flock >/dev/null 2>&1; then flock -w 30 9; fi",
      `if alive "$(cat job.pid 2>/dev/null)"; then rm -f ${RUNNER}.${nonce} ${COMMAND}.${nonce}; echo running; exit 0; fi`,
      `mv -f ${RUNNER}.${nonce} ${RUNNER} && mv -f ${COMMAND}.${nonce} ${COMMAND} || exit 1`,
      "rm -f job.pid job.exit job.log job.pid.tmp job.exit.tmp",
      // Its own session: no SIGHUP when this SSH session ends, and one process group for killJob. All of its
      // descriptors point away from the session, or sshd would wait for them to close.
      `setsid nohup bash ${q(posix.join(dir, RUNNER))} > /dev/null 2>&1 < /dev/null 9>&- &`,
      "for i in $(seq 1 200); do [ -s job.pid ] && break; sleep 0.05; done",
      `[ -s job.pid ] || { echo "the job runner did not start" >&2; exit 1; }`,
      "echo started",
    ].join("\n"),
    `starting job ${opts.id}`,
  );
  if (!/^(started|running)$/m.test(launched)) throw new InfraError(`starting job ${opts.id}: unexpected answer ${JSON.stringify(launched)}`);
  return job;
}

/**
 * One look at a job: its log from byte `offset` (at most 16 MiB per call) and whether it still runs, ended (with
 * its exit status) or vanished.
 */
export async function pollJob(remote: RemoteHost, job: DetachedJob, offset: number): Promise<JobUpdate> {
  // Liveness before job.exit: the runner writes job.exit before it ends, so "not alive and no job.exit" really
  // means lost. Both before the log: once the exit status is seen, the log read below holds all output.
  const state = (
    await runScript(
      remote,
      `d=${q(job.dir)}; ${aliveFn(runnerOf(job.dir))}; ` +
        `if alive "$(cat "$d/job.pid" 2>/dev/null)"; then echo running; ` +
        `elif [ -f "$d/job.exit" ]; then echo "exit $(cat "$d/job.exit")"; else echo lost; fi`,
      `checking job ${job.id}`,
    )
  )
    .trim()
    .split("\n")
    .pop() as string;
  let exitCode: number | null | undefined;
  if (state === "lost") exitCode = null;
  else if (state.startsWith("exit ")) {
    const n = Number.parseInt(state.slice(5), 10);
    exitCode = Number.isFinite(n) ? n : null;
  } else if (state !== "running") throw new InfraError(`checking job ${job.id}: unexpected answer ${JSON.stringify(state)}`);

  const bytes = (await remote.readRange(posix.join(job.dir, "job.log"), offset, MAX_READ)) ?? Buffer.alloc(0);
  // A finished job's log is complete: whatever partial character is left at its very end will never complete.
  const atEnd = exitCode !== undefined && bytes.length < MAX_READ;
  const take = atEnd ? bytes.length : completeUtf8Length(bytes);
  return {
    output: bytes.subarray(0, take).toString("utf8"),
    offset: offset + take,
    ...(exitCode === undefined ? {} : { exitCode }),
    running: exitCode === undefined,
  };
}

/**
 * Sleeps between polls, waking early when the connection drops or the watch is aborted. One listener per
 * connection (not one per pause), so a watch of many hours does not pile up handlers on `closed`.
 */
class Pauser {
  private wake?: () => void;
  private readonly onAbort = (): void => this.wake?.();
  constructor(private readonly signal?: AbortSignal) {
    signal?.addEventListener("abort", this.onAbort, { once: true });
  }
  dispose(): void {
    this.signal?.removeEventListener("abort", this.onAbort);
  }
  watch(remote: RemoteHost): void {
    void remote.closed.then(() => this.wake?.());
  }
  pause(ms: number): Promise<void> {
    if (this.signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => this.wake?.(), ms);
      this.wake = () => {
        clearTimeout(t);
        this.wake = undefined;
        resolve();
      };
    });
  }
}

/**
 * Follows a job to its end over its own connection(s), delivering every log byte once, in order, to onOutput:
 * a dropped connection is reopened (with RemoteHost.connect's retries) and reading goes on from the last offset
 * delivered. Resolves with the exit status; rejects with JobLost when the job vanished without one.
 */
export async function watchJob(access: SshAccess, job: DetachedJob, opts: WatchOptions): Promise<WatchResult> {
  const { pollMs = 1000, signal } = opts;
  const log = opts.connect?.log;
  let offset = opts.from ?? 0;
  let reconnects = 0;
  let target = access;
  let remote: RemoteHost | undefined;
  let connectedBefore = false;
  const pauser = new Pauser(signal);
  try {
    for (;;) {
      if (signal?.aborted) return { exitCode: null, offset, reconnects, aborted: true };
      if (!remote) {
        try {
          remote = await RemoteHost.connect(target, { ...opts.connect, signal: signal ?? opts.connect?.signal });
        } catch (e) {
          if (signal?.aborted) return { exitCode: null, offset, reconnects, aborted: true };
          throw e;
        }
        // A key trusted on first use is pinned for every reconnect.
        target = { ...access, hostKey: remote.hostKey };
        pauser.watch(remote);
        if (connectedBefore) {
          reconnects++;
          log?.(`job ${job.id}: reconnected, continuing from log offset ${offset}`);
        }
        connectedBefore = true;
      }
      let update: JobUpdate;
      try {
        update = await pollJob(remote, job, offset);
      } catch (e) {
        if (signal?.aborted) return { exitCode: null, offset, reconnects, aborted: true };
        if (!(e instanceof ConnectionLost)) throw e;
        // Nothing of a failed poll was delivered, so re-reading from `offset` neither loses nor repeats output.
        log?.(`job ${job.id}: ${e.message}; reconnecting`);
        const old = remote;
        remote = undefined;
        await old.close();
        continue;
      }
      if (update.output) opts.onOutput(update.output);
      offset = update.offset;
      if (update.exitCode !== undefined) {
        // Over, but keep reading until the log is drained (a backlog can take more than one read).
        if (update.output !== "") continue;
        if (update.exitCode === null) {
          throw new JobLost(
            `job ${job.id} is gone: its runner is no longer running and left no exit status in ${job.dir} ` +
              `(the box rebooted, or the job was killed with SIGKILL)`,
            job.id,
            offset,
            reconnects,
          );
        }
        return { exitCode: update.exitCode, offset, reconnects };
      }
      await pauser.pause(pollMs);
    }
  } finally {
    pauser.dispose();
    await remote?.close();
  }
}

/**
 * Signals the job's whole process group (runner, command and its children). With TERM the runner survives to
 * record the command's status (143 when it dies of it); KILL takes the runner too, so its 137 is recorded here.
 */
export async function killJob(remote: RemoteHost, job: DetachedJob, signal: "TERM" | "KILL" = "TERM"): Promise<void> {
  const lines = [
    `d=${q(job.dir)}`,
    aliveFn(runnerOf(job.dir)),
    `pid=$(cat "$d/job.pid" 2>/dev/null)`,
    `alive "$pid" || exit 0`,
    `kill -s ${signal} -- "-$pid" 2>/dev/null || kill -s ${signal} "$pid" 2>/dev/null`,
  ];
  if (signal === "KILL") {
    lines.push(
      `for i in $(seq 1 100); do alive "$pid" || break; sleep 0.05; done`,
      `[ -e "$d/job.exit" ] || { echo 137 > "$d/job.exit.tmp" && mv -f "$d/job.exit.tmp" "$d/job.exit"; }`,
    );
  }
  await runScript(remote, lines.join("\n"), `killing job ${job.id}`);
}
