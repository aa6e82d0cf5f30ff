// From a raw source record to the prompt fields: field mapping (presets or a custom mapping) and the checks that
// decide whether a row is usable, each failure with a reason the report counts and locates.
import type { FieldsMapping, FieldsPreset } from "../config/index.js";
import { FIELD_PRESETS } from "../config/semantic.js";
import type { RawRecord } from "./readers.js";

export const DROP_REASONS = [
  "parse_error",
  "not_an_object",
  "missing_field",
  "empty_field",
  "wrong_type",
  "invalid_utf8",
  "control_characters",
  "duplicate",
  "too_long",
] as const;
export type DropReason = (typeof DROP_REASONS)[number];

/** Prompt field -> source column (null: the field is not in this dataset, e.g. alpaca-style input left out). */
export type Mapping = Record<string, string | null>;

export function mappingOf(fields: FieldsPreset | FieldsMapping): Mapping {
  if (typeof fields === "string") return { ...FIELD_PRESETS[fields]! };
  return Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, typeof v === "string" ? v : null]));
}

export type Checked = { ok: true; fields: Record<string, string> } | { ok: false; reason: DropReason; detail: string };

// C0 controls other than tab, newline and carriage return, and DEL: they break tokenizers and prompts silently.
const CONTROL = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]/;

/**
 * `required`: prompt fields that must be non-empty strings (instruction, output, and whatever else the templates
 * use apart from input). `input` may be missing, null or empty: the template without input is used then.
 */
export function checkRecord(raw: RawRecord, mapping: Mapping, required: ReadonlySet<string>): Checked {
  if (raw.error !== undefined) return { ok: false, reason: "parse_error", detail: raw.error };
  if (raw.invalidUtf8) return { ok: false, reason: "invalid_utf8", detail: "the bytes are not valid UTF-8" };
  const v = raw.value;
  if (typeof v !== "object" || v === null || Array.isArray(v)) return { ok: false, reason: "not_an_object", detail: `expected an object with fields, got ${Array.isArray(v) ? "a list" : typeof v}` };
  const rec = v as Record<string, unknown>;
  const fields: Record<string, string> = {};
  for (const [field, column] of Object.entries(mapping)) {
    const value = column === null ? undefined : rec[column];
    if (value === undefined || value === null) {
      if (required.has(field)) return { ok: false, reason: "missing_field", detail: column === null ? `no column is mapped to ${field}` : `no "${column}" (for ${field})` };
      fields[field] = "";
      continue;
    }
    if (typeof value !== "string") return { ok: false, reason: "wrong_type", detail: `"${column}" is ${Array.isArray(value) ? "a list" : typeof value}, expected a string` };
    if (required.has(field) && value.trim() === "") return { ok: false, reason: "empty_field", detail: `"${column}" is ${value === "" ? "empty" : "only whitespace"}` };
    if (CONTROL.test(value)) return { ok: false, reason: "control_characters", detail: `"${column}" contains a control character (U+${value.codePointAt(value.search(CONTROL))!.toString(16).toUpperCase().padStart(4, "0")})` };
    fields[field] = value;
  }
  return { ok: true, fields };
}
