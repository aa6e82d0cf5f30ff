// Prompts with the seed's semantics (alpaca-lora's Prompter): prompt_input when the row's input is a non-empty
// string (Python's truthiness: " " counts as non-empty), prompt_no_input otherwise, placeholders filled the way
// str.format fills them ({name}; {{ and }} are literal braces). The response follows the prompt.
import type { PromptTemplate } from "../config/index.js";

export function fill(template: string, fields: Readonly<Record<string, string>>): string {
  return template.replace(/\{\{|\}\}|\{([^{}]*)\}/g, (m, name: string | undefined) => {
    if (m === "{{") return "{";
    if (m === "}}") return "}";
    return fields[name!] ?? "";
  });
}

export function renderPrompt(tpl: PromptTemplate, fields: Readonly<Record<string, string>>): string {
  return fill(fields.input ? tpl.prompt_input : tpl.prompt_no_input, fields);
}
