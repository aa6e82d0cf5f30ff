// Entry point of the `ftune` binary (bundled to dist/cli.js).
import { main } from "./program.js";

// ftune pins its AWS SDK version, so the SDK's notice that its future releases will need a newer Node.js is
// noise in every command's output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

process.exitCode = await main(process.argv.slice(2));
