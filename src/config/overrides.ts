// `--set dotted.key=value`: the value is typed by the schema at that key, so `training.learning_rate=1e-4`
// is a number, `wandb=null` is null and `lora.target_modules=[q_proj,k_proj]` (or `q_proj,k_proj`) a list.
import { parse as parseYaml } from "yaml";
import type { Diagnostic } from "./diagnostics.js";
import { setAt, type PathSeg } from "./paths.js";
import { schemaAt, typesOf } from "./schema.js";
import { unknownKeyMessage } from "./suggest.js";

export interface Override {
  segs: string[];
  value: unknown;
  /** The flag as written, used as the location of any error about this value. */
  source: string;
}

function yamlValue(text: string): unknown {
  try {
    return parseYaml(text) as unknown;
  } catch {
    return text;
  }
}

export function typedValue(types: string[], text: string): unknown {
  const t = text.trim();
  if (types.includes("null") && (t === "null" || t === "~" || t === "")) return null;
  if ((types.includes("number") || types.includes("integer")) && t !== "" && !Number.isNaN(Number(t))) return Number(t);
  if (types.includes("boolean") && (t === "true" || t === "false")) return t === "true";
  if (types.includes("array")) {
    if (t.startsWith("[")) return yamlValue(t);
    return t === "" ? [] : t.split(",").map((x) => x.trim());
  }
  if (types.includes("object") && t.startsWith("{")) return yamlValue(t);
  if (types.includes("string")) return text;
  // Free-form keys (trainer.extra.*) and anything the schema does not type: read it as YAML.
  return yamlValue(text);
}

export function parseOverrides(flags: readonly string[]): { overrides: Override[]; diagnostics: Diagnostic[] } {
  const overrides: Override[] = [];
  const diagnostics: Diagnostic[] = [];
  for (const flag of flags) {
    const source = `--set ${flag}`;
    const eq = flag.indexOf("=");
    const key = eq > 0 ? flag.slice(0, eq).trim() : "";
    if (!key || !/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_-]+)*$/.test(key)) {
      diagnostics.push({ severity: "error", pos: { file: source }, message: "expected --set dotted.key=value, e.g. --set training.learning_rate=1e-4" });
      continue;
    }
    const segs = key.split(".");
    const schema = schemaAt(segs);
    if (!schema) {
      // Name the first segment that does not exist, with a suggestion for it.
      let i = 0;
      while (i < segs.length && schemaAt(segs.slice(0, i + 1))) i++;
      const parent: PathSeg[] = segs.slice(0, i);
      diagnostics.push({ severity: "error", pos: { file: source }, key, message: unknownKeyMessage(parent, segs[i]!) });
      continue;
    }
    overrides.push({ segs, value: typedValue(typesOf(schema), flag.slice(eq + 1)), source });
  }
  return { overrides, diagnostics };
}

export function applyOverrides(data: Record<string, unknown>, overrides: readonly Override[]): void {
  for (const o of overrides) setAt(data, o.segs, o.value);
}
