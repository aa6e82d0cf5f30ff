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

/**
 * The suite itself may run inside GitHub Actions; the CLI must only see Actions (its event, ref, token, file
 * commands) where a test lays that environment out.
 */
function childEnv(extra: NodeJS.ProcessEnv | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(GITHUB_|RUNNER_|ACTIONS_)/.test(k)) env[k] = v;
  return { ...env, ...extra };
}

export function ftune(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): CliResult {
  const env = childEnv(opts.env);
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: opts.cwd ?? REPO, env, encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * Like ftune(), without blocking this process (for tests whose stand-in servers run in this process);
 * `onStderrLine` sees each stderr line as it comes (to inject a fault at a given moment).
 */
export function ftuneAsync(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; onStderrLine?: (line: string) => void } = {}): Promise<CliResult> {
  const env = childEnv(opts.env);
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

/** A --json command's object: the last line of stdout (in Actions, workflow commands such as ::add-mask:: come first). */
export function lastJson<T>(stdout: string): T {
  return JSON.parse(stdout.trim().split("\n").at(-1)!) as T;
}
