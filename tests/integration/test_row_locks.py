"""``SELECT ... FOR UPDATE`` serialises read-then-write units of work on the real database, SQLite
as well as PostgreSQL: a user's cancel that lands while the validator is passing the same job is
applied after the validator's commit, never silently undone by it.

On SQLite the clause is dropped by SQLAlchemy's compiler; hone's engine takes the write lock
(``BEGIN IMMEDIATE``) for such a select instead. Before that, the validator's ``queued`` overwrote
the committed ``cancelled`` and the job went on to train."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import select

from service import auth, ids
from service.db.schema import JobEvent
from service.db.session import Database
from service.jobs import lifecycle
from service.jobs import service as jobs
from tests.harness.records import job_row
from tests.harness.server import fresh_database_url

OWNER = "validator-test"


def _validating_job(db: Database) -> str:
    with db.session() as s:
        project = auth.get_or_create_project(s, "acme")
        job_id = ids.job_id()
        s.add(job_row(project, job_id, "validating_files", f"ft:hone-tiny:acme::{ids.model_short_id()}"))
        s.flush()
        assert lifecycle.claim_validation(s, job_id, OWNER, 60.0)
    return job_id


def test_a_cancel_during_the_validators_verdict_is_applied_after_it_not_lost(tmp_path: Path) -> None:
    db = Database(fresh_database_url(tmp_path) or f"sqlite:///{tmp_path / 'hone.db'}")
    db.migrate()
    try:
        job_id = _validating_job(db)
        validator_read = threading.Event()
        cancel_committed = threading.Event()
        passed: list[bool] = []

        def validator() -> None:
            with db.session() as s:  # the verdict: read the job, move it to queued, commit
                passed.append(lifecycle.validation_passed(s, job_id, OWNER, n_examples=10, n_tokens=100))
                validator_read.set()
                # Between the read and the commit: without a lock the cancel commits here (and
                # this commit then overwrites it); with one, the cancel waits for this commit.
                cancel_committed.wait(2.0)

        thread = threading.Thread(target=validator)
        thread.start()
        assert validator_read.wait(30)
        with db.session() as s:
            project = auth.get_or_create_project(s, "acme")
            jobs.cancel(s, project, job_id)
        cancel_committed.set()
        thread.join(60)

        assert passed == [True]  # the validator saw the job still validating: its verdict came first
        with db.session() as s:
            job = lifecycle.job_by_id(s, job_id)
            assert job is not None and job.status == "cancelled", job.status if job else None
            messages = list(s.scalars(select(JobEvent.message).where(JobEvent.job_id == job_id).order_by(JobEvent.seq)))
        assert messages == ["Files validated, moving job to queued state", "The job was cancelled"]
    finally:
        db.dispose()
