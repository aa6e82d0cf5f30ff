// "did you mean ...?" for misspelled and misplaced keys, and the renames from the seed's first config format.
import { allSchemaPaths, knownKeys } from "./schema.js";
import type { PathSeg } from "./paths.js";

/** Keys of the seed project's first config (experiment_config.v0.yaml) and where today's config has them. */
const RENAMED: Record<string, string> = {
  "lora.r": "lora.rank",
  "training.world_size": "compute.gpus_per_node",
  "training.model_save_directory": "model.model_save_directory",
  "dataset.num_data_samples": "dataset.num_samples",
  "dataset.dataset_path": "dataset.huggingface_dataset_path",
};

export function levenshtein(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length]!;
}

/** The closest of `candidates` to `word`, when close enough to be a plausible typo. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDist = Infinity;
  const lower = word.toLowerCase();
  for (const c of candidates) {
    const d = levenshtein(lower, c.toLowerCase());
    if (d < bestDist) {
      best = c;
      bestDist = d;
    }
  }
  const limit = Math.max(2, Math.floor(word.length / 3));
  return best !== undefined && bestDist <= limit ? best : undefined;
}

/** The message for an unknown key at `parent` named `name`. */
export function unknownKeyMessage(parent: readonly PathSeg[], name: string): string {
  const dotted = [...parent, name].join(".");
  const renamed = RENAMED[dotted];
  if (renamed) return `unknown key \`${name}\`: it was renamed; write \`${renamed}\` instead`;
  const here = knownKeys(parent);
  const near = closest(name, here);
  if (near) return `unknown key \`${name}\`; did you mean \`${near}\`?`;
  const elsewhere = allSchemaPaths().filter((p) => p[p.length - 1] === name && p.length > 1);
  if (elsewhere.length > 0) {
    return `unknown key \`${name}\` here; did you mean \`${elsewhere.map((p) => p.join(".")).join("` or `")}\`?`;
  }
  const list = here.length > 0 ? `; known keys here: ${here.join(", ")}` : "";
  return `unknown key \`${name}\`${list}`;
}
