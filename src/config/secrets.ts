// Refuses credentials written into a config: configs live in git and end up in PR comments and logs.
// The message names the kind of secret and the *_env field to use, and never repeats the secret itself.
import type { Diagnostic } from "./diagnostics.js";
import type { Locate } from "./schema-errors.js";
import { isPlainObject, pathKey, type PathSeg } from "./paths.js";

interface SecretShape {
  kind: string;
  re: RegExp;
  fix: string;
  /** Shapes that ordinary values also take (a git sha is 40 hex digits) only count where a secret would go. */
  onlyWhere?: (segs: readonly PathSeg[]) => boolean;
}

const SECRET_KEY_NAME = /key|token|secret|passw/i;
const secretish = (segs: readonly PathSeg[]): boolean =>
  segs.includes("wandb") || SECRET_KEY_NAME.test(String(segs[segs.length - 1] ?? ""));

const SHAPES: SecretShape[] = [
  { kind: "a HuggingFace token", re: /\bhf_[A-Za-z0-9]{30,}\b/, fix: "put it in the HF_TOKEN secret and name the variable in model.hf_token_env" },
  { kind: "an AWS access key id", re: /\b(AKIA|ASIA)[0-9A-Z]{16}\b/, fix: "use aws-actions/configure-aws-credentials (OIDC) or the AWS_* environment variables" },
  { kind: "an AWS secret access key", re: /^[A-Za-z0-9/+=]{40}$/, fix: "use aws-actions/configure-aws-credentials (OIDC) or the AWS_* environment variables", onlyWhere: secretish },
  { kind: "a GitHub token", re: /\b(gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})\b/, fix: "pass it as the action's github-token input" },
  { kind: "a private key", re: /-----BEGIN [A-Z ]*PRIVATE KEY-----/, fix: "store it in a secret and name the variable in compute.ssh.private_key_env" },
  { kind: "a Weights & Biases API key", re: /^[0-9a-f]{40}$/, fix: "put it in the WANDB_API_KEY secret and name the variable in wandb.api_key_env", onlyWhere: secretish },
];

/** AWS secret keys are 40 base64 characters; require a mix so ordinary words and paths don't match. */
function plausibleAwsSecret(s: string): boolean {
  return /[a-z]/.test(s) && /[A-Z]/.test(s) && /[0-9]/.test(s) && !/^[0-9a-f]+$/.test(s);
}

export function redact(s: string): string {
  return s.length <= 8 ? "****" : `${s.slice(0, 4)}…(${s.length} chars)`;
}

export function findLiteralSecrets(data: unknown, locate: Locate): Diagnostic[] {
  const out: Diagnostic[] = [];
  const visit = (v: unknown, segs: PathSeg[]): void => {
    if (typeof v === "string") {
      for (const shape of SHAPES) {
        const m = shape.re.exec(v);
        if (!m || (shape.onlyWhere && !shape.onlyWhere(segs))) continue;
        if (shape.kind === "an AWS secret access key" && !plausibleAwsSecret(m[0])) continue;
        out.push({
          severity: "error",
          pos: locate(segs, "value"),
          key: pathKey(segs),
          message: `looks like ${shape.kind} (${redact(m[0])}) written into the config; never commit secrets: ${shape.fix}, then remove it here and rotate it`,
        });
        return;
      }
    } else if (Array.isArray(v)) {
      v.forEach((x, i) => visit(x, [...segs, i]));
    } else if (isPlainObject(v)) {
      for (const [k, x] of Object.entries(v)) visit(x, [...segs, k]);
    }
  };
  visit(data, []);
  return out;
}
