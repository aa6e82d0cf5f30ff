// A trainer process on this machine (compute.provider local), run the way the box runs it: detached in its own
// process group, output appended to a log file that the watcher tails by byte offset, exit status written last.
import { spawn } from "node:child_process";
import { closeSync, openSync, readSync, statSync, writeFileSync } from "node:fs";

export interface LocalJob {
  pid: number;
  log: string;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  kill(): void;
}

export function startLocalJob(command: string, args: string[], env: NodeJS.ProcessEnv, log: string, cwd: string): LocalJob {
  writeFileSync(log, "");
  const fd = openSync(log, "a");
  const child = spawn(command, args, { cwd, env, detached: true, stdio: ["ignore", fd, fd] });
  closeSync(fd);
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code) => resolve(code));
  });
  return {
    pid: child.pid!,
    log,
    exited,
    kill: () => {
      try {
        process.kill(-child.pid!, "SIGTERM");
      } catch {
        // already gone
      }
    },
  };
}

/** New bytes of a growing log since `offset` (whole lines only, so a line is never split across two reads). */
export function readNewLines(path: string, offset: number): { text: string; offset: number } {
  const size = statSync(path).size;
  if (size <= offset) return { text: "", offset };
  const fd = openSync(path, "r");
  try {
    const buf = Buffer.alloc(size - offset);
    readSync(fd, buf, 0, buf.length, offset);
    const end = buf.lastIndexOf(10) + 1;
    return { text: buf.subarray(0, end).toString("utf8"), offset: offset + end };
  } finally {
    closeSync(fd);
  }
}
