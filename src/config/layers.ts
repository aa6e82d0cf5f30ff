// Reads a config and everything it `extends`, merging them into one mapping while remembering, for every
// dotted key, which file and line the effective value came from. Files are read through a hook so that
// `ftune plan --base <ref>` can read the same tree from git instead of the working copy.
import { dirname, isAbsolute, relative, resolve } from "node:path";
import type { Diagnostic, SourcePos } from "./diagnostics.js";
import { isPlainObject, pathKey } from "./paths.js";
import { parseYamlSource, type LocationMap } from "./yaml-source.js";

/** Returns the file's text, or null when it does not exist. */
export type ReadFileHook = (absPath: string) => string | null;

export interface Layered {
  /** The merged mapping, without `extends`. */
  data: Record<string, unknown>;
  locations: LocationMap;
  diagnostics: Diagnostic[];
  /** Every file read, the root first, as absolute paths. */
  files: string[];
  /** True when some file could not be read or parsed: schema checks on the rest would only add noise. */
  broken: boolean;
}

/** Fields holding a file path relative to the config file that sets them (tokenizer: only a path to a .json). */
const PATH_FIELDS: { group: string; key: string; isPath: (v: string) => boolean }[] = [
  { group: "dataset", key: "local_dataset_path", isPath: () => true },
  { group: "dataset", key: "tokenizer", isPath: (v) => v.endsWith(".json") },
];

/**
 * A relative path in an extended file means "next to that file": rewritten relative to the root config's folder,
 * where every path of the merged config is resolved. Relative, not absolute, so the config hash does not depend on
 * where the repository is checked out.
 */
function rebasePaths(data: Record<string, unknown>, fromDir: string, rootDir: string): Record<string, unknown> {
  const out = { ...data };
  for (const f of PATH_FIELDS) {
    const group = out[f.group];
    if (!isPlainObject(group)) continue;
    const v = group[f.key];
    if (typeof v !== "string" || !v || isAbsolute(v) || v.includes("://") || !f.isPath(v)) continue;
    out[f.group] = { ...group, [f.key]: relative(rootDir, resolve(fromDir, v)).split("\\").join("/") || "." };
  }
  return out;
}

/** Lists are replaced and scalars overwritten; only mappings merge key by key. */
export function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = isPlainObject(b) && isPlainObject(v) ? deepMerge(b, v) : v;
  }
  return out;
}

export function loadLayers(rootAbs: string, readFile: ReadFileHook, display: (abs: string) => string): Layered {
  const diagnostics: Diagnostic[] = [];
  const files: string[] = [];
  let broken = false;

  const load = (abs: string, stack: string[], from: SourcePos | null): { data: Record<string, unknown>; locations: LocationMap } => {
    const empty = { data: {}, locations: new Map() as LocationMap };
    const shown = display(abs);
    const text = readFile(abs);
    if (text === null) {
      broken = true;
      diagnostics.push({
        severity: "error",
        pos: from ?? { file: shown },
        key: from ? "extends" : undefined,
        message: from ? `extended file ${shown} does not exist` : `file not found`,
      });
      return empty;
    }
    files.push(abs);
    const parsed = parseYamlSource(text, shown);
    diagnostics.push(...parsed.diagnostics);
    if (parsed.syntaxBroken) {
      broken = true;
      return empty;
    }
    if (parsed.data === null || parsed.data === undefined) {
      diagnostics.push({ severity: "error", pos: { file: shown, line: 1, col: 1 }, message: "the file is empty; a config is a YAML mapping" });
      broken = true;
      return empty;
    }
    if (!isPlainObject(parsed.data)) {
      diagnostics.push({
        severity: "error",
        pos: parsed.locations.get("")?.value ?? { file: shown, line: 1, col: 1 },
        message: `a config must be a YAML mapping (key: value), not a ${Array.isArray(parsed.data) ? "list" : typeof parsed.data}`,
      });
      broken = true;
      return empty;
    }
    const own = abs === rootAbs ? { ...parsed.data } : rebasePaths(parsed.data, dirname(abs), dirname(rootAbs));
    const rawExtends = own.extends;
    const parents = normaliseExtends(rawExtends);
    delete own.extends;
    let data: Record<string, unknown> = {};
    const locations: LocationMap = new Map();
    if (parents === "invalid") {
      const loc = parsed.locations.get("extends");
      diagnostics.push({
        severity: "error",
        pos: loc?.value ?? { file: shown, line: 1, col: 1 },
        key: "extends",
        message: "must be a relative path or a list of relative paths to other config files",
      });
      broken = true;
    } else {
      parents.forEach((rel, i) => {
        const listed = Array.isArray(rawExtends);
        const pos = parsed.locations.get(listed ? pathKey(["extends", i]) : "extends")?.value ?? { file: shown, line: 1, col: 1 };
        const parentAbs = resolve(dirname(abs), rel);
        if (parentAbs === abs || stack.includes(parentAbs)) {
          const cycle = [...stack, abs, parentAbs].slice([...stack, abs].indexOf(parentAbs)).map(display);
          diagnostics.push({ severity: "error", pos, key: "extends", message: `extends cycle: ${cycle.join(" -> ")}` });
          broken = true;
          return;
        }
        const parent = load(parentAbs, [...stack, abs], pos);
        data = deepMerge(data, parent.data);
        for (const [k, v] of parent.locations) locations.set(k, v);
      });
    }
    data = deepMerge(data, own);
    for (const [k, v] of parsed.locations) if (k !== "" && k !== "extends" && !k.startsWith("extends[")) locations.set(k, v);
    return { data, locations };
  };

  const { data, locations } = load(rootAbs, [], null);
  return { data, locations, diagnostics, files, broken };
}

function normaliseExtends(v: unknown): string[] | "invalid" {
  if (v === undefined || v === null) return [];
  if (typeof v === "string" && v.trim() !== "") return [v];
  if (Array.isArray(v) && v.every((x) => typeof x === "string" && x.trim() !== "")) return v as string[];
  return "invalid";
}
