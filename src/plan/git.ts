// Reads config files as they are at a git ref (`git show <ref>:<path>`), so `plan --base` can resolve the
// base version of a config, extends included, without checking anything out.
import { execFileSync } from "node:child_process";
import { relative } from "node:path";
import { InfraError, UserError } from "../util/errors.js";
import type { ReadFileHook } from "../config/index.js";

function git(args: string[], cwd: string): string {
  try {
    return execFileSync("git", args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 << 20 });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string; status?: number };
    if (err.code === "ENOENT") throw new InfraError("git is not installed or not on PATH; plan --base needs it");
    throw Object.assign(new Error(String(err.stderr ?? err.message).trim()), { status: err.status });
  }
}

export interface GitRefReader {
  /** The commit the ref names. */
  commit: string;
  readFile: ReadFileHook;
}

/** The repository's root folder; `ref` only names the flag in the message when cwd is not in a repository. */
function repoTop(cwd: string, ref: string): string {
  try {
    return git(["rev-parse", "--show-toplevel"], cwd).trim();
  } catch (e) {
    if (e instanceof InfraError) throw e;
    throw new UserError(`--base ${ref}: ${cwd} is not inside a git repository`);
  }
}

export function gitRefReader(ref: string, cwd: string): GitRefReader {
  const top = repoTop(cwd, ref);
  let commit: string;
  try {
    commit = git(["rev-parse", "--verify", "--quiet", `${ref}^{commit}`], cwd).trim();
  } catch (e) {
    if (e instanceof InfraError) throw e;
    throw new UserError(`--base ${ref}: no such git ref (fetch it first, e.g. git fetch origin ${ref.replace(/^origin\//, "")})`);
  }
  const readFile: ReadFileHook = (abs) => {
    const rel = relative(top, abs).split("\\").join("/");
    if (rel.startsWith("..")) return null;
    try {
      return git(["show", `${commit}:${rel}`], top);
    } catch {
      return null; // the file does not exist at that ref
    }
  };
  return { commit, readFile };
}

/**
 * Files (relative to the repository root) that differ between `base` and HEAD: against their merge base, as a pull
 * request shows them, or directly when there is none (a force-pushed branch). Renames count as both names.
 */
export function gitChangedFiles(base: string, cwd: string): { top: string; files: string[] } {
  const top = repoTop(cwd, base);
  try {
    git(["rev-parse", "--verify", "--quiet", `${base}^{commit}`], top);
  } catch (e) {
    if (e instanceof InfraError) throw e;
    throw new UserError(`--base ${base}: no such commit here (check out with fetch-depth: 0, or git fetch origin ${base.replace(/^origin\//, "")})`);
  }
  let out: string;
  try {
    out = git(["diff", "--name-only", "--no-renames", `${base}...HEAD`], top);
  } catch {
    out = git(["diff", "--name-only", "--no-renames", base, "HEAD"], top);
  }
  return { top, files: out.split("\n").filter(Boolean) };
}
