// Bundles the CLI into dist/ (committed: the action runs it without `npm ci`).
// Deterministic output, so CI can rebuild and require `git status --porcelain dist/` to be empty.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";

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
  // A native addon cannot live inside a JS bundle: its Linux binaries are copied next to it (below) and
  // src/dataprep/tokenizer.ts loads them when the package is not installed.
  // ssh2's optional native crypto (and cpu-features) are required inside try/catch with a pure-JS fallback: left
  // external, the bundle takes the fallback.
  external: ["tokenizers", "*.node"],
  logLevel: "warning",
  // CommonJS dependencies (ajv, commander, ssh2) call require(); give the ESM bundle one.
  banner: {
    js: [
      "#!/usr/bin/env node",
      "import { createRequire as __ftuneCreateRequire } from 'node:module';",
      "import { fileURLToPath as __ftuneFileURLToPath } from 'node:url';",
      "import { dirname as __ftuneDirname } from 'node:path';",
      "const require = __ftuneCreateRequire(import.meta.url);",
      // CommonJS dependencies (ssh2) also read __filename/__dirname at load time.
      "const __filename = __ftuneFileURLToPath(import.meta.url);",
      "const __dirname = __ftuneDirname(__filename);",
    ].join("\n"),
  },
});

// GitHub's Linux runners (x64 and arm64, glibc) are where the action runs.
mkdirSync("dist/native");
for (const target of ["linux-x64-gnu", "linux-arm64-gnu"]) {
  copyFileSync(`node_modules/tokenizers/tokenizers.${target}.node`, `dist/native/tokenizers.${target}.node`);
}
copyFileSync("node_modules/tokenizers/LICENSE", "dist/native/LICENSE.tokenizers");

// The box-side agent is uploaded to the GPU host as is (python3 standard library only).
mkdirSync("dist/agent");
copyFileSync("src/agent/ftune_agent.py", "dist/agent/ftune_agent.py");
copyFileSync("src/train/dryrun_trainer.py", "dist/agent/dryrun_trainer.py");
