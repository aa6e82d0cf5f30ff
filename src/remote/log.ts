// Remote output into the job log: whole lines, each prefixed with where it came from (several hosts can stream at
// once), inside a collapsible group in GitHub Actions, with known secrets masked both by the runner (setSecret) and
// here (so a secret split across two chunks, or a local run, never prints either).
import * as core from "@actions/core";

export interface LogStream {
  onStdout: (chunk: string) => void;
  onStderr: (chunk: string) => void;
  /** Flushes a last partial line and closes the group. */
  end(): void;
}

export function streamToLog(opts: { prefix: string; group?: string; secrets?: readonly string[]; write?: (line: string) => void }): LogStream {
  const actions = process.env.GITHUB_ACTIONS === "true";
  const secrets = (opts.secrets ?? []).filter((s) => s.length >= 4);
  if (actions) for (const s of secrets) core.setSecret(s);
  const write = opts.write ?? ((line: string) => process.stdout.write(`${line}\n`));
  const mask = (line: string): string => secrets.reduce((l, s) => l.split(s).join("***"), line);
  if (opts.group && actions) core.startGroup(opts.group);
  else if (opts.group) write(`== ${opts.group}`);
  const buffers = { out: "", err: "" };
  const feed = (which: "out" | "err", chunk: string): void => {
    buffers[which] += chunk;
    const lines = buffers[which].split("\n");
    buffers[which] = lines.pop()!;
    for (const l of lines) write(`${opts.prefix}${which === "err" ? " !" : ""} ${mask(l.replace(/\r$/, ""))}`);
  };
  return {
    onStdout: (c) => feed("out", c),
    onStderr: (c) => feed("err", c),
    end() {
      for (const which of ["out", "err"] as const) if (buffers[which]) feed(which, "\n");
      if (opts.group && actions) core.endGroup();
    },
  };
}
