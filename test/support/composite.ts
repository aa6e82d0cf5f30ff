// Runs a composite action's steps the way the Actions runner does, as far as ftune's action.yml needs: each step's
// `if:` evaluated (inputs, steps.<id>.outputs/outcome, always()/cancelled()/success()/failure(), ==, !=, &&, ||, !),
// `${{ }}` expanded in env and with, `run:` scripts under bash with a fresh GITHUB_OUTPUT per step whose outputs
// later steps see, GITHUB_ENV carried forward, and `uses:` steps handed to the caller (there is no runner here to
// run marketplace actions; the test says what it does for each).
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";

export interface CompositeStep {
  id?: string;
  name?: string;
  if?: string;
  uses?: string;
  run?: string;
  shell?: string;
  env?: Record<string, string>;
  with?: Record<string, string>;
}

export interface StepResult {
  id?: string;
  name?: string;
  outcome: "success" | "failure" | "skipped";
  outputs: Record<string, string>;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  actionPath: string;
  inputs: Record<string, string>;
  /** The job's environment (GITHUB_*, RUNNER_TEMP, credentials...). */
  env: Record<string, string>;
  /** Context values for expressions other than inputs/steps (runner.temp, github.token, ...). */
  context: Record<string, string>;
  /** A `uses:` step: do what it would do (or nothing) and say how it went. */
  uses: (step: CompositeStep, withValues: Record<string, string>, env: Record<string, string>) => Promise<{ outcome: "success" | "failure"; outputs?: Record<string, string> }>;
  /** Each stderr line of a run step, with a function that kills the step's whole process tree (SIGKILL). */
  onStderrLine?: (stepId: string | undefined, line: string, kill: () => void) => void;
}

type Value = string | boolean | number | null;

/** A small evaluator for the expression syntax action.yml uses. */
function evaluate(expr: string, ctx: (path: string) => Value, status: { failed: boolean; cancelled: boolean }): Value {
  const tokens = expr.match(/'(?:[^']|'')*'|&&|\|\||==|!=|!|\(|\)|[A-Za-z_][\w.-]*\(\)|[A-Za-z_][\w.-]*|\d+/g) ?? [];
  let i = 0;
  const peek = (): string | undefined => tokens[i];
  const truthy = (v: Value): boolean => v !== null && v !== false && v !== "" && v !== 0;
  const primary = (): Value => {
    const t = tokens[i++];
    if (t === undefined) throw new Error(`unexpected end of ${expr}`);
    if (t === "(") {
      const v = or();
      i++; // )
      return v;
    }
    if (t === "!") return !truthy(primary());
    if (t.startsWith("'")) return t.slice(1, -1).replace(/''/g, "'");
    if (/^\d+$/.test(t)) return Number(t);
    if (t === "true" || t === "false") return t === "true";
    if (t === "always()") return true;
    if (t === "cancelled()") return status.cancelled;
    if (t === "success()") return !status.failed && !status.cancelled;
    if (t === "failure()") return status.failed;
    return ctx(t);
  };
  const cmp = (): Value => {
    let left = primary();
    while (peek() === "==" || peek() === "!=") {
      const op = tokens[i++];
      const right = primary();
      const eq = String(left ?? "") === String(right ?? "");
      left = op === "==" ? eq : !eq;
    }
    return left;
  };
  const and = (): Value => {
    let left = cmp();
    while (peek() === "&&") {
      i++;
      const right = cmp();
      left = truthy(left) ? right : left;
    }
    return left;
  };
  const or = (): Value => {
    let left = and();
    while (peek() === "||") {
      i++;
      const right = and();
      left = truthy(left) ? left : right;
    }
    return left;
  };
  return or();
}

const STATUS_FUNCS = /\b(always|cancelled|success|failure)\(\)/;

export async function runComposite(o: RunOptions): Promise<StepResult[]> {
  const action = parse(readFileSync(join(o.actionPath, "action.yml"), "utf8")) as { inputs: Record<string, { default?: string }>; runs: { steps: CompositeStep[] } };
  const inputs: Record<string, string> = {};
  for (const [k, v] of Object.entries(action.inputs)) inputs[k] = o.inputs[k] ?? (typeof v.default === "string" ? v.default : "");
  const results: StepResult[] = [];
  const byId: Record<string, StepResult> = {};
  const carried: Record<string, string> = {};
  const status = { failed: false, cancelled: false };
  const ctx = (path: string): Value => {
    if (path.startsWith("inputs.")) return inputs[path.slice(7)] ?? "";
    const m = /^steps\.([\w-]+)\.(outputs\.([\w-]+)|outcome)$/.exec(path);
    if (m) {
      const s = byId[m[1]!];
      if (!s) return m[2] === "outcome" ? "" : "";
      return m[2] === "outcome" ? s.outcome : (s.outputs[m[3]!] ?? "");
    }
    return o.context[path] ?? "";
  };
  const expand = (text: string): string => text.replace(/\$\{\{(.*?)\}\}/g, (_m, e: string) => String(evaluate(e.trim(), ctx, status) ?? ""));
  // Defaults may be expressions themselves (github-token: ${{ github.token }}).
  for (const k of Object.keys(inputs)) if (o.inputs[k] === undefined) inputs[k] = expand(inputs[k]!);

  for (const step of action.runs.steps) {
    const cond = step.if ? step.if.replace(/^\$\{\{(.*)\}\}$/, "$1").trim() : "success()";
    const run = STATUS_FUNCS.test(cond) ? evaluate(cond, ctx, status) : !status.failed && evaluate(cond, ctx, status);
    const result: StepResult = { id: step.id, name: step.name, outcome: "skipped", outputs: {}, stdout: "", stderr: "" };
    if (step.id) byId[step.id] = result;
    results.push(result);
    if (!run || run === "" || run === null) continue;
    const env: Record<string, string> = { ...o.env, ...carried };
    for (const [k, v] of Object.entries(step.env ?? {})) env[k] = expand(String(v));
    if (step.uses) {
      const withValues: Record<string, string> = {};
      for (const [k, v] of Object.entries(step.with ?? {})) withValues[k] = expand(String(v));
      const r = await o.uses(step, withValues, env);
      result.outcome = r.outcome;
      result.outputs = r.outputs ?? {};
    } else {
      const outFile = join(o.env.RUNNER_TEMP!, `step-output-${results.length}`);
      const envFile = join(o.env.RUNNER_TEMP!, `step-env-${results.length}`);
      writeFileSync(outFile, "");
      writeFileSync(envFile, "");
      const code = await new Promise<number | null>((resolve) => {
        // Its own process group, so a kill takes the whole step (bash and the node it runs), as the runner's does.
        const child = spawn("bash", ["-e", "-c", step.run!], { env: { ...env, GITHUB_ACTION_PATH: o.actionPath, GITHUB_OUTPUT: outFile, GITHUB_ENV: envFile }, cwd: o.env.GITHUB_WORKSPACE, detached: true });
        const killStep = (): void => {
          try {
            process.kill(-child.pid!, "SIGKILL");
          } catch {
            // already gone
          }
        };
        let partial = "";
        child.stdout.on("data", (d: Buffer) => (result.stdout += d.toString()));
        child.stderr.on("data", (d: Buffer) => {
          result.stderr += d.toString();
          const lines = (partial + d.toString()).split("\n");
          partial = lines.pop() ?? "";
          for (const l of lines) o.onStderrLine?.(step.id, l, killStep);
        });
        child.once("close", (c) => resolve(c));
      });
      result.outcome = code === 0 ? "success" : "failure";
      result.outputs = parseFileCommand(readFileSync(outFile, "utf8"));
      Object.assign(carried, parseFileCommand(readFileSync(envFile, "utf8")));
    }
    if (result.outcome === "failure") status.failed = true;
  }
  return results;
}

/** name=value lines and name<<DELIM heredocs, as the runner parses GITHUB_OUTPUT and GITHUB_ENV. */
export function parseFileCommand(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const heredoc = /^([^=<]+)<<(.+)$/.exec(line);
    if (heredoc) {
      const body: string[] = [];
      for (i++; i < lines.length && lines[i] !== heredoc[2]; i++) body.push(lines[i]!);
      out[heredoc[1]!] = body.join("\n");
    } else if (line.includes("=")) out[line.slice(0, line.indexOf("="))] = line.slice(line.indexOf("=") + 1);
  }
  return out;
}
