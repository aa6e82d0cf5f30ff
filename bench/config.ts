// Benchmarks, printed as ratios against a reference measured in the same run (timings drift between runs on
// shared machines; ratios hold). Run with `npm run bench`.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { parse } from "yaml";
import { loadConfig } from "../src/config/index.js";

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function timeIt(fn: () => void, reps: number): number {
  const out: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    fn();
    out.push(performance.now() - t);
  }
  return median(out);
}

function row(name: string, ms: number, refName: string, refMs: number): void {
  console.log(`${name.padEnd(46)} ${(ms / refMs).toFixed(2).padStart(7)}x ${refName}   (${ms.toFixed(1)} ms vs ${refMs.toFixed(1)} ms)`);
}

console.log("config: ratio to a reference measured in the same run (median of repeated runs)\n");

// 1. A bad config must fail in about a second on a CI runner: the whole CLI, cold, against bare node start-up.
const node = (args: string[]): void => {
  spawnSync(process.execPath, args, { stdio: "ignore" });
};
const bare = timeIt(() => node(["-e", "0"]), 7);
row("ftune validate configs/ (cold CLI process)", timeIt(() => node(["dist/cli.js", "validate", "configs/"]), 7), "node -e 0", bare);
row("ftune validate <broken config> (cold)", timeIt(() => node(["dist/cli.js", "validate", "../shared/data/seed/experiment_config.v0.yaml"]), 7), "node -e 0", bare);

// 2. In-process: load + extends + schema + semantic checks + hash, against parsing the same YAML files alone.
const files = ["configs/llama2-7b-dolly.yaml", "configs/base.yaml"];
const texts = files.map((f) => readFileSync(f, "utf8"));
const reps = 300;
const parseOnly = timeIt(() => {
  for (let i = 0; i < reps; i++) for (const t of texts) parse(t);
}, 5);
const full = timeIt(() => {
  for (let i = 0; i < reps; i++) loadConfig(files[0]!);
}, 5);
row(`loadConfig seed experiment x${reps} (full check)`, full, "yaml.parse of its 2 files", parseOnly);
