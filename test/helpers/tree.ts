// Writes small config trees into a temp folder for a test, and removes them afterwards.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

export interface Tree {
  dir: string;
  path(rel: string): string;
  write(rel: string, text: string): string;
  remove(): void;
}

export function makeTree(files: Record<string, string> = {}): Tree {
  const dir = mkdtempSync(join(tmpdir(), "ftune-cfg-"));
  const tree: Tree = {
    dir,
    path: (rel) => join(dir, rel),
    write(rel, text) {
      const p = join(dir, rel);
      mkdirSync(dirname(p), { recursive: true });
      writeFileSync(p, text);
      return p;
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
  for (const [rel, text] of Object.entries(files)) tree.write(rel, text);
  return tree;
}

/** A complete, valid config body most tests start from. */
export const MINIMAL = `model:
  base_model: TinyLlama/TinyLlama-1.1B-Chat-v1.0
dataset:
  local_dataset_path: data.jsonl
`;
