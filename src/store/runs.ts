// Run records: runs/<project>/<namespace>/<run-id>/ with run.json (status, phases, host, cost, metrics summary)
// and whatever files the run produced. Each record is also written to runs/<project>/.index/<namespace>/<run-id>.json,
// a flat list that a plain prefix listing reads without walking checkpoints (and without delimiter listings,
// which some S3-compatible servers get wrong). Git forbids branch names starting with ".", so no namespace
// collides with .index. Run ids sort by time: "the latest successful run of config X in main" (the baseline)
// reads newest-first and stops at the first match.
import { randomBytes } from "node:crypto";
import { UserError } from "../util/errors.js";
import type { Store } from "./types.js";

export type RunStatus = "running" | "succeeded" | "failed" | "cancelled";

export interface RunRecord {
  run_id: string;
  project: string;
  namespace: string;
  /** The config's name (its file name without .yaml): what a baseline is matched on. */
  config_name: string;
  config_hash: string;
  status: RunStatus;
  started_at: string;
  finished_at?: string;
  dry_run?: boolean;
  [extra: string]: unknown;
}

export const RUN_RECORD = "run.json";

/** 20261129T021500Z-<8 hex>: sortable by start time, unique without coordination. */
export function newRunId(now = new Date()): string {
  return `${now.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z")}-${randomBytes(4).toString("hex")}`;
}

const SEGMENT = /^[A-Za-z0-9._-]+$/;

/**
 * Branch names may contain "/": each namespace is one path segment in the store. "/" becomes "~", which git
 * forbids in branch names, so the mapping is reversible and feature/x reads as feature~x; anything else unusual
 * is percent-encoded.
 */
export function namespaceSegment(namespace: string): string {
  if (!namespace) throw new UserError("empty namespace");
  return encodeURIComponent(namespace).replace(/%2F/g, "~");
}

export function namespaceFromSegment(segment: string): string {
  return decodeURIComponent(segment.replace(/~/g, "%2F"));
}

function check(what: string, v: string): string {
  if (!SEGMENT.test(v)) throw new UserError(`${what} ${JSON.stringify(v)} may only contain letters, digits, '.', '_' and '-'`);
  return v;
}

export class RunStore {
  constructor(readonly store: Store) {}

  prefix(project: string, namespace: string, runId: string): string {
    return `runs/${check("project", project)}/${namespaceSegment(namespace)}/${check("run id", runId)}`;
  }

  uri(project: string, namespace: string, runId: string): string {
    return this.store.uri(this.prefix(project, namespace, runId));
  }

  private indexFolder(project: string, namespace?: string): string {
    return `runs/${check("project", project)}/.index${namespace === undefined ? "" : `/${namespaceSegment(namespace)}`}`;
  }

  /** run.json first, then its index entry: a listed run always has its record. */
  async writeRecord(rec: RunRecord): Promise<void> {
    const body = `${JSON.stringify(rec, null, 2)}\n`;
    await this.store.putBytes(`${this.prefix(rec.project, rec.namespace, rec.run_id)}/${RUN_RECORD}`, body, { contentType: "application/json" });
    await this.store.putBytes(`${this.indexFolder(rec.project, rec.namespace)}/${rec.run_id}.json`, body, { contentType: "application/json" });
  }

  async readRecord(project: string, namespace: string, runId: string): Promise<RunRecord | null> {
    const b = await this.store.getBytes(`${this.prefix(project, namespace, runId)}/${RUN_RECORD}`);
    return b ? (JSON.parse(b.toString("utf8")) as RunRecord) : null;
  }

  async writeFile(project: string, namespace: string, runId: string, path: string, data: Buffer | string): Promise<void> {
    await this.store.putBytes(`${this.prefix(project, namespace, runId)}/${path}`, data);
  }

  async readFile(project: string, namespace: string, runId: string, path: string): Promise<Buffer | null> {
    return this.store.getBytes(`${this.prefix(project, namespace, runId)}/${path}`);
  }

  private async indexEntries(project: string, namespace?: string): Promise<{ namespace: string; runId: string; key: string }[]> {
    const out: { namespace: string; runId: string; key: string }[] = [];
    const base = this.indexFolder(project);
    for await (const o of this.store.list(this.indexFolder(project, namespace))) {
      const m = /^([^/]+)\/([^/]+)\.json$/.exec(o.key.slice(base.length + 1));
      if (m) out.push({ namespace: namespaceFromSegment(m[1]!), runId: m[2]!, key: o.key });
    }
    return out.sort((a, b) => b.runId.localeCompare(a.runId));
  }

  /** Run ids in a namespace, newest first. */
  async listRuns(project: string, namespace: string): Promise<string[]> {
    return (await this.indexEntries(project, namespace)).map((e) => e.runId);
  }

  async listNamespaces(project: string): Promise<string[]> {
    return [...new Set((await this.indexEntries(project)).map((e) => e.namespace))].sort();
  }

  /** The newest run of `configName` in `namespace` that succeeded and `accept`s (the baseline for main), or null. */
  async latestSuccessful(project: string, namespace: string, configName: string, accept: (rec: RunRecord) => boolean = () => true): Promise<RunRecord | null> {
    for (const e of await this.indexEntries(project, namespace)) {
      const b = await this.store.getBytes(e.key);
      const rec = b ? (JSON.parse(b.toString("utf8")) as RunRecord) : null;
      if (rec && rec.status === "succeeded" && rec.config_name === configName && accept(rec)) return rec;
    }
    return null;
  }

  /** Finds a run by id in any namespace of the project. */
  async findRun(project: string, runId: string): Promise<RunRecord | null> {
    const e = (await this.indexEntries(project)).find((x) => x.runId === runId);
    return e ? this.readRecord(project, e.namespace, runId) : null;
  }
}
