// The report as GitHub-flavoured markdown: what the PR comment and the job summary show. Pure: everything it says
// comes from the run records, trainer_state.json files and resolved configs it is given.
import type { KeyChange } from "../plan/diff.js";
import type { RunRecord } from "../store/index.js";
import type { AttemptRecord } from "../train/index.js";
import { mermaidLossChart } from "./chart.js";
import type { TrainerMetrics } from "./trainer-state.js";

export const MAX_COMMENT_CHARS = 65_536;
export const DRY_RUN_BANNER = "dry run: no model was trained";

/** The hidden marker that finds this config's comment again (one comment per PR per config). */
export function reportMarker(configName: string): string {
  return `<!-- ftune-report config=${encodeURIComponent(configName)} -->`;
}

export interface ReportSide {
  run: RunRecord;
  metrics: TrainerMetrics;
}

export interface ReportInput {
  run: ReportSide;
  baseline?: ReportSide;
  /** Why there is no baseline, when there is none. */
  noBaseline?: string;
  /** Changed config keys, baseline -> this run (absent without a baseline or its config). */
  configDiff?: KeyChange[];
  links: { actionsRun?: string; runStore: string; runBrowse?: string; baselineStore?: string };
  /** Where the on-demand prices come from (shown with the cost). */
  priceSource: string;
}

type Direction = "lower" | "higher";

interface Row {
  name: string;
  value?: number;
  base?: number;
  format: (v: number) => string;
  better: Direction;
}

const fixed = (d: number) => (v: number) => v.toFixed(d);
const duration = (s: number): string => {
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
};
const usd = (v: number): string => (v < 0.01 && v > 0 ? `$${v.toFixed(4)}` : `$${v.toFixed(2)}`);

function delta(r: Row): string {
  if (r.value === undefined || r.base === undefined) return "";
  const d = r.value - r.base;
  if (Math.abs(d) < 1e-12) return "no change";
  const pct = r.base !== 0 ? ` (${d > 0 ? "+" : "−"}${Math.abs((100 * d) / r.base).toFixed(1)}%)` : "";
  const good = r.better === "lower" ? d < 0 : d > 0;
  return `${d > 0 ? "+" : "−"}${r.format(Math.abs(d))}${pct} ${good ? "✅ better" : "⚠️ worse"}`;
}

const seconds = (from?: string, to?: string): number => (from && to ? Math.max(0, (Date.parse(to) - Date.parse(from)) / 1000) : 0);

/** Wall time per phase: dataprep/model/upload as timed by train, provisioning/staging/training from the attempts. */
export function phaseSeconds(run: RunRecord): Record<string, number> {
  const phases = (run.phases ?? {}) as Record<string, number>;
  const attempts = (run.attempts ?? []) as AttemptRecord[];
  const out: Record<string, number> = {};
  if (phases.dataprep !== undefined) out.dataprep = phases.dataprep;
  if (phases.model !== undefined) out["base model"] = phases.model;
  const remote = attempts.some((a) => a.acquired_at);
  if (remote) {
    out.provision = attempts.reduce((s, a) => s + seconds(a.started_at, a.acquired_at), 0);
    out.staging = attempts.reduce((s, a) => s + seconds(a.acquired_at, a.staged_at ?? a.ended_at), 0);
    out.training = attempts.reduce((s, a) => s + (a.staged_at ? seconds(a.staged_at, a.ended_at) : 0), 0);
  } else {
    if (phases.staging !== undefined) out.staging = phases.staging;
    if (phases.training !== undefined) out.training = phases.training;
  }
  if (phases.upload !== undefined) out.upload = phases.upload;
  return out;
}

function metricRows(input: ReportInput): Row[] {
  const r = input.run;
  const b = input.baseline;
  const m = (side: ReportSide | undefined, f: (x: ReportSide) => number | undefined) => (side ? f(side) : undefined);
  const rows: Row[] = [
    { name: "final train loss", value: r.metrics.finalTrainLoss, base: m(b, (x) => x.metrics.finalTrainLoss), format: fixed(4), better: "lower" },
    { name: "best eval loss", value: r.metrics.bestEvalLoss, base: m(b, (x) => x.metrics.bestEvalLoss), format: fixed(4), better: "lower" },
    { name: "eval perplexity", value: ppl(r.metrics.bestEvalLoss), base: m(b, (x) => ppl(x.metrics.bestEvalLoss)), format: fixed(3), better: "lower" },
    { name: "tokens/s", value: tokensPerSecond(r.metrics), base: m(b, (x) => tokensPerSecond(x.metrics)), format: fixed(0), better: "higher" },
    { name: "samples/s", value: r.metrics.trainSamplesPerSecond, base: m(b, (x) => x.metrics.trainSamplesPerSecond), format: fixed(2), better: "higher" },
    { name: "peak GPU memory (GiB)", value: r.metrics.peakMemoryGib, base: m(b, (x) => x.metrics.peakMemoryGib), format: fixed(1), better: "lower" },
  ];
  const phases = phaseSeconds(r.run);
  const basePhases = b ? phaseSeconds(b.run) : {};
  for (const [name, v] of Object.entries(phases)) rows.push({ name: `time: ${name}`, value: v, base: basePhases[name], format: duration, better: "lower" });
  rows.push({ name: "time: total", value: seconds(r.run.started_at, r.run.finished_at) || undefined, base: b ? seconds(b.run.started_at, b.run.finished_at) || undefined : undefined, format: duration, better: "lower" });
  const gpuH = (x: RunRecord) => (typeof x.gpu_seconds === "number" && x.gpu_seconds > 0 ? x.gpu_seconds / 3600 : undefined);
  rows.push({ name: "GPU time (GPU-hours)", value: gpuH(r.run), base: b ? gpuH(b.run) : undefined, format: fixed(3), better: "lower" });
  const cost = (x: RunRecord) => (typeof x.cost_usd === "number" ? x.cost_usd : undefined);
  rows.push({ name: "cost (estimate)", value: cost(r.run), base: b ? cost(b.run) : undefined, format: usd, better: "lower" });
  // Rows with nothing on either side say nothing.
  return rows.filter((row) => row.value !== undefined || row.base !== undefined);
}

function ppl(loss: number | undefined): number | undefined {
  return loss === undefined || loss > 50 ? undefined : Math.exp(loss);
}

function tokensPerSecond(m: TrainerMetrics): number | undefined {
  if (m.tokensPerSecond !== undefined) return m.tokensPerSecond;
  if (m.numInputTokensSeen && m.trainRuntimeS) return m.numInputTokensSeen / m.trainRuntimeS;
  return undefined;
}

function show(v: unknown): string {
  if (v === undefined) return "_(unset)_";
  const s = typeof v === "string" ? v : JSON.stringify(v);
  const cut = s.length > 80 ? `${s.slice(0, 77)}...` : s;
  return `\`${cut.replace(/`/g, "'")}\``;
}

function attemptsSection(run: RunRecord): string[] {
  const attempts = (run.attempts ?? []) as AttemptRecord[];
  if (!attempts.length || attempts.every((a) => a.provider === "local")) return [];
  const lost = attempts.filter((a) => a.end_reason === "spot-interruption" || a.end_reason === "host-lost");
  const out: string[] = [];
  if (lost.length) {
    const last = attempts.at(-1)!;
    const steps = lost.reduce((s, a) => s + (a.steps_lost ?? 0), 0);
    out.push(
      `**${lost.length} host${lost.length > 1 ? "s" : ""} lost** (${lost.map((a) => (a.end_reason === "spot-interruption" ? "spot interruption" : "host lost")).join(", ")})` +
        (last.end_reason === "completed"
          ? `, survived: the run resumed on ${last.instance_type ?? last.host} from ${last.resumed_from ?? "the start"}; ${steps} step${steps === 1 ? "" : "s"} computed twice.`
          : "."),
      "",
    );
  }
  out.push("| # | host | market | type | AZ | price/h | duration | ended | resumed from | steps lost | cost |", "|---:|---|---|---|---|---:|---:|---|---|---:|---:|");
  for (const a of attempts) {
    out.push(
      `| ${a.attempt} | ${a.host ?? "–"} | ${a.market ?? "–"} | ${a.instance_type ?? "–"} | ${a.availability_zone ?? "–"} | ${typeof a.price_per_hour === "number" ? usd(a.price_per_hour) : "–"} | ${duration(seconds(a.started_at, a.ended_at))} | ${a.end_reason ?? "–"} | ${a.resumed_from ?? "start"} | ${a.steps_lost ?? (a.end_reason === "completed" ? "–" : 0)} | ${typeof a.cost_usd === "number" ? usd(a.cost_usd) : "–"} |`,
    );
  }
  return out;
}

export function renderReport(input: ReportInput): string {
  const { run, baseline } = input;
  const name = String(run.run.config_name);
  const dry = run.run.dry_run === true || run.metrics.dryRun;
  const status = run.run.status === "succeeded" ? "✅ succeeded" : run.run.status === "failed" ? "❌ failed" : String(run.run.status);
  const out: string[] = [reportMarker(name), `## ftune · \`${name}\` · ${status}`, ""];
  if (dry) out.push(`> [!NOTE]`, `> **${DRY_RUN_BANNER}.** The numbers below come from ftune's trainer stand-in; they test the pipeline, not a model.`, "");
  out.push(`Run \`${run.run.run_id}\` in namespace \`${String(run.run.namespace)}\`${baseline ? `, compared with \`${baseline.run.run_id}\` (latest successful run of \`${name}\` in \`${String(baseline.run.namespace)}\`)` : ""}.`);
  if (!baseline) out.push("", `**No baseline:** ${input.noBaseline ?? "none found"}. Absolute numbers only.`);
  if (run.run.status === "failed" && run.run.error) out.push("", "**Error:**", "```", String(run.run.error).slice(0, 4000), "```");
  out.push("");

  if (baseline && input.configDiff) {
    out.push("### Config changes", "");
    if (!input.configDiff.length) out.push("The resolved configs are identical.");
    else {
      out.push("| key | baseline | this run |", "|---|---|---|");
      for (const c of input.configDiff) out.push(`| \`${c.key}\` | ${show(c.old)} | ${show(c.new)} |`);
    }
    out.push("");
  }

  const rows = metricRows(input);
  out.push("### Metrics", "");
  if (baseline) {
    out.push("| metric | baseline | this run | change |", "|---|---:|---:|---|");
    for (const r of rows) out.push(`| ${r.name} | ${r.base === undefined ? "–" : r.format(r.base)} | ${r.value === undefined ? "–" : r.format(r.value)} | ${delta(r)} |`);
  } else {
    out.push("| metric | this run |", "|---|---:|");
    for (const r of rows) out.push(`| ${r.name} | ${r.value === undefined ? "–" : r.format(r.value)} |`);
  }
  out.push("", `Cost is an estimate: seconds from launch to termination x the price at launch (spot: the spot price then; on-demand: ${input.priceSource}); AWS bills by the second.`, "");

  const chart = mermaidLossChart({ label: "this run", metrics: run.metrics }, baseline ? { label: "baseline", metrics: baseline.metrics } : undefined);
  if (chart.blocks.length) {
    out.push("### Loss curves", "", ...chart.blocks.flatMap((b) => [b, ""]), `_${chart.legend}_`, "", "<details><summary>Values</summary>", "", chart.table, "", "</details>", "");
  } else out.push("### Loss curves", "", "The trainer logged fewer than two loss values: no curve to draw.", "");

  const attempts = attemptsSection(run.run);
  if (attempts.length) out.push("### Hosts", "", ...attempts, "");

  const links = [
    input.links.actionsRun ? `[Actions run](${input.links.actionsRun})` : undefined,
    input.links.runBrowse ? `[run in the store](${input.links.runBrowse}) (\`${input.links.runStore}\`)` : `run in the store: \`${input.links.runStore}\``,
    input.links.baselineStore ? `baseline: \`${input.links.baselineStore}\`` : undefined,
  ].filter(Boolean);
  out.push("---", `${links.join(" · ")} · adapter, trainer_state.json, logs and loss.svg in the run's artifacts`);
  return `${out.join("\n")}\n`;
}

/**
 * Fits a body into GitHub's comment limit: cut at a line boundary, open code fences and <details> closed, and a
 * pointer to where the whole report is. Counts UTF-16 units, which is never less than GitHub's character count.
 */
export function fitComment(body: string, limit = MAX_COMMENT_CHARS, whereFull = "the job summary and the run's artifacts (report.md)"): string {
  if (body.length <= limit) return body;
  const note = `\n\n_The report is longer than a comment allows (${body.length.toLocaleString("en-US")} characters); cut here. The whole report: ${whereFull}._\n`;
  const closed = (text: string): string => {
    const closers: string[] = [];
    if (text.split("\n").filter((l) => /^\s*```/.test(l)).length % 2 === 1) closers.push("```");
    const open = (text.match(/<details>/g) ?? []).length - (text.match(/<\/details>/g) ?? []).length;
    for (let i = 0; i < open; i++) closers.push("</details>");
    return text + closers.join("\n") + note;
  };
  let cut = body.slice(0, Math.max(0, limit - note.length));
  cut = cut.slice(0, cut.lastIndexOf("\n") + 1);
  let out = closed(cut);
  while (out.length > limit && cut) {
    cut = cut.slice(0, cut.lastIndexOf("\n", cut.length - 2) + 1);
    out = closed(cut);
  }
  return out;
}
