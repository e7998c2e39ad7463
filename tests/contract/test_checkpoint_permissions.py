"""Checkpoint permissions through the official SDK, every response validated against the spec:
an admin shares a fine-tuned model (final or checkpoint) with other projects; a project it is
shared with chats with it (through the gateway, to a FAKE upstream from tests/fakes/upstream.py)
and fine-tunes from it, sees none of the owner's files, jobs, events or checkpoints, and loses
the model on its next request once the permission is revoked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import select, update

from service import auth
from service.catalog.catalog import BaseModelEntry, Catalog
from service.db.schema import FineTunedModel, Job, Project
from service.scheduling.dispatcher import Dispatcher
from tests.contract.helpers import chat_line, upload, wait_status
from tests.contract.openapi import SpecChecker
from tests.fakes.launcher import FakeTrainerLauncher
from tests.fakes.upstream import make_upstream
from tests.harness.node import run_node
from tests.harness.records import register_finished_model
from tests.harness.server import RunningServer, serve_app, start_server

OWNER_JOB = "ftjob-SharedOwnerJob0000000001"
FINAL = "ft:hone-tiny:owner:shared:Sh4red01"
CKPT = FINAL + ":ckpt-step-10"
MISSING = "ft:hone-tiny:owner::Missing1"


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir) -> Iterator[RunningServer]:  # type: ignore[no-untyped-def]
    url, upstream = serve_app(make_upstream("up", chunk_delay_s=0.0))
    catalog = Catalog([BaseModelEntry(name="hone-tiny", source=str(tiny_model_dir), upstreams=[url])])
    srv = start_server(tmp_path_factory.mktemp("share"), catalog)
    register_finished_model(srv.ctx.db, "owner", FINAL, "file:///nowhere/final", job_id=OWNER_JOB)
    with srv.ctx.db.session() as s:
        owner = auth.get_or_create_project(s, "owner")
        s.add(
            FineTunedModel(
                name=CKPT,
                project_id=owner.id,
                job_id=OWNER_JOB,
                base_model="hone-tiny",
                kind="checkpoint",
                uri="file:///nowhere/ckpt",
                created_at=1,
            )
        )
    yield srv
    srv.stop()
    upstream.should_exit = True


@pytest.fixture(scope="module")
def checker() -> SpecChecker:
    return SpecChecker()


def _client(server: RunningServer, key: str, checker: SpecChecker) -> openai.OpenAI:
    http = httpx.Client(event_hooks={"response": [checker.hook]}, timeout=60)
    return openai.OpenAI(base_url=server.v1, api_key=key, max_retries=0, http_client=http)


@pytest.fixture(scope="module")
def keys(server: RunningServer) -> dict[str, str]:
    names = ("owner", "grantee", "bystander", "second", "third", "archived")
    return {name: server.new_key(name) for name in names}


@pytest.fixture(scope="module")
def projects(server: RunningServer, keys: dict[str, str]) -> dict[str, str]:
    with server.ctx.db.session() as s:
        ids = {p.name: p.id for p in s.scalars(select(Project))}
        s.execute(update(Project).where(Project.name == "archived").values(archived_at=1))
    return ids


@pytest.fixture(scope="module")
def admin(server: RunningServer, checker: SpecChecker) -> openai.OpenAI:
    return _client(server, server.new_admin_key(), checker)


@pytest.fixture(scope="module")
def clients(server: RunningServer, keys: dict[str, str], checker: SpecChecker) -> dict[str, openai.OpenAI]:
    return {name: _client(server, key, checker) for name, key in keys.items()}


def ask(client: openai.OpenAI, model: str) -> str:
    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    return r.choices[0].message.content or ""


def _error(call: Any, exc: type[openai.APIStatusError]) -> openai.APIStatusError:
    with pytest.raises(exc) as info:
        call()
    return info.value


def test_create_list_and_delete(admin: openai.OpenAI, projects: dict[str, str], checker: SpecChecker) -> None:
    perms = admin.fine_tuning.checkpoints.permissions
    created = perms.create(FINAL, project_ids=[projects["second"], projects["third"], projects["second"]])
    got = [(p.object, p.project_id) for p in created.data]
    assert got == [("checkpoint.permission", projects["second"]), ("checkpoint.permission", projects["third"])]
    assert all(p.id.startswith("cp_") and p.created_at > 0 for p in created.data)
    again = perms.create(FINAL, project_ids=[projects["third"]])  # already shared: the same permission
    assert [p.id for p in again.data] == [created.data[1].id]

    newest_first = [p.id for p in perms.list(FINAL)]
    assert newest_first == [created.data[1].id, created.data[0].id]
    assert [p.id for p in perms.list(FINAL, order="ascending", limit=1)] == newest_first[::-1]  # pages of 1
    page = perms.list(FINAL, limit=1)
    assert page.has_more and page.last_id == newest_first[0]
    only = perms.list(FINAL, project_id=projects["second"])
    assert [p.project_id for p in only.data] == [projects["second"]] and not only.has_more
    assert perms.list(FINAL, project_id="proj_nobody").data == []
    with pytest.warns(DeprecationWarning):
        retrieved = perms.retrieve(FINAL, project_id=projects["third"])  # type: ignore[attr-defined]
    assert [p.id for p in retrieved.data] == [created.data[1].id]

    for p in created.data:
        deleted = perms.delete(p.id, fine_tuned_model_checkpoint=FINAL)
        assert (deleted.id, deleted.object, deleted.deleted) == (p.id, "checkpoint.permission", True)
    assert perms.list(FINAL).data == []
    gone = _error(lambda: perms.delete(created.data[0].id, fine_tuned_model_checkpoint=FINAL), openai.NotFoundError)
    assert gone.code == "permission_not_found" and created.data[0].id in gone.message
    assert checker.by_operation.get("POST /fine_tuning/checkpoints/{id}/permissions", 0) >= 2


def test_a_checkpoint_model_is_shared_too(admin: openai.OpenAI, clients: dict[str, openai.OpenAI], projects) -> None:  # type: ignore[no-untyped-def]
    perms = admin.fine_tuning.checkpoints.permissions
    (p,) = perms.create(CKPT, project_ids=[projects["third"]]).data
    assert [x.id for x in perms.list(CKPT)] == [p.id] and perms.list(FINAL).data == []  # a grant is per model
    assert ask(clients["third"], CKPT) == f"up answers for {CKPT}"
    with pytest.raises(openai.NotFoundError):
        ask(clients["third"], FINAL)
    perms.delete(p.id, fine_tuned_model_checkpoint=CKPT)
    with pytest.raises(openai.NotFoundError):
        ask(clients["third"], CKPT)


def test_only_an_admin_key_manages_permissions(server: RunningServer, keys: dict[str, str], projects) -> None:  # type: ignore[no-untyped-def]
    for key in (keys["owner"], keys["grantee"]):
        perms = openai.OpenAI(base_url=server.v1, api_key=key, max_retries=0).fine_tuning.checkpoints.permissions
        for call in (
            lambda p=perms: p.create(FINAL, project_ids=[projects["grantee"]]),
            lambda p=perms: p.list(FINAL),
            lambda p=perms: p.delete("cp_x", fine_tuned_model_checkpoint=FINAL),
        ):
            e = _error(call, openai.PermissionDeniedError)
            assert e.code == "insufficient_permissions" and "admin key" in e.message
    wrong = openai.OpenAI(base_url=server.v1, api_key="sk-admin-wrong", max_retries=0)
    _error(lambda: wrong.fine_tuning.checkpoints.permissions.list(FINAL), openai.AuthenticationError)


def test_bad_requests_name_what_is_wrong(admin: openai.OpenAI, projects: dict[str, str]) -> None:
    perms = admin.fine_tuning.checkpoints.permissions
    for call in (
        lambda: perms.create(MISSING, project_ids=[projects["grantee"]]),
        lambda: perms.list(MISSING),
    ):
        e = _error(call, openai.NotFoundError)
        assert e.code == "model_not_found" and MISSING in e.message and e.param == "fine_tuned_model_checkpoint"
    e = _error(lambda: perms.create("hone-tiny", project_ids=[projects["grantee"]]), openai.BadRequestError)
    assert "base model" in e.message
    cases = {
        "proj_doesnotexist": ("project_not_found", "no project with id 'proj_doesnotexist'"),
        projects["archived"]: ("project_archived", "is archived"),
        projects["owner"]: ("project_owns_model", "owns"),
    }
    for bad, (code, words) in cases.items():
        e = _error(lambda b=bad: perms.create(FINAL, project_ids=[projects["grantee"], b]), openai.BadRequestError)
        assert (e.code, e.param) == (code, "project_ids[1]") and words in e.message, e.message
    assert perms.list(FINAL).data == []  # all or none: the good id in a refused request was not shared
    e = _error(lambda: perms.create(FINAL, project_ids=[]), openai.BadRequestError)
    assert e.param == "project_ids" and "at least one" in e.message
    e = _error(lambda: perms.create(FINAL, project_ids=["proj_x"] * 101), openai.BadRequestError)
    assert "at most 100" in e.message
    e = _error(lambda: perms.list(FINAL, limit=0), openai.BadRequestError)
    assert e.param == "limit"
    e = _error(lambda: perms.list(FINAL, after="cp_unknown"), openai.BadRequestError)
    assert e.param == "after"


def test_the_grantee_serves_lists_and_fine_tunes_from_the_shared_model(
    server: RunningServer, admin: openai.OpenAI, clients: dict[str, openai.OpenAI], projects: dict[str, str]
) -> None:
    grantee, bystander = clients["grantee"], clients["bystander"]
    with pytest.raises(openai.NotFoundError):
        ask(grantee, FINAL)
    assert FINAL not in [m.id for m in grantee.models.list()]
    (p,) = admin.fine_tuning.checkpoints.permissions.create(FINAL, project_ids=[projects["grantee"]]).data

    assert ask(grantee, FINAL) == f"up answers for {FINAL}"
    listed = {m.id: m for m in grantee.models.list()}
    assert listed[FINAL].owned_by == projects["owner"] and CKPT not in listed  # only what was shared
    assert grantee.models.retrieve(FINAL).owned_by == projects["owner"]
    e = _error(lambda: grantee.models.delete(FINAL), openai.PermissionDeniedError)
    assert "only that project can delete it" in e.message
    assert ask(clients["owner"], FINAL) == f"up answers for {FINAL}"  # the owner's model is untouched
    for call in (lambda: ask(bystander, FINAL), lambda: bystander.models.retrieve(FINAL)):
        assert _error(call, openai.NotFoundError).code == "model_not_found"

    training = upload(grantee, [chat_line(i) for i in range(10)])
    job = grantee.fine_tuning.jobs.create(model=FINAL, training_file=training, suffix="derived")
    assert job.model == FINAL and job.organization_id == projects["grantee"]
    with server.ctx.db.session() as s:
        row = s.scalar(select(Job).where(Job.id == job.id))
        assert row is not None
        assert (row.init_adapter, row.base_model, row.project_name) == (FINAL, "hone-tiny", "grantee")
        assert row.planned_model.startswith("ft:hone-tiny:grantee:derived:")
    assert [j.id for j in grantee.fine_tuning.jobs.list()] == [job.id]  # none of the owner's jobs
    grantee.fine_tuning.jobs.cancel(job.id)
    e = _error(lambda: bystander.fine_tuning.jobs.create(model=FINAL, training_file=training), openai.BadRequestError)
    assert e.code == "model_not_available"
    admin.fine_tuning.checkpoints.permissions.delete(p.id, fine_tuned_model_checkpoint=FINAL)


def test_the_grantee_sees_nothing_else_of_the_owners(
    admin: openai.OpenAI, clients: dict[str, openai.OpenAI], projects: dict[str, str]
) -> None:
    owner, grantee = clients["owner"], clients["grantee"]
    owner_file = upload(owner, [chat_line(i) for i in range(10)])
    owner_job = owner.fine_tuning.jobs.create(model=FINAL, training_file=owner_file).id
    (p,) = admin.fine_tuning.checkpoints.permissions.create(FINAL, project_ids=[projects["grantee"]]).data
    assert ask(grantee, FINAL)  # shared, yet:
    for job_id in (OWNER_JOB, owner_job):
        for call in (
            lambda j=job_id: grantee.fine_tuning.jobs.retrieve(j),
            lambda j=job_id: grantee.fine_tuning.jobs.list_events(j),
            lambda j=job_id: grantee.fine_tuning.jobs.checkpoints.list(j),
            lambda j=job_id: grantee.fine_tuning.jobs.cancel(j),
        ):
            assert _error(call, openai.NotFoundError).code == "fine_tuning_job_not_found"
    for call in (lambda: grantee.files.retrieve(owner_file), lambda: grantee.files.content(owner_file)):
        _error(call, openai.NotFoundError)
    assert owner_file not in [f.id for f in grantee.files.list()]
    assert owner_job not in [j.id for j in grantee.fine_tuning.jobs.list()]
    e = _error(lambda: grantee.fine_tuning.jobs.create(model=FINAL, training_file=owner_file), openai.BadRequestError)
    assert e.param == "training_file"  # a shared model is no way into the owner's files
    admin.fine_tuning.checkpoints.permissions.delete(p.id, fine_tuned_model_checkpoint=FINAL)


def test_revoking_takes_effect_on_the_next_request(
    admin: openai.OpenAI, clients: dict[str, openai.OpenAI], projects: dict[str, str]
) -> None:
    grantee = clients["grantee"]
    training = upload(grantee, [chat_line(i) for i in range(10)])
    (p,) = admin.fine_tuning.checkpoints.permissions.create(FINAL, project_ids=[projects["grantee"]]).data
    assert ask(grantee, FINAL) == f"up answers for {FINAL}"
    assert grantee.models.retrieve(FINAL).id == FINAL
    admin.fine_tuning.checkpoints.permissions.delete(p.id, fine_tuned_model_checkpoint=FINAL)
    e = _error(lambda: ask(grantee, FINAL), openai.NotFoundError)
    assert e.code == "model_not_found" and FINAL in e.message
    _error(lambda: grantee.models.retrieve(FINAL), openai.NotFoundError)
    assert FINAL not in [m.id for m in grantee.models.list()]
    e = _error(lambda: grantee.fine_tuning.jobs.create(model=FINAL, training_file=training), openai.BadRequestError)
    assert e.code == "model_not_available"


def test_a_revoke_stops_a_queued_job_from_the_shared_model(
    server: RunningServer, admin: openai.OpenAI, clients: dict[str, openai.OpenAI], projects: dict[str, str]
) -> None:
    """A job the grantee queued before the revoke never starts from the adapter afterwards: the
    dispatcher fails it (model_not_available) instead of launching it."""
    grantee = clients["grantee"]
    (p,) = admin.fine_tuning.checkpoints.permissions.create(FINAL, project_ids=[projects["grantee"]]).data
    job = grantee.fine_tuning.jobs.create(model=FINAL, training_file=upload(grantee, [chat_line(i) for i in range(10)]))
    wait_status(grantee, job.id, {"queued"})
    admin.fine_tuning.checkpoints.permissions.delete(p.id, fine_tuned_model_checkpoint=FINAL)
    launcher = FakeTrainerLauncher(server.ctx.store)
    ctx = server.ctx
    # This module's server has no launcher (jobs stay queued); one dispatcher pass with a FAKE
    # launcher, and room for every queued job of the module, stands in for its dispatch loop.
    settings = ctx.settings.model_copy(update={"max_running_jobs": 10_000})
    Dispatcher(ctx.db, ctx.store, ctx.catalog, launcher, settings).run_once()
    failed = grantee.fine_tuning.jobs.retrieve(job.id)
    assert failed.status == "failed" and failed.error is not None
    assert (failed.error.code, failed.error.param) == ("model_not_available", "model")
    assert FINAL in failed.error.message and "no longer shared" in failed.error.message
    assert job.id not in [spec.job_id for spec in launcher.started]
    for spec in launcher.started:  # other tests' jobs: stop their fake trainers
        launcher.cancel(spec.job_id, spec.attempt)


def test_a_deleted_model_is_no_longer_shared(
    server: RunningServer, admin: openai.OpenAI, clients: dict[str, openai.OpenAI], projects: dict[str, str]
) -> None:
    name = "ft:hone-tiny:owner::Doomed01"
    register_finished_model(server.ctx.db, "owner", name, "file:///nowhere/doomed", job_id="ftjob-Doomed" + "0" * 18)
    (p,) = admin.fine_tuning.checkpoints.permissions.create(name, project_ids=[projects["grantee"]]).data
    assert ask(clients["grantee"], name) == f"up answers for {name}"
    clients["owner"].models.delete(name)
    _error(lambda: ask(clients["grantee"], name), openai.NotFoundError)
    _error(lambda: admin.fine_tuning.checkpoints.permissions.list(name), openai.NotFoundError)
    deleted = admin.fine_tuning.checkpoints.permissions.delete(p.id, fine_tuned_model_checkpoint=name)
    assert deleted.deleted


def test_sharing_through_the_node_sdk(
    server: RunningServer, keys: dict[str, str], projects: dict[str, str], tmp_path: Path
) -> None:
    name = "ft:hone-tiny:owner:node:N0de0001"
    job_id = "ftjob-NodeOwner" + "0" * 15
    register_finished_model(server.ctx.db, "owner", name, "file:///nowhere/node", job_id=job_id)
    env = {
        "HONE_SHARED_MODEL": name,
        "HONE_OWNER_JOB": job_id,
        "HONE_OWNER_KEY": keys["owner"],
        "HONE_OWNER_PROJECT": projects["owner"],
        "HONE_GRANTEE_KEY": keys["grantee"],
        "HONE_GRANTEE_PROJECT": projects["grantee"],
        "HONE_OTHER_PROJECT": projects["second"],
    }
    results = run_node(
        "checkpoint_permissions.mjs", tmp_path, base_url=server.v1, admin_key=server.new_admin_key(), env=env
    )
    assert len(results["permissions"]) == 2 and results["job"].startswith("ftjob-")
