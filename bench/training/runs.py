"""The runs on one model, timed step by step in alternation (any subset of the three, ``--runs``):

(a) recipe:   ``trainer.losses.sft_loss(..., backward=True)`` (packed, padding-free rows with
              position_ids restarting per example; the LM head and cross-entropy in checkpointed
              chunks over the target positions only) with the memory plan's activation
              checkpointing, + grad clipping + AdamW: the SFT recipe's step (``trainer/sft.py``)
              minus the LR schedule (constant LR in every run).
(b) previous: the trainer's loss before the chunked one (``bench.training.previous``, from commit
              9d80a30): the same packed rows, full-vocabulary fp32 logits and log-softmax over
              the whole row, no activation checkpointing; + grad clipping + AdamW.
(c) naive:    ``trainer.data.pad()`` batch (padded to the longest example, attention_mask,
              labels) -> ``model(**batch).loss.backward()``, no activation checkpointing; + grad
              clipping + AdamW: the usual transformers + peft loop.

The frozen base is shared: each run has its own copy of the trainable weights (identical at the
start) and its own AdamW state, swapped in (a pointer swap, untimed) when the runs alternate, and
activation checkpointing is switched on or off for the run (untimed)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from bench.log import log
from bench.training import previous
from bench.training.probes import RSSPeak, sync
from trainer import data
from trainer.data import Example
from trainer.losses import sft_loss

LR = 2e-4  # the recipe's LoRA base learning rate, constant here
RUN_NAMES = ("recipe", "previous", "naive")


@dataclass
class Run:
    name: str
    step: Callable[[list[Example]], float]
    loss: Callable[[list[Example]], torch.Tensor | float]  # the step's forward + backward only
    checkpointing: bool
    weights: list[torch.Tensor]
    optimizer: torch.optim.Optimizer
    times: dict[int, list[float]] = field(default_factory=dict)  # timed batch -> one time per round
    peak_mem: int = 0
    oom: str | None = None
    rss_before: int = 0  # CPU only: RSS when the memory probe's step started

    @property
    def packed(self) -> bool:
        return self.name != "naive"


def alternation(items: Sequence[Any], k: int) -> list[Any]:
    """The order of step ``k``: ``items`` rotated by ``k``, reversed every other cycle."""
    n = len(items)
    rotated = list(items[k % n :]) + list(items[: k % n])
    return rotated[::-1] if (k // n) % 2 else rotated


class Comparison:
    """``names`` (from recipe, previous, naive) on ``model`` over ``batches``: the first
    ``warmup`` batches untimed, the next ``timed`` (default: the rest) timed. ``checkpointing``
    is the recipe's (the memory plan's) choice, and the state ``model`` was made trainable in."""

    def __init__(
        self,
        model: torch.nn.Module,
        device: torch.device,
        budget: int,
        pad_id: int,
        batches: list[list[Example]],
        warmup: int,
        names: Sequence[str] = RUN_NAMES,
        checkpointing: bool = False,
        timed: int | None = None,
    ) -> None:
        self.model, self.device, self.budget, self.pad_id = model, device, budget, pad_id
        self.batches, self.warmup = batches, warmup
        self.timed = len(batches) - warmup if timed is None else timed
        self._checkpointing = checkpointing
        self.params = [p for p in model.parameters() if p.requires_grad]
        initial = [p.detach().clone() for p in self.params]
        steps = {
            "recipe": (self._recipe_loss, checkpointing),
            "previous": (self._previous_loss, False),
            "naive": (self._naive_loss, False),
        }
        self.runs = [self._new_run(name, *steps[name], initial) for name in RUN_NAMES if name in names]
        del initial
        self.current = self.runs[0]

    def get(self, name: str) -> Run | None:
        return next((r for r in self.runs if r.name == name), None)

    @property
    def timed_ids(self) -> range:
        return range(self.warmup, self.warmup + self.timed)

    # -- the steps --------------------------------------------------------------------------

    def _new_run(
        self,
        name: str,
        loss: Callable[[list[Example]], Any],
        checkpointing: bool,
        initial: list[torch.Tensor],
    ) -> Run:
        weights = [w.clone() for w in initial]
        for p, w in zip(self.params, weights, strict=True):
            p.data = w
        optimizer = torch.optim.AdamW(self.params, lr=LR, weight_decay=0.0)

        def step(batch: list[Example]) -> float:
            value = loss(batch)
            self._finish_step()
            return float(value)

        return Run(name, step, loss, checkpointing, weights, optimizer)

    def _finish_step(self) -> None:
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.current.optimizer.step()
        self.current.optimizer.zero_grad(set_to_none=True)

    def _recipe_loss(self, batch: list[Example]) -> float:
        return sft_loss(self.model, batch, self.device, self.budget, backward=True)[0]

    def _previous_loss(self, batch: list[Example]) -> float:
        return previous.sft_loss(self.model, batch, self.device, self.budget, backward=True)[0]

    def _padded(self, batch: list[Example]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.device) for k, v in data.pad(batch, self.pad_id).items()}

    def _naive_loss(self, batch: list[Example]) -> float:
        loss = self.model(**self._padded(batch)).loss
        loss.backward()
        return float(loss.detach())

    def _set_checkpointing(self, on: bool) -> None:
        """Activation checkpointing on or off, as ``trainer.model.make_trainable`` sets it."""
        if on == self._checkpointing:
            return
        inner: Any = self.model
        lm = inner.get_base_model() if hasattr(inner, "get_base_model") else inner
        if on:
            lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        else:
            lm.gradient_checkpointing_disable()
            lm.disable_input_require_grads()  # the hook enable added (PEFT models keep it otherwise)
        self._checkpointing = on

    def activate(self, run: Run) -> None:
        self.current = run
        for p, w in zip(self.params, run.weights, strict=True):
            p.data = w
        self._set_checkpointing(run.checkpointing)

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
    # The runs alternate step by step, and their order rotates every step and every round and is
    # reversed every other cycle (two runs: ab, ba, ba, ab; three: every permutation over six
    # steps), so none always follows another. A batch's time is its fastest round: other load
    # on the machine only ever adds.

    def order(self, k: int) -> list[Run]:
        return alternation(self.runs, k)

    def run_warmup(self) -> None:
        for i in range(self.warmup):
            for run in self.order(i):
                self.do_step(run, i, timed=False)
            log(f"warmup {i + 1}/{self.warmup}")

    def run_timed(self, rounds: int) -> None:
        for rnd in range(rounds):
            for i in self.timed_ids:
                for run in self.order(i + rnd):
                    self.do_step(run, i, timed=True)
                log(
                    f"round {rnd + 1}/{rounds} step {i - self.warmup + 1}/{len(self.timed_ids)}: "
                    + ", ".join(f"{r.name} {r.times[i][-1]:.3f}s" for r in self.runs if not r.oom)
                )

    def widest(self) -> list[Example]:
        """The timed batch with the most padded positions (batch size x longest example); any
        batch when none is timed."""
        ids = self.timed_ids or range(len(self.batches))  # --steps 0: a memory probe only
        return max((self.batches[i] for i in ids), key=lambda b: len(b) * max(len(ex.input_ids) for ex in b))

    def measure_cpu_memory(self) -> None:
        """One more (untimed) step of each run on the widest timed batch, RSS sampled meanwhile.
        The recipe goes first, so it cannot reuse heap another run's larger step left behind."""
        widest = self.widest()
        for run in self.runs:
            self.activate(run)
            with RSSPeak() as probe:
                run.step(widest)
            run.peak_mem, run.rss_before = probe.peak, probe.before
            added = (probe.peak - probe.before) / 2**20
            log(f"memory probe {run.name}: peak RSS {probe.peak / 2**20:,.0f} MiB (step adds {added:,.0f} MiB)")

    # -- the agreement check ----------------------------------------------------------------

    def check(self) -> dict[str, Any]:
        """The first timed batch through every run's path with the same (trained) weights, every
        dropout at p=0 and the model left in training mode (in eval mode transformers skips
        activation checkpointing, which the recipe's path must include): the mean cross-entropy
        and the trainable weights' gradients must agree with the reference path's (naive, else
        previous), or the figures compare different computations."""
        if len(self.runs) < 2:
            return {"ok": None, "error": f"only {self.runs[0].name} ran: nothing to compare it with"}
        dropouts = [(m, m.p) for m in self.model.modules() if isinstance(m, torch.nn.Dropout)]
        for m, _ in dropouts:
            m.p = 0.0
        try:
            first = self.batches[min(self.warmup, len(self.batches) - 1)]
            check = self._agreement(first, self.runs[0].weights)
        except torch.OutOfMemoryError as e:
            check = {"ok": None, "error": f"out of memory: {str(e).splitlines()[0]}"}
        finally:
            for m, p in dropouts:
                m.p = p
        self.model.zero_grad(set_to_none=True)
        if check.get("ok") is None and self.device.type == "cuda":
            torch.cuda.empty_cache()
        self.activate(self.current)
        return check

    def _agreement(self, batch: list[Example], weights: list[torch.Tensor]) -> dict[str, Any]:
        model, params = self.model, self.params
        results: dict[str, tuple[float, list[torch.Tensor]]] = {}
        for run in self.runs:
            for p, w in zip(params, weights, strict=True):
                p.data = w
            self._set_checkpointing(run.checkpointing)
            model.zero_grad(set_to_none=True)
            loss = float(run.loss(batch))
            results[run.name] = (loss, [p.grad.detach().clone() for p in params])
        reference = "naive" if "naive" in results else "previous"
        loss_ref, grads_ref = results[reference]
        scale = max(float(g.abs().max()) for g in grads_ref)
        # fp32: |loss diff| <= 1e-4; bf16 (CUDA) rounds differently per matmul shape: 2e-2 relative.
        # Gradients: the largest elementwise difference over the largest gradient entry.
        tol, grad_tol = (1e-4, 1e-3) if model.config.dtype == torch.float32 else (2e-2, 1e-1)
        out: dict[str, Any] = {
            "reference": reference,
            "loss": {name: loss for name, (loss, _) in results.items()},
            "loss_tolerance": tol,
            "grad_tolerance": grad_tol,
            "against_reference": {},
        }
        for name, (loss, grads) in results.items():
            if name == reference:
                continue
            grad_diff = max(float((a - b).abs().max()) for a, b in zip(grads, grads_ref, strict=True)) / scale
            out["against_reference"][name] = {
                "abs_diff": abs(loss - loss_ref),
                "rel_diff": abs(loss - loss_ref) / abs(loss_ref),
                "grad_max_rel_diff": grad_diff,
                "ok": abs(loss - loss_ref) <= tol * max(1.0, abs(loss_ref)) and grad_diff <= grad_tol,
            }
        out["ok"] = all(c["ok"] for c in out["against_reference"].values())
        return out
