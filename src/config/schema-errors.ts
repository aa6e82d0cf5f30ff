// Turns ajv's errors into located, human messages: one per problem, pointing at the key (unknown keys) or
// the value (wrong type, out of range) in the file where it was written.
import type { ErrorObject } from "ajv";
import type { Diagnostic, SourcePos } from "./diagnostics.js";
import { closest, unknownKeyMessage } from "./suggest.js";
import { getAt, pathKey, type PathSeg } from "./paths.js";

export type Locate = (segs: readonly PathSeg[], prefer: "key" | "value") => SourcePos;

function pointerToSegs(pointer: string, data: unknown): PathSeg[] {
  if (pointer === "") return [];
  const segs: PathSeg[] = [];
  for (const raw of pointer.slice(1).split("/")) {
    const s = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    segs.push(Array.isArray(getAt(data, segs)) ? Number(s) : s);
  }
  return segs;
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  if (typeof v === "string") return `the string ${JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v)}`;
  return `${typeof v} ${String(v)}`;
}

const TYPE_WORDS: Record<string, string> = {
  integer: "a whole number",
  number: "a number",
  string: "a string",
  boolean: "true or false",
  array: "a list",
  object: "a mapping",
  null: "null",
};

function typeMessage(expected: string, value: unknown): string {
  const want = expected.split(",").map((t) => TYPE_WORDS[t] ?? t).join(" or ");
  let hint = "";
  if (typeof value === "string" && value.trim().startsWith("[") && expected.includes("array")) {
    hint = " (it is a quoted string; drop the quotes to make it a YAML list, e.g. [q_proj, v_proj])";
  } else if (typeof value === "string" && expected.includes("number") && value.trim() !== "" && !Number.isNaN(Number(value))) {
    hint = " (drop the quotes)";
  }
  return `must be ${want}, got ${describe(value)}${hint}`;
}

/** `data` is the instance ajv saw (with defaults filled), used to tell list indices from keys. */
export function schemaDiagnostics(errors: ErrorObject[], data: unknown, locate: Locate, partial: boolean): Diagnostic[] {
  const out: Diagnostic[] = [];
  const typeErrorAt = new Set<string>();
  for (const e of errors) if (e.keyword === "type") typeErrorAt.add(e.instancePath);

  for (const e of errors) {
    const segs = pointerToSegs(e.instancePath, data);
    const value = getAt(data, segs);
    const key = pathKey(segs) || undefined;
    const push = (pos: SourcePos, k: string | undefined, message: string): void => {
      out.push({ severity: "error", pos, key: k, message });
    };
    // One message per value: a wrong type makes enum/range complaints about the same value noise.
    if (e.keyword !== "type" && typeErrorAt.has(e.instancePath)) continue;
    switch (e.keyword) {
      case "if":
        break; // the failing then/else branch reports the real problem
      case "additionalProperties": {
        const name = String((e.params as { additionalProperty: string }).additionalProperty);
        push(locate([...segs, name], "key"), pathKey([...segs, name]), unknownKeyMessage(segs, name));
        break;
      }
      case "required": {
        if (partial) break;
        const missing = String((e.params as { missingProperty: string }).missingProperty);
        push(locate(segs, "key"), pathKey([...segs, missing]), `missing required key \`${missing}\``);
        break;
      }
      case "type":
        push(locate(segs, "value"), key, typeMessage(String((e.params as { type: string }).type), value));
        break;
      case "enum": {
        const allowed = (e.params as { allowedValues: unknown[] }).allowedValues;
        const shown = allowed.map((a) => (a === null ? "null" : String(a)));
        const near = typeof value === "string" ? closest(value, shown) : undefined;
        const hint = near ? `; did you mean \`${near}\`?` : "";
        push(locate(segs, "value"), key, `must be one of: ${shown.join(", ")} (got ${describe(value)})${hint}`);
        break;
      }
      case "propertyNames": {
        push(locate(segs, "key"), key, `invalid key name \`${String((e.params as { propertyName: string }).propertyName)}\``);
        break;
      }
      case "pattern":
        push(locate(segs, "value"), key, `${describe(value)} is not valid here (expected the pattern ${(e.params as { pattern: string }).pattern})`);
        break;
      case "uniqueItems":
        push(locate(segs, "value"), key, "must not list the same item twice");
        break;
      default:
        push(locate(segs, "value"), key, `${e.message ?? "is invalid"} (got ${describe(value)})`);
    }
  }
  return out;
}
