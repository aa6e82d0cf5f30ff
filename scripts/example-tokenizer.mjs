// Writes configs/examples/data/tokenizer.json: a small word-level tokenizer in the HF tokenizers format, built from
// the example dataset and the Alpaca prompt template, so the dry-run example prepares its data with no network and
// no third-party files. Token counts from it are word counts, not a real model's: good enough for a GPU-free run of
// the pipeline, which is all the example is for. Rerun after editing the example data: `node scripts/example-tokenizer.mjs`.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const data = join(root, "configs", "examples", "data");
const texts = readFileSync(join(data, "tiny-instructions.jsonl"), "utf8")
  .split("\n")
  .filter(Boolean)
  .flatMap((l) => Object.values(JSON.parse(l)).map(String));
const template = parse(readFileSync(join(root, "configs", "base.yaml"), "utf8")).dataset.prompt_template;
texts.push(template.prompt_input, template.prompt_no_input);

// The Whitespace pre-tokenizer splits on \w+|[^\w\s]+; the Lowercase normalizer runs first.
const words = new Set(texts.flatMap((t) => t.toLowerCase().match(/\w+|[^\w\s]+/gu) ?? []));
const specials = ["<unk>", "<s>", "</s>"];
const vocab = Object.fromEntries([...specials, ...[...words].sort()].map((w, i) => [w, i]));
const tokenizer = {
  version: "1.0",
  truncation: null,
  padding: null,
  added_tokens: specials.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
  normalizer: { type: "Lowercase" },
  pre_tokenizer: { type: "Whitespace" },
  post_processor: {
    type: "TemplateProcessing",
    single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
    pair: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { Sequence: { id: "B", type_id: 1 } }],
    special_tokens: { "<s>": { id: "<s>", ids: [1], tokens: ["<s>"] } },
  },
  decoder: null,
  model: { type: "WordLevel", vocab, unk_token: "<unk>" },
};
writeFileSync(join(data, "tokenizer.json"), `${JSON.stringify(tokenizer, null, 1)}\n`);
console.log(`wrote ${join(data, "tokenizer.json")}: ${Object.keys(vocab).length} tokens`);
