"""Training throughput: hone's SFT step against the usual padded transformers + peft loop.

    python -m bench.train [--device cpu|cuda] [--shape tiny|0.5b|1.5b|8b] [--steps N]
                          [--batch-size B] [--seed S] [--warmup W] [--rounds R] [--max-tokens T]

Both runs happen in one process, on the same LoRA model, the same examples and the same
batches, timed step by step in alternation (which run goes first flips every step), each timed
batch ``--rounds`` times with its fastest round counted (other load on a shared CPU only ever
adds time):

(a) recipe:   ``trainer.losses.sft_loss(..., backward=True)`` (packed, padding-free rows with
              position_ids restarting per example) + grad clipping + AdamW, exactly the SFT
              recipe's step (``trainer/sft.py``) minus the LR schedule (constant LR in both).
(b) baseline: ``trainer.data.pad()`` batch (padded to the longest example, attention_mask,
              labels) -> ``model(**batch).loss.backward()`` + grad clipping + AdamW.

The model is made trainable by ``trainer.model.make_trainable`` (LoRA r=16, alpha 32, dropout
0.05, all-linear: the recipe's defaults in ``SupervisedHyperparameters``). The frozen base is
shared: each run has its own copy of the adapter weights (identical at the start) and its own
AdamW state, swapped in (a pointer swap, untimed) when the runs alternate. That keeps one base
in memory (two 8B bases would hold 32 GB of an 80 GB GPU before any activation).

Throughput counts real tokens only: the tokens of the examples, never padding; the baseline's
padding fraction is reported beside it. Data: chat examples (system prompt, user question,
assistant answer) with lengths drawn from a log-normal (median 150 tokens) clipped to 20..1000,
generated from the seed and rendered with ``ChatRenderer`` (loss on assistant tokens only).

``--shape tiny`` is hone's tiny test model (``build_tiny_model``, loaded by
``trainer.model.load_base``). The other shapes are random-init Llama models of that shape built
directly on the device (no downloads; in the dtype and attention kernel ``load_base`` picks
there) and handed to ``make_trainable``; they keep their real vocabulary size (so the LM head
and loss cost what they cost) and take their text from the tiny tokenizer, whose ids (< 3000)
are all valid there, so nothing is clamped.

After the timed steps, the first timed batch goes through both paths with the same (trained)
adapter weights in eval mode (no dropout): the mean cross-entropy and the adapter gradients
must agree, or the figures compare different computations.
Results are printed and written to ``bench/results/train-<device>-<shape>.json``. The pieces
live in ``bench/training/`` (rows, model, probes, runs, report).
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
from bench.training.model import SHAPES, build
from bench.training.report import PEAK_BF16_FLOPS, Before, document, table
from bench.training.rows import make_batches
from bench.training.runs import Comparison
from trainer.data import Example
from trainer.model import micro_batch_budget

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--shape", choices=["tiny", *SHAPES], default="tiny")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per run (default 20)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps per run first (default 3)")
    ap.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="times each timed batch is run per run; its fastest counts (default: 3 on "
        "cpu, where other load adds noise, 1 on cuda)",
    )
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help="recipe's token budget per packed micro-batch (default: the recipe's, max_tokens_per_micro_batch)",
    )
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
    args.rounds = args.rounds or (3 if args.device == "cpu" else 1)
    return args


def setup(args: argparse.Namespace, device: torch.device) -> tuple[Comparison, Any, list[Example]]:
    """The model, the examples and both runs, ready to step: (comparison, hyperparameters, examples)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hone-bench-") as tmp:
        model, tok, hp = build(args.shape, device, args.seed, Path(tmp))
    log(f"model ready in {time.perf_counter() - t0:.1f}s")
    model.train()
    budget = args.max_tokens or micro_batch_budget(model, hp)
    examples, batches = make_batches(tok, args.warmup + args.steps, args.batch_size, args.seed)
    return Comparison(model, device, budget, tok.pad_token_id, batches, args.warmup), hp, examples


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
    out = args.out or RESULTS / f"train-{device.type}-{args.shape}.json"
    before = Before.now()
    cmp, hp, examples = setup(args, device)
    check = measure(cmp, args.rounds)
    result = document(
        command="python -m bench.train " + " ".join(sys.argv[1:] if argv is None else argv),
        shape=args.shape,
        args=args,
        before=before,
        cmp=cmp,
        hp=hp,
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
