"""Two control-plane processes on one PostgreSQL database and 50 queued jobs: the dispatchers
(FOR UPDATE SKIP LOCKED under an advisory lock) launch each job exactly once, and the
reconcilers (advisory lock per tick) never apply an attempt twice. Needs PostgreSQL
(HONE_TEST_POSTGRES, set by scripts/test.sh when one answers)."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from collections import Counter
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


def control_plane(db_url: str, data_dir: str, record: str, run_s: float) -> None:
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
    deadline = time.time() + run_s  # from here: starting a spawned process may take long on a busy machine
    while time.time() < deadline:
        dispatcher.run_once()
        reconciler.run_once()


def test_fifty_jobs_launched_exactly_once(tmp_path: Path) -> None:
    from service import auth
    from service.db.schema import Job
    from service.db.session import Database
    from tests.harness.records import job_row

    db_url = fresh_database_url(tmp_path)
    assert db_url is not None
    db = Database(db_url)
    db.migrate()
    with db.session() as s:
        project = auth.get_or_create_project(s, "acme")
        for i in range(50):
            s.add(job_row(project, f"ftjob-two{i:021d}", "queued", f"ft:hone-tiny:acme::Two{i:05d}", created_at=0))
    record = tmp_path / "launches.jsonl"
    record.touch()
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=control_plane, args=(db_url, str(tmp_path / f"cp{i}"), str(record), 8.0)) for i in range(2)
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


def api_process(db_url: str, data_dir: str, storage_url: str, record: str, port: int, model_dir: str) -> None:
    """A whole API process (uvicorn, every loop) with the recording launcher."""
    import uvicorn

    from service.app import create_app
    from service.catalog.catalog import BaseModelEntry, Catalog
    from service.config import Settings

    settings = Settings(
        data_dir=Path(data_dir),
        database_url=db_url,
        storage_url=storage_url,
        port=port,
        max_running_jobs=1000,
        loop_interval_s=0.2,
    )
    app = create_app(
        settings,
        launcher=RecordingLauncher(Path(record)),
        catalog=Catalog([BaseModelEntry(name="hone-tiny", source=model_dir)]),
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def test_200_concurrent_creates_with_replayed_keys_on_two_api_processes(tmp_path: Path, tiny_model_dir: Path) -> None:
    """Two API processes with all their loops on one PostgreSQL database; 200 job creates sent
    at once, alternating between them, 100 of them carrying an Idempotency-Key that is sent to
    both processes at the same moment: 200 jobs exist, each replay returned its original's job,
    and every job is validated and launched exactly once."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from service import auth
    from service.db.session import Database
    from tests.harness.jobs import jsonl
    from tests.harness.ports import free_port
    from tests.harness.waiting import wait_until

    db_url = fresh_database_url(tmp_path)
    assert db_url is not None
    db = Database(db_url)
    db.migrate()
    with db.session() as s:
        key = auth.create_api_key(s, auth.get_or_create_project(s, "acme"))
    record = tmp_path / "launches.jsonl"
    record.touch()
    storage_url = (tmp_path / "blobs").resolve().as_uri()
    ports = [free_port(), free_port()]
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(
            target=api_process,
            args=(db_url, str(tmp_path / f"api{i}"), storage_url, str(record), port, str(tiny_model_dir)),
            daemon=True,
        )
        for i, port in enumerate(ports)
    ]
    for p in procs:
        p.start()
    urls = [f"http://127.0.0.1:{port}/v1" for port in ports]
    headers = {"Authorization": f"Bearer {key}"}
    try:

        def answers(url: str) -> bool:
            try:
                return httpx.get(url + "/models", headers=headers, timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        for url in urls:
            wait_until(lambda url=url: answers(url), f"the API process at {url}", 60, 0.2)
        rows = [
            {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
            for i in range(10)
        ]
        file_id = httpx.post(
            urls[0] + "/files",
            headers=headers,
            timeout=30,
            files={"file": ("t.jsonl", jsonl(rows)), "purpose": (None, b"fine-tune")},
        ).json()["id"]
        body = {"model": "hone-tiny", "training_file": file_id}
        sends = [(urls[i % 2], None) for i in range(100)]  # 100 plain creates
        sends += [(url, f"key-{i}") for i in range(100) for url in urls]  # 100 keyed, each sent to both
        with httpx.Client(timeout=60) as http, ThreadPoolExecutor(32) as pool:
            results = list(
                pool.map(
                    lambda s: (
                        s[1],
                        http.post(
                            s[0] + "/fine_tuning/jobs",
                            json=body,
                            headers={**headers, **({"Idempotency-Key": s[1]} if s[1] else {})},
                        ),
                    ),
                    sends,
                )
            )
        statuses = Counter(r.status_code for _, r in results)
        replays: dict[str, set[str]] = {}
        for k, r in results:
            if k and r.status_code == 200:
                replays.setdefault(k, set()).add(r.json()["id"])
        # A keyed request racing its twin either replays it or is told to retry (409, in progress).
        assert set(statuses) <= {200, 409}, statuses
        assert all(len(ids) == 1 for ids in replays.values())
        with db.session() as s:
            from service.db.schema import Job

            jobs = {j.id: j.status for j in s.query(Job).all()}
        assert len(jobs) == 100 + len(replays) and len(replays) == 100, (len(jobs), len(replays))

        def launches() -> Counter[str]:
            return Counter(json.loads(line)["job"] for line in record.read_text().splitlines())

        wait_until(lambda: len(launches()) >= len(jobs), "every job's launch", 180, 0.5)
        launched = launches()
        assert set(launched) == set(jobs) and set(launched.values()) == {1}  # every job once, none twice
        print(f"\n[races] 300 creates ({dict(statuses)}) on two API processes: {len(jobs)} jobs, each launched once")
    finally:
        for p in procs:
            p.terminate()
            p.join(30)
        db.dispose()
