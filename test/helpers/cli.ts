// Runs the bundled CLI (dist/cli.js, what users and the action run) as a child process.
import { spawn, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

export const REPO = fileURLToPath(new URL("../..", import.meta.url));
export const CLI = `${REPO}dist/cli.js`;

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function ftune(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): CliResult {
  const env = { ...process.env, ...opts.env };
  // The suite itself may run inside GitHub Actions; the CLI must only see Actions where a test says so.
  if (!opts.env || !("GITHUB_ACTIONS" in opts.env)) delete env.GITHUB_ACTIONS;
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: opts.cwd ?? REPO, env, encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Like ftune(), without blocking this process: for tests whose stand-in servers run in this process. */
/** Runs the CLI; `onStderrLine` sees each stderr line as it comes (to inject a fault at a given moment). */
export function ftuneAsync(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; onStderrLine?: (line: string) => void } = {}): Promise<CliResult> {
  const env = { ...process.env, ...opts.env };
  if (!opts.env || !("GITHUB_ACTIONS" in opts.env)) delete env.GITHUB_ACTIONS;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: opts.cwd ?? REPO, env });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    let partial = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      if (!opts.onStderrLine) return;
      const lines = (partial + d.toString()).split("\n");
      partial = lines.pop() ?? "";
      for (const l of lines) opts.onStderrLine(l);
    });
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}
