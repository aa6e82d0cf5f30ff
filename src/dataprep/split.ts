// The train/eval split: each row's place is decided by a hash of (split seed, row content), not by Math.random,
// so the same data and seed split the same way on every machine and in every run, and adding rows moves no
// existing row from train to eval or back except at the boundary.
import { createHash } from "node:crypto";

export function splitKey(seed: number, contentId: string): string {
  return createHash("sha256").update(`${seed}:${contentId}`).digest("hex").slice(0, 16);
}

/** How many of `kept` rows go to eval: a count (>= 1) or a fraction (< 1) of them. */
export function evalCount(valSetSize: number | null, kept: number): number {
  if (!valSetSize || valSetSize <= 0) return 0;
  return valSetSize >= 1 ? Math.floor(valSetSize) : Math.round(kept * valSetSize);
}

/** The largest key that is still in eval: the `n`-th smallest key (a bounded heap, so memory is O(n)). */
export function evalThreshold(keys: Iterable<string>, n: number): string | null {
  if (n <= 0) return null;
  const heap: string[] = []; // max-heap of the n smallest keys seen
  const up = (i: number): void => {
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (heap[p]! >= heap[i]!) break;
      [heap[p], heap[i]] = [heap[i]!, heap[p]!];
      i = p;
    }
  };
  const down = (i: number): void => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && heap[l]! > heap[m]!) m = l;
      if (r < heap.length && heap[r]! > heap[m]!) m = r;
      if (m === i) return;
      [heap[m], heap[i]] = [heap[i]!, heap[m]!];
      i = m;
    }
  };
  for (const k of keys) {
    if (heap.length < n) {
      heap.push(k);
      up(heap.length - 1);
    } else if (k < heap[0]!) {
      heap[0] = k;
      down(0);
    }
  }
  return heap.length ? heap[0]! : null;
}
