// Prints config diagnostics: `file:line:col: key: message` lines on stderr, and inside GitHub Actions
// also as annotations on the offending line of the PR diff.
import * as core from "@actions/core";
import { isAbsolute, relative, resolve } from "node:path";
import { formatDiagnostic, type Diagnostic } from "../config/index.js";

export function inGitHubActions(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.GITHUB_ACTIONS === "true";
}

/** Annotation paths are relative to the repository root (GITHUB_WORKSPACE); --set flags have no file. */
function annotationFile(file: string): string | undefined {
  if (file.startsWith("--set")) return undefined;
  const workspace = process.env.GITHUB_WORKSPACE ?? process.cwd();
  const rel = relative(workspace, resolve(process.cwd(), file));
  return rel.startsWith("..") || isAbsolute(rel) ? undefined : rel;
}

export function printDiagnostics(list: readonly Diagnostic[]): void {
  const actions = inGitHubActions();
  for (const d of list) {
    const text = formatDiagnostic(d);
    if (!actions) {
      process.stderr.write(`${text}\n`);
      continue;
    }
    const props: core.AnnotationProperties = { title: `ftune: ${d.key ?? "config"}` };
    const file = annotationFile(d.pos.file);
    if (file) {
      props.file = file;
      props.startLine = d.pos.line;
      props.startColumn = d.pos.col;
    }
    if (d.severity === "error") core.error(text, props);
    else core.warning(text, props);
  }
}

export function diagnosticJson(d: Diagnostic): Record<string, unknown> {
  return { severity: d.severity, file: d.pos.file, line: d.pos.line ?? null, col: d.pos.col ?? null, key: d.key ?? null, message: d.message };
}
