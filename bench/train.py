"""Training throughput and memory: hone's SFT step against the loss it replaced and against the
usual padded transformers + peft loop.

    python -m bench.train [--device cpu|cuda] [--shape tiny|135m|0.5b|1.5b|8b] [--model-dir DIR]
                          [--runs recipe,previous,naive] [--steps N] [--warmup W] [--rounds R]
                          [--batch-size B] [--lengths chat|TOKENS] [--seed S]
                          [--checkpointing plan|on|off] [--memory-gib G] [--max-tokens T]
                          [--training-type lora|qlora|full] [--mmap-threshold BYTES] [--note TEXT]
                          [--out PATH]

The runs (``--runs``, default all three) happen in one process, on the same model, the same
examples and the same batches, timed step by step in alternation (the order rotates every step
and every round), each timed batch ``--rounds`` times with its fastest round counted (other load
on a shared CPU only ever adds time):

(a) recipe:   ``trainer.losses.sft_loss(..., backward=True)``: packed, padding-free rows with
              position_ids restarting per example, the LM head and cross-entropy in
              checkpointed chunks over the target positions only, activation checkpointing as
              the memory plan says (``--checkpointing``), + grad clipping + AdamW: the SFT
              recipe's step (``trainer/sft.py``) minus the LR schedule (constant LR in all runs).
(b) previous: the trainer's loss before that change (``bench/training/previous.py``, from commit
              9d80a30): the same packed rows, full-vocabulary fp32 logits and log-softmax over
              each row, no activation checkpointing.
(c) naive:    ``trainer.data.pad()`` batch (padded to the longest example, attention_mask,
              labels) -> ``model(**batch).loss.backward()`` + grad clipping + AdamW, no activation
              checkpointing.

The model is made trainable by ``trainer.model.make_trainable`` (LoRA r=16, alpha 32, dropout
0.05, all-linear: the recipe's defaults in ``SupervisedHyperparameters``; ``--training-type``
for QLoRA or full fine-tuning). The memory plan (``trainer.plan.make_plan``, on a device of
``--memory-gib`` or, by default, the memory the trainer would see) picks the recipe's tokens per
micro-batch (``--max-tokens`` overrides) and whether it checkpoints activations; the previous
run packs the same micro-batches. The frozen base is shared: each run has its own copy of the
trainable weights (identical at the start) and its own AdamW state, swapped in (a pointer swap,
untimed) when the runs alternate, and checkpointing is switched per run (untimed). That keeps
one base in memory.

Throughput counts real tokens only: the tokens of the examples, never padding; the naive run's
padding fraction is reported beside it. Data (``--lengths``): chat examples (system prompt, user
question, assistant answer) with lengths drawn from a log-normal (median 150 tokens) clipped to
20..1000 (``chat``), or all of about ``TOKENS`` tokens, generated from the seed and rendered
with ``ChatRenderer`` (loss on assistant tokens only).

``--shape tiny`` is hone's tiny test model; ``--shape 135m`` is SmolLM2-135M-Instruct when it is
on disk (``--model-dir`` or the data dir's ``models/smollm2-135m-instruct``), else a random-init
Llama of its shape; the other shapes are random-init Llama models built directly on the device
(``bench/training/model.py``).

After the timed steps, the first timed batch goes through every run's path with the same
(trained) weights in eval mode (no dropout): the mean cross-entropy and the gradients must agree
with the naive path's, or the figures compare different computations. On CPU each run then takes
one more step on the widest timed batch with the process's RSS sampled (the recipe first);
``--steps 0 --warmup 0`` runs that memory probe alone, on one batch (for shapes whose steps take
minutes on a CPU). The RSS is what glibc's allocator makes of the step: by default it keeps freed
heap pages, so the peak runs well above the live tensors; ``--mmap-threshold 65536`` serves
every block of 64 KiB or more with its own mmap, returned on free, which brings RSS near the
live set (``bench/training/probes.py: set_mmap_threshold``).
Results are printed and written to ``bench/results/train-<device>-<shape>.json``. The pieces
live in ``bench/training/`` (rows, model, previous, probes, runs, report); ``bench/parity.py``
checks the losses against references (TRL's DPO loss among them).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from bench.log import log
from bench.training import model as bench_model
from bench.training.model import SHAPES
from bench.training.probes import set_mmap_threshold
from bench.training.report import PEAK_BF16_FLOPS, Before, document, plan_facts, table
from bench.training.rows import CHAT, length_stats, make_batches, parse_lengths
from bench.training.runs import RUN_NAMES, Comparison
from trainer.data import Example
from trainer.model import make_trainable
from trainer.plan import DoesNotFit

RESULTS = Path(__file__).resolve().parent / "results"
CHECKPOINTING = {"plan": None, "on": True, "off": False}


def _runs(value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    bad = [n for n in names if n not in RUN_NAMES]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"--runs: a comma-separated subset of {','.join(RUN_NAMES)}, not {value!r}")
    return names


def _lengths(value: str) -> str:
    try:
        return parse_lengths(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--shape", choices=["tiny", *SHAPES], default="tiny")
    ap.add_argument("--model-dir", type=Path, default=None, help="a real checkpoint to load instead (config.json)")
    ap.add_argument("--runs", type=_runs, default=list(RUN_NAMES), help="which runs, comma-separated (default all)")
    ap.add_argument(
        "--steps", type=int, default=20, help="timed steps per run (default 20; 0: the CPU memory probe only)"
    )
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps per run first (default 3)")
    ap.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="times each timed batch is run per run; its fastest counts (default: 3 on "
        "cpu, where other load adds noise, 1 on cuda)",
    )
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument(
        "--lengths", type=_lengths, default=CHAT, help="'chat' (log-normal, median 150, 20..1000) or TOKENS each"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--checkpointing",
        choices=list(CHECKPOINTING),
        default="plan",
        help="the recipe's activation checkpointing (default: the memory plan's choice)",
    )
    ap.add_argument(
        "--memory-gib",
        type=float,
        default=None,
        help="device memory the plan sizes for, also the recipe's memory goal (default: what the trainer sees)",
    )
    ap.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help="tokens per packed micro-batch (default: the memory plan's)",
    )
    ap.add_argument("--training-type", choices=["lora", "qlora", "full"], default="lora")
    ap.add_argument(
        "--mmap-threshold",
        type=int,
        default=None,
        help="CPU: glibc mallopt(M_MMAP_THRESHOLD) in bytes before anything loads (default: glibc's own, dynamic)",
    )
    ap.add_argument("--note", default="", help="recorded in the result (e.g. why some runs were left out)")
    ap.add_argument(
        "--peak-tflops",
        type=float,
        default=PEAK_BF16_FLOPS / 1e12,
        help="accelerator peak for MFU (default 989: H100 SXM dense bf16)",
    )
    ap.add_argument(
        "--out", type=Path, default=None, help="JSON path (default bench/results/train-<device>-<shape>.json)"
    )
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device is available")
    if args.training_type == "qlora" and args.device != "cuda":
        ap.error("--training-type qlora needs --device cuda (bitsandbytes 4-bit)")
    args.rounds = args.rounds or (3 if args.device == "cpu" else 1)
    return args


def setup(args: argparse.Namespace, device: torch.device) -> tuple[Comparison, Any, dict[str, Any], list[Example], str]:
    """The model, the examples, the plan and the runs, ready to step:
    (comparison, hyperparameters, plan facts, examples, model source)."""
    t0 = time.perf_counter()
    hp = bench_model.hyperparameters(args.training_type, args.max_tokens, CHECKPOINTING[args.checkpointing])
    with tempfile.TemporaryDirectory(prefix="hone-bench-") as tmp:
        base = bench_model.load(args.shape, device, args.seed, Path(tmp), hp, args.model_dir)
    n_batches = max(1, args.warmup + args.steps)  # --steps 0 --warmup 0: one batch, for the memory probe
    examples, batches = make_batches(base.tokenizer, n_batches, args.batch_size, args.seed, args.lengths)
    log(f"examples: {length_stats(examples)}")
    plan = bench_model.plan(base.model, hp, device, args.memory_gib, max(len(ex.input_ids) for ex in examples))
    log(plan.message())
    model = make_trainable(base.model, hp, device, None, plan.gradient_checkpointing)
    log(f"model ready ({base.source}) in {time.perf_counter() - t0:.1f}s")
    model.train()
    cmp = Comparison(
        model,
        device,
        plan.tokens_per_micro_batch,
        base.tokenizer.pad_token_id,
        batches,
        args.warmup,
        args.runs,
        plan.gradient_checkpointing,
        args.steps,
    )
    forced = "plan" if args.checkpointing == "plan" else f"--checkpointing {args.checkpointing}"
    return cmp, hp, plan_facts(cmp, plan, hp, forced), examples, base.source


def measure(cmp: Comparison, rounds: int) -> dict[str, Any]:
    """Warm-up, the timed rounds, the agreement check and (on CPU) the memory probe; returns the check."""
    cmp.run_warmup()
    cmp.run_timed(rounds)
    check = cmp.check()
    if cmp.device.type == "cpu":
        cmp.measure_cpu_memory()
    return check


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    device = torch.device(args.device)
    suffix = "" if args.training_type == "lora" else f"-{args.training_type}"
    out = args.out or RESULTS / f"train-{device.type}-{args.shape}{suffix}.json"
    if args.mmap_threshold is not None and not set_mmap_threshold(args.mmap_threshold):
        sys.exit("--mmap-threshold: glibc's mallopt is not available here")
    before = Before.now()
    try:
        cmp, hp, plan, examples, source = setup(args, device)
    except DoesNotFit as e:
        sys.exit(f"the memory plan says this does not fit: {e}")
    check = measure(cmp, args.rounds)
    result = document(
        command="python -m bench.train " + " ".join(sys.argv[1:] if argv is None else argv),
        shape=args.shape,
        source=source,
        args=args,
        before=before,
        cmp=cmp,
        hp=hp,
        plan=plan,
        examples=examples,
        check=check,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(table(result))
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
