"""Two control-plane processes on one PostgreSQL database and 50 queued jobs: the dispatchers
(FOR UPDATE SKIP LOCKED under an advisory lock) launch each job exactly once, and the
reconcilers (advisory lock per tick) never apply an attempt twice. Needs PostgreSQL
(HONE_TEST_POSTGRES, set by scripts/test.sh when one answers)."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from pathlib import Path

import pytest

from tests.harness.server import POSTGRES_ADMIN_URL, fresh_database_url

pytestmark = pytest.mark.skipif(not POSTGRES_ADMIN_URL, reason="needs PostgreSQL (HONE_TEST_POSTGRES)")


class RecordingLauncher:
    """A FAKE launcher: appends every start to a shared file (O_APPEND, one line per start) and
    reports each attempt as running; it starts no process."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def start(self, spec, resources) -> None:  # type: ignore[no-untyped-def]
        with open(self.path, "a") as fh:
            fh.write(json.dumps({"job": spec.job_id, "attempt": spec.attempt, "pid": os.getpid()}) + "\n")

    def poll(self, job_id: str, attempt: int):  # type: ignore[no-untyped-def]
        from service.launcher.base import AttemptState

        return AttemptState("running")

    def cancel(self, job_id: str, attempt: int) -> None:
        pass

    def shutdown(self, stop_attempts: bool) -> None:
        pass


def control_plane(db_url: str, data_dir: str, record: str, deadline: float) -> None:
    from service.app import build_context
    from service.catalog.catalog import BaseModelEntry, Catalog
    from service.config import Settings
    from service.scheduling.dispatcher import Dispatcher
    from service.scheduling.reconciler import Reconciler

    settings = Settings(data_dir=Path(data_dir), database_url=db_url, max_running_jobs=100, launcher="none")
    launcher = RecordingLauncher(Path(record))
    ctx = build_context(settings, launcher, Catalog([BaseModelEntry(name="hone-tiny", source="/nonexistent")]))
    dispatcher = Dispatcher(ctx.db, ctx.store, ctx.catalog, launcher, settings)
    reconciler = Reconciler(ctx.db, launcher, settings)
    while time.time() < deadline:
        dispatcher.run_once()
        reconciler.run_once()


def test_fifty_jobs_launched_exactly_once(tmp_path: Path) -> None:
    from service import auth
    from service.db.schema import Job
    from service.db.session import Database

    db_url = fresh_database_url(tmp_path)
    assert db_url is not None
    db = Database(db_url)
    db.migrate()
    with db.session() as s:
        project = auth.get_or_create_project(s, "acme")
        for i in range(50):
            s.add(
                Job(
                    id=f"ftjob-two{i:021d}",
                    project_id=project.id,
                    project_name=project.name,
                    model="hone-tiny",
                    base_model="hone-tiny",
                    training_file="file-x",
                    method_type="supervised",
                    hyperparameters={"n_epochs": 1, "batch_size": 1, "learning_rate_multiplier": 1.0},
                    seed=1,
                    status="queued",
                    planned_model=f"ft:hone-tiny:acme::Two{i:05d}",
                    result_files=[],
                    created_at=0,
                )
            )
    record = tmp_path / "launches.jsonl"
    record.touch()
    ctx = mp.get_context("spawn")
    deadline = time.time() + 8
    procs = [
        ctx.Process(target=control_plane, args=(db_url, str(tmp_path / f"cp{i}"), str(record), deadline))
        for i in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    launches = [json.loads(line) for line in record.read_text().splitlines()]
    jobs = [entry["job"] for entry in launches]
    assert sorted(jobs) == sorted(f"ftjob-two{i:021d}" for i in range(50))  # every job once, none twice
    assert {entry["attempt"] for entry in launches} == {1}
    with db.session() as s:
        rows = s.query(Job).all()
        assert all(r.status == "running" and r.attempt == 1 and r.active_attempt == 1 for r in rows)
    db.dispose()
