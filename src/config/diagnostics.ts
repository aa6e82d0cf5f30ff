// A located message about a config: what the validator, the loader and the semantic checks all produce.

export interface SourcePos {
  /** File as the user should see it (relative to the working directory when inside it), or a pseudo-source like "--set x=1". */
  file: string;
  /** 1-based; absent when the source has no lines (a --set flag). */
  line?: number;
  col?: number;
}

export interface Diagnostic {
  severity: "error" | "warning";
  pos: SourcePos;
  /** Dotted key the message is about (e.g. training.learning_rate), when there is one. */
  key?: string;
  message: string;
}

export function formatPos(pos: SourcePos): string {
  return pos.line === undefined ? pos.file : `${pos.file}:${pos.line}:${pos.col ?? 1}`;
}

/** `file:LINE:COL: dotted.key: message`, with `warning: ` before the key for warnings. */
export function formatDiagnostic(d: Diagnostic): string {
  const sev = d.severity === "warning" ? "warning: " : "";
  const key = d.key ? `${d.key}: ` : "";
  return `${formatPos(d.pos)}: ${sev}${key}${d.message}`;
}

export function sortDiagnostics(list: Diagnostic[]): Diagnostic[] {
  return [...list].sort(
    (a, b) =>
      a.pos.file.localeCompare(b.pos.file) ||
      (a.pos.line ?? 0) - (b.pos.line ?? 0) ||
      (a.pos.col ?? 0) - (b.pos.col ?? 0) ||
      a.message.localeCompare(b.message),
  );
}
