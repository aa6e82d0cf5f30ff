// Parses one YAML config file into plain data plus a map from each dotted key to where it was written,
// so every later error can point at a file, line and column. Syntax errors, tabs and duplicate keys are
// reported here, located.
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Node, type ParsedNode } from "yaml";
import type { Diagnostic, SourcePos } from "./diagnostics.js";
import { pathKey, type PathSeg } from "./paths.js";

export interface Located {
  /** Where the key of a mapping entry is written (absent for list items and the document root). */
  key?: SourcePos;
  /** Where the value starts. */
  value: SourcePos;
}

export type LocationMap = Map<string, Located>;

export interface ParsedSource {
  data: unknown;
  locations: LocationMap;
  diagnostics: Diagnostic[];
  /** True when the YAML itself is broken; the data is then a best-effort reading not worth validating. */
  syntaxBroken: boolean;
}

const FRIENDLY: Record<string, string> = {
  TAB_AS_INDENT: "a tab is used for indentation; YAML needs spaces (replace the tab with spaces)",
  MISSING_CHAR: "a quote or bracket is not closed",
  BAD_INDENT: "bad indentation",
  BLOCK_AS_IMPLICIT_KEY: "a nested mapping cannot follow a key on the same line; put it on the next line, indented",
  MULTILINE_IMPLICIT_KEY: "a key must fit on one line (is a ':' missing, or an indentation wrong?)",
  DUPLICATE_KEY: "duplicate key",
  UNEXPECTED_TOKEN: "unexpected token",
};

export function parseYamlSource(text: string, file: string): ParsedSource {
  const lineCounter = new LineCounter();
  // uniqueKeys: false so that duplicates are reported by walk() below with both positions and the dotted key.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: false, merge: true });
  const at = (offset: number): SourcePos => {
    const { line, col } = lineCounter.linePos(offset);
    return { file, line, col };
  };
  const diagnostics: Diagnostic[] = [];
  for (const err of doc.errors) {
    const friendly = FRIENDLY[err.code];
    const detail = friendly ? `${friendly} (${err.message})` : err.message;
    diagnostics.push({ severity: "error", pos: at(err.pos[0]), message: `YAML syntax error: ${detail}` });
  }
  for (const w of doc.warnings) {
    diagnostics.push({ severity: "warning", pos: at(w.pos[0]), message: `YAML: ${w.message}` });
  }
  const syntaxBroken = doc.errors.length > 0;
  const locations: LocationMap = new Map();
  if (doc.contents) locations.set("", { value: at(doc.contents.range?.[0] ?? 0) });

  const walk = (node: ParsedNode | Node | null | undefined, segs: PathSeg[]): void => {
    if (!node || isAlias(node)) return;
    if (isMap(node)) {
      const seen = new Map<string, SourcePos>();
      for (const pair of node.items) {
        const keyNode = pair.key as ParsedNode | null;
        const keyValue = isScalar(keyNode) ? keyNode.value : keyNode ? String(keyNode) : null;
        const name = String(keyValue);
        const keyPos = at(keyNode?.range?.[0] ?? node.range?.[0] ?? 0);
        const valueNode = pair.value as ParsedNode | null;
        const valuePos = valueNode?.range ? at(valueNode.range[0]) : keyPos;
        const childSegs = [...segs, name];
        const first = seen.get(name);
        if (first) {
          diagnostics.push({
            severity: "error",
            pos: keyPos,
            key: pathKey(childSegs),
            message: `duplicate key (first written at line ${first.line}); YAML keeps only the last one, remove one of them`,
          });
        } else {
          seen.set(name, keyPos);
        }
        locations.set(pathKey(childSegs), { key: keyPos, value: valuePos });
        walk(valueNode, childSegs);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => {
        const itemNode = item as ParsedNode | null;
        const childSegs = [...segs, i];
        if (itemNode?.range) locations.set(pathKey(childSegs), { value: at(itemNode.range[0]) });
        walk(itemNode, childSegs);
      });
    }
  };
  walk(doc.contents as ParsedNode | null, []);

  let data: unknown = null;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    diagnostics.push({ severity: "error", pos: { file, line: 1, col: 1 }, message: `YAML: ${(e as Error).message}` });
    return { data: null, locations, diagnostics, syntaxBroken: true };
  }
  return { data, locations, diagnostics, syntaxBroken };
}
