"""The job state machine: the table covers every status, terminal states have no way out, an
illegal change raises, and no module but ``service/jobs/states.py`` assigns a job's status."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from service.jobs import states
from service.protocol.fine_tuning import JobStatus

ROOT = Path(__file__).resolve().parents[2]


def test_every_status_has_a_row_and_terminal_ones_are_final() -> None:
    assert set(states.TRANSITIONS) == set(JobStatus)
    assert states.TERMINAL == {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}
    for status, targets in states.TRANSITIONS.items():
        assert status not in targets, status  # no self-loops: a no-op is not a transition
    assert all(JobStatus.CANCELLED in states.TRANSITIONS[s] for s in set(JobStatus) - states.TERMINAL)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (JobStatus.VALIDATING_FILES, JobStatus.QUEUED),
        (JobStatus.QUEUED, JobStatus.RUNNING),
        (JobStatus.RUNNING, JobStatus.PAUSING),
        (JobStatus.PAUSING, JobStatus.PAUSED),
        (JobStatus.PAUSED, JobStatus.QUEUED),
        (JobStatus.RUNNING, JobStatus.QUEUED),
        (JobStatus.PAUSING, JobStatus.SUCCEEDED),
    ],
)
def test_legal_moves(current: JobStatus, target: JobStatus) -> None:
    job = SimpleNamespace(status=current.value)
    states.move(job, target)  # type: ignore[arg-type]
    assert job.status == target.value


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (JobStatus.SUCCEEDED, JobStatus.RUNNING),
        (JobStatus.CANCELLED, JobStatus.QUEUED),
        (JobStatus.FAILED, JobStatus.SUCCEEDED),
        (JobStatus.VALIDATING_FILES, JobStatus.RUNNING),
        (JobStatus.PAUSED, JobStatus.RUNNING),
        (JobStatus.QUEUED, JobStatus.SUCCEEDED),
    ],
)
def test_illegal_moves_raise_and_change_nothing(current: JobStatus, target: JobStatus) -> None:
    job = SimpleNamespace(status=current.value)
    with pytest.raises(states.IllegalTransition, match=f"from '{current.value}' to '{target.value}'"):
        states.move(job, target)  # type: ignore[arg-type]
    assert job.status == current.value


def test_only_the_state_machine_assigns_a_job_status() -> None:
    assignment = re.compile(r"\.status\s*=[^=]|\bstatus=")
    allowed = (
        "status=JobStatus.VALIDATING_FILES.value",  # a new job's first status
        "status=running.value",  # the dispatcher's compare-and-set, checked by states.check
        "status=JobStatus(job.status)",  # reading it onto the wire
        "status_code=",
        "status=status",
    )
    # Packages whose ``status`` is another resource's (a file's, an upload's, a project's, an eval run's).
    other_statuses = {"migrations", "files", "uploads", "admin", "evals"}
    offenders = []
    for path in (ROOT / "service").rglob("*.py"):
        if path.name == "states.py" or other_statuses & set(path.parts):
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if assignment.search(line) and not any(a in line for a in allowed):
                offenders.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert offenders == []
