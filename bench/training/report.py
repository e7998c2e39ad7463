"""The training bench's figures, its result document (``bench/results/train-<device>-<shape>.json``)
and the table it prints. Throughput counts real tokens only (the examples' tokens, never
padding); the baseline's padding fraction is reported beside it."""

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

PEAK_BF16_FLOPS = 989e12  # H100 SXM, dense bf16 (H200: the same)
TARGET_RATIO = 1.5
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
    if run.oom or len(run.times) < len(ids):
        return {"oom": run.oom, "tokens_per_s": None}
    best = _best(cmp, run)
    real_tokens = sum(len(ex.input_ids) for i in ids for ex in cmp.batches[i])
    total = sum(best)
    total_mean = sum(statistics.fmean(run.times[i]) for i in ids)
    positions = (
        real_tokens
        if run is cmp.recipe
        else sum(len(cmp.batches[i]) * max(len(ex.input_ids) for ex in cmp.batches[i]) for i in ids)
    )
    fig: dict[str, Any] = {
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


def document(
    *,
    command: str,
    shape: str,
    args: Any,
    before: Before,
    cmp: Comparison,
    hp: SupervisedHyperparameters,
    examples: list[Example],
    check: dict[str, Any],
) -> dict[str, Any]:
    """The result; ``args`` gives batch_size, warmup, steps, rounds, seed and peak_tflops."""
    device = cmp.device
    res_a, res_b = figures(cmp, cmp.recipe, args.peak_tflops), figures(cmp, cmp.baseline, args.peak_tflops)
    both = bool(res_a["tokens_per_s"] and res_b["tokens_per_s"])
    ratio = res_a["tokens_per_s"] / res_b["tokens_per_s"] if both else None
    paired = [b / a for a, b in zip(_best(cmp, cmp.recipe), _best(cmp, cmp.baseline), strict=True)] if both else []
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
        "model": model_facts(cmp.model, hp),
        "batch_size": args.batch_size,
        "warmup_steps": args.warmup,
        "timed_steps": args.steps,
        "rounds": args.rounds,
        "seed": args.seed,
        "recipe_max_tokens_per_micro_batch": cmp.budget,
        "lr": LR,
        "order": "alternating per step, ABBA, flipped every round; a batch's time is its fastest round",
        "example_lengths": length_stats(examples),
        "recipe": res_a,
        "baseline": res_b,
        "ratio_recipe_over_baseline": round(ratio, 3) if ratio else None,
        "paired_step_ratio_median": round(statistics.median(paired), 3) if paired else None,
        "target_ratio": TARGET_RATIO,
        "meets_target": (ratio >= TARGET_RATIO) if ratio else None,
        "mfu_note": MFU_NOTE.format(peak=args.peak_tflops) if device.type == "cuda" else "MFU is reported on CUDA only",
        "check": check,
        "peak_process_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def table(r: dict[str, Any]) -> str:
    def mem(n: int | None) -> str:
        return f"{n / 2**20:,.0f} MiB" if n else "-"

    lines = [
        f"training throughput: {r['shape']} on {r['device']} ({r['device_name']}), batch {r['batch_size']}, "
        f"{r['timed_steps']} timed steps x {r['rounds']} rounds (fastest counts) after "
        f"{r['warmup_steps']} warmup, seed {r['seed']}",
        f"example lengths: {r['example_lengths']}",
        f"{'run':<10}{'tokens/s':>12}{'median step':>13}{'padding':>9}{'peak mem':>12}{'MFU':>8}",
    ]
    for name in ("recipe", "baseline"):
        f = r[name]
        if not f.get("tokens_per_s"):
            lines.append(f"{name:<10}  out of memory: {f.get('oom')}")
            continue
        mfu = f"{100 * f['mfu']:.1f}%" if "mfu" in f else "-"
        lines.append(
            f"{name:<10}{f['tokens_per_s']:>12,.0f}{f['step_s_median']:>12.3f}s"
            f"{100 * f['padding_fraction']:>8.1f}%{mem(f['peak_memory_bytes']):>12}{mfu:>8}"
        )
    ratio = r["ratio_recipe_over_baseline"]
    lines.append(
        f"ratio recipe/baseline (tokens/s): {ratio}x (target >= {r['target_ratio']}x: "
        f"{'met' if r['meets_target'] else 'NOT met'}); median per-step ratio on the same batch: "
        f"{r['paired_step_ratio_median']}x"
        if ratio
        else "ratio: n/a"
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
        lines.append(
            f"loss check: recipe {c['loss_recipe']:.6f} vs baseline {c['loss_baseline']:.6f} "
            f"(|diff| {c['abs_diff']:.2e}, adapter grads max rel diff {c['grad_max_rel_diff']:.2e}) "
            f"-> {'OK' if c['ok'] else 'MISMATCH'}"
        )
    return "\n".join(lines)
