"""The local launcher's record of an attempt survives a control-plane restart without trusting
a bare pid: after pid reuse, a dead attempt is not adopted as running and cancel does not signal
the unrelated process now holding its pid. A dead adopted attempt's work dir is removed."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from service.launcher.local import LocalLauncher


def _attempt_dir(runs: Path, job_id: str) -> Path:
    d = runs / job_id / "attempt-1"
    (d / "work").mkdir(parents=True)
    (d / "work" / "train.jsonl").write_text("customer data\n")
    (d / "trainer.log").write_text("Traceback (most recent call last):\nRuntimeError: boom\n")
    return d


def test_a_reused_pid_is_not_adopted_nor_signalled(tmp_path: Path) -> None:
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)  # now holds the attempt's old pid
    try:
        d = _attempt_dir(tmp_path, "ftjob-reused")
        (d / "pid").write_text(f"{stranger.pid} 1")  # the attempt's process started at tick 1, long gone
        launcher = LocalLauncher(tmp_path)  # a restarted control plane: it started nothing itself
        state = launcher.poll("ftjob-reused", 1)
        assert state.phase == "missing" and "RuntimeError: boom" in state.detail
        launcher.cancel("ftjob-reused", 1)
        time.sleep(0.3)
        assert stranger.poll() is None  # not signalled
        assert not (d / "work").exists()  # the dead attempt's copies of the data are gone
    finally:
        stranger.kill()
        stranger.wait()


def test_a_live_adopted_attempt_is_running_and_cancellable(tmp_path: Path) -> None:
    from service.launcher.local import _start_time

    trainer = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        d = _attempt_dir(tmp_path, "ftjob-live")
        (d / "pid").write_text(f"{trainer.pid} {_start_time(trainer.pid)}")
        launcher = LocalLauncher(tmp_path)
        assert launcher.poll("ftjob-live", 1).phase == "running"
        launcher.cancel("ftjob-live", 1)
        assert trainer.wait(timeout=10) != 0
        assert launcher.poll("ftjob-live", 1).phase == "missing"
    finally:
        trainer.kill()
        trainer.wait()


def test_database_urls_in_every_sqlite_form(tmp_path: Path) -> None:
    """In-memory databases (no pool sizes) and file URLs with a query string (WAL set on the
    real file, not on one named after the query)."""
    from sqlalchemy import text

    from service.db.session import Database

    for url in ("sqlite://", "sqlite:///:memory:", f"sqlite:///{tmp_path / 'q.db'}?timeout=5"):
        db = Database(url)
        with db.session() as s:
            assert s.execute(text("SELECT 1")).scalar() == 1
        db.dispose()
    assert (tmp_path / "q.db").exists() and not list(tmp_path.glob("q.db?*"))
    import sqlite3

    assert sqlite3.connect(tmp_path / "q.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_what_is_wrong_with_a_local_model_directory_is_told_before_loading(tmp_path: Path) -> None:
    from service.validation.tokens import _why_local

    assert "mounted" in (_why_local(str(tmp_path / "nowhere")) or "")
    assert "no tokenizer files" in (_why_local(str(tmp_path)) or "")
    (tmp_path / "file").write_text("x")
    assert _why_local(str(tmp_path / "file")) == "not a directory"
    (tmp_path / "tokenizer.json").write_text("{}")
    assert _why_local(str(tmp_path)) is None  # files are there: loading them tells the rest
