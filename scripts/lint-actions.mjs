// Lints action.yml and every workflow with action-validator (the schema of GitHub's action and workflow files).
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";

const files = ["action.yml", ...readdirSync(".github/workflows").filter((f) => /\.ya?ml$/.test(f)).map((f) => join(".github/workflows", f))];
let failed = 0;
for (const f of files) {
  const r = spawnSync(join("node_modules", ".bin", "action-validator"), [f], { stdio: "inherit" });
  if (r.status !== 0) {
    console.error(`action-validator: ${f} is invalid`);
    failed++;
  }
}
console.log(`action-validator: ${files.length - failed}/${files.length} files valid`);
process.exit(failed ? 1 : 0);
