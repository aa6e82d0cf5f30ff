// Turns a trainer's log (HF Trainer / axolotl / ftune's dry-run trainer, which all print tqdm-style "12/100 [..."
// bars and "{'loss': ...}" dicts) into one progress line per step seen: step/total, percent, loss and ETA. It also
// remembers the newest step, which recovery uses to measure the work an interruption cost.

const NOTABLE = /resum|saving model checkpoint|traceback|error|out of memory|killed/i;

export class TrainProgress {
  /** The newest step the log showed as done on this host (0 before the first). */
  lastStep = 0;
  total = 0;
  lastLoss: string | undefined;
  private firstStep: number | undefined;
  private firstAt = 0;
  private partial = "";
  /** The last lines of the log, for a failure message. */
  private readonly tail: string[] = [];

  constructor(
    private readonly emit: (line: string) => void,
    private readonly label = "",
    private readonly now: () => number = Date.now,
  ) {}

  /** Feeds log text in any chunking: a line is parsed once it is complete. */
  feed(text: string): void {
    const lines = (this.partial + text).split("\n");
    this.partial = lines.pop() ?? "";
    for (const raw of lines) this.line(raw);
  }

  /** The log's last lines (tqdm's carriage-return redraws keep only their final state). */
  lastLines(n = 20): string {
    const rest = this.partial ? [this.partial] : [];
    return [...this.tail, ...rest].slice(-n).join("\n");
  }

  /** Seconds per step on this host so far, or undefined before two steps were seen. */
  secondsPerStep(): number | undefined {
    if (this.firstStep === undefined || this.lastStep <= this.firstStep) return undefined;
    return (this.lastAt - this.firstAt) / 1000 / (this.lastStep - this.firstStep);
  }

  private lastAt = 0;

  private line(raw: string): void {
    const line = raw.split("\r").pop() ?? "";
    this.tail.push(line);
    if (this.tail.length > 50) this.tail.shift();
    const loss = /'loss': '?([\d.]+(?:e-?\d+)?)/.exec(line)?.[1];
    if (loss) this.lastLoss = loss;
    // The training bar: unlabelled (HF Trainer's "36%|███▋ | 36/100 [", the dry-run trainer's "36/100 ["). Labelled
    // bars ("Tokenizing Prompts: 100%|...| 15011/15011 [", "Loading checkpoint shards: ...") are data preparation.
    const m = /^\s*(?:\d+%\|[^|]*\|\s*)?(\d+)\/(\d+) \[/.exec(line);
    if (!m) {
      // The lines a reader of the Actions log needs besides progress: resumes, checkpoints, errors.
      if (NOTABLE.test(line)) this.emit(`trainer: ${line.trim()}`);
      return;
    }
    const step = Number(m[1]);
    const total = Number(m[2]);
    // Evaluation bars are unlabelled too, but their total differs from the unfinished training bar's.
    if (this.total > 0 && total !== this.total && this.lastStep < this.total) return;
    if (step <= this.lastStep && this.lastStep > 0) return;
    const at = this.now();
    if (this.firstStep === undefined) {
      this.firstStep = step;
      this.firstAt = at;
    }
    this.lastStep = step;
    this.lastAt = at;
    this.total = total;
    const perStep = this.secondsPerStep();
    const eta = perStep === undefined ? "-" : `${Math.round(perStep * (total - step))}s`;
    this.emit(`train: step ${step}/${total} (${Math.round((100 * step) / total)}%) loss ${this.lastLoss ?? "-"} ETA ${eta}${this.label}`);
  }
}
