// Key-level difference of two resolved configs: only the dotted keys whose effective value changed.
import { canonicalJson } from "../config/index.js";

export interface KeyChange {
  key: string;
  /** undefined: the key did not exist on that side. */
  old?: unknown;
  new?: unknown;
}

function flatten(v: unknown, prefix: string, out: Map<string, unknown>): void {
  if (typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length > 0) {
    for (const [k, x] of Object.entries(v)) flatten(x, prefix ? `${prefix}.${k}` : k, out);
  } else {
    // Lists are values: a changed list of target modules is one change, shown whole.
    out.set(prefix, v);
  }
}

export function diffConfigs(oldCfg: unknown, newCfg: unknown): KeyChange[] {
  const a = new Map<string, unknown>();
  const b = new Map<string, unknown>();
  if (oldCfg !== undefined) flatten(oldCfg, "", a);
  flatten(newCfg, "", b);
  const keys = [...new Set([...a.keys(), ...b.keys()])].sort();
  const out: KeyChange[] = [];
  for (const key of keys) {
    const inA = a.has(key);
    const inB = b.has(key);
    if (inA && inB && canonicalJson(a.get(key)) === canonicalJson(b.get(key))) continue;
    const change: KeyChange = { key };
    if (inA) change.old = a.get(key);
    if (inB) change.new = b.get(key);
    out.push(change);
  }
  return out;
}
