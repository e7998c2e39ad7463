"""Tenant isolation through the official SDK: one project's ids are invisible to another.

Project "beta" must get exactly what it would get for an id that never existed (same status,
same error type/code/param, message differing only in the id) on every endpoint that takes one
of project "alpha"'s ids, must never see alpha's objects in its lists, and must change nothing
of alpha's by trying. Also: a missing or wrong API key is a 401 in the OpenAI envelope on every
endpoint family.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import select

from contract.layout import JobLayout
from contract.names import ModelName, is_fine_tuned_name
from service import ids
from service.db.schema import Checkpoint, FineTunedModel, Job, Project

BASE = "hone-tiny"


def _chat_lines(n: int, tag: str) -> bytes:
    lines = [
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": f"[{tag}] question {i}: what is {i} plus {i}?"},
                    {"role": "assistant", "content": f"[{tag}] {i} plus {i} is {2 * i}."},
                ]
            }
        )
        for i in range(n)
    ]
    return ("\n".join(lines) + "\n").encode()


def _client(server: Any, api_key: str, **kw: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key=api_key, max_retries=0, **kw)


def _wait_left_validation(client: openai.OpenAI, job_id: str, timeout: float = 60) -> str:
    deadline = time.time() + timeout
    while True:
        status = client.fine_tuning.jobs.retrieve(job_id).status
        if status != "validating_files":
            return status
        if time.time() > deadline:
            raise AssertionError(f"job {job_id} still validating_files after {timeout}s")
        time.sleep(0.1)


def _error(call: Callable[[], Any], exc_type: type[openai.APIStatusError]) -> tuple[int, dict[str, Any]]:
    """Run ``call``; it must raise ``exc_type``. Returns (status, the envelope's inner error)."""
    with pytest.raises(exc_type) as info:
        call()
    exc = info.value
    envelope = exc.response.json()
    assert set(envelope) == {"error"}, envelope
    err = envelope["error"]
    assert set(err) >= {"message", "type", "param", "code"}, err
    assert isinstance(err["message"], str) and err["message"], err
    return exc.status_code, err


def _same_error(
    call_real: Callable[[], Any],
    real_id: str,
    call_fake: Callable[[], Any],
    fake_id: str,
    exc_type: type[openai.APIStatusError],
) -> dict[str, Any]:
    """Both calls fail identically, up to the id quoted in the message."""
    s_real, e_real = _error(call_real, exc_type)
    s_fake, e_fake = _error(call_fake, exc_type)
    assert s_real == s_fake
    assert (e_real["type"], e_real["code"], e_real["param"]) == (e_fake["type"], e_fake["code"], e_fake["param"])
    assert e_real["message"].replace(real_id, "<ID>") == e_fake["message"].replace(fake_id, "<ID>"), (e_real, e_fake)
    assert real_id not in e_fake["message"]
    return e_real


@dataclass
class Alpha:
    client: openai.OpenAI
    file_id: str
    job_id: str
    job_status: str
    ft_model: str
    ckpt_model: str
    ckpt_id: str
    event_ids: list[str]


def _fake_like(real: str) -> str:
    """A made-up id of the same shape (same prefix, same length) that does not exist."""
    if real.startswith("ft:"):
        parts = real.split(":")
        parts[4] = ids.model_short_id()  # the short id
        return ":".join(parts)
    prefix, _, rest = real.partition("-")
    return f"{prefix}-{ids.random_token(len(rest))}"


@pytest.fixture(scope="module")
def alpha(server: Any) -> Iterator[Alpha]:
    client = _client(server, server.new_key("alpha"))
    f = client.files.create(file=("alpha-train.jsonl", _chat_lines(12, "alpha")), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model=BASE, training_file=f.id, suffix="secret")
    status = _wait_left_validation(client, job.id)
    assert status == "queued", client.fine_tuning.jobs.retrieve(job.id).error

    # Stand-in for a trainer's report (service.jobs.reports.record_checkpoint / complete): the
    # `server` fixture runs no launcher, so no trainer will ever report. We write the rows a
    # report would write — a Checkpoint plus its FineTunedModel (kind "checkpoint"), and the
    # final FineTunedModel — and leave the job row itself alone, so that any state change beta
    # might cause (cancel, pause) stays visible on alpha's job.
    with server.ctx.db.session() as s:
        row = s.scalar(select(Job).where(Job.id == job.id))
        assert row is not None
        assert row.project_id == s.scalar(select(Project.id).where(Project.name == "alpha"))
        now = int(time.time())
        ckpt_name = str(ModelName(BASE, "alpha", "secret", ids.model_short_id(), 10))
        layout = JobLayout.for_job(job.id)
        ckpt_uri, final_uri = server.ctx.store.uri(layout.checkpoint(10)), server.ctx.store.uri(layout.final)
        ckpt_id = ids.checkpoint_id()
        s.add(
            Checkpoint(
                id=ckpt_id,
                job_id=job.id,
                client_id="report-ckpt-10",
                step_number=10,
                metrics={"step": 10, "train_loss": 1.25},
                model_name=ckpt_name,
                uri=ckpt_uri,
                created_at=now,
            )
        )
        s.add(
            FineTunedModel(
                name=ckpt_name,
                project_id=row.project_id,
                job_id=job.id,
                base_model=BASE,
                kind="checkpoint",
                uri=ckpt_uri,
                created_at=now,
            )
        )
        s.add(
            FineTunedModel(
                name=row.planned_model,
                project_id=row.project_id,
                job_id=job.id,
                base_model=BASE,
                kind="final",
                uri=final_uri,
                created_at=now,
            )
        )
        ft_name = row.planned_model
    assert is_fine_tuned_name(ft_name) and is_fine_tuned_name(ckpt_name)

    events = [e.id for e in client.fine_tuning.jobs.list_events(job.id, limit=100).data]
    assert events
    yield Alpha(client, f.id, job.id, status, ft_name, ckpt_name, ckpt_id, events)
    client.close()


@dataclass
class Beta:
    client: openai.OpenAI
    file_id: str
    job_id: str


@pytest.fixture(scope="module")
def beta(server: Any, alpha: Alpha) -> Iterator[Beta]:
    """Beta has objects of its own, so its lists are not trivially empty."""
    client = _client(server, server.new_key("beta"))
    f = client.files.create(file=("beta-train.jsonl", _chat_lines(12, "beta")), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model=BASE, training_file=f.id)
    _wait_left_validation(client, job.id)
    yield Beta(client, f.id, job.id)
    client.close()


def _alpha_snapshot(a: Alpha) -> dict[str, Any]:
    c = a.client
    return {
        "file": c.files.retrieve(a.file_id).model_dump(),
        "content": c.files.content(a.file_id).content,
        "job": c.fine_tuning.jobs.retrieve(a.job_id).model_dump(),
        "events": [e.id for e in c.fine_tuning.jobs.list_events(a.job_id, limit=100).data],
        "checkpoints": [x.model_dump() for x in c.fine_tuning.jobs.checkpoints.list(a.job_id).data],
        "ft_model": c.models.retrieve(a.ft_model).model_dump(),
        "ckpt_model": c.models.retrieve(a.ckpt_model).model_dump(),
        "files": sorted(x.id for x in c.files.list()),
        "jobs": sorted(x.id for x in c.fine_tuning.jobs.list()),
        "models": sorted(x.id for x in c.models.list()),
    }


@pytest.fixture(scope="module")
def alpha_before(alpha: Alpha) -> dict[str, Any]:
    snap = _alpha_snapshot(alpha)
    assert snap["content"] == _chat_lines(12, "alpha")
    assert snap["job"]["status"] == "queued"
    assert [c["id"] for c in snap["checkpoints"]] == [alpha.ckpt_id]
    assert {alpha.ft_model, alpha.ckpt_model} <= set(snap["models"])
    return snap


# --- every endpoint that takes an id ---------------------------------------------------------


def test_file_endpoints_hide_other_projects_files(alpha: Alpha, beta: Beta, alpha_before: dict[str, Any]) -> None:
    c, real = beta.client, alpha.file_id
    fake = _fake_like(real)
    for name, call in {
        "files.retrieve": lambda i: c.files.retrieve(i),
        "files.content": lambda i: c.files.content(i),
        "files.delete": lambda i: c.files.delete(i),
    }.items():
        err = _same_error(lambda: call(real), real, lambda: call(fake), fake, openai.NotFoundError)
        assert err["type"] == "invalid_request_error", (name, err)


def test_job_endpoints_hide_other_projects_jobs(alpha: Alpha, beta: Beta, alpha_before: dict[str, Any]) -> None:
    c, real = beta.client, alpha.job_id
    fake = _fake_like(real)
    calls: dict[str, Callable[[str], Any]] = {
        "jobs.retrieve": lambda i: c.fine_tuning.jobs.retrieve(i),
        "jobs.cancel": lambda i: c.fine_tuning.jobs.cancel(i),
        "jobs.pause": lambda i: c.fine_tuning.jobs.pause(i),
        "jobs.resume": lambda i: c.fine_tuning.jobs.resume(i),
        "jobs.list_events": lambda i: c.fine_tuning.jobs.list_events(i),
        "jobs.checkpoints.list": lambda i: c.fine_tuning.jobs.checkpoints.list(i),
    }
    for name, call in calls.items():
        err = _same_error(lambda: call(real), real, lambda: call(fake), fake, openai.NotFoundError)
        assert err["type"] == "invalid_request_error", (name, err)
    # cancel / pause / resume with an Idempotency-Key go through the keyed path: still a 404
    for name in ("cancel", "pause", "resume"):
        method = getattr(c.fine_tuning.jobs, name)
        _same_error(
            lambda: method(real, extra_headers={"Idempotency-Key": f"beta-{name}-real"}),
            real,
            lambda: method(fake, extra_headers={"Idempotency-Key": f"beta-{name}-fake"}),
            fake,
            openai.NotFoundError,
        )


def test_model_endpoints_hide_other_projects_models(alpha: Alpha, beta: Beta, alpha_before: dict[str, Any]) -> None:
    c = beta.client
    for real in (alpha.ft_model, alpha.ckpt_model):
        fake = _fake_like(real)
        assert is_fine_tuned_name(fake)
        for call in (lambda i: c.models.retrieve(i), lambda i: c.models.delete(i)):
            err = _same_error(lambda: call(real), real, lambda: call(fake), fake, openai.NotFoundError)
            assert err["code"] == "model_not_found", err


def test_cursors_from_other_projects_are_unknown(alpha: Alpha, beta: Beta, alpha_before: dict[str, Any]) -> None:
    """An ``after`` cursor naming alpha's object is as unknown to beta as a made-up one."""
    c = beta.client
    cases: list[tuple[str, Callable[[str], Any]]] = [
        (alpha.file_id, lambda i: c.files.list(after=i)),
        (alpha.job_id, lambda i: c.fine_tuning.jobs.list(after=i)),
        (alpha.event_ids[0], lambda i: c.fine_tuning.jobs.list_events(beta.job_id, after=i)),
        (alpha.ckpt_id, lambda i: c.fine_tuning.jobs.checkpoints.list(beta.job_id, after=i)),
    ]
    for real, call in cases:
        fake = _fake_like(real)
        _same_error(lambda: call(real), real, lambda: call(fake), fake, openai.BadRequestError)


def test_lists_show_only_own_objects(alpha: Alpha, beta: Beta, alpha_before: dict[str, Any]) -> None:
    c = beta.client
    files = [f.id for f in c.files.list()]
    assert files == [beta.file_id]
    assert [f.id for f in c.files.list(purpose="fine-tune")] == [beta.file_id]
    jobs = [j.id for j in c.fine_tuning.jobs.list()]
    assert jobs == [beta.job_id]
    models = [m.id for m in c.models.list()]
    assert alpha.ft_model not in models and alpha.ckpt_model not in models
    assert BASE in models
    assert not [m for m in models if m.startswith("ft:")], models
    # nothing of alpha's leaks through any field of beta's objects either
    dumped = json.dumps(
        [x.model_dump() for x in c.files.list()]
        + [x.model_dump() for x in c.fine_tuning.jobs.list()]
        + [x.model_dump() for x in c.models.list()]
        + [x.model_dump() for x in c.fine_tuning.jobs.list_events(beta.job_id)]
    )
    for secret in (
        alpha.file_id,
        alpha.job_id,
        alpha.ft_model,
        alpha.ckpt_model,
        alpha.ckpt_id,
        alpha_before["job"]["organization_id"],
        *alpha.event_ids,
    ):
        assert secret not in dumped


def test_create_job_with_other_projects_inputs_is_refused(
    alpha: Alpha, beta: Beta, alpha_before: dict[str, Any]
) -> None:
    c = beta.client
    real, fake = alpha.file_id, _fake_like(alpha.file_id)
    for param in ("training_file", "validation_file"):
        if param == "training_file":

            def create(i: str) -> Any:
                return c.fine_tuning.jobs.create(model=BASE, training_file=i)
        else:

            def create(i: str) -> Any:
                return c.fine_tuning.jobs.create(model=BASE, training_file=beta.file_id, validation_file=i)

        err = _same_error(lambda: create(real), real, lambda: create(fake), fake, openai.BadRequestError)
        assert err["param"] == param, err
    for real in (alpha.ft_model, alpha.ckpt_model):
        fake = _fake_like(real)
        err = _same_error(
            lambda: c.fine_tuning.jobs.create(model=real, training_file=beta.file_id),
            real,
            lambda: c.fine_tuning.jobs.create(model=fake, training_file=beta.file_id),
            fake,
            openai.BadRequestError,
        )
        assert err["param"] == "model", err
    # none of the refused creates left a job behind
    assert [j.id for j in c.fine_tuning.jobs.list()] == [beta.job_id]


# --- authentication ----------------------------------------------------------------------------


def _calls(c: openai.OpenAI, file_id: str, job_id: str, model: str, kw: dict[str, Any]) -> dict[str, Callable[[], Any]]:
    """One call per SDK method of every endpoint family; ``kw`` goes to each (extra_headers)."""
    return {
        "files.create": lambda: c.files.create(file=("x.jsonl", _chat_lines(12, "x")), purpose="fine-tune", **kw),
        "files.list": lambda: c.files.list(**kw),
        "files.retrieve": lambda: c.files.retrieve(file_id, **kw),
        "files.content": lambda: c.files.content(file_id, **kw),
        "files.delete": lambda: c.files.delete(file_id, **kw),
        "jobs.create": lambda: c.fine_tuning.jobs.create(model=BASE, training_file=file_id, **kw),
        "jobs.list": lambda: c.fine_tuning.jobs.list(**kw),
        "jobs.retrieve": lambda: c.fine_tuning.jobs.retrieve(job_id, **kw),
        "jobs.cancel": lambda: c.fine_tuning.jobs.cancel(job_id, **kw),
        "jobs.pause": lambda: c.fine_tuning.jobs.pause(job_id, **kw),
        "jobs.resume": lambda: c.fine_tuning.jobs.resume(job_id, **kw),
        "jobs.list_events": lambda: c.fine_tuning.jobs.list_events(job_id, **kw),
        "jobs.checkpoints.list": lambda: c.fine_tuning.jobs.checkpoints.list(job_id, **kw),
        "models.list": lambda: c.models.list(**kw),
        "models.retrieve": lambda: c.models.retrieve(model, **kw),
        "models.delete": lambda: c.models.delete(model, **kw),
    }


def _routed(server: Any, path: str) -> bool:
    return any(getattr(r, "path", None) == path for r in server.app.routes)


@pytest.mark.parametrize("credential", ["missing", "wrong", "malformed", "not-bearer"])
def test_bad_credentials_are_401_everywhere(
    server: Any, alpha: Alpha, alpha_before: dict[str, Any], credential: str
) -> None:
    kw: dict[str, Any] = {}
    if credential == "missing":
        # The SDK insists on a credential; explicitly omitting the header per request is its
        # documented way to send none, which models a client with no key.
        c = _client(server, "unused")
        kw = {"extra_headers": {"Authorization": openai.Omit()}}
    elif credential == "wrong":
        c = _client(server, "sk-hone-" + "x" * 32)
    elif credential == "malformed":
        c = _client(server, "not-a-hone-key-at-all")
    else:
        c = _client(server, "unused", default_headers={"Authorization": "Basic YWxwaGE6YWxwaGE="})
    calls = _calls(c, alpha.file_id, alpha.job_id, alpha.ft_model, kw)
    if _routed(server, "/v1/chat/completions"):
        calls["chat.completions.create"] = lambda: c.chat.completions.create(
            model=alpha.ft_model, messages=[{"role": "user", "content": "hi"}], **kw
        )
    if _routed(server, "/v1/completions"):
        calls["completions.create"] = lambda: c.completions.create(model=alpha.ft_model, prompt="hi", **kw)
    with c:
        for name, call in calls.items():
            with pytest.raises(openai.AuthenticationError) as info:
                call()
            exc = info.value
            assert exc.status_code == 401, name
            body = exc.response.json()
            assert set(body) == {"error"}, (name, body)
            err = body["error"]
            assert set(err) >= {"message", "type", "param", "code"}, (name, err)
            assert err["type"] == "invalid_request_error", (name, err)
            assert err["message"], (name, err)
            if credential in ("wrong", "malformed"):
                assert err["code"] == "invalid_api_key", (name, err)
                assert "x" * 20 not in err["message"], (name, err)  # the key is never echoed whole
            else:  # no bearer credential reached the server at all
                assert "You didn't provide an API key" in err["message"], (name, err)
                assert err["code"] is None, (name, err)
    # nothing happened to alpha
    assert _alpha_snapshot(alpha) == alpha_before


def test_bad_credentials_raw_http(server: Any, alpha: Alpha) -> None:
    """Without the SDK in between: no header at all, and bearer schemes with no token."""
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Bearer x"}, {"Authorization": "bearer"}):
        r = httpx.get(server.base_url + f"/v1/files/{alpha.file_id}", headers=headers)
        assert r.status_code == 401, (headers, r.text)
        assert r.json()["error"]["type"] == "invalid_request_error"


# --- last: alpha's view after everything beta and the anonymous clients tried ---------------


def test_alpha_is_unchanged_after_betas_attempts(alpha: Alpha, beta: Beta, alpha_before: dict[str, Any]) -> None:
    # Runs last in this module (definition order): every attempt above has been made.
    after = _alpha_snapshot(alpha)
    assert after == alpha_before
    # and alpha can still act on its own objects (the ids were not burned by beta's attempts)
    assert alpha.client.fine_tuning.jobs.pause(alpha.job_id).status == "paused"
    assert alpha.client.fine_tuning.jobs.resume(alpha.job_id).status == "queued"
