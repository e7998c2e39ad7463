"""The Admin API through the official Python SDK (``client.admin.organization``): projects,
their API keys and service accounts, admin API keys, usage (and hone's fine-tuning usage
extension), and the key lifecycles behind them: an archived project's keys and a deleted key stop
at once on the replica that archived or deleted them. Every response is checked against the spec."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest
from sqlalchemy import select, update

from service import cli
from service.db.schema import Job, Project
from service.gateway.usage import add_usage
from tests.contract.helpers import chat_line
from tests.contract.openapi import SpecChecker
from tests.harness.cli import run_cli
from tests.harness.jobs import upload
from tests.harness.server import RunningServer

MakeClient = Callable[[str], openai.OpenAI]


@pytest.fixture(scope="module")
def admin_key(server: RunningServer) -> str:
    return server.new_admin_key()


def _client(server: RunningServer, spec_checker: SpecChecker, *, api_key: str, admin_key: str | None = None):  # type: ignore[no-untyped-def]
    http = httpx.Client(event_hooks={"response": [spec_checker.hook]}, timeout=60)
    return openai.OpenAI(base_url=server.v1, api_key=api_key, admin_api_key=admin_key, max_retries=0, http_client=http)


@pytest.fixture(scope="module")
def admin(server: RunningServer, admin_key: str, spec_checker: SpecChecker) -> Iterator[openai.OpenAI]:
    with _client(server, spec_checker, api_key="unused-project-key", admin_key=admin_key) as c:
        yield c


@pytest.fixture
def project_client(server: RunningServer, spec_checker: SpecChecker):  # type: ignore[no-untyped-def]
    """A client for one project key (``make(key)``), closed after the test."""
    made: list[openai.OpenAI] = []

    def make(key: str) -> openai.OpenAI:
        made.append(_client(server, spec_checker, api_key=key))
        return made[-1]

    yield make
    for c in made:
        c.close()


def _slug(server: RunningServer, project_id: str) -> str:
    with server.ctx.db.session() as s:
        return s.scalar(select(Project.name).where(Project.id == project_id))


def test_projects_create_list_retrieve_modify_archive(admin: openai.OpenAI, server: RunningServer) -> None:
    orgs = admin.admin.organization
    created = orgs.projects.create(name="Project ABC")
    assert created.id.startswith("proj_") and created.object == "organization.project"
    assert created.name == "Project ABC" and created.status == "active" and created.archived_at is None
    assert _slug(server, created.id) == "project-abc"  # the segment of its model names
    twin = orgs.projects.create(name="project abc!")
    assert _slug(server, twin.id) == "project-abc-2"

    assert orgs.projects.retrieve(created.id).name == "Project ABC"
    listed = [p.id for p in orgs.projects.list(limit=100)]
    assert created.id in listed and twin.id in listed

    renamed = orgs.projects.update(created.id, name="Project ABC (renamed)")
    assert renamed.name == "Project ABC (renamed)"
    assert _slug(server, created.id) == "project-abc"  # model names already issued stay valid

    archived = orgs.projects.archive(created.id)
    assert archived.status == "archived" and archived.archived_at is not None
    assert orgs.projects.archive(created.id).archived_at == archived.archived_at  # twice: no change
    assert created.id not in [p.id for p in orgs.projects.list(limit=100)]
    assert created.id in [p.id for p in orgs.projects.list(limit=100, include_archived=True)]
    with pytest.raises(openai.BadRequestError, match="archived"):
        orgs.projects.update(created.id, name="again")


def test_project_list_pages_with_after(admin: openai.OpenAI) -> None:
    orgs = admin.admin.organization
    made = [orgs.projects.create(name=f"pager {i}").id for i in range(3)]
    page = orgs.projects.list(limit=2)
    assert page.has_more and len(page.data) == 2
    assert set(made) <= {p.id for p in orgs.projects.list(limit=2)}  # the SDK's iterator follows `after`


def test_project_requests_the_spec_allows_but_hone_refuses(admin: openai.OpenAI, server: RunningServer) -> None:
    orgs = admin.admin.organization
    with pytest.raises(openai.BadRequestError, match="name"):
        orgs.projects.create(name="   ")
    with pytest.raises(openai.BadRequestError, match="external_key_id"):
        orgs.projects.create(name="cmek", external_key_id="ek_1")
    with pytest.raises(openai.NotFoundError, match="proj_nope"):
        orgs.projects.retrieve("proj_nope")
    server.new_key("default")
    default = next(p for p in orgs.projects.list(limit=100) if p.name == "default")
    with pytest.raises(openai.BadRequestError, match="default project"):
        orgs.projects.archive(default.id)


def test_archiving_stops_the_projects_keys_at_once(
    admin: openai.OpenAI, server: RunningServer, project_client: MakeClient
) -> None:
    assert server.settings.auth_cache_s > 0  # the key below is cached when the project is archived
    key = server.new_key("soon-archived")
    project = project_client(key)
    project.models.list()
    project.models.list()  # served from the guard's key cache
    project_id = next(p.id for p in admin.admin.organization.projects.list(limit=100) if p.name == "soon-archived")
    admin.admin.organization.projects.archive(project_id)
    with pytest.raises(openai.AuthenticationError):
        project.models.list()
    listed = admin.admin.organization.projects.api_keys.list(project_id)
    assert [k.owner_project_access for k in listed.data] == ["inactive"]
    assert admin.admin.organization.projects.api_keys.list(project_id, owner_project_access="active").data == []


def test_api_keys_list_retrieve_delete(admin: openai.OpenAI, server: RunningServer, project_client: MakeClient) -> None:
    orgs = admin.admin.organization
    project = orgs.projects.create(name="Keys Project")
    user_key = server.new_key(_slug(server, project.id))
    account = orgs.projects.service_accounts.create(project.id, name="ci bot")
    assert account.api_key is not None
    bot = project_client(account.api_key.value)
    bot.models.list()

    keys = orgs.projects.api_keys.list(project.id).data
    assert len(keys) == 2
    by_owner = {k.owner.type: k for k in keys}
    assert by_owner["service_account"].owner.service_account.id == account.id
    assert by_owner["service_account"].id == account.api_key.id
    assert by_owner["service_account"].last_used_at is not None  # the bot just used it
    assert by_owner["user"].owner.user is None  # hone has no user accounts
    for k in keys:
        assert k.id.startswith("key_") and k.owner_project_access == "active"
        assert "..." in k.redacted_value and k.redacted_value not in (user_key, account.api_key.value)
    assert orgs.projects.api_keys.retrieve(account.api_key.id, project_id=project.id).name == account.api_key.name

    bot.models.list()  # cached now
    deleted = orgs.projects.api_keys.delete(account.api_key.id, project_id=project.id)
    assert deleted.deleted and deleted.id == account.api_key.id
    with pytest.raises(openai.AuthenticationError):
        bot.models.list()
    project_client(user_key).models.list()  # the project's other key still works
    with pytest.raises(openai.NotFoundError):
        orgs.projects.api_keys.retrieve(account.api_key.id, project_id=project.id)
    other = orgs.projects.create(name="Other Project")
    with pytest.raises(openai.NotFoundError):  # a key is found only in its own project
        orgs.projects.api_keys.retrieve(by_owner["user"].id, project_id=other.id)


def test_service_accounts(admin: openai.OpenAI, project_client: MakeClient) -> None:
    accounts = admin.admin.organization.projects.service_accounts
    project = admin.admin.organization.projects.create(name="Bots")
    bare = accounts.create(project.id, name="no key", create_service_account_only=True)
    assert bare.api_key is None and bare.role == "member" and bare.id.startswith("svc_acct_")
    keyed = accounts.create(project.id, name="deployer")
    assert keyed.api_key is not None and keyed.api_key.value.startswith("sk-hone-")
    assert keyed.api_key.object == "organization.project.service_account.api_key"
    assert [a.id for a in accounts.list(project.id)] == [bare.id, keyed.id]
    assert accounts.retrieve(keyed.id, project_id=project.id).name == "deployer"
    assert accounts.update(keyed.id, project_id=project.id, name="deployer 2", role="owner").role == "owner"

    bot = project_client(keyed.api_key.value)
    bot.models.list()
    gone = accounts.delete(keyed.id, project_id=project.id)
    assert gone.deleted and gone.object == "organization.project.service_account.deleted"
    with pytest.raises(openai.AuthenticationError):  # deleting an account revokes its keys
        bot.models.list()
    with pytest.raises(openai.NotFoundError):
        accounts.retrieve(keyed.id, project_id=project.id)
    admin.admin.organization.projects.archive(project.id)
    with pytest.raises(openai.BadRequestError, match="archived"):
        accounts.create(project.id, name="late")


def test_admin_api_keys(admin: openai.OpenAI, server: RunningServer, spec_checker: SpecChecker) -> None:
    keys = admin.admin.organization.admin_api_keys
    made = keys.create(name="ops", expires_in_seconds=3600)
    assert made.value.startswith("sk-admin-") and made.expires_at is not None and made.name == "ops"
    assert made.id in [k.id for k in keys.list(limit=100)]
    assert keys.retrieve(made.id).redacted_value == made.redacted_value
    with _client(server, spec_checker, api_key="unused", admin_key=made.value) as ops:
        assert ops.admin.organization.projects.list().object == "list"
        assert keys.delete(made.id).deleted
        with pytest.raises(openai.AuthenticationError):
            ops.admin.organization.projects.list()
    assert keys.retrieve(keys.list(limit=100).data[0].id).last_used_at is not None


def test_admin_routes_refuse_project_keys_and_project_routes_refuse_admin_keys(
    admin: openai.OpenAI, server: RunningServer, admin_key: str, project_client: MakeClient
) -> None:
    key = server.new_key("tenant")
    with _client_for_admin_route(server, key) as c, pytest.raises(openai.PermissionDeniedError):
        c.admin.organization.projects.list()
    with pytest.raises(openai.PermissionDeniedError):
        project_client(admin_key).models.list()


def _client_for_admin_route(server: RunningServer, project_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.v1, api_key=project_key, admin_api_key=project_key, max_retries=0)


def _hour(t: int) -> int:
    return t - t % 3600


def test_usage_completions_buckets_groups_filters_and_pages(admin: openai.OpenAI, server: RunningServer) -> None:
    orgs = admin.admin.organization
    a, b = orgs.projects.create(name="usage a").id, orgs.projects.create(name="usage b").id
    start = _hour(int(time.time())) - 3 * 3600
    with server.ctx.db.session() as s:
        add_usage(
            s,
            {
                (a, "hone-tiny", start + 60): [10, 5, 2, 1],
                (a, "hone-tiny", start + 120): [20, 10, 0, 2],
                (a, "ft:hone-tiny:usage-a::abcdefgh", start + 3600): [7, 3, 0, 1],
                (b, "hone-tiny", start + 2 * 3600 + 59 * 60): [100, 50, 0, 4],
            },
        )
    window = {"start_time": start, "end_time": start + 3 * 3600, "bucket_width": "1h"}
    page = orgs.usage.completions(**window, project_ids=[a, b])
    assert [bk.start_time for bk in page.data] == [start, start + 3600, start + 7200]
    totals = [(r.input_tokens, r.output_tokens, r.num_model_requests) for bk in page.data for r in bk.results]
    assert totals == [(30, 15, 3), (7, 3, 1), (100, 50, 4)]
    assert page.data[0].results[0].input_cached_tokens == 2 and page.has_more is False

    grouped = orgs.usage.completions(**window, project_ids=[a], group_by=["model"])
    assert [(r.model, r.input_tokens) for bk in grouped.data for r in bk.results] == [
        ("hone-tiny", 30),
        ("ft:hone-tiny:usage-a::abcdefgh", 7),
    ]
    by_project = orgs.usage.completions(**window, project_ids=[a, b], group_by=["project_id"], models=["hone-tiny"])
    assert [(r.project_id, r.input_tokens) for bk in by_project.data for r in bk.results] == [(a, 30), (b, 100)]

    first = orgs.usage.completions(**window, project_ids=[a, b], limit=2)
    assert first.has_more and len(first.data) == 2 and first.next_page
    rest = orgs.usage.completions(**window, project_ids=[a, b], limit=2, page=first.next_page)
    assert [bk.start_time for bk in rest.data] == [start + 7200] and rest.has_more is False
    assert orgs.usage.completions(**window, project_ids=[a], batch=True).data[0].results == []

    with pytest.raises(openai.BadRequestError, match="group_by"):
        orgs.usage.completions(start_time=start, group_by=["user_id"])
    with pytest.raises(openai.BadRequestError, match="limit"):
        orgs.usage.completions(start_time=start, bucket_width="1h", limit=169)
    with pytest.raises(openai.BadRequestError, match="end_time"):
        orgs.usage.completions(start_time=start, end_time=start)


def test_fine_tuning_usage_extension(admin: openai.OpenAI, server: RunningServer, project_client: MakeClient) -> None:
    project = project_client(server.new_key("ft-usage"))
    file_id = upload(project, [chat_line(i) for i in range(10)])
    jobs = [project.fine_tuning.jobs.create(model="hone-tiny", training_file=file_id) for _ in range(2)]
    with server.ctx.db.session() as s:
        s.execute(update(Job).where(Job.id == jobs[0].id).values(status="succeeded", trained_tokens=1234))
    project_id = next(p.id for p in admin.admin.organization.projects.list(limit=100) if p.name == "ft-usage")
    start = _hour(min(j.created_at for j in jobs))
    # Not in the OpenAI spec, so asked for with plain HTTP (no spec check), as a script would.
    response = httpx.get(
        server.v1 + "/organization/usage/fine_tuning",
        params={"start_time": start, "bucket_width": "1d", "project_ids[]": project_id, "group_by[]": "project_id"},
        headers={"Authorization": f"Bearer {admin.admin_api_key}"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "page" and body["has_more"] is False
    results = [r for bucket in body["data"] for r in bucket["results"]]  # two buckets if made across midnight
    assert {(r["object"], r["project_id"]) for r in results} == {("organization.usage.fine_tuning.result", project_id)}
    assert sum(r["num_jobs"] for r in results) == 2 and sum(r["trained_tokens"] for r in results) == 1234
    statuses = [s for r in results for s, n in r["jobs_by_status"].items() for _ in range(n)]
    assert len(statuses) == 2 and statuses.count("succeeded") == 1  # the other is wherever validation took it


def test_first_start_creates_and_prints_one_admin_key(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from service.config import Settings

    monkeypatch.setenv("HONE_DATA_DIR", str(tmp_path))
    settings = Settings(data_dir=tmp_path)
    cli._first_admin_key(settings)
    first = capsys.readouterr().out
    secret = next(line.strip() for line in first.splitlines() if line.strip().startswith("sk-admin-"))
    cli._first_admin_key(settings)  # a second start: a key exists, nothing printed
    assert "sk-admin-" not in capsys.readouterr().out
    assert run_cli(["admin-keys", "create", "--quiet"]) == 0  # recovery
    again = capsys.readouterr().out.strip()
    assert again.startswith("sk-admin-") and again != secret
