// POSIX shell quoting, and the way environment values reach a remote command without appearing on any command
// line (sshd's AcceptEnv normally refuses channel env requests, and a command line is visible to everyone in `ps`).
import { randomBytes } from "node:crypto";

/** Quotes s as one POSIX shell word: single quotes, each embedded ' written as '\''. */
export function shellQuote(s: string): string {
  if (s.includes("\0")) throw new TypeError("a shell word cannot contain a NUL byte");
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `export K='v'` lines; throws on a name the shell could not assign. */
export function exportLines(env: Record<string, string>): string[] {
  return Object.entries(env).map(([k, v]) => {
    if (!ENV_NAME.test(k)) throw new TypeError(`not a valid environment variable name: ${JSON.stringify(k)}`);
    return `export ${k}=${shellQuote(v)}`;
  });
}

/**
 * Splits env delivery into a command prefix that holds no values and a preamble sent first on the command's stdin.
 * The prefix reads lines up to a random end marker with the shell's own `read` (which never reads past a newline
 * on a pipe, so the command still gets the caller's stdin after it) and evals them. Values may hold quotes,
 * newlines and `$(...)`: they arrive single-quoted and are never expanded.
 */
export function envOverStdin(env: Record<string, string>): { prefix: string; preamble: string } {
  const end = `__FTUNE_ENV_END_${randomBytes(12).toString("hex")}`;
  const prefix =
    `__ftune_s=; while IFS= read -r __ftune_l && [ "$__ftune_l" != ${end} ]; do __ftune_s="$__ftune_s$__ftune_l\n"; done; ` +
    `eval "$__ftune_s"; unset __ftune_s __ftune_l\n`;
  return { prefix, preamble: [...exportLines(env), end, ""].join("\n") };
}
