// What a run would rent and what it can cost at most, from the price table in ec2-prices.json.
// Memory needs are a rule-of-thumb estimate from the parameter count in the model name; later stages
// replace prices with live spot prices.
import prices from "./ec2-prices.json" with { type: "json" };
import type { FtuneConfig } from "../config/index.js";

export interface InstanceInfo {
  gpus: number;
  gpu: string | null;
  gpu_memory_gib: number;
  vcpus: number;
  memory_gib: number;
  on_demand: number;
}

export const PRICE_TABLE = prices as { source: string; region: string; retrieved: string; currency: string; instances: Record<string, InstanceInfo> };

/** Bytes per parameter of the frozen base weights for each quantization. */
const BYTES_PER_PARAM: Record<FtuneConfig["model"]["quantization"], number> = { none: 2, int8: 1.05, nf4: 0.56 };

/** "meta-llama/Llama-2-7b-hf" -> 7e9; "TinyLlama/TinyLlama-1.1B-Chat-v1.0" -> 1.1e9; undefined when the name says nothing. */
export function paramsFromName(model: string): number | undefined {
  const name = model.split("/").pop() ?? model;
  const m = /(?:^|[-_.])(\d+(?:\.\d+)?)\s*([bBmM])(?=$|[-_.])/.exec(name);
  if (!m) return undefined;
  return Number(m[1]) * (m[2]!.toLowerCase() === "b" ? 1e9 : 1e6);
}

/**
 * GPU memory a LoRA run needs, roughly: frozen weights at the quantized width, plus ~20% for activations
 * (with gradient checkpointing), LoRA weights and optimizer state, plus ~1.5 GiB of CUDA context.
 */
export function estimateGpuMemoryGib(cfg: FtuneConfig): number | undefined {
  const params = paramsFromName(cfg.model.base_model);
  if (params === undefined) return undefined;
  const weights = (params * BYTES_PER_PARAM[cfg.model.quantization]) / 2 ** 30;
  return Math.round((weights * 1.2 + 1.5) * 10) / 10;
}

export interface InstanceChoice {
  type: string;
  known: boolean;
  gpus?: number;
  gpu?: string | null;
  gpu_memory_gib?: number;
  on_demand_per_hour?: number;
  /** Whether the estimated need fits one GPU of this type; undefined when either side is unknown. */
  fits?: boolean;
}

export interface CostEstimate {
  provider: FtuneConfig["compute"]["provider"];
  market: "spot" | "on-demand" | "none";
  /** Price of the first choice, per hour for all nodes. */
  first_choice_per_hour?: number;
  /** The most a run can cost: every node alive until the TTL kills it, at the dearest candidate's on-demand price. */
  ttl_cap?: number;
  note: string;
}

export function instanceChoices(cfg: FtuneConfig): InstanceChoice[] {
  if (cfg.compute.provider !== "ec2") return [];
  const need = estimateGpuMemoryGib(cfg);
  return cfg.compute.instance_types.map((type) => {
    const info = PRICE_TABLE.instances[type];
    if (!info) return { type, known: false };
    return {
      type,
      known: true,
      gpus: info.gpus,
      gpu: info.gpu,
      gpu_memory_gib: info.gpu_memory_gib,
      on_demand_per_hour: info.on_demand,
      fits: need === undefined || info.gpus === 0 ? undefined : need <= info.gpu_memory_gib,
    };
  });
}

export function estimateCost(cfg: FtuneConfig, choices: InstanceChoice[]): CostEstimate {
  const { provider } = cfg.compute;
  if (provider !== "ec2") {
    return { provider, market: "none", note: `compute.provider ${provider}: runs on a machine you already have; ftune rents nothing` };
  }
  const priced = choices.filter((c) => c.on_demand_per_hour !== undefined);
  const market = cfg.compute.spot ? "spot" : "on-demand";
  const nodes = cfg.compute.nodes;
  if (priced.length === 0) {
    return { provider, market, note: `none of ${cfg.compute.instance_types.join(", ")} is in the price table (${PRICE_TABLE.region}, ${PRICE_TABLE.retrieved}); no estimate` };
  }
  const first = priced[0]!.on_demand_per_hour! * nodes;
  const dearest = Math.max(...priced.map((c) => c.on_demand_per_hour!)) * nodes;
  const capPrice = cfg.compute.spot && cfg.compute.max_price !== null && !cfg.compute.on_demand_fallback ? Math.min(cfg.compute.max_price * nodes, dearest) : dearest;
  const ttlCap = Math.round(capPrice * (cfg.compute.ttl_minutes / 60) * 100) / 100;
  const spotNote = cfg.compute.spot ? "spot usually costs well below on-demand; the live spot price is recorded at launch" : "on-demand";
  return {
    provider,
    market,
    first_choice_per_hour: Math.round(first * 10000) / 10000,
    ttl_cap: ttlCap,
    note: `estimate from on-demand list prices (${PRICE_TABLE.region}, ${PRICE_TABLE.retrieved}); ${spotNote}`,
  };
}
