// What the workflow run is about, read from the runner's environment and the event payload file (not from
// @actions/github's context, which is fixed at import time): the pull request, the branch, the namespace a run
// writes to, and the links back to the run.
import { readFileSync } from "node:fs";
import { UserError } from "../util/errors.js";

export const PRODUCTION_NAMESPACE = "main";
/** Where dispatches with overrides on main go. */
export const MANUAL_NAMESPACE = "manual";

export interface EventInfo {
  name: string | undefined;
  payload: Record<string, unknown>;
}

export function readEvent(env: NodeJS.ProcessEnv = process.env): EventInfo {
  let payload: Record<string, unknown> = {};
  if (env.GITHUB_EVENT_PATH) {
    try {
      payload = JSON.parse(readFileSync(env.GITHUB_EVENT_PATH, "utf8")) as Record<string, unknown>;
    } catch {
      payload = {};
    }
  }
  return { name: env.GITHUB_EVENT_NAME, payload };
}

/** The pull request the workflow runs for (pull_request*, or an issue_comment on a PR). */
export function pullRequestNumber(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const { payload } = readEvent(env);
  const pr = payload.pull_request as { number?: number } | undefined;
  const issue = payload.issue as { number?: number; pull_request?: unknown } | undefined;
  return pr?.number ?? (issue?.pull_request ? issue.number : undefined);
}

export function actionsRunUrl(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (!env.GITHUB_REPOSITORY || !env.GITHUB_RUN_ID) return undefined;
  const attempt = env.GITHUB_RUN_ATTEMPT && env.GITHUB_RUN_ATTEMPT !== "1" ? `/attempts/${env.GITHUB_RUN_ATTEMPT}` : "";
  return `${env.GITHUB_SERVER_URL ?? "https://github.com"}/${env.GITHUB_REPOSITORY}/actions/runs/${env.GITHUB_RUN_ID}${attempt}`;
}

/**
 * Where a run is recorded, like Metaflow's @project branches: `pr-<N>` in a pull request, the branch name for a
 * branch (main is production: its runs are the baselines; a dispatch with overrides there goes to `manual`), `local`
 * outside Actions. An explicit namespace wins,
 * except that a pull request can never write to main.
 */
export function runNamespace(explicit: string | null | undefined, env: NodeJS.ProcessEnv = process.env, overridden = (env.FTUNE_OVERRIDES ?? "").trim() !== ""): string {
  const pr = env.GITHUB_EVENT_NAME?.startsWith("pull_request") ? pullRequestNumber(env) : undefined;
  if (explicit) {
    if (pr !== undefined && explicit === PRODUCTION_NAMESPACE) {
      throw new UserError(`a pull request never writes to namespace ${PRODUCTION_NAMESPACE} (its runs are the baselines); this one writes to pr-${pr}`);
    }
    return explicit;
  }
  if (pr !== undefined) return `pr-${pr}`;
  if (env.GITHUB_ACTIONS === "true") {
    const ref = env.GITHUB_REF ?? "";
    const branch = ref.startsWith("refs/heads/") ? ref.slice("refs/heads/".length) : env.GITHUB_REF_NAME;
    // A hand-dispatched run with overrides is an experiment, not the config as merged: it must not become main's
    // baseline.
    if (branch === PRODUCTION_NAMESPACE && env.GITHUB_EVENT_NAME === "workflow_dispatch" && overridden) return MANUAL_NAMESPACE;
    if (branch) return branch;
  }
  return "local";
}
