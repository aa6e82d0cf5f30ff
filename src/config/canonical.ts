// Canonical JSON (sorted keys, no whitespace) and its sha256: same hash = same experiment, whatever the
// key order, comments or extends structure of the files it came from.
import { createHash } from "node:crypto";
import { isPlainObject } from "./paths.js";

export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  if (isPlainObject(v)) {
    const keys = Object.keys(v).filter((k) => v[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k])}`).join(",")}}`;
  }
  if (typeof v === "number" && !Number.isFinite(v)) return "null";
  return JSON.stringify(v ?? null);
}

export function sortKeysDeep<T>(v: T): T {
  if (Array.isArray(v)) return v.map(sortKeysDeep) as T;
  if (isPlainObject(v)) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) out[k] = sortKeysDeep(v[k]);
    return out as T;
  }
  return v;
}

export function configHash(resolved: unknown): string {
  return createHash("sha256").update(canonicalJson(resolved)).digest("hex");
}
