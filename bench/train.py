"""Training throughput: hone's SFT step against the usual padded transformers + peft loop.

    python -m bench.train [--device cpu|cuda] [--shape tiny|0.5b|1.5b|8b] [--steps N]
                          [--batch-size B] [--seed S] [--warmup W] [--rounds R] [--max-tokens T]

Both runs happen in one process, on the same LoRA model, the same examples and the same
batches, timed step by step in alternation (which run goes first flips every step), each timed
batch ``--rounds`` times with its fastest round counted (other load on a shared CPU only ever
adds time):

(a) recipe:   ``trainer.steps.sft_loss(..., backward=True)`` (packed, padding-free rows with
              position_ids restarting per example) + grad clipping + AdamW, exactly the SFT
              recipe's step (``trainer/sft.py``) minus the LR schedule (constant LR in both).
(b) baseline: ``trainer.data.pad()`` batch (padded to the longest example, attention_mask,
              labels) -> ``model(**batch).loss.backward()`` + grad clipping + AdamW.

The model is ``trainer.model.load_trainable`` (LoRA r=16, alpha 32, dropout 0.05, all-linear,
the recipe's defaults). The frozen base is shared: each run has its own copy of the adapter
weights (identical at the start) and its own AdamW state, swapped in (a pointer swap, untimed)
when the runs alternate. That keeps one base in memory (two 8B bases would hold 32 GB of an
80 GB GPU before any activation).

Throughput counts real tokens only: the tokens of the examples, never padding; the baseline's
padding fraction is reported beside it. Data: chat examples (system prompt, user question,
assistant answer) with lengths drawn from a log-normal (median 150 tokens) clipped to 20..1000, generated
from the seed and rendered with ``ChatRenderer`` (loss on assistant tokens only).

``--shape tiny`` is hone's tiny test model (``build_tiny_model``). The other shapes are
random-init Llama models of that shape built in memory (no downloads) and handed to
``load_trainable`` in place of ``from_pretrained``; they keep their real vocabulary size (so
the LM head and loss cost what they cost) and take their text from the tiny tokenizer, whose
ids (< 3000) are all valid there, so nothing is clamped.

After the timed steps, the first timed batch goes through both paths with the same (trained)
adapter weights in eval mode (no dropout): the mean cross-entropy and the adapter gradients
must agree, or the figures compare different computations.
Results are printed and written to ``bench/results/train-<device>-<shape>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import random
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import torch

from bench.machine import cpu_name
from service.catalog.tiny import CORPUS_PATH, build_tiny_model
from trainer import data
from trainer.data import ChatRenderer, Example
from trainer.model import defaults, load_tokenizer, load_trainable, micro_batch_budget
from trainer.steps import sft_loss

RESULTS = Path(__file__).resolve().parent / "results"
LR = 2e-4  # the recipe's LoRA base learning rate, constant here
PEAK_BF16_FLOPS = 989e12  # H100 SXM, dense bf16 (H200: the same)
TARGET_RATIO = 1.5

# Random-init Llama shapes. 0.5b and 1.5b follow Qwen2.5 (tied embeddings), 8b Llama 3.1.
SHAPES: dict[str, dict[str, Any]] = {
    "0.5b": dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                 intermediate_size=4864, vocab_size=151936, tie_word_embeddings=True, rope_theta=1e6),
    "1.5b": dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
                 intermediate_size=8960, vocab_size=151936, tie_word_embeddings=True, rope_theta=1e6),
    "8b": dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
               intermediate_size=14336, vocab_size=128256, tie_word_embeddings=False, rope_theta=5e5),
}

# ---------------------------------------------------------------------------------------------
# Data


SYSTEM_PROMPTS = [
    "Be brief.",
    "You are a helpful assistant.",
    "You are a friendly assistant. Answer clearly and check your facts.",
    "You are a support agent for a travel company. Answer the customer's question politely, "
    "give concrete times and places where you can, and say so when you do not know.",
    "You are a careful tutor. Explain your reasoning step by step, use short sentences and "
    "plain words, give one small example, and end with a one-line summary of the answer. "
    "Never invent numbers; if the question is unclear, say what you assumed.",
]
QUESTION_STEMS = ["Why?", "Can you explain this:", "What happened here:", "Tell me more about this:",
                  "Summarise the following and add some detail:", "Is this true?"]


def _corpus_words() -> list[str]:
    return CORPUS_PATH.read_text(encoding="utf-8").split()


def make_rows(tok: Any, n: int, seed: int, min_len: int = 20, max_len: int = 1000) -> list[dict[str, Any]]:
    """``n`` chat rows whose rendered length follows a clipped log-normal (median 150 tokens),
    a pure function of ``seed``. Answers are runs of corpus text cut to the drawn length."""
    rng = random.Random(seed)
    words = _corpus_words()
    lines = CORPUS_PATH.read_text(encoding="utf-8").splitlines()
    cost: dict[str, int] = {}

    def tokens(piece: str) -> int:  # byte-level BPE pre-splits on spaces: counts add up per word
        if piece not in cost:
            cost[piece] = len(tok(piece, add_special_tokens=False)["input_ids"])
        return cost[piece]

    rows = []
    for _ in range(n):
        target = min(max_len, max(min_len, round(rng.lognormvariate(math.log(150), 0.9))))
        small = target < 80
        system = rng.choice(SYSTEM_PROMPTS[:2] if small else SYSTEM_PROMPTS)
        stem = rng.choice(QUESTION_STEMS[:1] if small else QUESTION_STEMS)
        question = stem if small else f"{stem} {rng.choice(lines)}"
        msgs = [{"role": "system", "content": system}, {"role": "user", "content": question}]
        prompt = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        prefix = len(tok(prompt, add_special_tokens=False)["input_ids"])
        budget = max(1, target - prefix - 2)  # "<|im_end|>" and "\n" close the turn
        start = rng.randrange(len(words))
        answer: list[str] = []
        used = 0
        while used < budget or not answer:
            w = words[(start + len(answer)) % len(words)]
            used += tokens(w if not answer else " " + w)
            answer.append(w)
        rows.append({"messages": msgs + [{"role": "assistant", "content": " ".join(answer)}]})
    return rows


def length_stats(examples: Sequence[Example]) -> dict[str, Any]:
    lens = sorted(len(ex.input_ids) for ex in examples)
    return {"n": len(lens), "min": lens[0], "median": statistics.median(lens), "mean": round(statistics.fmean(lens), 1),
            "p90": lens[int(0.9 * (len(lens) - 1))], "max": lens[-1],
            "trainable_fraction": round(sum(ex.n_trainable for ex in examples) / sum(lens), 3)}


# ---------------------------------------------------------------------------------------------
# Model


@contextlib.contextmanager
def in_memory_base(shape: str, device: torch.device) -> Iterator[None]:
    """Make ``AutoModelForCausalLM.from_pretrained`` (as ``load_trainable`` calls it) return a
    random-init Llama of ``shape``, built directly on ``device`` in the dtype it asks for."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    def from_pretrained(source: str, dtype: torch.dtype, **kwargs: Any) -> torch.nn.Module:
        if kwargs:
            raise ValueError(f"bench: unexpected from_pretrained arguments {sorted(kwargs)}")
        arch = SHAPES[shape]
        cfg = LlamaConfig(**arch, head_dim=arch["hidden_size"] // arch["num_attention_heads"],
                          max_position_embeddings=4096, rms_norm_eps=1e-6, bos_token_id=0, eos_token_id=2,
                          pad_token_id=0, use_cache=False)
        with torch.device(device):
            return AutoModelForCausalLM.from_config(cfg, dtype=dtype)

    with mock.patch.object(AutoModelForCausalLM, "from_pretrained", from_pretrained):
        yield


def build(shape: str, device: torch.device, seed: int, workdir: Path) -> tuple[torch.nn.Module, Any, dict[str, Any]]:
    tiny = build_tiny_model(workdir / "tiny")
    tok = load_tokenizer(str(tiny))
    hp = {**defaults(), "batch_size": 8, "n_epochs": 1}
    torch.manual_seed(seed)
    if shape == "tiny":
        model = load_trainable(str(tiny), hp, device, None)
    else:
        with in_memory_base(shape, device):
            model = load_trainable(f"<random-init {shape}>", hp, device, None)
    return model, tok, hp


def matmul_params(model: torch.nn.Module) -> int:
    """Weights of every Linear (base projections, LM head, LoRA A/B): the 6N of the MFU estimate.
    The input embedding (a lookup) is left out; a tied LM head counts once, as the head."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


# ---------------------------------------------------------------------------------------------
# Runs


@dataclass
class Run:
    name: str
    step: Callable[[list[Example]], float]
    weights: list[torch.Tensor]
    optimizer: torch.optim.Optimizer
    times: dict[int, list[float]] = field(default_factory=dict)  # timed batch -> one time per round
    peak_mem: int = 0
    oom: str | None = None


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def trim_heap() -> None:
    """Hand freed heap memory back to the OS (glibc), so RSS starts near the live set and a
    step's peak is not hidden behind what an earlier, larger step left cached."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)


class RSSPeak:
    """Peak resident set size of this process while the block runs (sampled every ms), after
    trimming the heap."""

    def __init__(self) -> None:
        import psutil

        self.proc = psutil.Process()
        self.before = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.001)

    def __enter__(self) -> RSSPeak:
        trim_heap()
        self.before = self.peak = self.proc.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def cpu_pressure() -> float | None:
    """Linux PSI: % of the last minute some runnable task waited for a CPU (other load here)."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return float(dict(kv.split("=") for kv in line.split()[1:])["avg60"])
    except (OSError, KeyError, ValueError, IndexError):
        return None


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python -m bench.train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--shape", choices=["tiny", *SHAPES], default="tiny")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per run (default 20)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps per run first (default 3)")
    ap.add_argument("--rounds", type=int, default=None,
                    help="times each timed batch is run per run; its fastest counts (default: 3 on "
                         "cpu, where other load adds noise, 1 on cuda)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-tokens", type=int, default=None,
                    help="recipe's token budget per packed micro-batch (default: the recipe's, "
                         "max_tokens_per_micro_batch)")
    ap.add_argument("--peak-tflops", type=float, default=PEAK_BF16_FLOPS / 1e12,
                    help="accelerator peak for MFU (default 989: H100 SXM dense bf16)")
    ap.add_argument("--out", type=Path, default=None,
                    help="JSON path (default bench/results/train-<device>-<shape>.json)")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    args.rounds = args.rounds or (3 if device.type == "cpu" else 1)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device is available")
    out = args.out or RESULTS / f"train-{device.type}-{args.shape}.json"

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    load_before, psi_before = os.getloadavg(), cpu_pressure()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hone-bench-") as tmp:
        model, tok, hp = build(args.shape, device, args.seed, Path(tmp))
    log(f"model ready in {time.perf_counter() - t0:.1f}s")
    model.train()
    cfg = model.config
    budget = args.max_tokens or micro_batch_budget(model, hp)
    pad_id = tok.pad_token_id
    params = [p for p in model.parameters() if p.requires_grad]
    initial = [p.detach().clone() for p in params]

    n_batches = args.warmup + args.steps
    renderer = ChatRenderer(tok, 4096)
    examples = [renderer.sft(r) for r in make_rows(tok, n_batches * args.batch_size, args.seed)]
    batches = [examples[i * args.batch_size:(i + 1) * args.batch_size] for i in range(n_batches)]

    def finish_step() -> None:
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        run_now.optimizer.step()
        run_now.optimizer.zero_grad(set_to_none=True)

    def recipe_step(batch: list[Example]) -> float:
        loss, _, _ = sft_loss(model, batch, device, budget, backward=True)
        finish_step()
        return loss

    def baseline_step(batch: list[Example]) -> float:
        inputs = {k: v.to(device) for k, v in data.pad(batch, pad_id).items()}
        loss = model(**inputs).loss
        loss.backward()
        finish_step()
        return float(loss.detach())

    def new_run(name: str, step: Callable[[list[Example]], float]) -> Run:
        weights = [w.clone() for w in initial]
        for p, w in zip(params, weights):
            p.data = w
        return Run(name, step, weights, torch.optim.AdamW(params, lr=LR, weight_decay=0.0))

    recipe, baseline = new_run("recipe", recipe_step), new_run("baseline", baseline_step)
    run_now = recipe

    def activate(run: Run) -> None:
        nonlocal run_now
        run_now = run
        for p, w in zip(params, run.weights):
            p.data = w

    def do_step(run: Run, i: int, timed: bool) -> None:
        if run.oom:
            return
        batch = batches[i]
        activate(run)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        sync(device)
        start = time.perf_counter()
        try:
            run.step(batch)
            sync(device)
        except torch.OutOfMemoryError as e:
            run.oom = str(e).splitlines()[0]
        if run.oom:  # outside the handler, so the failed step's tensors are already released
            run.optimizer.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
            log(f"{run.name}: out of memory, dropped from the comparison: {run.oom}")
            return
        elapsed = time.perf_counter() - start
        if device.type == "cuda":
            run.peak_mem = max(run.peak_mem, torch.cuda.max_memory_allocated(device))
        if timed:
            run.times.setdefault(i, []).append(elapsed)

    # Warmup once; then every timed batch once per round. The runs alternate step by step, and
    # which goes first flips every step (ABBA...) and every round, so neither always follows
    # the other. A batch's time is its fastest round: other load on the machine only ever adds.
    for i in range(args.warmup):
        for run in (recipe, baseline) if i % 2 == 0 else (baseline, recipe):
            do_step(run, i, timed=False)
        log(f"warmup {i + 1}/{args.warmup}")
    timed_ids = range(args.warmup, n_batches)
    for rnd in range(args.rounds):
        for i in timed_ids:
            for run in (recipe, baseline) if (i + rnd) % 2 == 0 else (baseline, recipe):
                do_step(run, i, timed=True)
            log(f"round {rnd + 1}/{args.rounds} step {i - args.warmup + 1}/{args.steps}: " + ", ".join(
                f"{r.name} {r.times[i][-1]:.3f}s" for r in (recipe, baseline) if not r.oom))

    # Correctness: the same batch, the same (trained) adapter weights, eval mode (no dropout).
    check: dict[str, Any] = {}
    first = batches[args.warmup]
    activate(recipe)
    model.eval()
    try:
        loss_a, _, _ = sft_loss(model, first, device, budget, backward=True)
        grads_a = [p.grad.detach().clone() for p in params]
        model.zero_grad(set_to_none=True)
        inputs = {k: v.to(device) for k, v in data.pad(first, pad_id).items()}
        loss_b_t = model(**inputs).loss
        loss_b_t.backward()
        loss_b = float(loss_b_t.detach())
        grads_b = [p.grad.detach() for p in params]
        scale = max(float(g.abs().max()) for g in grads_b)
        grad_diff = max(float((a - b).abs().max()) for a, b in zip(grads_a, grads_b)) / scale
        model.zero_grad(set_to_none=True)
        # fp32: |loss diff| <= 1e-4; bf16 (CUDA) rounds differently per matmul shape: 2e-2 relative.
        # Gradients: the largest elementwise difference over the largest gradient entry.
        tol, grad_tol = (1e-4, 1e-3) if cfg.dtype == torch.float32 else (2e-2, 1e-1)
        check = {"loss_recipe": loss_a, "loss_baseline": loss_b, "abs_diff": abs(loss_a - loss_b),
                 "rel_diff": abs(loss_a - loss_b) / abs(loss_b), "grad_max_rel_diff": grad_diff,
                 "loss_tolerance": tol, "grad_tolerance": grad_tol,
                 "ok": abs(loss_a - loss_b) <= tol * max(1.0, abs(loss_b)) and grad_diff <= grad_tol}
        del grads_a, grads_b, inputs, loss_b_t
    except torch.OutOfMemoryError as e:
        check = {"ok": None, "error": f"out of memory: {str(e).splitlines()[0]}"}
    if check.get("ok") is None:
        model.zero_grad(set_to_none=True)
        torch.cuda.empty_cache()
    model.train()

    # CPU memory: one more (untimed) step of each run on the widest batch, RSS sampled meanwhile.
    rss_before = {}
    if device.type == "cpu":
        widest = max((batches[i] for i in timed_ids), key=lambda b: len(b) * max(len(ex.input_ids) for ex in b))
        for run in (recipe, baseline):
            activate(run)
            with RSSPeak() as probe:
                run.step(widest)
            run.peak_mem, rss_before[run.name] = probe.peak, probe.before

    n_layers, hidden = cfg.num_hidden_layers, cfg.num_attention_heads * (cfg.hidden_size // cfg.num_attention_heads)
    n_matmul = matmul_params(model)

    real_tokens = sum(len(ex.input_ids) for i in timed_ids for ex in batches[i])

    def best(run: Run) -> list[float]:
        return [min(run.times[i]) for i in timed_ids]

    def figures(run: Run) -> dict[str, Any]:
        if run.oom or len(run.times) < len(timed_ids):
            return {"oom": run.oom, "tokens_per_s": None}
        total = sum(best(run))
        total_mean = sum(statistics.fmean(run.times[i]) for i in timed_ids)
        positions = (real_tokens if run is recipe
                     else sum(len(batches[i]) * max(len(ex.input_ids) for ex in batches[i]) for i in timed_ids))
        fig: dict[str, Any] = {
            "tokens_per_s": round(real_tokens / total, 1), "timed_s": round(total, 3),
            "tokens_per_s_mean_of_rounds": round(real_tokens / total_mean, 1),
            "step_s_median": round(statistics.median(best(run)), 4),
            "step_s_min": round(min(best(run)), 4), "step_s_max": round(max(best(run)), 4),
            "real_tokens": real_tokens, "computed_positions": positions,
            "padding_fraction": round(1 - real_tokens / positions, 4),
            "peak_memory_bytes": run.peak_mem,
            "peak_memory_kind": "torch.cuda.max_memory_allocated over timed steps" if device.type == "cuda"
            else "process RSS peak during one step on the widest timed batch",
        }
        if device.type == "cpu":
            fig["step_rss_increase_bytes"] = run.peak_mem - rss_before[run.name]
        if device.type == "cuda":
            attn = sum(12 * n_layers * hidden * len(ex.input_ids) ** 2 for i in timed_ids for ex in batches[i])
            flops = 6 * n_matmul * real_tokens + attn
            fig["model_tflops_per_s"] = round(flops / total / 1e12, 2)
            fig["mfu"] = round(flops / total / (args.peak_tflops * 1e12), 4)
        return fig

    res_a, res_b = figures(recipe), figures(baseline)
    ratio = (res_a["tokens_per_s"] / res_b["tokens_per_s"]
             if res_a["tokens_per_s"] and res_b["tokens_per_s"] else None)
    paired = ([b / a for a, b in zip(best(recipe), best(baseline))]
              if res_a["tokens_per_s"] and res_b["tokens_per_s"] else [])
    result = {
        "bench": "train",
        "command": "python -m bench.train " + " ".join(sys.argv[1:] if argv is None else argv),
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "load_average_1m": {"start": round(load_before[0], 2), "end": round(os.getloadavg()[0], 2)},
        "cpu_pressure_some_avg60": {"start": psi_before, "end": cpu_pressure()},
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": __import__("transformers").__version__, "peft": __import__("peft").__version__},
        "shape": args.shape,
        "model": {"hidden_size": cfg.hidden_size, "num_hidden_layers": n_layers,
                  "num_attention_heads": cfg.num_attention_heads, "num_key_value_heads": cfg.num_key_value_heads,
                  "intermediate_size": cfg.intermediate_size, "vocab_size": cfg.vocab_size,
                  "dtype": str(cfg.dtype).removeprefix("torch."), "attn_implementation": cfg._attn_implementation,
                  "params_total": sum(p.numel() for p in model.parameters()),
                  "params_trainable": sum(p.numel() for p in params), "params_matmul": n_matmul,
                  "lora": {k: hp[k] for k in ("lora_rank", "lora_alpha", "lora_dropout", "target_modules")}},
        "batch_size": args.batch_size, "warmup_steps": args.warmup, "timed_steps": args.steps,
        "rounds": args.rounds, "seed": args.seed,
        "recipe_max_tokens_per_micro_batch": budget, "lr": LR,
        "order": "alternating per step, ABBA, flipped every round; a batch's time is its fastest round",
        "example_lengths": length_stats(examples),
        "recipe": res_a, "baseline": res_b,
        "ratio_recipe_over_baseline": round(ratio, 3) if ratio else None,
        "paired_step_ratio_median": round(statistics.median(paired), 3) if paired else None,
        "target_ratio": TARGET_RATIO,
        "meets_target": (ratio >= TARGET_RATIO) if ratio else None,
        "mfu_note": ("model FLOPs = 6 * params_matmul * real tokens + 12 * layers * hidden * sum(len^2) "
                     "(PaLM convention, real tokens only); the 6N figure is the full fine-tuning one "
                     f"even though LoRA skips the frozen weights' gradients; peak {args.peak_tflops:g} TFLOP/s")
        if device.type == "cuda" else "MFU is reported on CUDA only",
        "check": check,
        "peak_process_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(table(result))
    print(f"wrote {out}")
    return result


def table(r: dict[str, Any]) -> str:
    def mem(n: int | None) -> str:
        return f"{n / 2**20:,.0f} MiB" if n else "-"

    lines = [f"training throughput: {r['shape']} on {r['device']} ({r['device_name']}), batch {r['batch_size']}, "
             f"{r['timed_steps']} timed steps x {r['rounds']} rounds (fastest counts) after "
             f"{r['warmup_steps']} warmup, seed {r['seed']}",
             f"example lengths: {r['example_lengths']}",
             f"{'run':<10}{'tokens/s':>12}{'median step':>13}{'padding':>9}{'peak mem':>12}{'MFU':>8}"]
    for name in ("recipe", "baseline"):
        f = r[name]
        if not f.get("tokens_per_s"):
            lines.append(f"{name:<10}  out of memory: {f.get('oom')}")
            continue
        mfu = f"{100 * f['mfu']:.1f}%" if "mfu" in f else "-"
        lines.append(f"{name:<10}{f['tokens_per_s']:>12,.0f}{f['step_s_median']:>12.3f}s"
                     f"{100 * f['padding_fraction']:>8.1f}%{mem(f['peak_memory_bytes']):>12}{mfu:>8}")
    ratio = r["ratio_recipe_over_baseline"]
    lines.append(f"ratio recipe/baseline (tokens/s): {ratio}x (target >= {r['target_ratio']}x: "
                 f"{'met' if r['meets_target'] else 'NOT met'}); median per-step ratio on the same batch: "
                 f"{r['paired_step_ratio_median']}x" if ratio else "ratio: n/a")
    load = r["cpu_pressure_some_avg60"]
    if load["start"] is not None:
        lines.append(f"CPU pressure (PSI some avg60 %, other load plus the bench itself): "
                     f"start {load['start']}, end {load['end']}")
    c = r["check"]
    if c.get("ok") is None:
        lines.append(f"loss check: not run ({c.get('error')})")
    else:
        lines.append(f"loss check: recipe {c['loss_recipe']:.6f} vs baseline {c['loss_baseline']:.6f} "
                     f"(|diff| {c['abs_diff']:.2e}, adapter grads max rel diff {c['grad_max_rel_diff']:.2e}) "
                     f"-> {'OK' if c['ok'] else 'MISMATCH'}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
