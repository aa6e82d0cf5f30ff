// The environment a GitHub Actions runner gives a step, built from a real webhook payload, so a spawned ftune CLI
// step sees what it would see on github.com: event file, GITHUB_* variables and empty file-command files.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { makeTempDir, removeTempDir } from "./processes.js";

export type ActionsEvent =
  | "pull_request.opened"
  | "pull_request.synchronize"
  | "push"
  | "workflow_dispatch"
  | "repository_dispatch";

export interface ActionsEnvOptions {
  event: ActionsEvent;
  /** Replaces the recorded webhook payload for the event. */
  payload?: object;
  /** "owner/name"; also rewritten into the payload's repository so both agree. Default: the payload's. */
  repo?: string;
  apiUrl?: string;
  token?: string;
  /** Default: an empty directory inside dir. A given workspace is not removed by cleanup(). */
  workspace?: string;
  /** For events whose payload carries no commit (dispatches). Default: derived from repo and ref. */
  sha?: string;
  /** Environment to start from; GitHub/runner/proxy variables in it are dropped. Default: process.env. */
  base?: NodeJS.ProcessEnv;
}

export interface ActionsEnv {
  env: Record<string, string>;
  dir: string;
  eventPath: string;
  files: { output: string; summary: string; state: string; env: string; path: string };
  /** GITHUB_OUTPUT parsed as the runner does, including `name<<DELIM` blocks; a later value wins. */
  readOutputs(): Record<string, string>;
  readState(): Record<string, string>;
  /** GITHUB_ENV, i.e. what core.exportVariable wrote. */
  readExportedEnv(): Record<string, string>;
  readSummary(): string;
  cleanup(): Promise<void>;
}

const REPO_ROOT = resolve(fileURLToPath(new URL(".", import.meta.url)), "..", "..");
export const EVENTS_DIR = resolve(REPO_ROOT, "..", "shared", "data", "events");

// An address where nothing listens: a step that forgot to take the stand-in's URL fails fast instead of
// reaching api.github.com.
const UNREACHABLE_API = "http://127.0.0.1:9";

// Inherited from a real runner (CI may itself be GitHub Actions) they would leak into the simulated step.
const DROP = /^(GITHUB_|RUNNER_|ACTIONS_|INPUT_|STATE_|NODE_TEST_CONTEXT$|(HTTPS?|ALL|NO)_PROXY$)/i;

interface Payload {
  number?: number;
  ref?: string;
  after?: string;
  branch?: string;
  pull_request?: { merge_commit_sha?: string | null; head: { sha: string; ref: string }; base: { ref: string } };
  repository?: { id?: number; name: string; full_name: string; default_branch?: string; owner: { login: string; id?: number } };
  sender?: { login: string; id?: number };
}

export function readEventPayload(event: ActionsEvent): Record<string, unknown> {
  return JSON.parse(readFileSync(join(EVENTS_DIR, `event-${event}.json`), "utf8")) as Record<string, unknown>;
}

/** The runner's file-command syntax: `name=value` lines and `name<<DELIM` ... `DELIM` blocks. */
function parseFileCommands(text: string, file: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line === "") continue;
    const eq = line.indexOf("=");
    const hd = line.indexOf("<<");
    if (eq > 0 && (hd < 0 || eq < hd)) {
      out[line.slice(0, eq)] = line.slice(eq + 1);
      continue;
    }
    if (hd <= 0) throw new Error(`${file}:${i + 1}: not a file command: ${JSON.stringify(line)}`);
    const name = line.slice(0, hd);
    const delim = line.slice(hd + 2);
    const end = lines.indexOf(delim, i + 1);
    if (end < 0) throw new Error(`${file}:${i + 1}: no closing ${delim} for ${name}`);
    out[name] = lines.slice(i + 1, end).join("\n");
    i = end;
  }
  return out;
}

function fakeSha(seed: string): string {
  return createHash("sha1").update(seed).digest("hex");
}

export async function makeActionsEnv(opts: ActionsEnvOptions): Promise<ActionsEnv> {
  const [eventName = ""] = opts.event.split(".");
  const payload = structuredClone(opts.payload ?? readEventPayload(opts.event)) as Payload;
  if (opts.repo) {
    const [owner, name] = opts.repo.split("/");
    if (!owner || !name) throw new Error(`repo must be owner/name: ${opts.repo}`);
    if (payload.repository) {
      payload.repository.full_name = opts.repo;
      payload.repository.name = name;
      payload.repository.owner.login = owner;
    }
  }
  const repo = opts.repo ?? payload.repository?.full_name;
  if (!repo) throw new Error("no repo option and no repository in the payload");
  const owner = repo.split("/")[0] as string;

  let ref: string;
  let sha: string;
  let headRef = "";
  let baseRef = "";
  const pr = payload.pull_request;
  if (pr) {
    ref = `refs/pull/${payload.number}/merge`;
    // GitHub checks out the test-merge commit; recorded payloads often lack it (null), then the head is closest.
    sha = opts.sha ?? pr.merge_commit_sha ?? pr.head.sha;
    headRef = pr.head.ref;
    baseRef = pr.base.ref;
  } else {
    const branch = payload.branch ?? payload.repository?.default_branch ?? "main";
    ref = payload.ref ?? `refs/heads/${branch}`;
    sha = opts.sha ?? payload.after ?? fakeSha(`${repo}@${ref}`);
  }

  const dir = await makeTempDir("ftune-actions");
  const workspace = opts.workspace ?? join(dir, "workspace");
  const runnerTemp = join(dir, "runner-temp");
  const toolCache = join(dir, "tool-cache");
  await Promise.all([workspace, runnerTemp, toolCache].map((d) => mkdir(d, { recursive: true })));
  const eventPath = join(dir, "event.json");
  await writeFile(eventPath, JSON.stringify(payload, null, 2));
  const files = {
    output: join(dir, "github_output"),
    summary: join(dir, "step_summary.md"),
    state: join(dir, "github_state"),
    env: join(dir, "github_env"),
    path: join(dir, "github_path"),
  };
  await Promise.all(Object.values(files).map((f) => writeFile(f, "")));

  const inherited: Record<string, string> = {};
  for (const [k, v] of Object.entries(opts.base ?? process.env)) if (v !== undefined && !DROP.test(k)) inherited[k] = v;
  const apiUrl = opts.apiUrl ?? UNREACHABLE_API;
  const env: Record<string, string> = {
    ...inherited,
    CI: "true",
    GITHUB_ACTIONS: "true",
    GITHUB_EVENT_NAME: eventName,
    GITHUB_EVENT_PATH: eventPath,
    GITHUB_REPOSITORY: repo,
    GITHUB_REPOSITORY_OWNER: owner,
    GITHUB_REPOSITORY_ID: String(payload.repository?.id ?? 1),
    GITHUB_REPOSITORY_OWNER_ID: String(payload.repository?.owner.id ?? 1),
    GITHUB_SHA: sha,
    GITHUB_REF: ref,
    GITHUB_REF_NAME: ref.replace(/^refs\/(heads|tags|pull)\//, ""),
    GITHUB_REF_TYPE: ref.startsWith("refs/tags/") ? "tag" : "branch",
    GITHUB_HEAD_REF: headRef,
    GITHUB_BASE_REF: baseRef,
    GITHUB_RUN_ID: "4242424242",
    GITHUB_RUN_NUMBER: "7",
    GITHUB_RUN_ATTEMPT: "1",
    GITHUB_WORKFLOW: "ftune",
    GITHUB_WORKFLOW_REF: `${repo}/.github/workflows/ftune.yml@${ref}`,
    GITHUB_JOB: "train",
    GITHUB_ACTION: "__run",
    GITHUB_ACTOR: payload.sender?.login ?? owner,
    GITHUB_ACTOR_ID: String(payload.sender?.id ?? 1),
    GITHUB_TRIGGERING_ACTOR: payload.sender?.login ?? owner,
    GITHUB_WORKSPACE: workspace,
    GITHUB_SERVER_URL: "https://github.com",
    GITHUB_API_URL: apiUrl,
    GITHUB_GRAPHQL_URL: `${apiUrl}/graphql`,
    GITHUB_TOKEN: opts.token ?? "ghs_actionsEnvStandInToken",
    GITHUB_OUTPUT: files.output,
    GITHUB_STEP_SUMMARY: files.summary,
    GITHUB_STATE: files.state,
    GITHUB_ENV: files.env,
    GITHUB_PATH: files.path,
    RUNNER_OS: "Linux",
    RUNNER_ARCH: "X64",
    RUNNER_NAME: "ftune-stand-in",
    RUNNER_ENVIRONMENT: "github-hosted",
    RUNNER_TEMP: runnerTemp,
    RUNNER_TOOL_CACHE: toolCache,
  };

  const read = (f: string): string => readFileSync(f, "utf8");
  return {
    env,
    dir,
    eventPath,
    files,
    readOutputs: () => parseFileCommands(read(files.output), files.output),
    readState: () => parseFileCommands(read(files.state), files.state),
    readExportedEnv: () => parseFileCommands(read(files.env), files.env),
    readSummary: () => read(files.summary),
    cleanup: () => removeTempDir(dir),
  };
}
