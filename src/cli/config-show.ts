// `ftune config show <cfg>`: the resolved config (defaults filled, keys sorted) and its hash.
import { stringify } from "yaml";
import { loadConfig } from "../config/index.js";
import { sortKeysDeep } from "../config/canonical.js";
import { EXIT_OK, EXIT_USER } from "../util/errors.js";
import { printDiagnostics } from "./diagnostics-out.js";
import { overridesFrom } from "./store-flags.js";

export function runConfigShow(path: string, opts: { set?: string[]; json?: boolean }): number {
  const r = loadConfig(path, { sets: overridesFrom(opts.set) });
  printDiagnostics(r.diagnostics);
  if (!r.ok || !r.config || !r.hash) return EXIT_USER;
  const config = sortKeysDeep(r.config);
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ hash: r.hash, file: r.file, config }, null, 2)}\n`);
  } else {
    process.stdout.write(`# ${r.file}\n# sha256:${r.hash}\n${stringify(config, { lineWidth: 0 })}`);
  }
  return EXIT_OK;
}
