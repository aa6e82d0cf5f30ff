// One global limit on concurrent transfer requests, shared by every file and every part of every file, so that
// "16 at a time" means 16 requests on the wire whatever mix of big and small files is moving. FIFO, so the parts
// of the first files finish first and memory stays bounded by (limit x part size).

export class Limiter {
  private active = 0;
  private readonly waiting: { weight: number; start: () => void }[] = [];

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new Error(`concurrency must be a positive integer, got ${limit}`);
  }

  /** Runs fn holding `weight` slots (a streamed multipart upload holds as many as it keeps parts in flight). */
  async run<T>(fn: () => Promise<T>, weight = 1): Promise<T> {
    const w = Math.min(weight, this.limit);
    if (this.waiting.length > 0 || this.active + w > this.limit) {
      await new Promise<void>((start) => this.waiting.push({ weight: w, start }));
    } else {
      this.active += w;
    }
    try {
      return await fn();
    } finally {
      this.active -= w;
      this.release();
    }
  }

  private release(): void {
    while (this.waiting.length > 0 && this.active + this.waiting[0]!.weight <= this.limit) {
      const next = this.waiting.shift()!;
      this.active += next.weight;
      next.start();
    }
  }
}

/** Runs `fn` over `items` with at most `width` in flight; rejects with the first error after the others settle. */
export async function forEachPool<T>(items: readonly T[], width: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let firstError: unknown;
  const worker = async (): Promise<void> => {
    while (next < items.length && firstError === undefined) {
      const i = next++;
      try {
        await fn(items[i]!, i);
      } catch (e) {
        firstError ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(width, items.length)) }, worker));
  if (firstError !== undefined) throw firstError;
}
