from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from trainer.spec import JobSpec

Phase = Literal["running", "succeeded", "failed", "missing"]


@dataclass(frozen=True)
class AttemptState:
    """The launcher's truth about one attempt. ``missing``: the launcher has no record of it
    (e.g. the process that ran it is gone); the reconciler treats that as a failed attempt."""

    phase: Phase
    exit_code: int | None = None
    detail: str = ""  # e.g. the last lines of the trainer's log

    @property
    def alive(self) -> bool:
        return self.phase == "running"


class Launcher(Protocol):
    def start(self, spec: JobSpec) -> None:
        """Start attempt ``spec.attempt`` of ``spec.job_id``. Must be idempotent per attempt."""

    def poll(self, job_id: str, attempt: int) -> AttemptState:
        """Report the attempt's state without blocking."""

    def cancel(self, job_id: str, attempt: int) -> None:
        """Stop the attempt promptly; a no-op if it has already ended."""
