"""The Admin API's logic below HTTP: project slugs (derived once, free, retried when another
replica takes one first), the CLI's refusal to key an archived project, and the usage query's
buckets and cursors."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from starlette.datastructures import QueryParams

from service import auth, cli
from service.admin import admin_keys, projects, usage
from service.db.session import Database
from service.errors import InvalidRequest
from service.protocol.admin import ProjectCreateParams
from tests.harness.cli import run_cli
from tests.harness.server import POSTGRES_ADMIN_URL, fresh_database_url


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'hone.db'}")
    database.migrate()
    return database


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Project ABC", "project-abc"),
        ("  --Ünïcode / Team__7  ", "n-code-team-7"),
        ("!!!", "project"),
        ("x" * 80, "x" * 48),
    ],
)
def test_slug_from_a_free_text_name(db: Database, name: str, slug: str) -> None:
    with db.session() as s:
        made = projects.create(s, ProjectCreateParams(name=name))
        assert made.name == slug and made.display_name == name
        assert auth.PROJECT_NAME.fullmatch(made.name)


def test_a_slug_taken_between_read_and_insert_is_retried(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    with db.session() as s:
        auth.get_or_create_project(s, "team")
    real = projects.slug_for
    calls: list[str] = []

    def stale_then_real(session, name):  # type: ignore[no-untyped-def]
        calls.append(name)
        return "team" if len(calls) == 1 else real(session, name)  # the first read missed the other replica's row

    monkeypatch.setattr(projects, "slug_for", stale_then_real)
    with db.session() as s:
        assert projects.create(s, ProjectCreateParams(name="Team")).name == "team-2"
    assert len(calls) == 2


def test_keys_create_refuses_an_archived_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HONE_DATA_DIR", str(tmp_path))
    assert run_cli(["keys", "create", "--project", "old"]) == 0
    assert capsys.readouterr().out.startswith("sk-hone-")
    db = Database(f"sqlite:///{tmp_path / 'hone.db'}")
    with db.session() as s:
        auth.get_or_create_project(s, "old").archived_at = 1
    db.dispose()
    assert run_cli(["keys", "create", "--project", "old"]) == 2
    assert "archived" in capsys.readouterr().err


def test_usage_buckets_align_to_utc_and_page_by_cursor() -> None:
    day = 86400
    q = usage.parse(QueryParams({"start_time": str(10 * day + 5000), "end_time": str(20 * day), "limit": "3"}))
    assert (q.first_bucket, q.page_end, q.width) == (10 * day, 13 * day, day)
    nxt = usage.parse(
        QueryParams(
            {"start_time": str(10 * day + 5000), "end_time": str(20 * day), "limit": "3", "page": str(13 * day)}
        )
    )
    assert (nxt.first_bucket, nxt.page_end) == (13 * day, 16 * day)
    q = usage.parse(
        QueryParams([("start_time", "0"), ("project_ids[]", "a"), ("project_ids", "b"), ("group_by[]", "model")]),
        now=120,
    )
    assert q.project_ids == ("b", "a") and q.group_by == ("model",) and q.end_time == 120


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({}, "start_time"),
        ({"start_time": "x"}, "start_time"),
        ({"start_time": "-5"}, "start_time"),
        ({"start_time": "²"}, "start_time"),
        ({"start_time": "9" * 5000}, "start_time"),
        ({"start_time": "10", "bucket_width": "1w"}, "bucket_width"),
        ({"start_time": "0", "bucket_width": "1m", "limit": "1441"}, "limit"),
        ({"start_time": "0", "page": "61", "bucket_width": "1m"}, "page"),
        ({"start_time": "0", "group_by": "api_key_id"}, "group_by"),
        ({"start_time": "0", "api_key_ids[]": "key_1"}, "api_key_ids"),
        ({"start_time": "0", "batch": "maybe"}, "batch"),
    ],
)
def test_usage_query_errors_name_the_parameter(params: dict[str, str], param: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        usage.parse(QueryParams(params), now=10**6)
    assert err.value.param == param and param in err.value.message


def test_usage_limit_error_names_the_bucket_width_it_depends_on() -> None:
    with pytest.raises(InvalidRequest, match=r"1440.*bucket_width=1m"):
        usage.parse(QueryParams({"start_time": "0", "bucket_width": "1m", "limit": "1441"}), now=10**6)


@pytest.mark.skipif(not POSTGRES_ADMIN_URL, reason="replicas share a database only on PostgreSQL (HONE_TEST_POSTGRES)")
def test_replicas_starting_together_create_one_first_admin_key(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from service.config import Settings

    settings = Settings(data_dir=tmp_path, database_url=fresh_database_url(tmp_path))
    first = Database(settings.resolved_database_url)
    first.migrate()  # so the replicas meet at the key, not at the migration lock
    first.dispose()
    checked = auth.has_admin_key

    def slow_check(session):  # type: ignore[no-untyped-def]
        found = checked(session)
        time.sleep(0.3)  # widens the window between the check and the insert
        return found

    monkeypatch.setattr(auth, "has_admin_key", slow_check)
    replicas = [threading.Thread(target=cli._first_admin_key, args=(settings,)) for _ in range(4)]
    for t in replicas:
        t.start()
    for t in replicas:
        t.join()
    assert capsys.readouterr().out.count("sk-admin-") == 1
    db = Database(settings.resolved_database_url)
    with db.session() as s:
        assert len(admin_keys.list_keys(s, after=None, limit=None, order=None)[0]) == 1
    db.dispose()
