"""The training bench's figures, its result document (``bench/results/train-<device>-<shape>.json``)
and the table it prints. Throughput counts real tokens only (the examples' tokens, never
padding); the naive run's padding fraction is reported beside it. Beside each run's measured
memory: the trainer's memory plan (``trainer.plan``) and its estimate for the step measured."""

from __future__ import annotations

import os
import platform
import resource
import statistics
from dataclasses import dataclass
from typing import Any

import torch

from bench.machine import cpu_name
from bench.training.model import matmul_params
from bench.training.probes import cpu_pressure
from bench.training.rows import length_stats
from bench.training.runs import LR, Comparison, Run
from contract.hyperparameters import SupervisedHyperparameters
from trainer.data import Example
from trainer.losses import micro_batches
from trainer.plan import Plan, estimate

PEAK_BF16_FLOPS = 989e12  # H100 SXM, dense bf16 (H200: the same)
# Goals (issue 10): the recipe at least as fast as the loss it replaced, twice the naive loop;
# its step memory at most half the previous loop's on the same batch.
GOALS = {"recipe/previous": 1.0, "recipe/naive": 2.0}
MEMORY_GOAL = 0.5
GiB = 1 << 30
MFU_NOTE = (
    "model FLOPs = 6 * params_matmul * real tokens + 12 * layers * hidden * sum(len^2) "
    "(PaLM convention, real tokens only); the 6N figure is the full fine-tuning one "
    "even though LoRA skips the frozen weights' gradients; peak {peak:g} TFLOP/s"
)


@dataclass(frozen=True)
class Before:
    """The machine's state when the bench started."""

    load_1m: float
    cpu_pressure: float | None

    @classmethod
    def now(cls) -> Before:
        return cls(os.getloadavg()[0], cpu_pressure())


def _best(cmp: Comparison, run: Run) -> list[float]:
    return [min(run.times[i]) for i in cmp.timed_ids]


def figures(cmp: Comparison, run: Run, peak_tflops: float) -> dict[str, Any]:
    """Throughput, step times, padding and memory of one run (``tokens_per_s`` None after an OOM)."""
    ids, device = cmp.timed_ids, cmp.device
    if not ids:  # --steps 0: the memory probe only
        return {
            "timed": False,
            "tokens_per_s": None,
            "checkpointing": run.checkpointing,
            "peak_memory_bytes": run.peak_mem,
            "peak_memory_kind": "process RSS peak during one step on the batch"
            if device.type == "cpu"
            else "torch.cuda.max_memory_allocated",
            "step_rss_increase_bytes": run.peak_mem - run.rss_before,
        }
    if run.oom or len(run.times) < len(ids):
        return {"oom": run.oom, "tokens_per_s": None, "checkpointing": run.checkpointing}
    best = _best(cmp, run)
    real_tokens = sum(len(ex.input_ids) for i in ids for ex in cmp.batches[i])
    total = sum(best)
    total_mean = sum(statistics.fmean(run.times[i]) for i in ids)
    positions = (
        real_tokens
        if run.packed
        else sum(len(cmp.batches[i]) * max(len(ex.input_ids) for ex in cmp.batches[i]) for i in ids)
    )
    fig: dict[str, Any] = {
        "checkpointing": run.checkpointing,
        "tokens_per_s": round(real_tokens / total, 1),
        "timed_s": round(total, 3),
        "tokens_per_s_mean_of_rounds": round(real_tokens / total_mean, 1),
        "step_s_median": round(statistics.median(best), 4),
        "step_s_min": round(min(best), 4),
        "step_s_max": round(max(best), 4),
        "real_tokens": real_tokens,
        "computed_positions": positions,
        "padding_fraction": round(1 - real_tokens / positions, 4),
        "peak_memory_bytes": run.peak_mem,
        "peak_memory_kind": "torch.cuda.max_memory_allocated over timed steps"
        if device.type == "cuda"
        else "process RSS peak during one step on the widest timed batch",
    }
    if device.type == "cpu":
        fig["step_rss_increase_bytes"] = run.peak_mem - run.rss_before
    if device.type == "cuda":
        cfg = cmp.model.config
        hidden = cfg.num_attention_heads * (cfg.hidden_size // cfg.num_attention_heads)
        attn = sum(12 * cfg.num_hidden_layers * hidden * len(ex.input_ids) ** 2 for i in ids for ex in cmp.batches[i])
        flops = 6 * matmul_params(cmp.model) * real_tokens + attn
        fig["model_tflops_per_s"] = round(flops / total / 1e12, 2)
        fig["mfu"] = round(flops / total / (peak_tflops * 1e12), 4)
    return fig


def model_facts(model: torch.nn.Module, hp: SupervisedHyperparameters) -> dict[str, Any]:
    cfg = model.config
    return {
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads,
        "intermediate_size": cfg.intermediate_size,
        "vocab_size": cfg.vocab_size,
        "dtype": str(cfg.dtype).removeprefix("torch."),
        "attn_implementation": cfg._attn_implementation,
        "params_total": sum(p.numel() for p in model.parameters()),
        "params_trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "params_matmul": matmul_params(model),
        "lora": {k: getattr(hp, k) for k in ("lora_rank", "lora_alpha", "lora_dropout", "target_modules")},
    }


def plan_facts(cmp: Comparison, plan: Plan, hp: SupervisedHyperparameters, forced: str) -> dict[str, Any]:
    """The memory plan the recipe ran under, and the plan's formula for the rows measured."""
    widest, recipe = cmp.widest(), cmp.get("recipe")
    checkpointing = plan.gradient_checkpointing if recipe is None else recipe.checkpointing
    row = max(sum(len(ex.input_ids) for ex in mb) for mb in micro_batches(widest, cmp.budget))
    out: dict[str, Any] = {
        "message": plan.message(),
        "device_memory_bytes": plan.device.memory,
        "tokens_per_micro_batch": plan.tokens_per_micro_batch,
        "gradient_checkpointing": plan.gradient_checkpointing,
        "checkpointing_from": forced,
        "estimated_peak_bytes": plan.estimated_peak,
        "widest_batch_largest_row_tokens": row,
        "estimate_for_widest_row_bytes": {
            "recipe": estimate(plan.shape, hp, plan.device, row, checkpointing),
            "previous_formula_without_full_logits": estimate(plan.shape, hp, plan.device, row, False),
        },
        "note": "the plan's formula models the chunked loss (three chunk-sized fp32 buffers); for the "
        "previous loop it leaves out the [tokens x vocabulary] fp32 logits that loop holds, so it is "
        "a lower bound there; the naive padded loop has no estimate",
    }
    return out


def document(
    *,
    command: str,
    shape: str,
    source: str,
    args: Any,
    before: Before,
    cmp: Comparison,
    hp: SupervisedHyperparameters,
    plan: dict[str, Any],
    examples: list[Example],
    check: dict[str, Any],
) -> dict[str, Any]:
    """The result; ``args`` gives batch_size, warmup, steps, rounds, seed, lengths, memory_gib,
    note and peak_tflops."""
    device = cmp.device
    res = {run.name: figures(cmp, run, args.peak_tflops) for run in cmp.runs}
    ratios: dict[str, Any] = {}
    for other, goal in (("previous", GOALS["recipe/previous"]), ("naive", GOALS["recipe/naive"])):
        a, b = cmp.get("recipe"), cmp.get(other)
        if a is None or b is None or not (res["recipe"]["tokens_per_s"] and res[other]["tokens_per_s"]):
            continue
        ratio = res["recipe"]["tokens_per_s"] / res[other]["tokens_per_s"]
        paired = [y / x for x, y in zip(_best(cmp, a), _best(cmp, b), strict=True)]
        ratios[f"recipe/{other}"] = {
            "tokens_per_s": round(ratio, 3),
            "paired_step_median": round(statistics.median(paired), 3),
            "goal": goal,
            "met": ratio >= goal,
        }
    memory: dict[str, Any] = {}
    if device.type == "cpu" and "recipe" in res:
        for other in ("previous", "naive"):
            if other in res and res[other].get("peak_memory_bytes"):
                rec, oth = res["recipe"], res[other]
                step = rec["step_rss_increase_bytes"] / max(1, oth["step_rss_increase_bytes"])
                memory[f"recipe/{other}"] = {
                    "step_rss_increase": round(step, 3),
                    "peak_rss": round(rec["peak_memory_bytes"] / oth["peak_memory_bytes"], 3),
                    "goal_step_increase": MEMORY_GOAL,
                    "met": step <= MEMORY_GOAL,
                }
    if args.memory_gib and "recipe" in res and res["recipe"].get("peak_memory_bytes"):
        peak = res["recipe"]["peak_memory_bytes"]  # the device's memory the plan was told of is the goal
        memory["recipe_peak_within"] = {
            "goal_bytes": int(args.memory_gib * GiB),
            "peak_bytes": peak,
            "met": peak <= args.memory_gib * GiB,
        }
    why = "not selected (--runs)" + (f": {args.note}" if args.note else "")
    not_run = {n: why for n in ("recipe", "previous", "naive") if n not in res}
    return {
        "bench": "train",
        "command": command,
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1m": {"start": round(before.load_1m, 2), "end": round(os.getloadavg()[0], 2)},
        "cpu_pressure_some_avg60": {"start": before.cpu_pressure, "end": cpu_pressure()},
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": __import__("transformers").__version__,
            "peft": __import__("peft").__version__,
        },
        "shape": shape,
        "model_source": source,
        "training_type": hp.training_type,
        "model": model_facts(cmp.model, hp),
        "batch_size": args.batch_size,
        "warmup_steps": args.warmup,
        "timed_steps": args.steps,
        "rounds": args.rounds,
        "seed": args.seed,
        "lengths": args.lengths,
        "max_tokens_per_micro_batch": cmp.budget,
        "plan": plan,
        "lr": LR,
        "order": "alternating per step, the runs' order rotated every step and round and reversed every "
        "other cycle; a batch's time is its fastest round",
        "example_lengths": length_stats(examples),
        "runs": res,
        "not_run": not_run,
        "ratios": ratios,
        "memory_ratios": memory,
        "mfu_note": MFU_NOTE.format(peak=args.peak_tflops) if device.type == "cuda" else "MFU is reported on CUDA only",
        "check": check,
        "note": args.note,
        "malloc_mmap_threshold": args.mmap_threshold,
        "peak_process_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def table(r: dict[str, Any]) -> str:
    def mem(n: int | None) -> str:
        return f"{n / 2**20:,.0f} MiB" if n else "-"

    plan = r["plan"]
    lines = [
        f"training throughput: {r['shape']} ({r['model_source']}, {r['training_type']}) on {r['device']} "
        f"({r['device_name']}), batch {r['batch_size']}, {r['timed_steps']} timed steps x {r['rounds']} rounds "
        f"(fastest counts) after {r['warmup_steps']} warmup, seed {r['seed']}",
        f"example lengths ({r['lengths']}): {r['example_lengths']}"
        + (f"; glibc mmap threshold {r['malloc_mmap_threshold']:,} bytes" if r["malloc_mmap_threshold"] else ""),
        f"{plan['message']} (checkpointing from {plan['checkpointing_from']}); estimate for the widest "
        f"batch's largest row ({plan['widest_batch_largest_row_tokens']:,} tokens): "
        f"{mem(plan['estimate_for_widest_row_bytes']['recipe'])}",
        f"{'run':<10}{'ckpt':>5}{'tokens/s':>12}{'median step':>13}{'padding':>9}{'peak mem':>12}{'step adds':>11}"
        f"{'MFU':>8}",
    ]
    for name, f in r["runs"].items():
        if f.get("timed") is False:
            lines.append(
                f"{name:<10}{'on' if f['checkpointing'] else 'off':>5}{'not timed (--steps 0)':>34}"
                f"{mem(f['peak_memory_bytes']):>12}{mem(f.get('step_rss_increase_bytes')):>11}"
            )
            continue
        if not f.get("tokens_per_s"):
            lines.append(f"{name:<10}  out of memory: {f.get('oom')}")
            continue
        mfu = f"{100 * f['mfu']:.1f}%" if "mfu" in f else "-"
        lines.append(
            f"{name:<10}{'on' if f['checkpointing'] else 'off':>5}{f['tokens_per_s']:>12,.0f}"
            f"{f['step_s_median']:>12.3f}s{100 * f['padding_fraction']:>8.1f}%{mem(f['peak_memory_bytes']):>12}"
            f"{mem(f.get('step_rss_increase_bytes')):>11}{mfu:>8}"
        )
    for name, why in r["not_run"].items():
        lines.append(f"{name:<10}  not run: {why}")
    for key, v in r["ratios"].items():
        lines.append(
            f"ratio {key} (tokens/s): {v['tokens_per_s']}x (goal >= {v['goal']}x: {'met' if v['met'] else 'NOT met'}); "
            f"median per-step ratio on the same batch: {v['paired_step_median']}x"
        )
    for key, v in r["memory_ratios"].items():
        if key == "recipe_peak_within":
            lines.append(
                f"recipe peak RSS {mem(v['peak_bytes'])} (goal <= {mem(v['goal_bytes'])}: "
                f"{'met' if v['met'] else 'NOT met'})"
            )
        else:
            lines.append(
                f"memory {key}: step RSS increase {v['step_rss_increase']}x, peak RSS {v['peak_rss']}x "
                f"(goal step increase <= {v['goal_step_increase']}x: {'met' if v['met'] else 'NOT met'})"
            )
    load = r["cpu_pressure_some_avg60"]
    if load["start"] is not None:
        lines.append(
            f"CPU pressure (PSI some avg60 %, other load plus the bench itself): "
            f"start {load['start']}, end {load['end']}"
        )
    c = r["check"]
    if c.get("ok") is None:
        lines.append(f"loss check: not run ({c.get('error')})")
    else:
        ref = c["reference"]
        for name, v in c["against_reference"].items():
            lines.append(
                f"loss check: {name} {c['loss'][name]:.6f} vs {ref} {c['loss'][ref]:.6f} "
                f"(|diff| {v['abs_diff']:.2e}, gradients max rel diff {v['grad_max_rel_diff']:.2e}) "
                f"-> {'OK' if v['ok'] else 'MISMATCH'}"
            )
    return "\n".join(lines)
