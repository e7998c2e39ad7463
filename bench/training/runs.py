"""The two runs on one model, timed step by step in alternation:

(a) recipe:   ``trainer.losses.sft_loss(..., backward=True)`` (packed, padding-free rows with
              position_ids restarting per example) + grad clipping + AdamW, the SFT recipe's
              step (``trainer/sft.py``) minus the LR schedule (constant LR in both).
(b) baseline: ``trainer.data.pad()`` batch (padded to the longest example, attention_mask,
              labels) -> ``model(**batch).loss.backward()`` + grad clipping + AdamW.

The frozen base is shared: each run has its own copy of the adapter weights (identical at the
start) and its own AdamW state, swapped in (a pointer swap, untimed) when the runs alternate."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from bench.log import log
from bench.training.probes import RSSPeak, sync
from trainer import data
from trainer.data import Example
from trainer.losses import sft_loss

LR = 2e-4  # the recipe's LoRA base learning rate, constant here


@dataclass
class Run:
    name: str
    step: Callable[[list[Example]], float]
    weights: list[torch.Tensor]
    optimizer: torch.optim.Optimizer
    times: dict[int, list[float]] = field(default_factory=dict)  # timed batch -> one time per round
    peak_mem: int = 0
    oom: str | None = None
    rss_before: int = 0  # CPU only: RSS when the memory probe's step started


class Comparison:
    """The recipe and the baseline on ``model`` over ``batches``: the first ``warmup`` batches
    untimed, the rest timed."""

    def __init__(
        self,
        model: torch.nn.Module,
        device: torch.device,
        budget: int,
        pad_id: int,
        batches: list[list[Example]],
        warmup: int,
    ) -> None:
        self.model, self.device, self.budget, self.pad_id = model, device, budget, pad_id
        self.batches, self.warmup = batches, warmup
        self.params = [p for p in model.parameters() if p.requires_grad]
        initial = [p.detach().clone() for p in self.params]
        self.recipe = self._new_run("recipe", self._recipe_step, initial)
        self.baseline = self._new_run("baseline", self._baseline_step, initial)
        self.current = self.recipe

    @property
    def runs(self) -> tuple[Run, Run]:
        return self.recipe, self.baseline

    @property
    def timed_ids(self) -> range:
        return range(self.warmup, len(self.batches))

    # -- the steps --------------------------------------------------------------------------

    def _new_run(self, name: str, step: Callable[[list[Example]], float], initial: list[torch.Tensor]) -> Run:
        weights = [w.clone() for w in initial]
        for p, w in zip(self.params, weights, strict=True):
            p.data = w
        return Run(name, step, weights, torch.optim.AdamW(self.params, lr=LR, weight_decay=0.0))

    def _finish_step(self) -> None:
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.current.optimizer.step()
        self.current.optimizer.zero_grad(set_to_none=True)

    def _recipe_step(self, batch: list[Example]) -> float:
        loss, _, _ = sft_loss(self.model, batch, self.device, self.budget, backward=True)
        self._finish_step()
        return loss

    def _padded(self, batch: list[Example]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.device) for k, v in data.pad(batch, self.pad_id).items()}

    def _baseline_step(self, batch: list[Example]) -> float:
        loss = self.model(**self._padded(batch)).loss
        loss.backward()
        self._finish_step()
        return float(loss.detach())

    def activate(self, run: Run) -> None:
        self.current = run
        for p, w in zip(self.params, run.weights, strict=True):
            p.data = w

    def do_step(self, run: Run, i: int, timed: bool) -> None:
        if run.oom:
            return
        self.activate(run)
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        sync(self.device)
        start = time.perf_counter()
        try:
            run.step(self.batches[i])
            sync(self.device)
        except torch.OutOfMemoryError as e:
            run.oom = str(e).splitlines()[0]
        if run.oom:  # outside the handler, so the failed step's tensors are already released
            run.optimizer.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
            log(f"{run.name}: out of memory, dropped from the comparison: {run.oom}")
            return
        elapsed = time.perf_counter() - start
        if cuda:
            run.peak_mem = max(run.peak_mem, torch.cuda.max_memory_allocated(self.device))
        if timed:
            run.times.setdefault(i, []).append(elapsed)

    # -- the measured runs ------------------------------------------------------------------
    # The runs alternate step by step, and which goes first flips every step (ABBA...) and every
    # round, so neither always follows the other. A batch's time is its fastest round: other
    # load on the machine only ever adds.

    def _pair(self, flip: int) -> tuple[Run, Run]:
        return (self.recipe, self.baseline) if flip % 2 == 0 else (self.baseline, self.recipe)

    def run_warmup(self) -> None:
        for i in range(self.warmup):
            for run in self._pair(i):
                self.do_step(run, i, timed=False)
            log(f"warmup {i + 1}/{self.warmup}")

    def run_timed(self, rounds: int) -> None:
        for rnd in range(rounds):
            for i in self.timed_ids:
                for run in self._pair(i + rnd):
                    self.do_step(run, i, timed=True)
                log(
                    f"round {rnd + 1}/{rounds} step {i - self.warmup + 1}/{len(self.timed_ids)}: "
                    + ", ".join(f"{r.name} {r.times[i][-1]:.3f}s" for r in self.runs if not r.oom)
                )

    def measure_cpu_memory(self) -> None:
        """One more (untimed) step of each run on the widest timed batch, RSS sampled meanwhile."""
        widest = max(
            (self.batches[i] for i in self.timed_ids), key=lambda b: len(b) * max(len(ex.input_ids) for ex in b)
        )
        for run in self.runs:
            self.activate(run)
            with RSSPeak() as probe:
                run.step(widest)
            run.peak_mem, run.rss_before = probe.peak, probe.before

    def check(self) -> dict[str, Any]:
        """The first timed batch through both paths with the same (trained) adapter weights in
        eval mode (no dropout): the mean cross-entropy and the adapter gradients must agree, or
        the figures compare different computations."""
        model, first = self.model, self.batches[self.warmup]
        self.activate(self.recipe)
        model.eval()
        try:
            check = self._agreement(first)
        except torch.OutOfMemoryError as e:
            check = {"ok": None, "error": f"out of memory: {str(e).splitlines()[0]}"}
        if check.get("ok") is None:
            model.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
        model.train()
        return check

    def _agreement(self, batch: list[Example]) -> dict[str, Any]:
        model, params = self.model, self.params
        loss_a, _, _ = sft_loss(model, batch, self.device, self.budget, backward=True)
        grads_a = [p.grad.detach().clone() for p in params]
        model.zero_grad(set_to_none=True)
        loss_b_t = model(**self._padded(batch)).loss
        loss_b_t.backward()
        loss_b = float(loss_b_t.detach())
        grads_b = [p.grad.detach() for p in params]
        scale = max(float(g.abs().max()) for g in grads_b)
        grad_diff = max(float((a - b).abs().max()) for a, b in zip(grads_a, grads_b, strict=True)) / scale
        model.zero_grad(set_to_none=True)
        # fp32: |loss diff| <= 1e-4; bf16 (CUDA) rounds differently per matmul shape: 2e-2 relative.
        # Gradients: the largest elementwise difference over the largest gradient entry.
        tol, grad_tol = (1e-4, 1e-3) if model.config.dtype == torch.float32 else (2e-2, 1e-1)
        return {
            "loss_recipe": loss_a,
            "loss_baseline": loss_b,
            "abs_diff": abs(loss_a - loss_b),
            "rel_diff": abs(loss_a - loss_b) / abs(loss_b),
            "grad_max_rel_diff": grad_diff,
            "loss_tolerance": tol,
            "grad_tolerance": grad_tol,
            "ok": abs(loss_a - loss_b) <= tol * max(1.0, abs(loss_b)) and grad_diff <= grad_tol,
        }
