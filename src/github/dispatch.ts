// repository_dispatch events: how a dataset repo tells the repos that fine-tune on it that new data is ready
// (`<project>.dataprep`). GitHub allows at most 10 top-level keys in client_payload and 64 KB in all.
import { getOctokit } from "@actions/github";
import { UserError } from "../util/errors.js";
import { withRetry } from "../store/retry.js";

export interface DispatchTarget {
  repo: string;
  ok: boolean;
  status?: number;
  error?: string;
}

export function checkClientPayload(payload: Record<string, unknown>): void {
  const keys = Object.keys(payload);
  if (keys.length > 10) throw new UserError(`repository_dispatch client_payload has ${keys.length} top-level keys; GitHub allows 10`);
  const size = Buffer.byteLength(JSON.stringify(payload));
  if (size >= 64 * 1024) throw new UserError(`repository_dispatch client_payload is ${size} bytes; GitHub allows under 64 KB`);
}

/**
 * Sends `eventType` to every repo. The token needs write access to each target (a fine-grained PAT or a GitHub App
 * token; the job's own GITHUB_TOKEN only reaches its own repository). Every target is tried; the result says which
 * failed and why.
 */
export async function sendDispatch(repos: readonly string[], eventType: string, payload: Record<string, unknown>, token: string, apiUrl?: string): Promise<DispatchTarget[]> {
  checkClientPayload(payload);
  const octokit = getOctokit(token, apiUrl ? { baseUrl: apiUrl } : {});
  const out: DispatchTarget[] = [];
  for (const full of repos) {
    const [owner, repo] = full.split("/");
    try {
      const r = await withRetry(() => octokit.rest.repos.createDispatchEvent({ owner: owner!, repo: repo!, event_type: eventType, client_payload: payload }), { attempts: 4 });
      out.push({ repo: full, ok: true, status: r.status });
    } catch (e) {
      const err = e as { status?: number; message?: string };
      out.push({ repo: full, ok: false, status: err.status, error: err.message });
    }
  }
  return out;
}
