// Progress from a trainer's log: only the training bar counts (not data-preparation or evaluation bars), lines may
// arrive split anywhere, and tqdm's carriage-return redraws keep their last state.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { TrainProgress } from "../src/train/progress.js";

describe("train progress", () => {
  it("follows the training bar through labelled data bars, eval bars and split chunks", () => {
    const lines: string[] = [];
    let now = 0;
    const p = new TrainProgress((l) => lines.push(l), "", () => now);
    const log = [
      "Tokenizing Prompts (num_proc=32): 100%|██████████| 15011/15011 [00:09<00:00, 1590.40 examples/s]",
      "Loading checkpoint shards: 100%|██████████| 2/2 [00:03<00:00,  1.55s/it]",
      "  0%|          | 0/300 [00:00<?, ?it/s]\r  0%|          | 1/300 [00:06<30:00,  6.0s/it]",
      "{'loss': 1.2345, 'grad_norm': 0.5, 'learning_rate': 0.0003, 'epoch': 0.01}",
      "  1%|          | 2/300 [00:12<30:00,  6.0s/it]",
      " 50%|█████     | 7/13 [00:01<00:01,  5.20it/s]", // evaluation
      "  1%|          | 3/300 [00:18<30:00,  6.0s/it]",
      "Saving model checkpoint to /out/checkpoint-3",
    ].join("\n");
    // Delivered in uneven pieces, as SSH reads come.
    for (let i = 0; i < log.length; i += 37) {
      now += 1000;
      p.feed(log.slice(i, i + 37));
    }
    p.feed("\n");
    assert.equal(p.lastStep, 3);
    assert.equal(p.total, 300);
    const steps = lines.filter((l) => l.startsWith("train: step")).map((l) => /step (\d+)\/(\d+)/.exec(l)!.slice(1).join("/"));
    assert.deepEqual(steps, ["1/300", "2/300", "3/300"]);
    assert.ok(lines.some((l) => /train: step 2\/300 \(1%\) loss 1\.2345 ETA \d+s/.test(l)), lines.join("\n"));
    assert.ok(lines.includes("trainer: Saving model checkpoint to /out/checkpoint-3"));
    assert.match(p.lastLines(2), /checkpoint-3/);
  });
});
