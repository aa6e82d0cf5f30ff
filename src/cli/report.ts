// `ftune report <run-id>`: the run compared with its baseline, as report.md + loss.svg (artifacts, and the run
// store), the job summary, step outputs, and one PR comment per config, updated in place.
import * as core from "@actions/core";
import { Command, Option } from "commander";
import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { upsertComment } from "../github/comment.js";
import { actionsRunUrl, pullRequestNumber } from "../github/context.js";
import { buildReport, fitComment, reportMarker, type Report } from "../report/index.js";
import { RunStore, type Store } from "../store/index.js";
import { EXIT_OK, UserError } from "../util/errors.js";
import { inGitHubActions } from "./diagnostics-out.js";
import { projectName } from "./project.js";
import { addStoreFlags, configFromFlags, storeFromFlags, type StoreFlags } from "./store-flags.js";

type Flags = StoreFlags & { project?: string; baseline?: string; pr?: number; comment: boolean; out?: string; json?: boolean };

export function reportCommand(setExit: (code: number) => void): Command {
  const cmd = new Command("report")
    .description("compare a run with its baseline (the latest successful run of the config in main): report.md, loss.svg, the job summary and the PR comment")
    .argument("<run-id>", "the run to report on")
    .option("--project <name>", "the run's project (default: --config's project.name, else the repository's name)")
    .option("--baseline <run-id>", "compare with this run instead of the latest successful one in main")
    .addOption(new Option("--pr <n>", "pull request to comment on (default: the workflow's pull request, if any)").argParser((v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new UserError(`--pr ${v}: expected a pull request number`);
      return n;
    }))
    .option("--no-comment", "write the report and the job summary, but no PR comment")
    .option("--out <dir>", "folder for report.md and loss.svg (default .ftune/runs/<run-id>)")
    .option("--json", "print {run_id, baseline_run_id, report, svg, comment, metrics} as one JSON object");
  addStoreFlags(cmd);
  cmd.action(async (runId: string, flags: Flags) => {
    const cfg = configFromFlags(flags);
    const { store } = storeFromFlags(flags, cfg);
    const project = projectName(flags.project ?? cfg?.project.name ?? null);
    const r = await buildReport({ store, project, runId, baselineId: flags.baseline, actionsRunUrl: actionsRunUrl() });
    const published = await publishReport(store, r, { out: flags.out, pr: flags.pr, comment: flags.comment });
    if (flags.json) process.stdout.write(`${JSON.stringify(published)}\n`);
    else process.stdout.write(`${published.report}\n`);
    setExit(EXIT_OK);
  });
  return cmd;
}

export interface Published {
  run_id: string;
  baseline_run_id: string | null;
  report: string;
  svg: string;
  comment: { action: string; url?: string; message?: string };
  metrics: Record<string, unknown>;
}

/**
 * Writes report.md and loss.svg (the artifact folder and the run store), comments on the pull request (one comment
 * per config, updated in place; a 403 is a warning), and in Actions writes the job summary and the step outputs.
 */
export async function publishReport(store: Store, r: Report, o: { out?: string; pr?: number; comment: boolean }): Promise<Published> {
  const out = resolve(o.out ?? join(".ftune", "runs", r.run.run_id));
  await mkdir(out, { recursive: true });
  await writeFile(join(out, "report.md"), r.markdown);
  await writeFile(join(out, "loss.svg"), r.svg);
  const runs = new RunStore(store);
  await runs.writeFile(r.run.project, r.run.namespace, r.run.run_id, "report.md", r.markdown);
  await runs.writeFile(r.run.project, r.run.namespace, r.run.run_id, "loss.svg", r.svg);
  process.stderr.write(`report: ${join(out, "report.md")}, ${join(out, "loss.svg")}${r.baseline ? ` (baseline ${r.baseline.run_id})` : " (no baseline)"}\n`);

  const m = r.input.run.metrics;
  const metrics = {
    final_train_loss: m.finalTrainLoss ?? null,
    best_eval_loss: m.bestEvalLoss ?? null,
    eval_perplexity: m.bestEvalLoss !== undefined && m.bestEvalLoss <= 50 ? Math.exp(m.bestEvalLoss) : null,
    gpu_seconds: r.run.gpu_seconds ?? null,
    cost_usd: r.run.cost_usd ?? null,
    dry_run: r.run.dry_run === true,
    baseline_run_id: r.baseline?.run_id ?? null,
    baseline_best_eval_loss: r.input.baseline?.metrics.bestEvalLoss ?? null,
  };

  let comment: { action: string; url?: string; message?: string } = { action: "skipped" };
  const pr = o.pr ?? pullRequestNumber();
  const token = process.env.GITHUB_TOKEN;
  const repo = process.env.GITHUB_REPOSITORY;
  if (!o.comment) comment = { action: "skipped", message: "--no-comment" };
  else if (!pr) comment = { action: "skipped", message: "no pull request" };
  else if (!token || !repo) comment = { action: "skipped", message: "GITHUB_TOKEN and GITHUB_REPOSITORY are needed to comment" };
  else {
    if (inGitHubActions()) core.setSecret(token);
    const body = fitComment(r.markdown, undefined, r.input.links.actionsRun ? `the [job summary](${r.input.links.actionsRun}) and the run's artifacts (report.md)` : undefined);
    const res = await upsertComment({ token, repo, issue: pr, marker: reportMarker(r.run.config_name), body, apiUrl: process.env.GITHUB_API_URL, author: process.env.FTUNE_COMMENT_AUTHOR || undefined, log: (l) => process.stderr.write(`${l}\n`) });
    if (res.action === "forbidden") {
      // A fork's pull request gets a read-only token: the report is in the summary and the artifacts instead.
      const why = `could not comment on pull request #${pr} (403: ${res.message}); a fork's pull request gets a read-only token. The report is in the job summary and the artifacts; see the README for commenting through workflow_run.`;
      if (inGitHubActions()) core.warning(why);
      else process.stderr.write(`warning: ${why}\n`);
      comment = { action: "forbidden", message: res.message };
    } else {
      process.stderr.write(`${res.action} comment ${res.url}\n`);
      comment = { action: res.action, url: res.url };
    }
  }
  if (comment.action === "skipped") process.stderr.write(`no PR comment: ${comment.message}\n`);

  if (inGitHubActions()) {
    if (process.env.GITHUB_STEP_SUMMARY) await core.summary.addRaw(r.markdown).write();
    core.setOutput("run-id", r.run.run_id);
    core.setOutput("metrics", JSON.stringify(metrics));
    core.setOutput("report-path", join(out, "report.md"));
    if (comment.url) core.setOutput("comment-url", comment.url);
  }
  return { run_id: r.run.run_id, baseline_run_id: r.baseline?.run_id ?? null, report: join(out, "report.md"), svg: join(out, "loss.svg"), comment, metrics };
}
