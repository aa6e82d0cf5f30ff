// Entry point of the `ftune` binary (bundled to dist/cli.js).
import { main } from "./program.js";

process.exitCode = await main(process.argv.slice(2));
