// `ftune changed`: the configs this workflow run should train, as a matrix for `strategy.matrix`. It reads the event
// itself: pull_request (vs the PR's base), push (vs the commit before), workflow_dispatch (inputs.config),
// repository_dispatch `<project>.dataprep` (the configs subscribed to that dataset). Outside Actions: --base, or
// every experiment.
import * as core from "@actions/core";
import { Command } from "commander";
import { changedExperiments, entry, experiments, namedExperiments, subscribedExperiments, type MatrixEntry } from "../github/changed.js";
import { readEvent } from "../github/context.js";
import { gitChangedFiles } from "../plan/git.js";
import { EXIT_OK } from "../util/errors.js";
import { inGitHubActions } from "./diagnostics-out.js";

interface Flags {
  base?: string;
  json?: boolean;
}

const ZERO_SHA = /^0+$/;

function select(paths: string[], flags: Flags, cwd: string): { entries: MatrixEntry[]; why: string } {
  const { name, payload } = readEvent();
  if (name === "repository_dispatch") {
    const type = String(payload.action ?? "");
    const client = (payload.client_payload ?? {}) as Record<string, unknown>;
    return { entries: subscribedExperiments(paths, cwd, type, client), why: `repository_dispatch ${type}` };
  }
  if (name === "workflow_dispatch" && !flags.base) {
    const input = String((payload.inputs as Record<string, unknown> | undefined)?.config ?? "").trim();
    if (input) return { entries: namedExperiments(input.split(/\s+/), cwd), why: "workflow_dispatch inputs.config" };
  }
  let base = flags.base;
  if (!base && name?.startsWith("pull_request")) {
    const pr = payload.pull_request as { base?: { sha?: string; ref?: string } } | undefined;
    base = pr?.base?.sha ?? (process.env.GITHUB_BASE_REF ? `origin/${process.env.GITHUB_BASE_REF}` : undefined);
  }
  if (!base && name === "push" && typeof payload.before === "string" && !ZERO_SHA.test(payload.before)) base = payload.before;
  if (!base) return { entries: experiments(paths, cwd).map((e) => entry(e, "every experiment")), why: "no base to compare with" };
  const { top, files } = gitChangedFiles(base, cwd);
  return { entries: changedExperiments(paths, top, files), why: `changed since ${base}` };
}

export function changedCommand(setExit: (code: number) => void): Command {
  return new Command("changed")
    .description("the configs to train for this event, as a GitHub Actions matrix ({include: [{config, name, dataset_uri?, reason}]})")
    .argument("[paths...]", "config files or folders to consider (default: configs/)")
    .option("--base <ref>", "compare with this git ref (default in a pull request: its base commit; on push: the commit before)")
    .option("--json", "print the matrix as one JSON object (the default output is one line per config)")
    .action((paths: string[], flags: Flags) => {
      const cwd = process.cwd();
      const { entries, why } = select(paths.length ? paths : ["configs"], flags, cwd);
      const names = new Map<string, string>();
      for (const e of entries) {
        const other = names.get(e.name);
        // Runs, baselines and PR comments are per config name: two files with one name would overwrite each other.
        if (other) process.stderr.write(`warning: ${e.config} and ${other} share the name ${e.name}; their runs and comments would mix\n`);
        names.set(e.name, e.config);
      }
      const matrix = { include: entries };
      if (inGitHubActions()) {
        core.setOutput("matrix", JSON.stringify(matrix));
        core.setOutput("count", String(entries.length));
      }
      process.stderr.write(`${entries.length} config${entries.length === 1 ? "" : "s"} to train (${why})\n`);
      if (flags.json) process.stdout.write(`${JSON.stringify(matrix)}\n`);
      else for (const e of entries) process.stdout.write(`${e.config}\t${e.reason}\n`);
      setExit(EXIT_OK);
    });
}
