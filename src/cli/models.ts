// `ftune models mirror|pull|ls`: fill, copy out and list the base-model cache in the store.
import { Command } from "commander";
import { HubClient } from "../hub/index.js";
import { listModels, mirrorModel, pullModel } from "../models/index.js";
import { formatBytes, formatDuration } from "../store/index.js";
import { EXIT_OK } from "../util/errors.js";
import { addStoreFlags, configFromFlags, hfToken, storeFromFlags, type StoreFlags } from "./store-flags.js";

type Flags = StoreFlags & { revision?: string; from?: string; to?: string; json?: boolean };

const rate = (bytes: number, seconds: number): string => (seconds > 0 ? `${formatBytes(bytes / seconds)}/s` : "-");

export function modelsCommand(setExit: (code: number) => void): Command {
  const models = new Command("models").description("the base-model cache in the store (models/<hf-id>@<commit>/ + _ftune_manifest.json)");

  addStoreFlags(
    models
      .command("mirror")
      .description("copy a model from the HuggingFace Hub (or a local folder) into the store, verified; a rerun moves only what is missing")
      .argument("<hf-id>", "model repo id, e.g. meta-llama/Llama-2-7b-hf")
      .option("--revision <rev>", "branch, tag or commit (default main); with --from, the label it is stored under")
      .option("--from <dir>", "fill the cache from this local folder instead of the Hub (air-gapped use)")
      .option("--json", "print one JSON object: {model, revision, commit, uri, files, bytes, transferred}"),
  ).action(async (id: string, flags: Flags) => {
    const cfg = configFromFlags(flags);
    const { store, options } = storeFromFlags(flags, cfg);
    const hub = flags.from ? undefined : new HubClient({ token: hfToken(cfg) });
    const r = await mirrorModel(store, {
      model: id,
      revision: flags.revision ?? (cfg?.model.base_model === id ? cfg.model.revision : undefined),
      from: flags.from,
      hub,
      allow: cfg?.model.allow_patterns,
      ignore: cfg?.model.ignore_patterns,
      concurrency: options.concurrency,
    });
    const m = r.manifest;
    if (flags.json) {
      process.stdout.write(`${JSON.stringify({ model: m.model, revision: m.revision, commit: m.commit, uri: r.uri, files: m.files.length, bytes: m.bytes, already: r.already, transferred: r.transferred })}\n`);
    } else if (r.already) {
      process.stdout.write(`${m.model}@${m.revision} is already in the store: ${r.uri} (${m.files.length} files, ${formatBytes(m.bytes)})\n`);
    } else {
      const t = r.transferred;
      process.stdout.write(
        `mirrored ${m.model}@${m.revision}${m.commit ? ` (${m.commit})` : ""} to ${r.uri}: ${m.files.length} files, ${formatBytes(m.bytes)}; moved ${t.files} (${formatBytes(t.bytes)}) in ${formatDuration(t.seconds)} at ${rate(t.bytes, t.seconds)}, ${t.reused} already there\n`,
      );
    }
    setExit(EXIT_OK);
  });

  addStoreFlags(
    models
      .command("pull")
      .description("a verified local copy of a stored model (files already there with the right sha256 are kept)")
      .argument("<hf-id>", "model repo id")
      .option("--revision <rev>", "as mirrored (default main; a branch is resolved through the Hub when not stored under its name)")
      .requiredOption("--to <dir>", "local folder to fill")
      .option("--json", "print one JSON object: {model, revision, commit, dir, files, bytes, transferred}"),
  ).action(async (id: string, flags: Flags) => {
    const cfg = configFromFlags(flags);
    const { store, options } = storeFromFlags(flags, cfg);
    const r = await pullModel(store, { model: id, revision: flags.revision, to: flags.to!, hub: new HubClient({ token: hfToken(cfg) }), concurrency: options.concurrency });
    const m = r.manifest;
    const t = r.transferred;
    if (flags.json) {
      process.stdout.write(`${JSON.stringify({ model: m.model, revision: m.revision, commit: m.commit, dir: r.dir, files: m.files.length, bytes: m.bytes, transferred: t })}\n`);
    } else {
      process.stdout.write(`pulled ${m.model}@${m.revision} into ${r.dir}: ${m.files.length} files verified; downloaded ${t.files} (${formatBytes(t.bytes)}) in ${formatDuration(t.seconds)} at ${rate(t.bytes, t.seconds)}, kept ${t.reused}\n`);
    }
    setExit(EXIT_OK);
  });

  addStoreFlags(
    models.command("ls").description("list the models in the store").option("--json", 'print one JSON object: {"store", "models": [{model, revision, commit, uri, files, bytes, created_at}]}'),
  ).action(async (flags: Flags) => {
    const { store } = storeFromFlags(flags, configFromFlags(flags));
    const list = await listModels(store);
    if (flags.json) {
      process.stdout.write(`${JSON.stringify({ store: store.url, models: list })}\n`);
    } else if (list.length === 0) {
      process.stdout.write(`no models in ${store.url}\n`);
    } else {
      for (const m of list) process.stdout.write(`${`${m.model}@${m.revision}`.padEnd(60)} ${String(m.files).padStart(4)} files ${formatBytes(m.bytes).padStart(9)}  ${m.uri}\n`);
    }
    setExit(EXIT_OK);
  });

  return models;
}
