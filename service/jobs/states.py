"""The job state machine: every status change goes through ``move`` (or ``check`` for a
compare-and-set UPDATE), and a change the table does not allow raises ``IllegalTransition``.

```
validating_files -> queued | failed | cancelled
queued           -> running | paused | cancelled
running          -> queued (attempt failed, retry) | pausing | succeeded | failed | cancelled
pausing          -> paused | succeeded | failed | cancelled
paused           -> queued (resume) | cancelled
succeeded, failed, cancelled: terminal
```
"""

from __future__ import annotations

from service.db.schema import Job
from service.protocol.fine_tuning import JobStatus

S = JobStatus
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    S.VALIDATING_FILES: frozenset({S.QUEUED, S.FAILED, S.CANCELLED}),
    S.QUEUED: frozenset({S.RUNNING, S.PAUSED, S.CANCELLED}),
    S.RUNNING: frozenset({S.QUEUED, S.PAUSING, S.SUCCEEDED, S.FAILED, S.CANCELLED}),
    S.PAUSING: frozenset({S.PAUSED, S.SUCCEEDED, S.FAILED, S.CANCELLED}),
    S.PAUSED: frozenset({S.QUEUED, S.CANCELLED}),
    S.SUCCEEDED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}
TERMINAL: frozenset[JobStatus] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)
ACTIVE: frozenset[JobStatus] = frozenset({S.RUNNING, S.PAUSING})  # a trainer attempt may be alive


class IllegalTransition(RuntimeError):
    """A bug: code tried a status change the state machine does not allow."""


def check(current: str, to: JobStatus) -> JobStatus:
    if to not in TRANSITIONS[JobStatus(current)]:
        raise IllegalTransition(f"a job cannot go from {current!r} to {to.value!r}")
    return to


def can_move(job: Job, to: JobStatus) -> bool:
    return to in TRANSITIONS[JobStatus(job.status)]


def move(job: Job, to: JobStatus) -> None:
    job.status = check(job.status, to).value
