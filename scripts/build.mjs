// Bundles the CLI into dist/ (committed: the action runs it without `npm ci`).
// Deterministic output, so CI can rebuild and require `git status --porcelain dist/` to be empty.
import { build } from "esbuild";
import { rmSync, mkdirSync } from "node:fs";

rmSync("dist", { recursive: true, force: true });
mkdirSync("dist");
await build({
  entryPoints: { cli: "src/cli/main.ts" },
  outdir: "dist",
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  sourcemap: false,
  legalComments: "external",
  logLevel: "warning",
  // CommonJS dependencies (ajv, commander, ssh2) call require(); give the ESM bundle one.
  banner: {
    js: "#!/usr/bin/env node\nimport { createRequire as __ftuneCreateRequire } from 'node:module';\nconst require = __ftuneCreateRequire(import.meta.url);",
  },
});
