// Metrics from an HF Trainer `trainer_state.json` (log_history), whatever transformers version or trainer wrote it:
// train entries (loss, grad_norm, learning_rate, epoch, step), eval entries (eval_*), the final summary entry
// (train_runtime, train_samples_per_second, train_loss, total_flos) and the extra keys some trainers log (axolotl's
// memory/* and tokens/*). Missing keys are simply absent; values that are not finite numbers (NaN/Infinity, bare
// as Python writes them or as strings, nulls) are skipped rather than trusted.

export interface TrainPoint {
  step: number;
  loss: number;
  epoch?: number;
  learning_rate?: number;
  grad_norm?: number;
}

export interface EvalPoint {
  step: number;
  eval_loss: number;
  epoch?: number;
  /** Every other eval_* number of that entry (eval_runtime, eval_mean_token_accuracy, ...). */
  extra: Record<string, number>;
}

export interface TrainerMetrics {
  train: TrainPoint[];
  eval: EvalPoint[];
  /** The last train loss logged. */
  finalTrainLoss?: number;
  bestEvalLoss?: number;
  bestEvalStep?: number;
  /** The trainer's own summary entry. */
  trainRuntimeS?: number;
  trainSamplesPerSecond?: number;
  trainLoss?: number;
  totalFlos?: number;
  /** Tokens per second when the trainer logs it (train_tokens_per_second, or axolotl's tokens/*). */
  tokensPerSecond?: number;
  /** Peak GPU memory in GiB when the trainer logs it (axolotl's memory/max_*). */
  peakMemoryGib?: number;
  globalStep?: number;
  maxSteps?: number;
  numInputTokensSeen?: number;
  /** ftune's dry-run trainer wrote it. */
  dryRun: boolean;
}

function num(v: unknown): number | undefined {
  const n = typeof v === "number" ? v : typeof v === "string" && v.trim() !== "" ? Number(v) : Number.NaN;
  return Number.isFinite(n) ? n : undefined;
}

export class TrainerStateError extends Error {}

export function parseTrainerState(text: string, source = "trainer_state.json"): TrainerMetrics {
  let doc: unknown;
  try {
    // Python's json (which HF Trainer writes with) emits bare NaN and Infinity for a diverged loss or grad_norm.
    doc = JSON.parse(text.replace(/"(?:[^"\\]|\\.)*"|(-?Infinity|NaN)/g, (m, bare: string | undefined) => (bare ? "null" : m)));
  } catch (e) {
    throw new TrainerStateError(`${source}: not JSON (${(e as Error).message})`);
  }
  const state = doc as { log_history?: unknown; global_step?: unknown; max_steps?: unknown; num_input_tokens_seen?: unknown; total_flos?: unknown; ftune_dry_run?: unknown };
  if (typeof doc !== "object" || doc === null || !Array.isArray(state.log_history)) {
    throw new TrainerStateError(`${source}: no log_history list (is this an HF Trainer trainer_state.json?)`);
  }
  const m: TrainerMetrics = { train: [], eval: [], dryRun: state.ftune_dry_run === true };
  let peakMemory: number | undefined;
  let tokensPerSecond: number | undefined;
  for (const raw of state.log_history as unknown[]) {
    if (typeof raw !== "object" || raw === null) continue;
    const e = raw as Record<string, unknown>;
    const step = num(e.step);
    if (step === undefined) continue;
    const loss = num(e.loss);
    if (loss !== undefined) {
      const p: TrainPoint = { step, loss };
      for (const k of ["epoch", "learning_rate", "grad_norm"] as const) {
        const v = num(e[k]);
        if (v !== undefined) p[k] = v;
      }
      m.train.push(p);
    }
    const evalLoss = num(e.eval_loss);
    if (evalLoss !== undefined) {
      const extra: Record<string, number> = {};
      for (const [k, v] of Object.entries(e)) {
        const n = num(v);
        if (k.startsWith("eval_") && k !== "eval_loss" && n !== undefined) extra[k] = n;
      }
      m.eval.push({ step, eval_loss: evalLoss, ...(num(e.epoch) !== undefined ? { epoch: num(e.epoch) } : {}), extra });
    }
    if (num(e.train_runtime) !== undefined) {
      m.trainRuntimeS = num(e.train_runtime);
      m.trainSamplesPerSecond = num(e.train_samples_per_second);
      m.trainLoss = num(e.train_loss);
      m.totalFlos = num(e.total_flos);
      tokensPerSecond = num(e.train_tokens_per_second) ?? tokensPerSecond;
    }
    for (const [k, v] of Object.entries(e)) {
      const n = num(v);
      if (n === undefined) continue;
      // axolotl logs memory/max_mem_active, memory/max_mem_allocated, memory/device_mem_reserved (GiB).
      if (k.startsWith("memory/max_") || k === "memory/device_mem_reserved") peakMemory = Math.max(peakMemory ?? 0, n);
      if (k.startsWith("tokens/") && /per_s(ec(ond)?)?|_per_second/.test(k)) tokensPerSecond = n;
    }
  }
  m.train.sort((a, b) => a.step - b.step);
  m.eval.sort((a, b) => a.step - b.step);
  m.finalTrainLoss = m.train.at(-1)?.loss;
  for (const p of m.eval) {
    if (m.bestEvalLoss === undefined || p.eval_loss < m.bestEvalLoss) {
      m.bestEvalLoss = p.eval_loss;
      m.bestEvalStep = p.step;
    }
  }
  m.tokensPerSecond = tokensPerSecond;
  m.peakMemoryGib = peakMemory;
  m.globalStep = num(state.global_step);
  m.maxSteps = num(state.max_steps);
  m.numInputTokensSeen = num(state.num_input_tokens_seen) || undefined;
  m.totalFlos ??= num(state.total_flos) || undefined;
  return m;
}
