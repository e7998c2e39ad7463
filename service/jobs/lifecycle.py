"""State transitions driven by the background loops and the trainer's reports.

Every transition is a compare-and-set on ``status`` (and the attempt number), so two
control-plane replicas, a late report from a dead attempt, or a user's cancel racing the
trainer can never move a job backwards or launch it twice.
"""

from __future__ import annotations

import re
import secrets
import time

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from contract.methods import METHODS
from contract.spec import EXIT_BAD_INPUT, EXIT_FATAL, EXIT_PREEMPTED
from service.auth import hash_secret
from service.db.schema import Checkpoint, Job
from service.jobs import events, states
from service.launcher.base import AttemptState
from service.protocol.fine_tuning import JobStatus


def job_by_id(session: Session, job_id: str, *, for_update: bool = False) -> Job | None:
    stmt = select(Job).where(Job.id == job_id)
    return session.scalar(stmt.with_for_update() if for_update else stmt)


def claim_validation(session: Session, job_id: str, owner: str, lease_s: float) -> bool:
    now = time.time()
    res = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.status == JobStatus.VALIDATING_FILES,
            or_(Job.lease_until.is_(None), Job.lease_until < now),
        )
        .values(lease_owner=owner, lease_until=now + lease_s)
    )
    return res.rowcount == 1  # type: ignore[attr-defined]


def renew_validation(session: Session, job_id: str, owner: str, lease_s: float) -> bool:
    """Extend ``owner``'s lease; False when it no longer holds it (it expired and another
    replica claimed the job, or the job left validation)."""
    res = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.VALIDATING_FILES, Job.lease_owner == owner)
        .values(lease_until=time.time() + lease_s)
    )
    return res.rowcount == 1  # type: ignore[attr-defined]


def _holds_validation(job: Job | None, owner: str) -> bool:
    return job is not None and job.status == JobStatus.VALIDATING_FILES and job.lease_owner == owner


def validation_passed(session: Session, job_id: str, owner: str, n_examples: int, n_tokens: int) -> bool:
    job = job_by_id(session, job_id, for_update=True)
    if job is None or not _holds_validation(job, owner):
        return False  # cancelled, or the lease was lost to another replica: its verdict counts
    try:
        hp = METHODS.get(job.method_type).hyperparameters.model_validate(job.hyperparameters)
    except ValueError as e:  # stored by an older server with wider bounds: fail it, never loop on it
        fail(
            session,
            job,
            "invalid_hyperparameters",
            f"The job's hyperparameters are not valid: {first_error(e)}",
            "hyperparameters",
        )
        return False
    job.hyperparameters = hp.resolve(n_examples).model_dump()
    job.n_examples, job.n_tokens = n_examples, n_tokens
    states.move(job, JobStatus.QUEUED)
    job.lease_owner = job.lease_until = None
    events.add(session, job.id, "Files validated, moving job to queued state")
    return True


def first_error(e: Exception) -> str:
    """The first thing wrong, in one line (a pydantic error's message, else the first line)."""
    errors = getattr(e, "errors", None)
    if callable(errors) and errors():
        return str(errors()[0].get("msg", e))[:300]
    return (str(e).splitlines() or [type(e).__name__])[0][:300]


def fail(session: Session, job: Job, code: str, message: str, param: str | None = None) -> None:
    states.move(job, JobStatus.FAILED)
    job.error = {"code": code, "message": message, "param": param}
    job.finished_at = int(time.time())
    job.estimated_finish = None
    job.lease_owner = job.lease_until = None
    events.add(session, job.id, message, level="error")


def validation_failed(session: Session, job_id: str, owner: str, code: str, message: str, param: str) -> bool:
    job = job_by_id(session, job_id, for_update=True)
    if job is None or not _holds_validation(job, owner):
        return False
    fail(session, job, code, message, param)
    return True


def claim_launch(session: Session, job_id: str) -> tuple[Job, str] | None:
    """queued -> running with a new attempt number and a fresh report token (not for a job whose
    attempt exists and waits to be admitted: it is queued with an active attempt)."""
    job = job_by_id(session, job_id, for_update=True)
    if job is None or job.status != JobStatus.QUEUED or job.active_attempt is not None:
        return None
    token = secrets.token_urlsafe(32)
    running = states.check(job.status, JobStatus.RUNNING)
    res = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.status == JobStatus.QUEUED,
            Job.attempt == job.attempt,
            Job.active_attempt.is_(None),
        )
        .values(
            last_report_at=None,  # set by the attempt's first report; a pending pod is not silent
            status=running.value,
            attempt=job.attempt + 1,
            active_attempt=job.attempt + 1,
            attempt_claimed_at=time.time(),
            report_token_hash=hash_secret(token),
        )
    )
    if res.rowcount != 1:  # type: ignore[attr-defined]
        return None
    session.refresh(job)
    return job, token


def attempt_waiting(session: Session, job: Job) -> bool:
    """running -> queued while the active attempt waits to be admitted (a suspended Kubernetes Job:
    Kueue has not admitted it, or preempted it). True if the job moved."""
    if job.status != JobStatus.RUNNING:
        return False
    states.move(job, JobStatus.QUEUED)
    job.last_report_at = None  # a wait is not silence: the heartbeat clock starts with the next report
    events.add(session, job.id, f"Training attempt {job.active_attempt} is waiting for the cluster to admit it")
    return True


def attempt_admitted(session: Session, job: Job) -> bool:
    """queued -> running once the job's active attempt runs (admitted, or reporting already)."""
    if job.status != JobStatus.QUEUED or job.active_attempt is None:
        return False
    states.move(job, JobStatus.RUNNING)
    events.add(session, job.id, f"Training attempt {job.active_attempt} was admitted and is starting")
    return True


def attempt_ended(session: Session, job: Job, state: AttemptState, max_attempts: int) -> None:
    """Apply the end of the job's active attempt as the launcher reports it (also of one that
    ended while it waited to be admitted)."""
    if job.status == JobStatus.QUEUED and job.active_attempt is not None:
        states.move(job, JobStatus.RUNNING)  # its end is decided as a running attempt's
    attempt = job.active_attempt
    job.active_attempt = None
    if job.status == JobStatus.PAUSING:
        states.move(job, JobStatus.PAUSED)
        events.add(session, job.id, "Fine-tuning job paused")
        return
    if job.status != JobStatus.RUNNING:
        return  # cancelled / succeeded / failed already: nothing left to decide
    if state.phase == "succeeded":
        fail(session, job, "training_failed", "The trainer exited without reporting a result." + _tail(state))
        return
    how = (
        "was lost"
        if state.phase == "missing"
        else f"exited with code {state.exit_code}"
        if state.exit_code is not None
        else "was stopped"
    )
    if state.exit_code == EXIT_BAD_INPUT:
        fail(session, job, "invalid_training_data", "The trainer could not use the training data." + _tail(state))
        return
    if state.exit_code == EXIT_FATAL:
        fail(
            session,
            job,
            "training_failed",
            "Training failed with an error another attempt would repeat." + _tail(state),
        )
        return
    if state.exit_code == EXIT_PREEMPTED:  # a drained node, an eviction, hone up's Ctrl-C: no failure
        states.move(job, JobStatus.QUEUED)
        events.add(
            session, job.id, f"Training attempt {attempt} was stopped by its host after a checkpoint; resuming from it"
        )
        return
    job.failed_attempts += 1  # only failures count: a pause ends an attempt too, and is none
    if job.failed_attempts < max_attempts:
        states.move(job, JobStatus.QUEUED)
        events.add(
            session,
            job.id,
            f"Training attempt {attempt} {how}; restarting from the newest checkpoint "
            f"({job.failed_attempts} of {max_attempts} allowed failures).{_tail(state)}",
            level="warn",
        )
        return
    fail(
        session,
        job,
        "training_failed",
        f"Training failed after {max_attempts} failed attempts: the last attempt {how}." + _tail(state),
    )


_ERROR_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b")


def _tail(state: AttemptState) -> str:
    """The attempt's last error in one line (its log has the traceback): the last line of the
    log tail that names an exception, else its last line."""
    lines = [line.strip() for line in state.detail.splitlines() if line.strip()]
    if not lines:
        return ""
    line = next((x for x in reversed(lines) if _ERROR_LINE.match(x)), lines[-1])
    return f" Last error: {line if len(line) <= 500 else line[:497] + '...'}"


def next_action(job: Job) -> str:
    if job.status == JobStatus.PAUSING:
        return "pause"
    if job.status == JobStatus.RUNNING:
        return "continue"
    return "cancel"


def newest_checkpoint_uri(session: Session, job_id: str) -> str | None:
    """Where the job's newest complete checkpoint is (a trainer resumes from it)."""
    return session.scalar(
        select(Checkpoint.uri)
        .where(Checkpoint.job_id == job_id)
        .order_by(Checkpoint.step_number.desc(), Checkpoint.seq.desc())
        .limit(1)
    )


def report_allowed(job: Job, token: str) -> bool:
    return (
        job.report_token_hash is not None
        and job.active_attempt is not None
        and secrets.compare_digest(job.report_token_hash, hash_secret(token))
    )


def set_progress(job: Job, *, trained_tokens: int | None, estimated_finish: int | None) -> None:
    if trained_tokens is not None:
        job.trained_tokens = trained_tokens
    if estimated_finish is not None:
        job.estimated_finish = estimated_finish


def active_jobs(session: Session) -> list[Job]:
    return list(session.scalars(select(Job).where(Job.active_attempt.is_not(None))))
