// The JSON Schema (schema/ftune.schema.json, the one file editors also use) compiled with ajv, plus the
// navigation the rest of the config system needs: the schema of a dotted key (to type --set values) and the
// keys known at a level (for "did you mean").
import { Ajv, type ErrorObject } from "ajv";
import schemaJson from "../../schema/ftune.schema.json" with { type: "json" };
import type { PathSeg } from "./paths.js";

export interface JsonSchema {
  type?: string | string[];
  description?: string;
  default?: unknown;
  enum?: unknown[];
  properties?: Record<string, JsonSchema>;
  additionalProperties?: boolean | JsonSchema;
  required?: string[];
  items?: JsonSchema;
  if?: JsonSchema;
  then?: JsonSchema;
  else?: JsonSchema;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  minItems?: number;
}

export const SCHEMA = schemaJson as JsonSchema;

const ajv = new Ajv({ allErrors: true, useDefaults: true, allowUnionTypes: true, strict: true });
const validateFn = ajv.compile(schemaJson);

export function runSchema(data: unknown): ErrorObject[] {
  validateFn(data);
  return [...(validateFn.errors ?? [])];
}

export function typesOf(s: JsonSchema | undefined): string[] {
  if (!s?.type) return [];
  return Array.isArray(s.type) ? s.type : [s.type];
}

/** The object-shaped branch of a schema (for `fields`, whose object form lives under `else`). */
function objectBranch(s: JsonSchema): JsonSchema {
  if (s.properties || s.additionalProperties !== undefined) return s;
  if (s.else && typesOf(s.else).includes("object")) return s.else;
  return s;
}

/** Schema of a dotted path; undefined when the path does not exist. Free-form objects answer `{}`. */
export function schemaAt(segs: readonly PathSeg[]): JsonSchema | undefined {
  let cur: JsonSchema | undefined = SCHEMA;
  for (const seg of segs) {
    if (!cur) return undefined;
    if (typeof seg === "number") {
      cur = cur.items;
      continue;
    }
    const obj: JsonSchema = objectBranch(cur);
    if (obj.properties && seg in obj.properties) cur = obj.properties[seg];
    else if (typeof obj.additionalProperties === "object") cur = obj.additionalProperties;
    else if (obj.additionalProperties === undefined && typesOf(obj).includes("object") && !obj.properties) cur = {};
    else return undefined;
  }
  return cur;
}

/** Keys the schema names at a level (empty for free-form mappings). */
export function knownKeys(segs: readonly PathSeg[]): string[] {
  const s = schemaAt(segs);
  return s ? Object.keys(objectBranch(s).properties ?? {}) : [];
}

/** Every dotted key the schema defines, for "this key belongs to another group" hints. */
export function allSchemaPaths(): string[][] {
  const out: string[][] = [];
  const visit = (s: JsonSchema, segs: string[]): void => {
    const props = objectBranch(s).properties ?? {};
    for (const [k, child] of Object.entries(props)) {
      out.push([...segs, k]);
      visit(child, [...segs, k]);
    }
  };
  visit(SCHEMA, []);
  return out;
}
