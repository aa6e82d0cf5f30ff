// The `ftune` command tree. Commands are thin: they parse flags, call a stage and map the outcome to the
// exit codes of DESIGN.md (0 ok, 1 user error, 2 infrastructure error). User errors never print a stack.
import { Command, CommanderError } from "commander";
import pkg from "../../package.json" with { type: "json" };
import { EXIT_USER } from "../util/errors.js";
import { runConfigShow } from "./config-show.js";
import { runPlan } from "./plan.js";
import { runValidate } from "./validate.js";
import { modelsCommand } from "./models.js";
import { dataprepCommand } from "./dataprep.js";
import { cleanupCommand } from "./cleanup.js";
import { trainCommand } from "./train.js";
import { reportCommand } from "./report.js";
import { runCommand } from "./run.js";
import { changedCommand } from "./changed.js";
import { describeFailure } from "./failures.js";
import { setOption } from "./store-flags.js";


export function buildProgram(setExit: (code: number) => void): Command {
  const program = new Command("ftune")
    .description("PR-driven LLM fine-tuning: validate a config, prepare data, train a quantized LoRA on a spot GPU, report on the PR.")
    .version(pkg.version)
    .addHelpText("after", "\nExit codes: 0 ok, 1 user error (bad config or input; the message says where), 2 infrastructure error.")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();

  program
    .command("validate")
    .description("validate config files (or every .yaml/.yml under folders); all errors at once as file:line:col: key: message")
    .argument("[paths...]", "config files or folders", [])
    .addOption(setOption())
    .option("--json", "print one JSON object: {ok, errors, warnings, configs, diagnostics}")
    .action((paths: string[], opts: { set?: string[]; json?: boolean }) => setExit(runValidate(paths, opts)));

  const config = program.command("config").description("inspect configs");
  config
    .command("show")
    .description("print the resolved config (extends merged, --set applied, defaults filled, keys sorted) and its sha256")
    .argument("<config>", "config file")
    .addOption(setOption())
    .option("--json", 'print {"hash": ..., "file": ..., "config": {...}}')
    .action((path: string, opts: { set?: string[]; json?: boolean }) => setExit(runConfigShow(path, opts)));

  program
    .command("plan")
    .description("what a run of this config would do: the key-level diff against a git ref, the instances it would try, a cost estimate")
    .argument("<config>", "config file")
    .option("--base <git-ref>", "compare against the config at this ref (default in a pull request: origin/$GITHUB_BASE_REF)")
    .addOption(setOption())
    .option("--no-config", "leave the resolved config out of the text output")
    .option("--json", "print the plan as one JSON object")
    .action((path: string, opts: { base?: string; set?: string[]; json?: boolean; config?: boolean }) => setExit(runPlan(path, opts)));

  program.addCommand(modelsCommand(setExit));
  program.addCommand(dataprepCommand(setExit));
  program.addCommand(trainCommand(setExit));
  program.addCommand(reportCommand(setExit));
  program.addCommand(runCommand(setExit));
  program.addCommand(changedCommand(setExit));
  program.addCommand(cleanupCommand(setExit));

  return program;
}

export async function main(argv: string[]): Promise<number> {
  let code = 0;
  const program = buildProgram((c) => {
    code = c;
  });
  try {
    await program.parseAsync(argv, { from: "user" });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version end here with exitCode 0; usage errors are user errors.
      return e.exitCode === 0 ? 0 : EXIT_USER;
    }
    const failure = describeFailure(e);
    process.stderr.write(`ftune: ${failure.message}\n`);
    return failure.code;
  }
}
