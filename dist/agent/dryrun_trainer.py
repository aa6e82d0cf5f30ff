#!/usr/bin/env python3
"""ftune's dry-run trainer: no GPU, no model, no training. It writes exactly what a real trainer leaves behind (the
HF Trainer output layout) from a synthetic, clearly labelled loss curve, so the whole pipeline — staging, progress,
checkpoint sync, spot recovery, the report — can be exercised for cents. Standard library only.

Contract (the same as every ftune trainer backend):
  FTUNE_CONFIG      the resolved ftune config (JSON)
  FTUNE_DATA_DIR    prepared data (train.jsonl, eval.jsonl); counted to size the run when training.max_steps is unset
  FTUNE_OUTPUT_DIR  where checkpoint-<step>/ and the final adapter go
Also: FTUNE_DRYRUN_STEP_SECONDS (default 0.1), FTUNE_CHECKPOINT_TRIGGER (a file: when it appears, checkpoint at once
and delete it — what a spot interruption notice asks for), FTUNE_NODE_RANK (a node other than 0 of a multi-node run
only waits until it is stopped: outputs are node 0's).

Output: checkpoint-<step>/{trainer_state.json, adapter_config.json, adapter_model.safetensors} (each written to a
temp folder and renamed, so a checkpoint directory is always complete), and the same three files plus a summary in
FTUNE_OUTPUT_DIR at the end. It resumes from the newest complete checkpoint. Everything is marked "ftune_dry_run".
"""
import json
import math
import os
import random
import shutil
import signal
import struct
import sys
import time

DRY = "dry run: no model was trained"


def env_path(name, required=True):
    v = os.environ.get(name)
    if required and not v:
        sys.stderr.write("ftune dry-run trainer: %s is not set\n" % name)
        sys.exit(2)
    return v


def count_lines(path):
    try:
        with open(path, "rb") as f:
            return sum(1 for line in f if line.strip())
    except OSError:
        return 0


def safetensors(tensors):
    """A valid safetensors file: an 8-byte little-endian header length, a JSON header, then the raw F32 data."""
    header, blobs, offset = {"__metadata__": {"format": "pt", "ftune_dry_run": "true"}}, [], 0
    for name, (shape, values) in sorted(tensors.items()):
        data = struct.pack("<%df" % len(values), *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def adapter_files(cfg, step):
    lora = cfg["lora"]
    r, hidden, layers = int(lora["rank"]), 64, 2
    rng = random.Random(step)
    tensors = {}
    for layer in range(layers):
        for module in lora["target_modules"]:
            base = "base_model.model.model.layers.%d.self_attn.%s" % (layer, module)
            tensors[base + ".lora_A.weight"] = ([r, hidden], [rng.uniform(-0.01, 0.01) for _ in range(r * hidden)])
            tensors[base + ".lora_B.weight"] = ([hidden, r], [0.0] * (hidden * r))
    config = {
        "base_model_name_or_path": cfg["model"]["base_model"],
        "bias": lora["bias"],
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "lora_alpha": lora["alpha"],
        "lora_dropout": lora["dropout"],
        "modules_to_save": None,
        "peft_type": "LORA",
        "r": r,
        "target_modules": lora["target_modules"],
        "task_type": lora["task_type"],
        "ftune_dry_run": True,
    }
    return config, safetensors(tensors)


def write_set(target, state, cfg, step):
    """Writes trainer_state + adapter into a temp folder, then renames it: the folder is complete or absent."""
    tmp = target + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    config, weights = adapter_files(cfg, step)
    with open(os.path.join(tmp, "trainer_state.json"), "w") as f:
        json.dump(state, f, indent=2)
    with open(os.path.join(tmp, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(tmp, "adapter_model.safetensors"), "wb") as f:
        f.write(weights)
    shutil.rmtree(target, ignore_errors=True)
    os.rename(tmp, target)


def newest_checkpoint(out):
    best = None
    for name in os.listdir(out) if os.path.isdir(out) else []:
        if name.startswith("checkpoint-") and name[11:].isdigit() and os.path.isfile(os.path.join(out, name, "trainer_state.json")):
            step = int(name[11:])
            if best is None or step > best[0]:
                best = (step, os.path.join(out, name))
    return best


def main():
    rank = int(os.environ.get("FTUNE_NODE_RANK", "0") or 0)
    if rank != 0:
        # Another node of a multi-node run: in a real run it computes its share of every step; the outputs are
        # rank 0's. It waits until the run is over (ftune stops it then), as torchrun's other nodes would.
        print("%s; node %d of %s waiting: node 0 writes the outputs" % (DRY, rank, os.environ.get("FTUNE_NUM_NODES", "?")), flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        while True:
            time.sleep(3600)
    with open(env_path("FTUNE_CONFIG")) as f:
        cfg = json.load(f)
    data_dir = env_path("FTUNE_DATA_DIR", required=False) or ""
    out = env_path("FTUNE_OUTPUT_DIR")
    os.makedirs(out, exist_ok=True)
    step_seconds = float(os.environ.get("FTUNE_DRYRUN_STEP_SECONDS", "0.1"))
    trigger = os.environ.get("FTUNE_CHECKPOINT_TRIGGER")
    t = cfg["training"]
    micro, macro = int(t["micro_batch_size"]), int(t["macro_batch_size"])
    rows = count_lines(os.path.join(data_dir, "train.jsonl")) if data_dir else 0
    steps_per_epoch = max(1, math.ceil(rows / macro)) if rows else 10
    max_steps = int(t.get("max_steps") or math.ceil(steps_per_epoch * float(t["num_epochs"])))
    logging_steps, eval_steps = int(t["logging_steps"]), int(t["eval_steps"])
    save_steps = int(t.get("save_steps") or eval_steps)
    lr, warmup = float(t["learning_rate"]), int(t["warmup_steps"])
    rng = random.Random(int(t.get("seed", 42)))

    state = {"best_metric": None, "best_model_checkpoint": None, "epoch": 0.0, "eval_steps": eval_steps, "global_step": 0,
             "is_hyper_param_search": False, "is_local_process_zero": True, "is_world_process_zero": True, "log_history": [],
             "logging_steps": logging_steps, "max_steps": max_steps, "num_train_epochs": float(t["num_epochs"]),
             "save_steps": save_steps, "train_batch_size": micro, "total_flos": 0, "trial_name": None, "trial_params": None,
             "ftune_dry_run": True}
    start = 0
    resumed = newest_checkpoint(out)
    if resumed:
        with open(os.path.join(resumed[1], "trainer_state.json")) as f:
            state = json.load(f)
        start = resumed[0]
        print("%s; Resuming training from checkpoint %s (step %d of %d)" % (DRY, resumed[1], start, max_steps), flush=True)
    else:
        print("%s; ***** Running training ***** Num examples = %d, Total optimization steps = %d" % (DRY, rows, max_steps), flush=True)

    def loss_at(step, scale=1.0):
        # A plausible curve: fast early drop, slow tail, a little noise that is the same on every run.
        noise = random.Random(step * 7919 + int(scale * 100)).uniform(-0.03, 0.03)
        return round(scale * (0.9 + 1.6 * math.exp(-step / max(1.0, max_steps / 4))) + noise, 4)

    began = time.time()
    losses = []
    for step in range(start + 1, max_steps + 1):
        time.sleep(step_seconds)
        epoch = round(step / steps_per_epoch, 4)
        rate = lr * min(1.0, step / max(1, warmup)) * (0.5 * (1 + math.cos(math.pi * min(1.0, step / max_steps))))
        losses.append(loss_at(step))
        state.update(global_step=step, epoch=epoch)
        if step % logging_steps == 0 or step == max_steps:
            entry = {"epoch": epoch, "grad_norm": round(0.3 + rng.random() * 0.4, 4), "learning_rate": rate, "loss": loss_at(step), "step": step}
            state["log_history"].append(entry)
            print("{'loss': %s, 'grad_norm': %s, 'learning_rate': %s, 'epoch': %s}" % (entry["loss"], entry["grad_norm"], rate, epoch), flush=True)
        if step % eval_steps == 0 or step == max_steps:
            ev = {"epoch": epoch, "eval_loss": loss_at(step, 1.05), "eval_runtime": 1.0, "eval_samples_per_second": 100.0, "eval_steps_per_second": 12.5, "step": step}
            state["log_history"].append(ev)
            if state["best_metric"] is None or ev["eval_loss"] < state["best_metric"]:
                state["best_metric"], state["best_model_checkpoint"] = ev["eval_loss"], os.path.join(out, "checkpoint-%d" % step)
            print("{'eval_loss': %s, 'epoch': %s}" % (ev["eval_loss"], epoch), flush=True)
        print("%d/%d [%s]" % (step, max_steps, DRY), flush=True)
        triggered = bool(trigger) and os.path.exists(trigger)
        if step % save_steps == 0 or triggered or step == max_steps:
            write_set(os.path.join(out, "checkpoint-%d" % step), state, cfg, step)
            print("Saving model checkpoint to %s%s" % (os.path.join(out, "checkpoint-%d" % step), " (requested)" if triggered else ""), flush=True)
            if triggered:
                os.remove(trigger)

    runtime = round(time.time() - began, 3)
    state["log_history"].append({"epoch": state["epoch"], "step": max_steps, "total_flos": 0, "train_loss": round(sum(losses) / max(1, len(losses)), 4) if losses else None,
                                 "train_runtime": runtime, "train_samples_per_second": round(max_steps * macro / max(runtime, 1e-6), 3),
                                 "train_steps_per_second": round(max_steps / max(runtime, 1e-6), 3)})
    write_set(os.path.join(out, "final"), state, cfg, max_steps)
    for name in ("trainer_state.json", "adapter_config.json", "adapter_model.safetensors"):
        os.replace(os.path.join(out, "final", name), os.path.join(out, name))
    os.rmdir(os.path.join(out, "final"))
    print("%s; training finished: %d steps in %.1fs" % (DRY, max_steps, runtime), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
