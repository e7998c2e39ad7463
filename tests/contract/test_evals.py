"""/v1/evals through the official SDK, every response checked against the spec: create (the
custom config expanded to its schema, criteria given ids, each refusal naming its field),
list in both orders and by updated_at with cursors, retrieve, update, delete with its runs,
and another project's evals answering 404. The server's background loops are off: no run
executes here (tests/contract/test_eval_runs.py has the runs)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from sqlalchemy import select, update

from service.db.schema import Eval, EvalRun
from tests.contract.openapi import SpecChecker
from tests.harness.server import RunningServer, start_server

ITEM_SCHEMA = {
    "type": "object",
    "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
    "required": ["question", "answer"],
}
CUSTOM = {"type": "custom", "item_schema": ITEM_SCHEMA, "include_sample_schema": True}
EXACT = {
    "type": "string_check",
    "name": "exact",
    "input": "{{sample.output_text}}",
    "reference": "{{item.answer}}",
    "operation": "eq",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, catalog) -> Iterator[RunningServer]:  # type: ignore[no-untyped-def]
    srv = start_server(tmp_path_factory.mktemp("evals"), catalog, run_loops=False)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def other(server: RunningServer, spec_checker: SpecChecker) -> Iterator[openai.OpenAI]:
    """A client of another project."""
    import httpx

    http = httpx.Client(event_hooks={"response": [spec_checker.hook]}, timeout=60)
    with openai.OpenAI(
        base_url=server.base_url + "/v1", api_key=server.new_key("other"), max_retries=0, http_client=http
    ) as c:
        yield c


def error_of(exc: pytest.ExceptionInfo[openai.APIStatusError]) -> dict[str, Any]:
    body = exc.value.body
    assert isinstance(body, dict)
    return body


def make(client: openai.OpenAI, **kw: Any) -> Any:
    args: dict[str, Any] = {"name": "qa", "data_source_config": CUSTOM, "testing_criteria": [EXACT]}
    args.update(kw)
    return client.evals.create(**args)


def test_create_expands_the_config_and_ids_the_criteria(client: openai.OpenAI, spec_checker: SpecChecker) -> None:
    raw = client.evals.with_raw_response.create(
        name="qa", data_source_config=CUSTOM, testing_criteria=[EXACT], metadata={"team": "ml"}
    )
    assert raw.status_code == 201
    ev = raw.parse()
    assert ev.object == "eval" and ev.id.startswith("eval_") and ev.name == "qa" and ev.metadata == {"team": "ml"}
    config = ev.to_dict()["data_source_config"]
    assert config["type"] == "custom"
    schema = config["schema"]
    assert schema["required"] == ["item", "sample"] and schema["properties"]["item"] == ITEM_SCHEMA
    assert schema["properties"]["sample"]["properties"]["output_text"] == {"type": "string"}
    [criterion] = ev.testing_criteria
    dumped = criterion.model_dump()
    assert dumped["id"].startswith("exact-") and len(dumped["id"]) == len("exact-") + 36
    assert {k: dumped[k] for k in EXACT} == EXACT
    assert client.evals.retrieve(ev.id).model_dump() == ev.model_dump()
    assert spec_checker.by_operation.get("POST /evals", 0) >= 1


def test_without_sample_schema_only_item_is_required(client: openai.OpenAI) -> None:
    grader = {**EXACT, "input": "{{item.question}}"}
    ev = make(client, data_source_config={"type": "custom", "item_schema": ITEM_SCHEMA}, testing_criteria=[grader])
    schema = ev.to_dict()["data_source_config"]["schema"]
    assert schema["required"] == ["item"] and set(schema["properties"]) == {"item"}


def test_an_unnamed_eval_gets_a_name(client: openai.OpenAI) -> None:
    ev = client.evals.create(data_source_config=CUSTOM, testing_criteria=[EXACT])
    assert ev.name.startswith("Eval ")


@pytest.mark.parametrize("kind", ["logs", "stored_completions"])
def test_openai_side_configs_are_refused_by_name(client: openai.OpenAI, kind: str) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.evals.create(data_source_config={"type": kind}, testing_criteria=[EXACT])  # type: ignore[misc,list-item]
    err = error_of(exc)
    assert err["param"] == "data_source_config.type"
    assert repr(kind) in err["message"] and "hone stores no completions" in err["message"]


def test_an_unknown_config_type_is_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.evals.create(data_source_config={"type": "spreadsheet"}, testing_criteria=[EXACT])  # type: ignore[misc,list-item]
    err = error_of(exc)  # told by the shared describer of pydantic's tagged-union errors
    assert (
        err["param"].startswith("data_source_config")
        and "'spreadsheet'" in err["message"]
        and "'custom'" in err["message"]
    )


def test_an_invalid_item_schema_is_refused(client: openai.OpenAI) -> None:
    bad = {"type": "custom", "item_schema": {"type": "object", "properties": {"a": {"type": "strin"}}}}
    with pytest.raises(openai.BadRequestError) as exc:
        client.evals.create(data_source_config=bad, testing_criteria=[EXACT])  # type: ignore[arg-type]
    err = error_of(exc)
    assert err["param"] == "data_source_config.item_schema" and "not a valid JSON Schema" in err["message"]


def test_criteria_are_checked_against_the_item_schema(client: openai.OpenAI) -> None:
    grader = {**EXACT, "name": "typo", "reference": "{{item.answr}}"}
    with pytest.raises(openai.BadRequestError) as exc:
        make(client, testing_criteria=[EXACT, grader])
    err = error_of(exc)
    assert err["param"].startswith("testing_criteria[1]") and "answr" in err["message"]


def test_sample_references_need_the_sample_schema(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        make(client, data_source_config={"type": "custom", "item_schema": ITEM_SCHEMA})
    assert error_of(exc)["param"].startswith("testing_criteria[0]")


def test_text_similarity_needs_a_pass_threshold_in_an_eval(client: openai.OpenAI) -> None:
    grader = {
        "type": "text_similarity",
        "name": "close",
        "input": "{{sample.output_text}}",
        "reference": "{{item.answer}}",
        "evaluation_metric": "fuzzy_match",
    }
    with pytest.raises(openai.BadRequestError) as exc:
        make(client, testing_criteria=[grader])
    assert error_of(exc)["param"] == "testing_criteria[0].pass_threshold"
    ev = make(client, testing_criteria=[{**grader, "pass_threshold": 0.8}])
    assert ev.testing_criteria[0].model_dump()["pass_threshold"] == 0.8


def test_criteria_names_are_unique(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        make(client, testing_criteria=[EXACT, {**EXACT, "operation": "ne"}])
    err = error_of(exc)
    assert err["param"] == "testing_criteria[1].name" and "testing_criteria[0]" in err["message"]


def test_an_eval_needs_a_grader(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        make(client, testing_criteria=[])
    assert error_of(exc)["param"] == "testing_criteria"


def test_unknown_fields_and_bad_metadata_are_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        make(client, extra_body={"colour": "red"})
    assert error_of(exc)["param"] == "colour"
    with pytest.raises(openai.BadRequestError) as exc:
        make(client, metadata={f"k{i}": "v" for i in range(17)})
    assert error_of(exc)["param"] == "metadata"


def test_list_pages_in_both_orders(client: openai.OpenAI, other: openai.OpenAI) -> None:
    ids = [make(other, name=f"page-{i}").id for i in range(5)]
    page = other.evals.list(limit=2)
    assert [e.id for e in page.data] == ids[:2] and page.has_more  # asc by default
    assert [e.id for e in other.evals.list(limit=2, after=ids[1]).data] == ids[2:4]
    assert [e.id for e in other.evals.list(limit=2, order="asc")] == ids  # the SDK follows the cursors
    assert [e.id for e in other.evals.list(limit=2, order="desc")] == ids[::-1]
    last = other.evals.list(after=ids[3])
    assert [e.id for e in last.data] == ids[4:] and not last.has_more


def test_list_by_updated_at(client: openai.OpenAI, server: RunningServer) -> None:
    api_key = server.new_key("by-updated")
    with openai.OpenAI(base_url=server.base_url + "/v1", api_key=api_key, max_retries=0) as c:
        ids = [make(c, name=f"u{i}").id for i in range(3)]
        # updated_at has a resolution of seconds: give the evals distinct ones, oldest update first
        with server.ctx.db.session() as s:
            for at, eval_id in zip((300, 100, 200), ids, strict=True):
                s.execute(update(Eval).where(Eval.id == eval_id).values(updated_at=at))
        expected = [ids[1], ids[2], ids[0]]
        assert [e.id for e in c.evals.list(order_by="updated_at", limit=2)] == expected
        assert [e.id for e in c.evals.list(order_by="updated_at", order="desc", limit=1)] == expected[::-1]
        assert [e.id for e in c.evals.list(order_by="updated_at", after=ids[1]).data] == expected[1:]


def test_list_refuses_bad_parameters(client: openai.OpenAI) -> None:
    for params, param in (
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"order": "up"}, "order"),
        ({"order_by": "name"}, "order_by"),
        ({"after": "eval_nope"}, "after"),
    ):
        with pytest.raises(openai.BadRequestError) as exc:
            client.evals.list(**params)  # type: ignore[arg-type]
        assert error_of(exc)["param"] == param, params


def test_update_renames_and_replaces_metadata(client: openai.OpenAI, server: RunningServer) -> None:
    ev = make(client, metadata={"a": "1"})
    with server.ctx.db.session() as s:
        s.execute(update(Eval).where(Eval.id == ev.id).values(updated_at=1))
    renamed = client.evals.update(ev.id, name="renamed")
    assert renamed.name == "renamed" and renamed.metadata == {"a": "1"}
    with server.ctx.db.session() as s:
        assert s.scalar(select(Eval.updated_at).where(Eval.id == ev.id)) > 1
    tagged = client.evals.update(ev.id, metadata={"b": "2"})
    assert tagged.name == "renamed" and tagged.metadata == {"b": "2"}
    assert client.evals.retrieve(ev.id).metadata == {"b": "2"}
    with pytest.raises(openai.BadRequestError) as exc:
        client.evals.update(ev.id, extra_body={"testing_criteria": []})
    assert error_of(exc)["param"] == "testing_criteria"


def test_delete_takes_the_runs_with_it(client: openai.OpenAI, server: RunningServer) -> None:
    ev = make(client)
    run = client.evals.runs.create(
        ev.id,
        data_source={
            "type": "jsonl",
            "source": {
                "type": "file_content",
                "content": [{"item": {"question": "q", "answer": "a"}, "sample": {"output_text": "a"}}],
            },
        },
    )
    deleted = client.evals.delete(ev.id)
    assert deleted.object == "eval.deleted" and deleted.deleted and deleted.eval_id == ev.id
    with pytest.raises(openai.NotFoundError) as exc:
        client.evals.retrieve(ev.id)
    assert error_of(exc)["message"] == f"No eval found with id '{ev.id}'."
    with pytest.raises(openai.NotFoundError):
        client.evals.runs.retrieve(run.id, eval_id=ev.id)
    with server.ctx.db.session() as s:
        assert s.scalar(select(EvalRun).where(EvalRun.id == run.id)) is None
    with pytest.raises(openai.NotFoundError):
        client.evals.delete(ev.id)


def test_another_projects_eval_is_not_found(client: openai.OpenAI, other: openai.OpenAI) -> None:
    ev = make(client)
    for call in (
        lambda: other.evals.retrieve(ev.id),
        lambda: other.evals.update(ev.id, name="x"),
        lambda: other.evals.delete(ev.id),
        lambda: other.evals.runs.list(ev.id),
    ):
        with pytest.raises(openai.NotFoundError) as exc:
            call()
        assert error_of(exc)["param"] == "eval_id"
    assert ev.id not in [e.id for e in other.evals.list()]
    assert client.evals.retrieve(ev.id).name == "qa"


def test_a_wrong_key_is_401_on_every_evals_endpoint(client: openai.OpenAI, server: RunningServer) -> None:
    ev = make(client)
    with openai.OpenAI(base_url=server.base_url + "/v1", api_key="sk-hone-" + "x" * 32, max_retries=0) as anon:
        for call in (
            lambda: anon.evals.create(data_source_config=CUSTOM, testing_criteria=[EXACT]),  # type: ignore[arg-type,list-item]
            lambda: anon.evals.list(),
            lambda: anon.evals.retrieve(ev.id),
            lambda: anon.evals.update(ev.id, name="x"),
            lambda: anon.evals.delete(ev.id),
            lambda: anon.evals.runs.list(ev.id),
            lambda: anon.evals.runs.retrieve("evalrun_x", eval_id=ev.id),
            lambda: anon.evals.runs.cancel("evalrun_x", eval_id=ev.id),
            lambda: anon.evals.runs.output_items.list("evalrun_x", eval_id=ev.id),
        ):
            with pytest.raises(openai.AuthenticationError) as exc:
                call()
            assert error_of(exc)["code"] == "invalid_api_key"
    assert client.evals.retrieve(ev.id).name == "qa"
