// Which files of a model repo a trainer needs: config, tokenizer, weights in one format (safetensors when the repo
// has them; the duplicate PyTorch .bin copies are skipped), custom modelling code; not READMEs, images or the
// ONNX/TF/Flax/GGUF/original-checkpoint copies many repos also carry. allow/ignore globs adjust the choice.
import { minimatch } from "minimatch";

const ALWAYS_SKIP = [
  "**/.gitattributes", ".gitattributes", "**/*.md", "**/*.png", "**/*.jpg", "**/*.jpeg", "**/*.gif", "**/*.pdf",
  "**/*.h5", "**/*.msgpack", "**/*.ot", "**/*.onnx", "**/*.onnx_data", "**/*.tflite", "**/*.gguf", "**/*.ggml",
  "**/*.mlmodel", "**/*.mlpackage/**", "onnx/**", "original/**", "coreml/**", "openvino/**",
];
const WANTED = ["*.json", "*.safetensors", "*.bin", "*.pt", "*.pth", "*.model", "*.tiktoken", "*.txt", "*.py", "*.jinja"];
const TORCH_WEIGHTS = ["*.bin", "*.pt", "*.pth", "pytorch_model.bin.index.json"];

const match = (path: string, globs: readonly string[]): boolean => globs.some((g) => minimatch(path, g, { dot: true, matchBase: !g.includes("/") }));

export interface Selection<T extends { path: string }> {
  selected: T[];
  skipped: T[];
}

export function selectModelFiles<T extends { path: string }>(files: readonly T[], allow?: readonly string[] | null, ignore?: readonly string[] | null): Selection<T> {
  const hasSafetensors = files.some((f) => f.path.endsWith(".safetensors"));
  const selected: T[] = [];
  const skipped: T[] = [];
  for (const f of files) {
    let keep: boolean;
    if (allow && allow.length > 0) keep = match(f.path, allow);
    else keep = match(f.path, WANTED) && !match(f.path, ALWAYS_SKIP) && !(hasSafetensors && match(f.path, TORCH_WEIGHTS));
    if (keep && ignore && ignore.length > 0 && match(f.path, ignore)) keep = false;
    (keep ? selected : skipped).push(f);
  }
  return { selected, skipped };
}
