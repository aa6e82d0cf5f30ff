// `ftune dataprep <cfg> [--publish]`: prepare the config's dataset into the store and, with --publish, tell the
// repos in events.notify that it is ready (repository_dispatch <project>.dataprep).
import * as core from "@actions/core";
import { Command } from "commander";
import { dirname, resolve } from "node:path";
import { formatDropReport, prepareDataset, type DataprepCounts, type DroppedExample, type DropReason, type TokenStats } from "../dataprep/index.js";
import { restorePrepared, savePrepared } from "../dataprep/actions-cache.js";
import { cacheDir } from "../dataprep/source.js";
import { sendDispatch } from "../github/dispatch.js";
import { HubClient } from "../hub/index.js";
import { EXIT_INFRA, EXIT_OK, EXIT_USER, UserError } from "../util/errors.js";
import { inGitHubActions } from "./diagnostics-out.js";
import { projectName } from "./project.js";
import { addStoreFlags, hfToken, loadValidConfig, setOption, storeFromFlags, type StoreFlags } from "./store-flags.js";

type Flags = Omit<StoreFlags, "config"> & { publish?: boolean; json?: boolean; set?: string[] };

async function writeSummary(uri: string, hash: string, counts: DataprepCounts, tokens: TokenStats | undefined, skipped: boolean): Promise<void> {
  const rows = [
    [{ data: "rows", header: true }, { data: "count", header: true }],
    ["read", String(counts.input)],
    ["kept", String(counts.kept)],
    ["train", String(counts.train)],
    ["eval", String(counts.eval)],
    ...Object.entries(counts.dropped).map(([r, n]) => [`dropped: ${r}`, String(n)]),
  ];
  const s = core.summary.addHeading(`ftune dataprep ${skipped ? "(already prepared)" : ""}`.trim(), 3).addRaw(`<p><code>${uri}</code> (sha256 <code>${hash.slice(0, 16)}</code>)</p>`).addTable(rows);
  if (tokens) s.addRaw(`<p>tokens per example: min ${tokens.min}, mean ${tokens.mean}, p50 ${tokens.p50}, p95 ${tokens.p95}, max ${tokens.max}; cutoff ${tokens.cutoff_len}, truncated ${tokens.truncated}, dropped ${tokens.dropped}</p>`);
  await s.write();
}

export function dataprepCommand(setExit: (code: number) => void): Command {
  const cmd = new Command("dataprep")
    .description("prepare a config's dataset: read, validate, template, tokenize, split, store content-addressed; --publish sends <project>.dataprep")
    .argument("<config>", "config file")
    .option("--publish", "send repository_dispatch <project>.dataprep to every repo in events.notify (token: FTUNE_DISPATCH_TOKEN or GITHUB_TOKEN)")
    .option("--json", 'print one JSON object: {"dataset_uri", "dataset_hash", "counts": {input, kept, train, eval, dropped}}');
  cmd.addOption(setOption());
  addStoreFlags(cmd, false);
  cmd.action(async (configPath: string, flags: Flags) => {
    const cfg = loadValidConfig(configPath, flags.set).config;
    const { store } = storeFromFlags(flags, cfg);
    const hub = new HubClient({ token: hfToken(cfg) });
    const r = await prepareDataset(cfg, { store, hub, configDir: dirname(resolve(configPath)) });
    const local = resolve(cacheDir(), "datasets", r.dataset_hash);
    if (r.skipped) await restorePrepared(r.dataset_hash, local);
    else await savePrepared(r.dataset_hash, local);

    const m = r.manifest as { tokens?: TokenStats; dropped_examples?: Partial<Record<DropReason, DroppedExample[]>> };
    process.stderr.write(
      `${r.skipped ? "already prepared" : "prepared"} ${r.dataset_uri}\n${formatDropReport(r.counts, m.dropped_examples ?? {})}\n  train ${r.counts.train}, eval ${r.counts.eval}` +
        (m.tokens ? `; tokens p50 ${m.tokens.p50}, p95 ${m.tokens.p95}, max ${m.tokens.max} (cutoff ${m.tokens.cutoff_len}, truncated ${m.tokens.truncated})` : "") +
        "\n",
    );
    if (inGitHubActions()) {
      core.setOutput("dataset-uri", r.dataset_uri);
      core.setOutput("dataset-hash", r.dataset_hash);
      await writeSummary(r.dataset_uri, r.dataset_hash, r.counts, m.tokens, r.skipped);
    }
    if (flags.json) process.stdout.write(`${JSON.stringify({ dataset_uri: r.dataset_uri, dataset_hash: r.dataset_hash, counts: r.counts, skipped: r.skipped })}\n`);
    else process.stdout.write(`${r.dataset_uri}\n`);

    if (flags.publish) {
      const repos = cfg.events.notify;
      if (repos.length === 0) {
        process.stderr.write("--publish: events.notify lists no repos; nothing sent\n");
        return setExit(EXIT_OK);
      }
      const token = process.env.FTUNE_DISPATCH_TOKEN || process.env.GITHUB_TOKEN;
      if (!token) throw new UserError("--publish needs a token with access to the notified repos: set FTUNE_DISPATCH_TOKEN (or GITHUB_TOKEN)");
      if (inGitHubActions()) core.setSecret(token);
      const eventType = `${projectName(cfg.project.name)}.dataprep`;
      const source = (r.manifest as { source?: { id?: string; revision?: string | null } }).source ?? {};
      const sent = await sendDispatch(repos, eventType, { dataset_uri: r.dataset_uri, dataset_hash: r.dataset_hash, source: source.id ?? null, revision: source.revision ?? null, counts: r.counts }, token, process.env.GITHUB_API_URL);
      for (const t of sent) process.stderr.write(`${t.ok ? "sent" : "FAILED"} ${eventType} to ${t.repo}${t.ok ? "" : `: HTTP ${t.status ?? "?"} ${t.error ?? ""}`}\n`);
      const failed = sent.filter((t) => !t.ok);
      if (failed.length) return setExit(failed.every((t) => t.status !== undefined && t.status < 500) ? EXIT_USER : EXIT_INFRA);
    }
    setExit(EXIT_OK);
  });
  return cmd;
}
