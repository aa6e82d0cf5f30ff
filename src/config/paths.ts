// Dotted key paths (training.learning_rate, lora.target_modules[1]) used to name config values in messages
// and to look up where in which file a value was written.

export type PathSeg = string | number;

export function pathKey(segs: readonly PathSeg[]): string {
  let out = "";
  for (const s of segs) {
    if (typeof s === "number") out += `[${s}]`;
    else out += out === "" ? s : `.${s}`;
  }
  return out;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Value at a path, or undefined when any step is missing. */
export function getAt(root: unknown, segs: readonly PathSeg[]): unknown {
  let cur: unknown = root;
  for (const s of segs) {
    if (typeof s === "number") {
      if (!Array.isArray(cur)) return undefined;
      cur = cur[s];
    } else {
      if (!isPlainObject(cur)) return undefined;
      cur = cur[s];
    }
  }
  return cur;
}

/** Sets a value, creating intermediate mappings (a scalar in the way is replaced by a mapping). */
export function setAt(root: Record<string, unknown>, segs: readonly string[], value: unknown): void {
  let cur = root;
  segs.forEach((s, i) => {
    if (i === segs.length - 1) {
      cur[s] = value;
      return;
    }
    const next = cur[s];
    if (!isPlainObject(next)) cur[s] = {};
    cur = cur[s] as Record<string, unknown>;
  });
}
