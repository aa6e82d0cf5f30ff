// `ftune validate [paths...]`: every config under the paths, every problem at once, exit 1 if any error.
import * as core from "@actions/core";
import { validatePaths } from "../config/index.js";
import { EXIT_OK, EXIT_USER } from "../util/errors.js";
import { diagnosticJson, inGitHubActions, printDiagnostics } from "./diagnostics-out.js";
import { overridesFrom } from "./store-flags.js";

export interface ValidateOptions {
  set?: string[];
  json?: boolean;
}

export function runValidate(paths: string[], opts: ValidateOptions): number {
  const report = validatePaths(paths.length ? paths : ["configs"], { sets: overridesFrom(opts.set) });
  if (report.results.length === 0) {
    process.stderr.write(`no .yaml/.yml config files found under ${paths.join(", ") || "configs"}\n`);
    return EXIT_USER;
  }
  if (opts.json) {
    const out = {
      ok: report.errors === 0,
      errors: report.errors,
      warnings: report.warnings,
      configs: report.results.map((r) => ({ file: r.file, ok: r.ok, hash: r.hash ?? null, base_of: r.baseOf ?? null })),
      diagnostics: report.diagnostics.map(diagnosticJson),
    };
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    return report.errors === 0 ? EXIT_OK : EXIT_USER;
  }
  printDiagnostics(report.diagnostics);
  for (const r of report.results) {
    const mark = r.ok ? "ok     " : "invalid";
    const what = r.baseOf ? `(base of ${r.baseOf.join(", ")})` : r.hash ? `sha256:${r.hash}` : "";
    process.stdout.write(`${mark} ${r.file} ${what}\n`);
  }
  const invalid = report.results.filter((r) => !r.ok).length;
  const n = report.results.length;
  process.stdout.write(
    `${n} config${n === 1 ? "" : "s"}: ${n - invalid} valid, ${invalid} invalid; ${report.errors} error${report.errors === 1 ? "" : "s"}, ${report.warnings} warning${report.warnings === 1 ? "" : "s"}\n`,
  );
  // The action's validate step exposes the hash of a single validated config as a step output.
  const only = report.results.length === 1 ? report.results[0] : undefined;
  if (inGitHubActions() && only?.hash) core.setOutput("config-hash", only.hash);
  return report.errors === 0 ? EXIT_OK : EXIT_USER;
}
