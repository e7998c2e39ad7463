"""The launcher protocol: how the control plane runs trainer attempts, whatever runs them.

Every backend (``service/launcher/registry.py``) passes the conformance suite in
``tests/contract/test_launcher_conformance.py``: ``start`` is idempotent per attempt, ``poll``
reaches a terminal phase, ``cancel`` after the end is a no-op, and an attempt the backend has
never seen is ``missing``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from contract.spec import JobSpec
from service.catalog.catalog import TrainingResources

Phase = Literal["pending", "running", "succeeded", "failed", "missing"]
TERMINAL_PHASES: frozenset[Phase] = frozenset({"succeeded", "failed", "missing"})


@dataclass(frozen=True)
class AttemptState:
    """The launcher's truth about one attempt. ``pending``: it exists but waits to be admitted
    (a suspended Kubernetes Job that Kueue has not admitted): nothing of it runs yet, and the job
    shows as ``queued``. ``missing``: the launcher has no record of it (e.g. the process that ran
    it is gone); the reconciler treats that as a failed attempt."""

    phase: Phase
    exit_code: int | None = None
    detail: str = ""  # e.g. the last lines of the trainer's log

    @property
    def alive(self) -> bool:
        """Not ended: it runs, or waits to run (and can still be cancelled)."""
        return self.phase in ("pending", "running")


class Launcher(Protocol):
    def start(self, spec: JobSpec, resources: TrainingResources) -> None:
        """Start attempt ``spec.attempt`` of ``spec.job_id`` with the base model's resources.
        Idempotent per attempt: a second call for the same attempt starts nothing."""

    def poll(self, job_id: str, attempt: int) -> AttemptState:
        """Report the attempt's state without blocking."""

    def cancel(self, job_id: str, attempt: int) -> None:
        """Stop the attempt promptly; a no-op if it has already ended or never existed."""

    def shutdown(self, stop_attempts: bool) -> None:
        """Release what the launcher holds (threads, clients) when the control plane stops; with
        ``stop_attempts``, also stop the attempts it runs (``hone up``), which then resume from
        their newest checkpoints at the next start."""
