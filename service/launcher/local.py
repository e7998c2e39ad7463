"""Runs each attempt as a local subprocess: ``python -m trainer --spec spec.json``, or under
``torchrun --nproc-per-node N`` for several processes (GPUs, or gloo on CPU).

The spec (it holds the attempt's report token) is written with mode 0600 next to the
attempt's log. A pid file lets a restarted control plane find attempts it did not start
itself: a live one is adopted (reported ``running``), a dead one reports ``missing``, which
the reconciler treats as a failed attempt and relaunches from the newest checkpoint.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Self

from contract.spec import ATTEMPT_EXIT_FILE, JobSpec
from service.catalog.catalog import TrainingResources
from service.launcher.base import AttemptState, Phase
from service.launcher.config import LocalLauncherConfig
from service.launcher.torchrun import trainer_command

if TYPE_CHECKING:
    from service.config import Settings

_TAIL_LINES = 20


@dataclass
class _Run:
    proc: subprocess.Popen[bytes]
    log: Path


class LocalLauncher:
    def __init__(
        self,
        runs_dir: Path,
        config: LocalLauncherConfig | None = None,
        *,
        gpus: bool = False,
        python: str = sys.executable,
        env: dict[str, str] | None = None,
        trainer_module: str = "trainer",
    ) -> None:
        self.runs_dir = runs_dir
        self.config = config or LocalLauncherConfig()
        self.gpus = gpus  # whether trainers here run on CUDA GPUs (then one process per GPU)
        self.python = python
        self.env = env or {}
        self.trainer_module = trainer_module  # the ``-m`` module each attempt runs
        self._runs: dict[tuple[str, int], _Run] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(settings.data_dir / "runs", settings.launcher.local, gpus=settings.accelerator == "cuda")

    def _dir(self, job_id: str, attempt: int) -> Path:
        return self.runs_dir / job_id / f"attempt-{attempt}"

    def nproc(self, resources: TrainingResources) -> int:
        if self.config.nproc_per_node is not None:
            return self.config.nproc_per_node
        return max(1, resources.gpus) if self.gpus else 1

    def start(self, spec: JobSpec, resources: TrainingResources) -> None:
        if resources.nodes > 1:
            raise ValueError(
                f"the local launcher runs attempts on this machine only; base model "
                f"{spec.base_model} asks for {resources.nodes} nodes"
            )
        key = (spec.job_id, spec.attempt)
        with self._lock:
            if key in self._runs:
                return
            d = self._dir(*key)
            (d / "work").mkdir(parents=True, exist_ok=True)
            spec_path = d / "spec.json"
            fd = os.open(spec_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(spec.model_dump_json())
            log = d / "trainer.log"
            with log.open("ab") as out:
                command = trainer_command(
                    self.python,
                    str(spec_path),
                    str(d / "work"),
                    nproc_per_node=self.nproc(resources),
                    trainer_module=self.trainer_module,
                )
                proc = subprocess.Popen(
                    command,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=d,
                    start_new_session=True,
                    env={**os.environ, **self.env, "HONE_ATTEMPT_DIR": str(d)},
                )
            (d / "pid").write_text(f"{proc.pid} {_start_time(proc.pid)}")
            self._runs[key] = _Run(proc, log)

    def poll(self, job_id: str, attempt: int) -> AttemptState:
        with self._lock:  # a start in progress finishes first: its attempt is not mistaken for a dead one
            run = self._runs.get((job_id, attempt))
        if run is None:
            return self._adopted(job_id, attempt)
        code = run.proc.poll()
        if code is None:
            return AttemptState("running")
        code = _recorded_exit(run.log.parent, code)
        # A killed trainer cannot clean up after itself: its copies of the data go now.
        shutil.rmtree(run.log.parent / "work", ignore_errors=True)
        if code == 0:
            return AttemptState("succeeded", 0)
        return AttemptState("failed", code, _tail(run.log))

    def cancel(self, job_id: str, attempt: int) -> None:
        run = self._runs.get((job_id, attempt))
        if run is not None and run.proc.poll() is not None:
            return  # ended: its process group id may already belong to someone else
        pid = run.proc.pid if run else self.pid(job_id, attempt)
        if pid is None:
            return
        _signal_group(pid, signal.SIGTERM)

        def kill() -> None:  # what SIGTERM did not end, and the data copies a killed trainer leaves
            _signal_group(pid, signal.SIGKILL)
            shutil.rmtree(self._dir(job_id, attempt) / "work", ignore_errors=True)

        timer = threading.Timer(self.config.kill_grace_s, kill)
        timer.daemon = True
        timer.start()

    def shutdown(self, stop_attempts: bool) -> None:
        """With ``stop_attempts``, stop every attempt this launcher started (SIGTERM, then SIGKILL
        after the grace period); their jobs resume from their newest checkpoints when the control
        plane is back. Otherwise they run on and a restarted control plane adopts them."""
        if not stop_attempts:
            return
        grace_s = self.config.kill_grace_s
        running = [r.proc for r in self._runs.values() if r.proc.poll() is None]
        for proc in running:
            _signal_group(proc.pid, signal.SIGTERM)
        for proc in running:
            try:
                proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)

    def pid(self, job_id: str, attempt: int) -> int | None:
        """The pid of the attempt's live process, from its pid file: the pid alone is not enough
        (the kernel reuses pids), so the process's start time must match the one recorded."""
        try:
            pid_text, _, started = (self._dir(job_id, attempt) / "pid").read_text().partition(" ")
            pid = int(pid_text)
        except (OSError, ValueError):
            return None
        stat = _stat(pid)
        if stat is None or stat[0] == "Z":  # gone, or a zombie: it has exited and only awaits reaping
            return None
        if started.strip() and stat[19] != started.strip():
            return None  # the pid now belongs to another process
        return pid

    def _adopted(self, job_id: str, attempt: int) -> AttemptState:
        if self.pid(job_id, attempt) is not None:
            return AttemptState("running")
        d = self._dir(job_id, attempt)
        if (d / "pid").exists():  # it was launched and has ended: its copies of the data go with it
            shutil.rmtree(d / "work", ignore_errors=True)
        log = d / "trainer.log"
        recorded = _recorded_exit(d, None)
        if recorded is not None:  # it ended on its own terms while no launcher watched it
            phase: Phase = "succeeded" if recorded == 0 else "failed"
            return AttemptState(phase, recorded, _tail(log) if recorded and log.exists() else "")
        return AttemptState("missing", detail=_tail(log) if log.exists() else "")


def _recorded_exit(attempt_dir: Path, fallback: int | None) -> int | None:
    """The exit code the trainer recorded (torchrun reports a worker's failure as its own 1)."""
    try:
        return int((attempt_dir / ATTEMPT_EXIT_FILE).read_text())
    except (OSError, ValueError):
        return fallback


def _stat(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (state first, start time at index 19), or None."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()
    except OSError:
        return None


def _start_time(pid: int) -> str:
    stat = _stat(pid)
    return stat[19] if stat else ""


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _tail(log: Path) -> str:
    with log.open("rb") as fh:
        lines = deque(fh, maxlen=_TAIL_LINES)
    return b"".join(lines).decode("utf-8", "replace").rstrip()
