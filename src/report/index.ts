// The report stage's public interface: from a run in the store (and its baseline: the latest successful run of the
// same config name in namespace main, or one named) to the markdown the PR comment and the job summary show and the
// SVG loss chart for the artifacts. Everything is read back from the run store, so a report can be made again
// later, on another machine, from what the run left.
import { parse } from "yaml";
import { PRODUCTION_NAMESPACE } from "../github/context.js";
import { diffConfigs } from "../plan/diff.js";
import { PRICE_TABLE } from "../plan/index.js";
import { RunStore, type RunRecord, type Store } from "../store/index.js";
import { UserError } from "../util/errors.js";
import { svgLossChart } from "./chart.js";
import { renderReport, type ReportInput, type ReportSide } from "./markdown.js";
import { parseTrainerState } from "./trainer-state.js";

export { fitComment, reportMarker, renderReport, DRY_RUN_BANNER, MAX_COMMENT_CHARS, phaseSeconds, type ReportInput } from "./markdown.js";
export { parseTrainerState, TrainerStateError, type TrainerMetrics } from "./trainer-state.js";
export { mermaidLossChart, svgLossChart } from "./chart.js";


export interface ReportOptions {
  store: Store;
  project: string;
  runId: string;
  /** A run id to compare with instead of the latest successful run of the config in main. */
  baselineId?: string;
  actionsRunUrl?: string;
}

export interface Report {
  markdown: string;
  svg: string;
  run: RunRecord;
  baseline?: RunRecord;
  input: ReportInput;
}

/** An https link to browse an s3:// prefix in the AWS console; none for other stores. */
function browseUrl(uri: string): string | undefined {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(uri);
  return m ? `https://s3.console.aws.amazon.com/s3/buckets/${m[1]}?prefix=${encodeURIComponent(`${m[2]}/`)}` : undefined;
}

async function side(runs: RunStore, rec: RunRecord): Promise<ReportSide & { config?: unknown }> {
  const state = await runs.readFile(rec.project, rec.namespace, rec.run_id, "trainer_state.json");
  const metrics = state ? parseTrainerState(state.toString("utf8"), runs.uri(rec.project, rec.namespace, rec.run_id) + "/trainer_state.json") : { train: [], eval: [], dryRun: rec.dry_run === true };
  const cfg = await runs.readFile(rec.project, rec.namespace, rec.run_id, "config.resolved.yaml");
  return { run: rec, metrics, config: cfg ? parse(cfg.toString("utf8")) : undefined };
}

export async function buildReport(o: ReportOptions): Promise<Report> {
  const runs = new RunStore(o.store);
  const rec = await runs.findRun(o.project, o.runId);
  if (!rec) throw new UserError(`run ${o.runId} is not in ${o.store.uri(`runs/${o.project}`)} (check --store and the project name)`);
  const run = await side(runs, rec);
  let baseline: (ReportSide & { config?: unknown }) | undefined;
  let noBaseline: string | undefined;
  if (o.baselineId) {
    const b = await runs.findRun(o.project, o.baselineId);
    if (!b) throw new UserError(`baseline run ${o.baselineId} is not in ${o.store.uri(`runs/${o.project}`)}`);
    baseline = await side(runs, b);
  } else {
    // Like with like: a dry run is compared with dry runs, a real run with real runs.
    const b = await runs.latestSuccessful(o.project, PRODUCTION_NAMESPACE, rec.config_name, (r) => r.run_id !== rec.run_id && (r.dry_run === true) === (rec.dry_run === true) && r.started_at < rec.started_at);
    if (b) baseline = await side(runs, b);
    else noBaseline = `no successful ${rec.dry_run ? "dry run" : "run"} of \`${rec.config_name}\` in namespace \`${PRODUCTION_NAMESPACE}\` before this one (the baseline is made by running the config on the default branch)`;
  }
  const runUri = runs.uri(rec.project, rec.namespace, rec.run_id);
  const input: ReportInput = {
    run,
    baseline,
    noBaseline,
    configDiff: baseline?.config && run.config ? diffConfigs(baseline.config, run.config) : undefined,
    links: {
      actionsRun: o.actionsRunUrl,
      runStore: runUri,
      runBrowse: browseUrl(runUri),
      baselineStore: baseline ? runs.uri(baseline.run.project, baseline.run.namespace, baseline.run.run_id) : undefined,
    },
    priceSource: `the list price in src/plan/ec2-prices.json (${PRICE_TABLE.region}, ${PRICE_TABLE.retrieved})`,
  };
  const markdown = renderReport(input);
  const svg = await svgLossChart(run.metrics, baseline?.metrics);
  return { markdown, svg, run: rec, baseline: baseline?.run, input };
}
