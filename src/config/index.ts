// The config stage's public interface: load a config file (with extends and --set), validate it against the
// schema and the semantic rules, fill defaults and hash it. Every problem comes back as a located
// Diagnostic; nothing here throws for bad user input.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { isAbsolute, join, relative, resolve } from "node:path";
import { configHash } from "./canonical.js";
import { sortDiagnostics, type Diagnostic, type SourcePos } from "./diagnostics.js";
import { loadLayers, type ReadFileHook } from "./layers.js";
import { applyOverrides, parseOverrides } from "./overrides.js";
import { getAt, isPlainObject, pathKey } from "./paths.js";
import { runSchema } from "./schema.js";
import { schemaDiagnostics, type Locate } from "./schema-errors.js";
import { findLiteralSecrets } from "./secrets.js";
import { semanticDiagnostics } from "./semantic.js";
import type { FtuneConfig } from "./types.js";

export type { Diagnostic, SourcePos } from "./diagnostics.js";
export { formatDiagnostic, formatPos } from "./diagnostics.js";
export { canonicalJson, configHash } from "./canonical.js";
export type { FtuneConfig, StorageConfig, ModelConfig, DatasetConfig, FieldsMapping, FieldsPreset, PromptTemplate, SshHostConfig, ComputeConfig } from "./types.js";
export type { ReadFileHook } from "./layers.js";

export interface LoadOptions {
  /** `--set dotted.key=value` flags, applied after all files. */
  sets?: readonly string[];
  /** Reads a file's text (null when missing); defaults to the file system. */
  readFile?: ReadFileHook;
  /** Paths in messages are shown relative to this directory (default: process.cwd()). */
  cwd?: string;
  /** Validate as a base config that others extend: no completeness checks (base model, dataset source). */
  partial?: boolean;
}

export interface ConfigResult {
  /** The config file as shown in messages. */
  file: string;
  ok: boolean;
  diagnostics: Diagnostic[];
  /** Present when ok and not partial: the resolved config (defaults filled) and its sha256. */
  config?: FtuneConfig;
  hash?: string;
  /** Absolute paths of every file read, the config itself first, then what it extends. */
  files: string[];
}

const fsRead: ReadFileHook = (abs) => {
  try {
    return readFileSync(abs, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT" || (e as NodeJS.ErrnoException).code === "ENOTDIR") return null;
    throw e;
  }
};

export function displayPath(abs: string, cwd: string): string {
  const rel = relative(cwd, abs);
  return rel && !rel.startsWith("..") && !isAbsolute(rel) ? rel : abs;
}

export function loadConfig(path: string, opts: LoadOptions = {}): ConfigResult {
  const cwd = opts.cwd ?? process.cwd();
  const abs = resolve(cwd, path);
  const display = (p: string): string => displayPath(p, cwd);
  const layered = loadLayers(abs, opts.readFile ?? fsRead, display);
  const diagnostics = [...layered.diagnostics];
  const done = (extra: Partial<ConfigResult> = {}): ConfigResult => {
    const sorted = sortDiagnostics(diagnostics);
    return { file: display(abs), ok: !sorted.some((d) => d.severity === "error"), diagnostics: sorted, files: layered.files, ...extra };
  };

  const parsed = parseOverrides(opts.sets ?? []);
  diagnostics.push(...parsed.diagnostics);
  if (layered.broken) return done();

  const raw = layered.data;
  const locations = layered.locations;
  applyOverrides(raw, parsed.overrides);
  for (const o of parsed.overrides) {
    const k = pathKey(o.segs);
    for (const existing of [...locations.keys()]) {
      if (existing === k || existing.startsWith(`${k}.`) || existing.startsWith(`${k}[`)) locations.delete(existing);
    }
    locations.set(k, { key: { file: o.source }, value: { file: o.source } });
  }

  const rootPos: SourcePos = { file: display(abs), line: 1, col: 1 };
  const locate: Locate = (segs, prefer) => {
    for (let n = segs.length; n > 0; n--) {
      const loc = locations.get(pathKey(segs.slice(0, n)));
      if (!loc) continue;
      // The exact key: where its key or value is written, as asked. An ancestor (the value is a default or
      // missing): the key of the group it belongs to.
      if (n === segs.length) return (prefer === "key" ? loc.key : loc.value) ?? loc.value;
      return loc.key ?? loc.value;
    }
    return rootPos;
  };

  diagnostics.push(...findLiteralSecrets(raw, locate));
  const resolved = structuredClone(raw);
  const errors = runSchema(resolved);
  diagnostics.push(...schemaDiagnostics(errors, resolved, locate, opts.partial ?? false));
  applySeedAliases(resolved, raw);
  diagnostics.push(...semanticDiagnostics(resolved, raw, locate, opts.partial ?? false));

  const result = done();
  if (!result.ok || opts.partial) return result;
  return { ...result, config: resolved as unknown as FtuneConfig, hash: configHash(resolved) };
}

/** The seed's training.cutoff_len alone means the tokenization cutoff (ftune's one place for it). */
function applySeedAliases(resolved: Record<string, unknown>, raw: Record<string, unknown>): void {
  const seedCutoff = getAt(raw, ["training", "cutoff_len"]);
  const tokenization = getAt(resolved, ["dataset", "tokenization"]);
  if (typeof seedCutoff === "number" && getAt(raw, ["dataset", "tokenization", "cutoff_len"]) === undefined && isPlainObject(tokenization)) {
    tokenization.cutoff_len = seedCutoff;
  }
}

/** YAML files under the given paths (folders are searched recursively; hidden folders and node_modules skipped). */
export function expandConfigPaths(paths: readonly string[], cwd = process.cwd()): string[] {
  const out: string[] = [];
  const walk = (abs: string): void => {
    for (const name of readdirSync(abs).sort()) {
      if (name.startsWith(".") || name === "node_modules") continue;
      const p = join(abs, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.ya?ml$/.test(name)) out.push(p);
    }
  };
  for (const p of paths) {
    const abs = resolve(cwd, p);
    let isDir = false;
    try {
      isDir = statSync(abs).isDirectory();
    } catch {
      out.push(abs); // reported as "file not found" by loadConfig
      continue;
    }
    if (isDir) walk(abs);
    else out.push(abs);
  }
  return [...new Set(out)];
}

export interface ValidationReport {
  results: (ConfigResult & { baseOf?: string[] })[];
  /** Every message once (a problem in a shared base would otherwise repeat for each config extending it). */
  diagnostics: Diagnostic[];
  errors: number;
  warnings: number;
}

/**
 * Validates every config under `paths`. A file that another file in the set extends is a base config: it is
 * checked for syntax, types and unknown keys, but need not be complete on its own.
 */
export function validatePaths(paths: readonly string[], opts: Omit<LoadOptions, "partial"> = {}): ValidationReport {
  const cwd = opts.cwd ?? process.cwd();
  const files = expandConfigPaths(paths, cwd);
  const first = files.map((f) => loadConfig(f, opts));
  const extendedBy = new Map<string, string[]>();
  for (const r of first) {
    for (const parent of r.files.slice(1)) extendedBy.set(parent, [...(extendedBy.get(parent) ?? []), r.file]);
  }
  const results = files.map((f, i) => {
    const children = extendedBy.get(f);
    if (!children) return first[i]!;
    return { ...loadConfig(f, { ...opts, partial: true }), baseOf: children };
  });
  const all = results.flatMap((r) => r.diagnostics);
  const unique = new Map(all.map((d) => [`${d.severity}|${d.pos.file}|${d.pos.line}|${d.pos.col}|${d.key}|${d.message}`, d]));
  const list = sortDiagnostics([...unique.values()]);
  return {
    results,
    diagnostics: list,
    errors: list.filter((d) => d.severity === "error").length,
    warnings: list.filter((d) => d.severity === "warning").length,
  };
}
