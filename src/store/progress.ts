// Transfer progress on stderr: a redrawn bar on a terminal, a line every few seconds in CI logs (where a bar would
// print thousands of lines). Rate is measured over the last few seconds, so the ETA follows what the link does now.

export interface ProgressSink {
  add(bytes: number): void;
}

export interface ProgressOptions {
  /** Where to write; default process.stderr. */
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Force the bar (true) or periodic lines (false); default: the stream's isTTY. */
  tty?: boolean;
  /** Seconds between lines when not on a TTY; default FTUNE_PROGRESS_SECONDS or 10. */
  intervalSeconds?: number;
  /** Print nothing (e.g. --json callers that want a clean stderr too). */
  quiet?: boolean;
}

export function formatBytes(n: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v >= 100 || i === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

export class Progress implements ProgressSink {
  private done = 0;
  private readonly started = Date.now();
  private readonly samples: [number, number][] = [];
  private lastDraw = 0;
  private readonly stream: NodeJS.WritableStream & { isTTY?: boolean };
  private readonly tty: boolean;
  private readonly intervalMs: number;
  private timer?: NodeJS.Timeout;
  private finished = false;

  constructor(private readonly label: string, private readonly total: number, private readonly opts: ProgressOptions = {}) {
    this.stream = opts.stream ?? process.stderr;
    this.tty = opts.tty ?? Boolean(this.stream.isTTY);
    this.intervalMs = 1000 * (opts.intervalSeconds ?? (Number(process.env.FTUNE_PROGRESS_SECONDS) || 10));
    if (!this.tty && !opts.quiet) {
      this.timer = setInterval(() => this.write(false), this.intervalMs);
      this.timer.unref();
    }
  }

  add(bytes: number): void {
    this.done += bytes;
    const now = Date.now();
    this.samples.push([now, this.done]);
    while (this.samples.length > 2 && now - this.samples[0]![0] > 5000) this.samples.shift();
    if (this.tty && !this.opts.quiet && now - this.lastDraw > 100) this.write(false);
  }

  /** Bytes per second over the recent window (whole run when short). */
  rate(): number {
    const now = Date.now();
    const first = this.samples[0];
    if (!first || now - first[0] < 500) {
      const elapsed = (now - this.started) / 1000;
      return elapsed > 0 ? this.done / elapsed : 0;
    }
    return (this.done - first[1]) / ((now - first[0]) / 1000);
  }

  line(): string {
    const pct = this.total > 0 ? Math.min(100, (100 * this.done) / this.total) : 100;
    const rate = this.rate();
    const eta = rate > 0 ? (this.total - this.done) / rate : Infinity;
    return `${this.label}: ${pct.toFixed(0).padStart(3)}% ${formatBytes(this.done)}/${formatBytes(this.total)} ${formatBytes(rate)}/s ETA ${formatDuration(eta)}`;
  }

  private write(final: boolean): void {
    if (this.opts.quiet) return;
    this.lastDraw = Date.now();
    if (this.tty) {
      const width = 24;
      const filled = this.total > 0 ? Math.round((width * Math.min(this.done, this.total)) / this.total) : width;
      this.stream.write(`\r[${"#".repeat(filled)}${".".repeat(width - filled)}] ${this.line()}\x1b[K${final ? "\n" : ""}`);
    } else {
      this.stream.write(`${this.line()}\n`);
    }
  }

  finish(): { bytes: number; seconds: number } {
    if (this.timer) clearInterval(this.timer);
    const seconds = (Date.now() - this.started) / 1000;
    if (!this.finished && !this.opts.quiet) {
      this.finished = true;
      const avg = seconds > 0 ? this.done / seconds : 0;
      if (this.tty) this.write(true);
      else this.stream.write(`${this.label}: done, ${formatBytes(this.done)} in ${formatDuration(seconds)} (${formatBytes(avg)}/s)\n`);
    }
    return { bytes: this.done, seconds };
  }
}

export const NO_PROGRESS: ProgressSink = { add: () => undefined };
