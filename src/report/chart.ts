// The loss curves: a Mermaid xychart-beta block for the PR comment (GitHub renders it; nothing is uploaded to a
// public host) with a small table beside it, and an SVG rendered by Vega-Lite for the artifacts.
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import type { TrainerMetrics } from "./trainer-state.js";

export interface Curve {
  label: string;
  metrics: TrainerMetrics;
}

/** At most n of the values, evenly spaced by index, always keeping the first and the last. */
function thin(values: number[], n: number): number[] {
  if (values.length <= n) return values;
  const out = new Set<number>();
  for (let i = 0; i < n; i++) out.add(values[Math.round((i * (values.length - 1)) / (n - 1))]!);
  return [...out];
}

/** The series' value at `step`: linear between logged points, undefined outside the logged range. */
function at(points: readonly { step: number; value: number }[], step: number): number | undefined {
  if (!points.length || step < points[0]!.step || step > points.at(-1)!.step) return undefined;
  let lo = 0;
  let hi = points.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (points[mid]!.step <= step) lo = mid;
    else hi = mid;
  }
  const a = points[lo]!;
  const b = points[hi]!;
  if (b.step === a.step) return a.value;
  return a.value + ((b.value - a.value) * (step - a.step)) / (b.step - a.step);
}

const round = (v: number): number => Math.round(v * 10000) / 10000;
const trainSeries = (m: TrainerMetrics) => m.train.map((p) => ({ step: p.step, value: p.loss }));
const evalSeries = (m: TrainerMetrics) => m.eval.map((p) => ({ step: p.step, value: p.eval_loss }));

/** This run blue, the baseline grey. Mermaid's xychart draws no legend, so the text says which is which. */
const RUN_COLOR = "#2563eb";
const BASELINE_COLOR = "#9ca3af";

export interface MermaidChart {
  /** One chart per curve kind (train loss, eval loss) that has data. */
  blocks: string[];
  /** Which line is which, in words. */
  legend: string;
  /** A small table of the same curves at a few steps. */
  table: string;
}

/**
 * Mermaid places a line's values on the x-axis categories by position and cannot leave gaps, so each chart's
 * x-axis is the logged steps from where every one of its curves has begun; a run that ended earlier has a shorter
 * line. Where one run logged a step the other did not, its value there is interpolated, never extrapolated.
 */
export function mermaidLossChart(run: Curve, baseline?: Curve, points = 30): MermaidChart {
  const curves = [...(baseline ? [{ c: baseline, color: BASELINE_COLOR }] : []), { c: run, color: RUN_COLOR }];
  const blocks: string[] = [];
  for (const [title, seriesOf] of [["Train loss", trainSeries], ["Eval loss", evalSeries]] as const) {
    const lines = curves.map(({ c, color }) => ({ series: seriesOf(c.metrics), color })).filter((l) => l.series.length >= 2);
    if (!lines.length) continue;
    // The logged steps themselves (thinned evenly when there are many), from where every curve has begun.
    const from = Math.max(...lines.map((l) => l.series[0]!.step));
    const logged = [...new Set(lines.flatMap((l) => l.series.map((p) => p.step)))].filter((x) => x >= from).sort((a, b) => a - b);
    const steps = thin(logged, points);
    const drawn = lines
      .map((l) => {
        const values: number[] = [];
        for (const s of steps) {
          const v = at(l.series, s);
          if (v === undefined) break;
          values.push(round(v));
        }
        return { values, color: l.color };
      })
      .filter((l) => l.values.length >= 2);
    if (!drawn.length) continue;
    const all = drawn.flatMap((l) => l.values);
    const lo = Math.min(...all);
    const hi = Math.max(...all);
    const pad = (hi - lo) * 0.05 || 0.1;
    blocks.push(
      [
        "```mermaid",
        `%%{init: {"themeVariables": {"xyChart": {"plotColorPalette": "${drawn.map((l) => l.color).join(", ")}"}}}}%%`,
        "xychart-beta",
        `  title "${title}"`,
        `  x-axis "step" [${steps.join(", ")}]`,
        `  y-axis "loss" ${round(Math.max(0, lo - pad))} --> ${round(hi + pad)}`,
        ...drawn.map((l) => `  line [${l.values.join(", ")}]`),
        "```",
      ].join("\n"),
    );
  }
  const legend = baseline ? `blue: ${run.label}, grey: ${baseline.label}` : `blue: ${run.label}`;

  // The table: logged values only (nothing interpolated), at a handful of steps every curve's last step among them.
  const cols = curves
    .flatMap(({ c }) => [
      { head: `${c.label} train`, series: trainSeries(c.metrics) },
      { head: `${c.label} eval`, series: evalSeries(c.metrics) },
    ])
    .filter((col) => col.series.length > 0);
  const evalSteps = new Set(cols.filter((c) => c.head.endsWith(" eval")).flatMap((c) => c.series.map((p) => p.step)));
  // Prefer steps where evaluations were logged, so those columns are not all dashes.
  const candidates = [...new Set(cols.flatMap((c) => c.series.map((p) => p.step)))].sort((a, b) => a - b);
  const preferred = evalSteps.size ? candidates.filter((x) => evalSteps.has(x)) : candidates;
  const rows = [...new Set([...thin(preferred, 8), ...cols.map((c) => c.series.at(-1)!.step)])].sort((a, b) => a - b);
  const cell = (series: { step: number; value: number }[], s: number): string => {
    const p = [...series].reverse().find((x) => x.step === s);
    return p ? p.value.toFixed(4) : "–";
  };
  const table = cols.length
    ? [`| step | ${cols.map((c) => c.head).join(" | ")} |`, `|---:|${cols.map(() => "---:").join("|")}|`, ...rows.map((s) => `| ${s} | ${cols.map((c) => cell(c.series, s)).join(" | ")} |`)].join("\n")
    : "";
  return { blocks, legend, table };
}

/**
 * The same curves, every logged point, as an SVG (Vega-Lite, rendered headless). The labels are fixed, "this run"
 * and "baseline", so the colours mean the same as in the comment: this run blue, the baseline grey, eval dashed.
 */
export async function svgLossChart(run: TrainerMetrics, baseline?: TrainerMetrics): Promise<string> {
  const values = [...(baseline ? [{ label: "baseline", m: baseline }] : []), { label: "this run", m: run }].flatMap(({ label, m }) => [
    ...trainSeries(m).map((p) => ({ step: p.step, loss: p.value, series: `${label} train` })),
    ...evalSeries(m).map((p) => ({ step: p.step, loss: p.value, series: `${label} eval` })),
  ]);
  const spec: TopLevelSpec = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: "Loss by step",
    width: 640,
    height: 320,
    data: { values },
    mark: { type: "line", point: values.length <= 400 },
    encoding: {
      x: { field: "step", type: "quantitative", title: "step" },
      y: { field: "loss", type: "quantitative", title: "loss", scale: { zero: false } },
      color: {
        field: "series",
        type: "nominal",
        title: null,
        scale: { domain: ["baseline train", "baseline eval", "this run train", "this run eval"], range: ["#6b7280", "#9ca3af", "#2563eb", "#60a5fa"] },
      },
      strokeDash: { condition: { test: "indexof(datum.series, ' eval') >= 0", value: [4, 3] }, value: [1, 0] },
    },
  };
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
