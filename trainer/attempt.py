"""One training attempt's plumbing, shared by the recipes: inputs, step accounting,
reporting, checkpoints, pause/cancel, and the final adapter. Recipes own the model and the
loss; this owns everything around them."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import shutil
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from contract.blobstore import BlobStore, open_blobstore, write_bytes
from contract.layout import JobLayout
from contract.manifest import Manifest, download_dir, upload_dir
from contract.spec import JobSpec
from trainer import checkpoint as ckpt
from trainer import distributed
from trainer import model as models
from trainer import plan as plans
from trainer.report import Reporter

log = logging.getLogger(__name__)
CSV_HEADER = ["step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy"]


class Stop(Exception):
    """Leave the training loop now: ``reason`` is "pause" or "cancel"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Progress:
    step: int = 0
    trained_tokens: int = 0
    rows: list[list[Any]] = field(default_factory=list)  # result CSV rows so far


class Attempt:
    def __init__(self, spec: JobSpec, workdir: Path, reporter: Reporter | None = None) -> None:
        self.spec = spec
        self.hp = spec.hyperparameters
        self.workdir = workdir
        self.store: BlobStore = open_blobstore(spec.storage_url)
        self.layout = JobLayout(self.store.key_from_uri(spec.output_uri))
        self.reporter = reporter or Reporter(spec.report_url, spec.report_token)
        self.device = models.pick_device()
        if self.device.type == "cpu":
            models.limit_heap_growth()
        self.progress = Progress()
        self.total_steps = 0
        self.rank = int(os.environ.get("RANK", "0"))
        self._started = time.monotonic()
        self._start_step = 0
        self._signal: str | None = None
        signal.signal(signal.SIGTERM, self._on_term)
        if self.is_main and reporter is None:
            self.reporter.start_heartbeat(spec.heartbeat_s)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return distributed.active()

    def _on_term(self, *_: Any) -> None:
        self._signal = "preempted"  # a node drain, an eviction, Ctrl-C: checkpoint, then stop

    # inputs
    def fetch(self, uri: str, name: str) -> Path:
        path = self.workdir / name
        key = self.store.key_from_uri(uri)
        with path.open("wb") as fh:
            for chunk in self.store.read(key):
                fh.write(chunk)
        return path

    def fetch_dir(self, uri: str, name: str) -> Path:
        """A checkpoint or adapter directory, every file checked against its manifest."""
        local = self.workdir / name
        download_dir(self.store, self.store.key_from_uri(uri), local)
        return local

    def learning_rate(self) -> float:
        return models.BASE_LEARNING_RATE[self.hp.training_type] * float(self.hp.learning_rate_multiplier)

    def scheduler(self, optimizer: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
        warmup = max(1, int(total_steps * self.hp.warmup_ratio))

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    def plan(self, lengths: Iterable[int]) -> plans.Plan:
        """The memory plan for this job on this device, reported as an event before the model is
        loaded; ``plans.DoesNotFit`` if the job cannot fit."""
        index = self.device.index or 0
        device = plans.Device(
            kind=self.device.type,
            count=int(os.environ.get("WORLD_SIZE", "1")),
            memory=plans.device_memory(self.device.type, index),
            dtype_bytes=models.training_dtype(self.device).itemsize,
            varlen_attention=models.attention_kernel(self.device).startswith("flash"),
        )
        shape = plans.Shape.from_source(self.spec.base_model_source)
        plan = plans.make_plan(shape, self.hp, device, max(lengths, default=0))
        log.info("%s", plan.message())
        if self.is_main:
            self.reporter.event(f"plan-a{self.spec.attempt}", plan.message(), flush=True)
        return plan

    # lifecycle
    def begin(
        self,
        total_steps: int,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LambdaLR,
    ) -> int:
        """Restore from ``resume_uri`` if there is one; report the start; return the step to
        continue from."""
        self.total_steps = total_steps
        resume_uri = self.resume_uri()
        if resume_uri:
            local = self.fetch_dir(resume_uri, "resume")
            models.load_weights(model, local)
            distributed.load_optimizer_state(model, optimizer, ckpt.load_optimizer(local))
            scheduler.load_state_dict(json.loads((local / "scheduler.json").read_text()))
            state = json.loads((local / "progress.json").read_text())
            self.progress = Progress(state["step"], state["trained_tokens"], state["rows"])
            ckpt.load_rng(local)
            self._start_step = self.progress.step
            if self.is_main:
                self.reporter.event(
                    f"resume-a{self.spec.attempt}",
                    f"Resuming from the checkpoint at step {self.progress.step} (attempt {self.spec.attempt})",
                    flush=True,
                )
        elif self.is_main:
            self.reporter.event("started", "Fine-tuning job started", flush=True)
        return self.progress.step

    def resume_uri(self) -> str | None:
        """The newest complete checkpoint, asked of the control plane at start: a replaced pod
        re-runs the spec it was launched with, whose ``resume_uri`` predates the checkpoint the
        evicted pod wrote on its way out (resuming from the older one would redo those steps and
        write their checkpoints a second time). Rank 0 asks; every rank resumes from its answer."""
        uri = self.spec.resume_uri
        if self.is_main:
            uri = self.reporter.resume_point() or uri
        return distributed.from_main(uri)

    def after_step(
        self,
        step: int,
        loss: float,
        accuracy: float,
        tokens: int,
        valid: tuple[float, float] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Record step ``step`` (1-based); raise ``Stop`` on every rank if the control plane
        asks (or SIGTERM arrived)."""
        self.progress.step = step
        self.progress.trained_tokens += tokens
        self.progress.rows.append(
            [
                step,
                round(loss, 5),
                round(accuracy, 5),
                "" if valid is None else round(valid[0], 5),
                "" if valid is None else round(valid[1], 5),
            ]
        )
        stop: str | None = None
        if self.is_main:
            data = {
                "step": step,
                "train_loss": loss,
                "train_mean_token_accuracy": accuracy,
                "total_steps": self.total_steps,
                **(extra or {}),
            }
            text = f"Step {step}/{self.total_steps}: training loss={loss:.2f}"
            if valid is not None:
                data.update(
                    valid_loss=valid[0],
                    valid_mean_token_accuracy=valid[1],
                    full_valid_loss=valid[0],
                    full_valid_mean_token_accuracy=valid[1],
                )
                text += f", validation loss={valid[0]:.2f}"
            action = self.reporter.event(
                f"metrics-step-{step}", text, type="metrics", data=data, flush=step == self.total_steps
            )
            self._maybe_progress()
            stop = self._signal or (action if action in ("pause", "cancel") else None)
        stop = _agree(stop)
        if stop:
            raise Stop(stop)

    def _maybe_progress(self) -> None:
        done = self.progress.step - self._start_step
        if done <= 0 or self.reporter.pending:
            return
        per_step = (time.monotonic() - self._started) / done
        eta = int(time.time() + per_step * (self.total_steps - self.progress.step))
        self.reporter.post("/progress", {"trained_tokens": self.progress.trained_tokens, "estimated_finish": eta})

    def should_checkpoint(self, step: int, steps_per_epoch: int) -> bool:
        interval = self.hp.checkpoint_interval
        if step == self.total_steps:
            return False  # the final adapter is the last checkpoint
        if interval == "epoch":
            return step % steps_per_epoch == 0
        return int(interval) > 0 and step % int(interval) == 0

    def checkpoint(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LambdaLR,
        metrics: dict[str, float],
    ) -> None:
        weights = distributed.full_state_dict(model)  # collectives: every rank takes part
        optimizer_state = distributed.optimizer_state(model, optimizer)
        if not self.is_main:
            return
        step = self.progress.step
        local = self.workdir / f"ckpt-{step}"
        shutil.rmtree(local, ignore_errors=True)
        local.mkdir(parents=True)
        models.save_weights(_unwrap(model), local, weights)
        ckpt.save_optimizer(optimizer_state, local)
        ckpt.save_rng(local)
        (local / "scheduler.json").write_text(json.dumps(scheduler.state_dict()))
        (local / "progress.json").write_text(
            json.dumps({"step": step, "trained_tokens": self.progress.trained_tokens, "rows": self.progress.rows})
        )
        uri = upload_dir(self.store, local, self.layout.checkpoint(step), self._manifest(step))
        shutil.rmtree(local, ignore_errors=True)
        self.reporter.flush()
        self.reporter.post(
            "/checkpoints",
            {"id": f"ckpt-step-{step}", "step_number": step, "metrics": {"step": step, **metrics}, "uri": uri},
        )

    def finish(self, model: torch.nn.Module) -> None:
        trainable = [p for p in model.parameters() if p.requires_grad]
        log.info("final trainable weights checksum %.12e", distributed.checksum(trainable))  # ranks agree
        weights = distributed.full_state_dict(model)
        if not self.is_main:
            return
        local = self.workdir / "final"
        local.mkdir(parents=True, exist_ok=True)
        models.save_weights(_unwrap(model), local, weights)
        uri = upload_dir(self.store, local, self.layout.final, self._manifest(self.progress.step))
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        writer.writerows(self.progress.rows)
        write_bytes(self.store, self.layout.result_csv, buf.getvalue().encode())
        self.reporter.flush()
        self.reporter.post(
            "/complete",
            {
                "adapter_uri": uri,
                "trained_tokens": self.progress.trained_tokens,
                "result_file_uri": self.store.uri(self.layout.result_csv),
            },
        )

    def _manifest(self, step: int) -> Manifest:
        hp, lora = self.hp, self.hp.training_type != "full"
        return Manifest(
            model_name=self.spec.fine_tuned_model,
            base_model=self.spec.base_model,
            job_id=self.spec.job_id,
            step=step,
            training_type=hp.training_type,
            rank=hp.lora_rank if lora else None,
            target_modules=hp.target_modules if lora else None,
        )


def steps_for(n_examples: int, batch_size: int, n_epochs: int) -> tuple[int, int]:
    per_epoch = math.ceil(n_examples / batch_size)
    return per_epoch, per_epoch * n_epochs


_STOPS = (None, "pause", "cancel", "preempted")
CHECKPOINT_ON_STOP = ("pause", "preempted")  # stops that resume later: a checkpoint first


def _agree(stop: str | None) -> str | None:
    """Rank 0 decides; every rank of a distributed run learns the decision."""
    if not distributed.active():
        return stop
    device = "cuda" if torch.distributed.get_backend() == "nccl" else "cpu"
    flag = torch.tensor([_STOPS.index(stop)], device=device)
    torch.distributed.broadcast(flag, src=0)
    return _STOPS[int(flag)]


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "module", model)
