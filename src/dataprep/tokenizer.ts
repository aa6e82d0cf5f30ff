// Token counting with the base model's real tokenizer.json through HF's `tokenizers` (native Rust bindings;
// the pure-JS port measured ~17x slower here). The bundled CLI (dist/cli.js) cannot carry a .node file inside the
// bundle: the build copies the Linux binaries to dist/native/ and this loader falls back to them when the package
// itself is not installed (the action runs without npm ci).
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { InfraError, UserError } from "../util/errors.js";

interface NativeEncoding {
  getLength(): number;
}
interface NativeTokenizer {
  encodeBatch(texts: string[]): Promise<NativeEncoding[]>;
  tokenToId(token: string): number | null | undefined;
}
interface NativeModule {
  Tokenizer: { fromFile(path: string): NativeTokenizer; fromString(json: string): NativeTokenizer };
}

let native: NativeModule | undefined;

function loadNative(): NativeModule {
  if (native) return native;
  const require = createRequire(import.meta.url);
  try {
    native = require("tokenizers") as NativeModule;
    return native;
  } catch (first) {
    const here = dirname(fileURLToPath(import.meta.url));
    const libc = process.platform === "linux" ? "-gnu" : "";
    const file = join(here, "native", `tokenizers.${process.platform}-${process.arch}${libc}.node`);
    if (existsSync(file)) {
      native = require(file) as NativeModule;
      return native;
    }
    throw new InfraError(`HF tokenizers is not available for ${process.platform}-${process.arch} (${(first as Error).message}); run ftune from an npm install of it, or on Linux x64/arm64`);
  }
}

export interface TokenCounter {
  /** sha256 of the tokenizer.json: part of the dataset's identity. */
  readonly sha256: string;
  /** Tokens per text as the trainer will see them: special tokens the tokenizer adds (BOS), plus EOS when asked. */
  count(texts: string[]): Promise<number[]>;
}

export function loadTokenCounter(tokenizerJson: string, addEos: boolean): TokenCounter {
  let bytes: Buffer;
  try {
    bytes = readFileSync(tokenizerJson);
  } catch (e) {
    throw new UserError(`cannot read the tokenizer ${tokenizerJson}: ${(e as Error).message}`);
  }
  let tok: NativeTokenizer;
  try {
    tok = loadNative().Tokenizer.fromString(bytes.toString("utf8"));
  } catch (e) {
    if (e instanceof InfraError) throw e;
    throw new UserError(`${tokenizerJson} is not a tokenizer.json the HF tokenizers library can load: ${(e as Error).message}`);
  }
  const extra = addEos ? 1 : 0;
  return {
    sha256: createHash("sha256").update(bytes).digest("hex"),
    async count(texts) {
      const enc = await tok.encodeBatch(texts);
      return enc.map((e) => e.getLength() + extra);
    },
  };
}
