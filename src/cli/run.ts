// `ftune run <cfg>`: the whole pipeline in one command, the stages the action runs as steps: validate, dataprep,
// train (host, trainer, checkpoints, recovery, release), report (report.md, loss.svg, job summary, PR comment).
// With no flags it runs on the config's own defaults (the file store, local compute), so it works on a laptop; in
// GitHub Actions it reads the event: a pull request runs in namespace pr-<N> and gets its comment, main records the
// baseline. A failed training run is still reported (the comment says so), then the command exits 2.
import { Command } from "commander";
import { actionsRunUrl } from "../github/context.js";
import { buildReport } from "../report/index.js";
import { EXIT_OK } from "../util/errors.js";
import { publishReport } from "./report.js";
import { addTrainFlags, trainFromFlags, type TrainFlags } from "./train.js";

type Flags = TrainFlags & { baseline?: string; comment: boolean; json?: boolean };

export function runCommand(setExit: (code: number) => void): Command {
  const cmd = new Command("run")
    .description("the whole pipeline for a config: validate, dataprep, train, report (and the PR comment in a pull request)")
    .argument("<config>", "config file")
    .option("--baseline <run-id>", "compare with this run instead of the latest successful one in main")
    .option("--no-comment", "no PR comment (the report still goes to report.md and the job summary)")
    .option("--json", "print {run_id, namespace, status, report, comment, metrics} as one JSON object");
  addTrainFlags(cmd);
  cmd.action(async (configPath: string, flags: Flags) => {
    const { rec, store, error } = await trainFromFlags(configPath, flags);
    const report = await buildReport({ store, project: rec.project, runId: rec.run_id, baselineId: flags.baseline, actionsRunUrl: actionsRunUrl() });
    const published = await publishReport(store, report, { out: flags.out, comment: flags.comment });
    const summary = { ...published, namespace: rec.namespace, status: rec.status, dry_run: rec.dry_run === true };
    if (flags.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
    else process.stdout.write(`run ${rec.run_id} ${rec.status}${rec.dry_run ? " (dry run: no model was trained)" : ""}; report: ${published.report}\n`);
    if (error) throw error;
    setExit(EXIT_OK);
  });
  return cmd;
}
