"""/v1/evals/{id}/runs and their output items through the official SDK, every response checked
against the spec. The first server runs no background loops, so a run stays as the API left it
(queued, cancelled): creation with each data source and source, each refusal naming its
field, list with filters and cursors, cancel, delete, 404 across projects. The second server's
runner executes a jsonl run of pre-generated samples (string_check, no model needed): the
result counts and the output items, listed with the pass/fail filter and retrieved."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.evals import RunCancelResponse
from sqlalchemy import select, update

from service.db.schema import EvalOutputItem, EvalRun
from service.evals.config import EvalSettings
from tests.contract.openapi import SpecChecker
from tests.harness.evals import wait_for_run
from tests.harness.server import RunningServer, start_server

ITEM_SCHEMA = {
    "type": "object",
    "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
    "required": ["question", "answer"],
}
EXACT = {
    "type": "string_check",
    "name": "exact",
    "input": "{{sample.output_text}}",
    "reference": "{{item.answer}}",
    "operation": "eq",
}
MAX_ITEMS = 8


def item(i: int) -> dict[str, Any]:
    return {"question": f"q{i}", "answer": f"a{i}"}


def content(n: int, *, right: int | None = None) -> list[dict[str, Any]]:
    """``n`` rows whose samples answer the first ``right`` (default: all) correctly."""
    right = n if right is None else right
    return [{"item": item(i), "sample": {"output_text": f"a{i}" if i < right else "wrong"}} for i in range(n)]


def jsonl_source(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "jsonl", "source": {"type": "file_content", "content": rows}}


TEMPLATE = {
    "type": "template",
    "template": [
        {"role": "developer", "content": "Answer briefly."},
        {"role": "user", "content": "{{item.question}}"},
    ],
}


def completions(**kw: Any) -> dict[str, Any]:
    ds: dict[str, Any] = {
        "type": "completions",
        "model": "hone-tiny",
        "input_messages": TEMPLATE,
        "sampling_params": {"temperature": 0, "max_completion_tokens": 16, "seed": 1},
        "source": {"type": "file_content", "content": [{"item": item(0)}]},
    }
    ds.update(kw)
    return ds


def error_of(exc: pytest.ExceptionInfo[openai.APIStatusError]) -> dict[str, Any]:
    body = exc.value.body
    assert isinstance(body, dict)
    return body


def sdk(server: RunningServer, project: str, checker: SpecChecker) -> openai.OpenAI:
    http = httpx.Client(event_hooks={"response": [checker.hook]}, timeout=60)
    return openai.OpenAI(
        base_url=server.base_url + "/v1", api_key=server.new_key(project), max_retries=0, http_client=http
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, catalog) -> Iterator[RunningServer]:  # type: ignore[no-untyped-def]
    srv = start_server(
        tmp_path_factory.mktemp("eval-runs"), catalog, run_loops=False, evals=EvalSettings(max_items=MAX_ITEMS)
    )
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def other(server: RunningServer, spec_checker: SpecChecker) -> Iterator[openai.OpenAI]:
    with sdk(server, "other", spec_checker) as c:
        yield c


@pytest.fixture(scope="module")
def ev(client: openai.OpenAI) -> Any:
    return client.evals.create(
        name="qa",
        data_source_config={"type": "custom", "item_schema": ITEM_SCHEMA, "include_sample_schema": True},
        testing_criteria=[EXACT],  # type: ignore[list-item]
    )


def test_a_jsonl_run_is_created_queued(client: openai.OpenAI, server: RunningServer, ev: Any) -> None:
    raw = client.evals.runs.with_raw_response.create(ev.id, data_source=jsonl_source(content(3)), metadata={"k": "v"})  # type: ignore[arg-type]
    assert raw.status_code == 201
    run = raw.parse()
    assert run.object == "eval.run" and run.id.startswith("evalrun_") and run.eval_id == ev.id
    assert run.status == "queued" and run.error is None and run.metadata == {"k": "v"}
    assert run.model == "" and run.name.startswith("jsonl-run-")
    assert run.result_counts.model_dump() == {"total": 0, "errored": 0, "failed": 0, "passed": 0}
    assert run.per_model_usage == [] and run.per_testing_criteria_results == []
    assert run.report_url == f"{server.base_url}/ui/#/evals/{ev.id}?run={run.id}"
    assert run.data_source.to_dict() == jsonl_source(content(3))
    assert client.evals.runs.retrieve(run.id, eval_id=ev.id).to_dict() == run.to_dict()


def test_a_completions_run_names_its_model(client: openai.OpenAI, ev: Any) -> None:
    run = client.evals.runs.create(ev.id, data_source=completions())  # type: ignore[arg-type]
    assert run.model == "hone-tiny" and run.name == "hone-tiny" and run.status == "queued"
    ds = run.data_source.to_dict()
    # template messages come back as OpenAI echoes them: typed messages with an input_text part
    assert ds["input_messages"]["template"][1] == {
        "type": "message",
        "role": "user",
        "content": {"type": "input_text", "text": "{{item.question}}"},
    }
    assert ds["sampling_params"] == {"temperature": 0, "max_completion_tokens": 16, "seed": 1}
    named = client.evals.runs.create(
        ev.id,
        name="by reference",
        data_source=completions(
            input_messages={"type": "item_reference", "item_reference": "item.question"},
        ),  # type: ignore[arg-type]
    )
    assert named.name == "by reference"


def test_a_file_id_source(client: openai.OpenAI, other: openai.OpenAI, ev: Any) -> None:
    data = "".join(json.dumps(r) + "\n" for r in content(2)).encode()
    file = client.files.create(file=("rows.jsonl", io.BytesIO(data)), purpose="evals")
    run = client.evals.runs.create(ev.id, data_source={"type": "jsonl", "source": {"type": "file_id", "id": file.id}})
    assert run.data_source.to_dict()["source"] == {"type": "file_id", "id": file.id}
    foreign = other.files.create(file=("rows.jsonl", io.BytesIO(data)), purpose="evals")
    for file_id in ("file-missing", foreign.id):
        with pytest.raises(openai.NotFoundError) as exc:
            client.evals.runs.create(ev.id, data_source={"type": "jsonl", "source": {"type": "file_id", "id": file_id}})
        err = error_of(exc)
        assert err["param"] == "data_source.source.id" and file_id in err["message"]


@pytest.mark.parametrize(
    ("data_source", "param", "words"),
    [
        ({"type": "responses", "source": {"type": "responses"}}, "data_source.type", "use type 'completions'"),
        (
            completions(source={"type": "stored_completions"}),
            "data_source.source.type",
            "hone stores no completions",
        ),
        (
            jsonl_source([*content(1), {"item": {"question": "q"}, "sample": {"output_text": "x"}}]),
            "data_source.source.content[1].item",
            "'answer' is a required property",
        ),
        (
            jsonl_source([{"item": item(0)}]),
            "data_source.source.content[0].sample",
            "{{sample.*}}",
        ),
        (jsonl_source(content(MAX_ITEMS + 1)), "data_source.source.content", f"more than the {MAX_ITEMS}"),
        (jsonl_source([]), "data_source.source.content", "no items"),
        (completions(model="gpt-5"), "data_source.model", "gpt-5"),
        ({k: v for k, v in completions().items() if k != "model"}, "data_source.model", "Missing"),
        (
            completions(
                input_messages={"type": "template", "template": [{"role": "user", "content": "{{item.nope}}"}]}
            ),
            "data_source.input_messages.template[0].content",
            "nope",
        ),
        (
            completions(input_messages={"type": "item_reference", "item_reference": "sample.output_text"}),
            "data_source.input_messages.item_reference",
            "item namespace",
        ),
    ],
)
def test_bad_data_sources_are_refused(
    client: openai.OpenAI, ev: Any, data_source: dict[str, Any], param: str, words: str
) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.evals.runs.create(ev.id, data_source=data_source)  # type: ignore[arg-type]
    err = error_of(exc)
    assert err["param"] == param and words in err["message"], err


def test_unknown_sampling_params_are_refused(client: openai.OpenAI, ev: Any) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.evals.runs.create(ev.id, data_source=completions(sampling_params={"logit_bias": {}}))  # type: ignore[arg-type]
    assert error_of(exc)["param"].endswith("sampling_params.logit_bias")


def test_list_filters_pages_and_orders(client: openai.OpenAI, server: RunningServer) -> None:
    ev = client.evals.create(
        data_source_config={"type": "custom", "item_schema": ITEM_SCHEMA, "include_sample_schema": True},
        testing_criteria=[EXACT],  # type: ignore[list-item]
    )
    ids = [client.evals.runs.create(ev.id, data_source=jsonl_source(content(1))).id for _ in range(4)]  # type: ignore[arg-type]
    with server.ctx.db.session() as s:  # as the runner leaves them
        s.execute(update(EvalRun).where(EvalRun.id.in_(ids[1:3])).values(status="completed"))
    page = client.evals.runs.list(ev.id, limit=3)
    assert [r.id for r in page.data] == ids[:3] and page.has_more  # asc by default
    assert [r.id for r in client.evals.runs.list(ev.id, limit=1, order="desc")] == ids[::-1]
    assert [r.id for r in client.evals.runs.list(ev.id, after=ids[0], limit=2).data] == ids[1:3]
    assert [r.id for r in client.evals.runs.list(ev.id, status="completed")] == ids[1:3]
    assert [r.id for r in client.evals.runs.list(ev.id, status="queued", order="desc")] == [ids[3], ids[0]]
    with pytest.raises(openai.BadRequestError) as exc:
        client.evals.runs.list(ev.id, status="done")  # type: ignore[arg-type]
    assert error_of(exc)["param"] == "status"


def test_cancel(client: openai.OpenAI, server: RunningServer, ev: Any) -> None:
    run = client.evals.runs.create(ev.id, data_source=jsonl_source(content(1)))  # type: ignore[arg-type]
    cancelled = client.evals.runs.cancel(run.id, eval_id=ev.id)
    assert cancelled.status == "canceled" and cancelled.id == run.id
    assert client.evals.runs.cancel(run.id, eval_id=ev.id).status == "canceled"  # again: as it is
    # the spec's path for it (the SDK adds /cancel)
    again = client.post(f"/evals/{ev.id}/runs/{run.id}", cast_to=RunCancelResponse)
    assert again.status == "canceled" and again.id == run.id
    done = client.evals.runs.create(ev.id, data_source=jsonl_source(content(1)))  # type: ignore[arg-type]
    with server.ctx.db.session() as s:
        s.execute(update(EvalRun).where(EvalRun.id == done.id).values(status="completed"))
    with pytest.raises(openai.BadRequestError) as exc:
        client.evals.runs.cancel(done.id, eval_id=ev.id)
    err = error_of(exc)
    assert err["param"] == "run_id" and "completed" in err["message"]
    # a cancelled run that graded nothing lists no output items (first_id / last_id null)
    empty = client.evals.runs.output_items.list(run.id, eval_id=ev.id)
    assert (empty.data, empty.has_more, empty.first_id, empty.last_id) == ([], False, None, None)


def test_delete(client: openai.OpenAI, server: RunningServer, ev: Any) -> None:
    run = client.evals.runs.create(ev.id, data_source=jsonl_source(content(1)))  # type: ignore[arg-type]
    deleted = client.evals.runs.delete(run.id, eval_id=ev.id)
    assert deleted.object == "eval.run.deleted" and deleted.deleted and deleted.run_id == run.id
    with server.ctx.db.session() as s:
        assert s.scalar(select(EvalRun).where(EvalRun.id == run.id)) is None
    with pytest.raises(openai.NotFoundError) as exc:
        client.evals.runs.retrieve(run.id, eval_id=ev.id)
    assert error_of(exc)["message"] == f"No eval run found with id '{run.id}'."


def test_another_projects_runs_are_not_found(client: openai.OpenAI, other: openai.OpenAI, ev: Any) -> None:
    run = client.evals.runs.create(ev.id, data_source=jsonl_source(content(1)))  # type: ignore[arg-type]
    for call in (
        lambda: other.evals.runs.retrieve(run.id, eval_id=ev.id),
        lambda: other.evals.runs.cancel(run.id, eval_id=ev.id),
        lambda: other.evals.runs.delete(run.id, eval_id=ev.id),
        lambda: other.evals.runs.output_items.list(run.id, eval_id=ev.id),
        lambda: other.evals.runs.create(ev.id, data_source=jsonl_source(content(1))),  # type: ignore[arg-type]
    ):
        with pytest.raises(openai.NotFoundError) as exc:
            call()
        assert error_of(exc)["param"] == "eval_id"
    mine = client.evals.create(
        data_source_config={"type": "custom", "item_schema": ITEM_SCHEMA, "include_sample_schema": True},
        testing_criteria=[EXACT],  # type: ignore[list-item]
    )
    with pytest.raises(openai.NotFoundError) as exc:  # a run of another eval
        client.evals.runs.retrieve(run.id, eval_id=mine.id)
    assert error_of(exc)["param"] == "run_id"
    assert client.evals.runs.retrieve(run.id, eval_id=ev.id).status == "queued"


# ----------------------------------------------------------------------------- executed runs


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, catalog) -> Iterator[RunningServer]:  # type: ignore[no-untyped-def]
    srv = start_server(tmp_path_factory.mktemp("eval-runs-executed"), catalog)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def executed(running: RunningServer, spec_checker: SpecChecker) -> Iterator[tuple[openai.OpenAI, Any, Any]]:
    """A jsonl run of 5 pre-generated samples, 3 of them right, executed by the runner."""
    with sdk(running, "acme", spec_checker) as c:
        ev = c.evals.create(
            data_source_config={"type": "custom", "item_schema": ITEM_SCHEMA, "include_sample_schema": True},
            testing_criteria=[EXACT],  # type: ignore[list-item]
        )
        run = c.evals.runs.create(ev.id, data_source=jsonl_source(content(5, right=3)))  # type: ignore[arg-type]
        done = wait_for_run(c, ev.id, run.id)
        yield c, ev, done


def test_a_run_of_pregenerated_samples_completes(executed: tuple[openai.OpenAI, Any, Any]) -> None:
    _, _, run = executed
    assert run.status == "completed", run.error
    assert run.result_counts.model_dump() == {"total": 5, "errored": 0, "failed": 2, "passed": 3}
    [per_criterion] = run.per_testing_criteria_results  # named by the criterion's id, as OpenAI's are
    assert per_criterion.testing_criteria.startswith("exact-") and (per_criterion.passed, per_criterion.failed) == (
        3,
        2,
    )


def test_output_items_list_filter_and_retrieve(executed: tuple[openai.OpenAI, Any, Any]) -> None:
    c, ev, run = executed
    items = list(c.evals.runs.output_items.list(run.id, eval_id=ev.id, limit=2))  # in the order they were graded
    assert sorted(i.datasource_item_id for i in items) == [0, 1, 2, 3, 4]
    by_row = {i.datasource_item_id: i for i in items}
    assert [by_row[n].status for n in range(5)] == ["pass", "pass", "pass", "fail", "fail"]
    first = by_row[0]
    assert first.object == "eval.run.output_item" and first.run_id == run.id and first.eval_id == ev.id
    assert first.datasource_item == item(0)
    assert first.results[0].model_dump()["name"] == "exact" and first.results[0].passed
    assert first.sample.output[0].content == "a0" and first.sample.error is None
    desc = c.evals.runs.output_items.list(run.id, eval_id=ev.id, order="desc", limit=2)
    assert [i.id for i in desc.data] == [items[4].id, items[3].id] and desc.has_more
    after = c.evals.runs.output_items.list(run.id, eval_id=ev.id, after=items[1].id)
    assert [i.id for i in after.data] == [i.id for i in items[2:]] and not after.has_more
    failed = c.evals.runs.output_items.list(run.id, eval_id=ev.id, status="fail", limit=1)
    assert sorted(i.datasource_item_id for i in failed) == [3, 4]
    passed = c.evals.runs.output_items.list(run.id, eval_id=ev.id, status="pass")
    assert sorted(i.datasource_item_id for i in passed) == [0, 1, 2]
    got = c.evals.runs.output_items.retrieve(by_row[3].id, eval_id=ev.id, run_id=run.id)
    assert got.to_dict() == by_row[3].to_dict() and got.status == "fail"
    with pytest.raises(openai.NotFoundError) as exc:
        c.evals.runs.output_items.retrieve("outputitem_nope", eval_id=ev.id, run_id=run.id)
    assert error_of(exc)["param"] == "output_item_id"
    with pytest.raises(openai.BadRequestError) as bad:
        c.evals.runs.output_items.list(run.id, eval_id=ev.id, status="error")  # type: ignore[arg-type]
    assert error_of(bad)["param"] == "status"


def test_output_items_go_with_their_run_and_eval(
    executed: tuple[openai.OpenAI, Any, Any], running: RunningServer
) -> None:
    c, ev, run = executed
    with sdk(running, "someone-else", SpecChecker()) as stranger:
        with pytest.raises(openai.NotFoundError):
            stranger.evals.runs.output_items.list(run.id, eval_id=ev.id)
    c.evals.runs.delete(run.id, eval_id=ev.id)
    with pytest.raises(openai.NotFoundError) as exc:
        c.evals.runs.output_items.list(run.id, eval_id=ev.id)
    assert error_of(exc)["param"] == "run_id"
    assert item_rows(running, EvalOutputItem.run_id == run.id) == 0
    second = c.evals.runs.create(ev.id, data_source=jsonl_source(content(2)))  # type: ignore[arg-type]
    assert wait_for_run(c, ev.id, second.id).status == "completed"
    assert item_rows(running, EvalOutputItem.eval_id == ev.id) == 2
    c.evals.delete(ev.id)
    assert item_rows(running, EvalOutputItem.eval_id == ev.id) == 0


def item_rows(server: RunningServer, where: Any) -> int:
    with server.ctx.db.session() as s:
        return len(list(s.scalars(select(EvalOutputItem).where(where))))
