"""The Evals and graders endpoints hit as an attacker or a careless caller would: schemas that
reach out to the network, backtracking patterns, nesting deeper than Python recurses, NaN and
lone surrogates that Python's JSON parser takes and no JSON writer gives back, templates and
formulas built to take forever, other projects' ids. Each answer is a 400 (or 404) in OpenAI's
envelope naming the field, or a run failed naming the line; never a 500, a hang or a stored
value that cannot be read back. Real server, official SDK where it has the method, raw httpx
for bodies the SDK would not send."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import update
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from service.db.schema import Eval
from tests.contract.openapi import SpecChecker
from tests.harness.evals import wait_for_run
from tests.harness.server import RunningServer, serve_app, start_server

SC = {"type": "string_check", "name": "same", "input": "{{item.q}}", "reference": "{{item.q}}", "operation": "eq"}
OPEN: dict[str, Any] = {"type": "object"}
SCHEMA = "data_source_config.item_schema"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, catalog) -> Iterator[RunningServer]:  # type: ignore[no-untyped-def]
    srv = start_server(tmp_path_factory.mktemp("evals-hostile"), catalog)  # the runner on: file runs execute
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def raw(server: RunningServer, api_key: str, spec_checker: SpecChecker) -> Iterator[httpx.Client]:
    """httpx on /v1 with the project's key, for bodies the SDK would not send (NaN, \\ud800)."""
    headers = {"authorization": f"Bearer {api_key}", "content-type": "application/json"}
    with httpx.Client(
        base_url=server.v1, headers=headers, timeout=30, event_hooks={"response": [spec_checker.hook]}
    ) as h:
        yield h


@pytest.fixture(scope="module")
def fetched() -> Iterator[tuple[str, list[str]]]:
    """A schema server on loopback that records every request it gets."""
    hits: list[str] = []

    async def schema(request: Request) -> JSONResponse:
        hits.append(str(request.url))
        return JSONResponse({"type": "string"})

    url, srv = serve_app(Starlette(routes=[Route("/{name}", schema)]))
    yield url, hits
    srv.should_exit = True


def envelope(r: httpx.Response, status: int = 400) -> dict[str, Any]:
    """The OpenAI error object of ``r``, checked for its shape."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"], error
    assert error["type"] == "invalid_request_error"
    return dict(error)


def sdk_error(exc: pytest.ExceptionInfo[openai.APIStatusError]) -> dict[str, Any]:
    body = exc.value.body
    assert isinstance(body, dict) and body.get("message"), body
    return body


def new_eval(client: openai.OpenAI, schema: dict[str, Any], criteria: list[Any] | None = None) -> Any:
    return client.evals.create(
        data_source_config={"type": "custom", "item_schema": schema},
        testing_criteria=criteria or [SC],
    )


def refused_schema(client: openai.OpenAI, schema: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(openai.BadRequestError) as exc:
        new_eval(client, schema)
    err = sdk_error(exc)
    assert err["param"] == SCHEMA, err
    return err


def content(*items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "jsonl", "source": {"type": "file_content", "content": [{"item": i} for i in items]}}


# ----------------------------------------------------------------------------- $ref


def test_a_ref_outside_the_schema_is_refused_and_never_fetched(
    client: openai.OpenAI, fetched: tuple[str, list[str]]
) -> None:
    url, hits = fetched
    for schema in (
        {"$ref": f"{url}/item.json"},
        {"type": "object", "properties": {"q": {"$ref": f"{url}/q.json"}}},
        {"type": "object", "properties": {"q": {"$ref": "q.json"}}},  # relative: the same fetch
        {"allOf": [{"$dynamicRef": f"{url}/d.json"}]},
    ):
        err = refused_schema(client, schema)
        assert "points outside the item schema" in err["message"] and "$defs" in err["message"]
    err = refused_schema(client, {"type": "object", "properties": {"q": {"$ref": "#/$defs/nope"}}})
    assert "'#/$defs/nope' resolves to nothing" in err["message"] and "['properties']['q']" in err["message"]
    assert hits == []


def test_refs_within_the_schema_still_work(client: openai.OpenAI) -> None:
    ev = new_eval(
        client,
        {
            "type": "object",
            "properties": {"q": {"$ref": "#/$defs/short"}, "r": {"$ref": "#word"}},
            "$defs": {"short": {"type": "string", "maxLength": 3}, "w": {"$anchor": "word", "type": "string"}},
        },
    )
    assert client.evals.runs.create(ev.id, data_source=content({"q": "abc", "r": "x"})).status == "queued"  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError) as exc:
        client.evals.runs.create(ev.id, data_source=content({"q": "abcd"}))  # type: ignore[arg-type]
    assert sdk_error(exc)["param"] == "data_source.source.content[0].item"
    # a "$ref" inside data (an enum value) is not a reference
    new_eval(client, {"type": "object", "properties": {"q": {"enum": [{"$ref": "http://example.test/x"}]}}})


def test_a_stored_remote_ref_is_a_400_without_a_fetch(
    client: openai.OpenAI, server: RunningServer, fetched: tuple[str, list[str]]
) -> None:
    """An eval stored before creation refused remote refs: its runs are refused, nothing is fetched."""
    url, hits = fetched
    ev = new_eval(client, OPEN)
    config = {
        "type": "custom",
        "schema": {
            "type": "object",
            "properties": {"item": {"type": "object", "properties": {"q": {"$ref": f"{url}/q.json"}}}},
            "required": ["item"],
        },
    }
    with server.ctx.db.session() as s:
        s.execute(update(Eval).where(Eval.id == ev.id).values(data_source_config=config))
    with pytest.raises(openai.BadRequestError) as exc:
        client.evals.runs.create(ev.id, data_source=content({"q": "x"}))  # type: ignore[arg-type]
    err = sdk_error(exc)
    assert err["param"] == "data_source.source.content[0].item" and "resolves to nothing" in err["message"]
    assert hits == []


def test_a_ref_cycle_is_refused(client: openai.OpenAI) -> None:
    """``{"$ref": "#"}`` recursed until Python stopped it: a 500 on every run created."""
    for schema in ({"$ref": "#"}, {"$defs": {"a": {"allOf": [{"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"}):
        err = refused_schema(client, schema)
        assert "refers to itself without end" in err["message"], err
    # a cycle only some items reach: those rows are refused (a tree schema recursing on its data is fine)
    ev = new_eval(
        client,
        {
            "type": "object",
            "properties": {"q": {}, "loop": {"$ref": "#/$defs/loop"}, "tree": {"$ref": "#/$defs/tree"}},
            "$defs": {
                "loop": {"allOf": [{"$ref": "#/$defs/loop"}]},
                "tree": {
                    "type": "object",
                    "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/tree"}}},
                },
            },
        },
    )
    tree = {"kids": [{"kids": [{"kids": []}]}]}
    assert client.evals.runs.create(ev.id, data_source=content({"tree": tree})).status == "queued"  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError) as exc:
        client.evals.runs.create(ev.id, data_source=content({"tree": tree}, {"loop": 1}))  # type: ignore[arg-type]
    err = sdk_error(exc)
    assert err["param"] == "data_source.source.content[1].item" and "($ref cycle)" in err["message"], err


# ----------------------------------------------------------------------------- patterns


def test_a_backtracking_pattern_is_cut_off(client: openai.OpenAI) -> None:
    """``(a|aa)+$`` on 60 a's and a b backtracks for ages (Python's re never returns); the match
    runs under a time limit and the row is refused naming it."""
    ev = new_eval(client, {"type": "object", "properties": {"q": {"type": "string", "pattern": "(a|aa)+$"}}})
    assert client.evals.runs.create(ev.id, data_source=content({"q": "aaaa"})).status == "queued"  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError) as exc:
        client.evals.runs.create(ev.id, data_source=content({"q": "aaaa"}, {"q": "a" * 60 + "b"}))  # type: ignore[arg-type]
    err = sdk_error(exc)
    assert err["param"] == "data_source.source.content[1].item"
    assert "did not finish matching" in err["message"] and "(a|aa)+$" in err["message"]
    with pytest.raises(openai.BadRequestError) as exc:  # an ordinary mismatch is still one
        client.evals.runs.create(ev.id, data_source=content({"q": "b"}))  # type: ignore[arg-type]
    assert "does not match '(a|aa)+$'" in sdk_error(exc)["message"]


def test_pattern_properties_are_refused_by_name(client: openai.OpenAI) -> None:
    err = refused_schema(client, {"type": "object", "patternProperties": {"^(a|aa)+$": {"type": "string"}}})
    assert "'patternProperties' is not supported" in err["message"] and "propertyNames" in err["message"]
    # properties that are merely named like keywords are fine
    named = {"type": "object", "properties": {"patternProperties": {}, "pattern": {}, "q": {}}}
    assert new_eval(client, named).id.startswith("eval_")


# ----------------------------------------------------------------------------- nesting, NaN, surrogates


def test_deep_nesting_is_a_400(client: openai.OpenAI, raw: httpx.Client) -> None:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(400):  # jsonschema's check of it used to exhaust the recursion limit: a 500
        schema = {"type": "object", "properties": {"a": schema}}
    err = refused_schema(client, schema)
    assert "nested more than 64 levels deep" in err["message"]
    ev = new_eval(client, OPEN)
    deep = "[" * 900 + "]" * 900  # the run used to be stored and then not serialisable: a 500
    body = '{"data_source": {"type": "jsonl", "source": {"type": "file_content", "content": [{"item": {"q": Q}}]}}}'
    err = envelope(raw.post(f"/evals/{ev.id}/runs", content=body.replace("Q", deep)))
    assert err["param"] == "data_source.source.content[0].item" and "nested more than 64" in err["message"]


CRITERION = '{"type": "string_check", "name": "a", "input": "a", "reference": "b", "operation": "eq"}'


def eval_body(item_schema: str = "{}", criterion: str = CRITERION, name: str = '"n"') -> str:
    return (
        f'{{"name": {name}, "data_source_config": {{"type": "custom", "item_schema": {item_schema}}}, '
        f'"testing_criteria": [{criterion}]}}'
    )


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        (eval_body('{"x": NaN}'), SCHEMA, "NaN is not a JSON number (at item_schema['x'])"),
        (eval_body('{"description": "\\ud800"}'), SCHEMA, "lone surrogate (\\ud800)"),
        (eval_body('{"\\udfff": {}}'), SCHEMA, "lone surrogate (\\udfff)"),
        (eval_body(name='"\\ud800"'), "name", "unicode"),
        (
            eval_body(
                criterion='{"type": "text_similarity", "name": "a", "input": "a", "reference": "b", '
                '"evaluation_metric": "bleu", "pass_threshold": NaN}'
            ),
            "testing_criteria[0].pass_threshold",
            "finite number",
        ),
        (
            eval_body(
                criterion='{"type": "score_model", "name": "a", "model": "hone-tiny", '
                '"input": [{"role": "user", "content": "x"}], "range": [0, Infinity]}'
            ),
            "testing_criteria[0].range[1]",
            "finite number",
        ),
    ],
)
def test_nan_and_lone_surrogates_in_an_eval_are_refused(raw: httpx.Client, body: str, param: str, words: str) -> None:
    err = envelope(raw.post("/evals", content=body))
    assert err["param"] == param and words in err["message"], err


@pytest.mark.parametrize(
    ("row", "param", "words"),
    [
        ('{"item": {"q": NaN}}', "data_source.source.content[0].item", "NaN is not a JSON number (at item['q'])"),
        ('{"item": {"q": "\\ud800"}}', "data_source.source.content[0].item", "lone surrogate"),
        ('{"item": {"\\ud800": 1}}', "data_source.source.content[0].item", "lone surrogate"),
        (
            '{"item": {"q": ["\\u0000"]}}',
            "data_source.source.content[0].item",
            "PostgreSQL cannot store (at item['q'][0])",
        ),
        ('{"item": {"q": 1}, "sample": {"s": -Infinity}}', "data_source.source.content[0].sample", "-Infinity"),
    ],
)
def test_nan_and_lone_surrogates_in_rows_are_refused(
    client: openai.OpenAI, raw: httpx.Client, row: str, param: str, words: str
) -> None:
    """These used to be stored (NaN: read back as null, or refused by PostgreSQL; a surrogate:
    the run could not be written out, a 500 on create and on every read after)."""
    ev = new_eval(client, OPEN)
    body = '{"data_source": {"type": "jsonl", "source": {"type": "file_content", "content": [ROW]}}}'.replace(
        "ROW", row
    )
    err = envelope(raw.post(f"/evals/{ev.id}/runs", content=body))
    assert err["param"] == param and words in err["message"], err
    assert list(client.evals.runs.list(ev.id)) == []


def test_nan_in_sampling_params_is_refused_not_nulled(client: openai.OpenAI, raw: httpx.Client) -> None:
    ev = new_eval(client, OPEN)
    body = {
        "data_source": {
            "type": "completions",
            "model": "hone-tiny",
            "input_messages": {"type": "template", "template": [{"role": "user", "content": "hi"}]},
            "sampling_params": {"tools": [{"type": "function", "x": float("nan")}]},
            "source": {"type": "file_content", "content": [{"item": {}}]},
        }
    }
    err = envelope(raw.post(f"/evals/{ev.id}/runs", content=json.dumps(body)))
    assert err["param"] == "data_source" and "NaN" in err["message"] and "['tools'][0]['x']" in err["message"]


def completions(**kw: Any) -> dict[str, Any]:
    ds: dict[str, Any] = {
        "type": "completions",
        "model": "hone-tiny",
        "input_messages": {"type": "template", "template": [{"role": "user", "content": "hi"}]},
        "source": {"type": "file_content", "content": [{"item": {}}]},
    }
    return {**ds, **kw}


@pytest.mark.parametrize(
    ("data_source", "param", "words"),
    [
        (
            completions(input_messages={"type": "template", "template": []}),
            "data_source.input_messages.template",
            "at least one message",
        ),
        (completions(sampling_params={"seed": 10**30}), "data_source.sampling_params.seed", "9223372036854775807"),
    ],
)
def test_runs_every_item_of_which_would_error_are_refused(
    client: openai.OpenAI, data_source: dict[str, Any], param: str, words: str
) -> None:
    ev = new_eval(client, OPEN)
    with pytest.raises(openai.BadRequestError) as exc:
        client.evals.runs.create(ev.id, data_source=data_source)  # type: ignore[arg-type]
    err = sdk_error(exc)
    assert err["param"] == param and words in err["message"], err
    assert list(client.evals.runs.list(ev.id)) == []


def test_bad_json_in_graders_run_items_is_refused(raw: httpx.Client) -> None:
    grader = '{"type": "string_check", "name": "a", "input": "{{item.q}}", "reference": "b", "operation": "eq"}'
    for item, words in (('{"q": NaN}', "NaN"), ('{"q": "\\ud800"}', "lone surrogate")):
        body = f'{{"grader": {grader}, "model_sample": "x", "item": {item}}}'
        err = envelope(raw.post("/fine_tuning/alpha/graders/run", content=body))
        assert err["param"] == "item" and words in err["message"], err


# ----------------------------------------------------------------------------- file runs


def run_on_file(client: openai.OpenAI, data: bytes) -> Any:
    ev = new_eval(client, {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]})
    file = client.files.create(file=("rows.jsonl", io.BytesIO(data)), purpose="user_data")
    run = client.evals.runs.create(ev.id, data_source={"type": "jsonl", "source": {"type": "file_id", "id": file.id}})
    done: Any = wait_for_run(client, ev.id, run.id)
    assert done.status == "failed" and done.error is not None, done
    assert list(client.evals.runs.output_items.list(run.id, eval_id=ev.id)) == []  # readable, and nothing kept
    return done.error


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (b'{"item": {"q": NaN}}', "NaN is not a JSON number"),
        (b'{"item": {"q": "\\ud800"}}', "lone surrogate"),
        (b'{"item": {"q": "x\\u0000"}}', "NUL character"),
        (b'{"item": {"q": "x", "d": ' + b"[" * 200 + b"]" * 200 + b"}}", "nested more than 64"),
        (b"\xff\xfe\x00garbage", "not JSON"),
    ],
)
def test_a_file_line_the_server_cannot_store_fails_the_run_naming_it(
    client: openai.OpenAI, line: bytes, words: str
) -> None:
    error = run_on_file(client, b'{"item": {"q": "fine"}}\n' + line + b"\n")
    assert error.code == "invalid_data_source" and "Line 2" in error.message and words in error.message, error


# ----------------------------------------------------------------------------- templates


def grade(raw: httpx.Client, grader: dict[str, Any], item: dict[str, Any] | None = None) -> dict[str, Any]:
    r = raw.post("/fine_tuning/alpha/graders/run", json={"grader": grader, "model_sample": "x", "item": item or {}})
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_unclosed_braces_are_text_and_do_not_stall(client: openai.OpenAI, raw: httpx.Client) -> None:
    """50,000 ``{{`` with no ``}}``: the regex that found tags rescanned the rest of the text from
    each one (quadratic: minutes of a worker, past this client's 30 s timeout)."""
    text = "{{" * 50_000
    assert new_eval(client, OPEN, [{**SC, "input": text, "reference": "x"}]).id.startswith("eval_")
    out = grade(raw, {**SC, "input": text, "reference": text})
    assert out["reward"] == 1.0 and out["metadata"]["errors"]["details"] is None
    err = envelope(
        raw.post("/fine_tuning/alpha/graders/validate", json={"grader": {**SC, "input": text + "{{item.q}}"}})
    )  # the first {{ opens a tag that the one }} closes: its text is not a reference
    assert err["param"] == "grader.input" and "unknown namespace" in err["message"]
    out = grade(raw, {**SC, "input": "{{ item.q", "reference": "{{ item.q"}, {"q": 1})
    assert out["reward"] == 1.0  # an unclosed tag is kept verbatim


@pytest.mark.parametrize(
    "path", ["item.__class__", "item.q.__class__.__mro__", "item.keys", "sample.output_text.__len__", "item.q.real"]
)
def test_templates_reach_data_not_python_attributes(raw: httpx.Client, path: str) -> None:
    out = grade(raw, {**SC, "input": "{{" + path + "}}", "reference": "x"}, {"q": 1})
    errors = out["metadata"]["errors"]
    assert errors["invalid_variable_error"] is True and "not found" in errors["details"], errors


# ----------------------------------------------------------------------------- multi formulas


def multi(formula: str) -> dict[str, Any]:
    inner = {"type": "string_check", "name": "a", "input": "x", "reference": "x", "operation": "eq"}
    return {"type": "multi", "name": "m", "graders": {"a": inner}, "calculate_output": formula}


@pytest.mark.parametrize("formula", ["3999999 ** 3999999", "9 ^ 999999", "2**2**2**2**99", "10 ** 400", "1 / (a - 1)"])
def test_formulas_that_overflow_error_the_grade(raw: httpx.Client, formula: str) -> None:
    """``3999999 ** 3999999`` passed simpleeval's power guard and computed an exact integer of
    26 million digits on the event loop (every request of the server waited)."""
    out = grade(raw, multi(formula))
    errors = out["metadata"]["errors"]
    assert out["reward"] == 0.0 and errors["formula_parse_error"] is True and not errors["other_error"], errors


@pytest.mark.parametrize(
    ("formula", "words"),
    [
        ("a" + " + a" * 100_000, "nested too deeply"),  # was a RecursionError: a 500
        ("-" * 100_000 + "a", "nested too deeply"),
        ("a\x00", "null bytes"),
        ("a.__class__", ""),
        ("(lambda: a)()", ""),
        ("[a for a in (1, 2)]", ""),
    ],
)
def test_formulas_that_are_not_arithmetic(raw: httpx.Client, formula: str, words: str) -> None:
    r = raw.post("/fine_tuning/alpha/graders/run", json={"grader": multi(formula), "model_sample": "x"})
    if r.status_code == 200:  # parsed, then refused by the evaluator
        errors = r.json()["metadata"]["errors"]
        assert errors["formula_parse_error"] is True and r.json()["reward"] == 0.0, errors
        assert not words
    else:
        err = envelope(r)
        assert err["param"] == "grader.calculate_output" and words in err["message"], err


def test_ten_thousand_labels(client: openai.OpenAI) -> None:
    """passing_labels were checked against labels as a list: 10,000 of each took seconds of a worker."""
    labels = [f"l{i}" for i in range(10_000)]
    grader = {
        "type": "label_model",
        "name": "l",
        "model": "hone-tiny",
        "input": [{"type": "message", "role": "user", "content": "x"}],
        "labels": labels,
        "passing_labels": labels,
    }
    ev = new_eval(client, OPEN, [grader])
    assert len(ev.testing_criteria[0].to_dict()["labels"]) == 10_000
    with pytest.raises(openai.BadRequestError) as exc:
        new_eval(client, OPEN, [{**grader, "passing_labels": ["l1", "nope"]}])
    err = sdk_error(exc)
    assert err["param"] == "testing_criteria[0].passing_labels" and "'nope'" in err["message"]
    assert len(err["message"]) < 1000  # the labels it lists are cut


# ----------------------------------------------------------------------------- queries, ids, updates


@pytest.mark.parametrize(
    ("path", "params", "param"),
    [
        ("/evals", {"limit": "ten"}, "limit"),
        ("/evals", {"limit": "0"}, "limit"),
        ("/evals", {"limit": "101"}, "limit"),
        ("/evals", {"limit": "99999999999999999999999"}, "limit"),
        ("/evals", {"order": "up"}, "order"),
        ("/evals", {"order_by": "name"}, "order_by"),
        ("/evals", {"after": "eval_nope"}, "after"),
        ("{eval}/runs", {"status": "done"}, "status"),
        ("{eval}/runs", {"order": "DESC"}, "order"),
        ("{eval}/runs", {"after": "evalrun_nope"}, "after"),
        ("{run}/output_items", {"status": "error"}, "status"),
        ("{run}/output_items", {"limit": "-1"}, "limit"),
    ],
)
def test_wrong_query_values_name_their_param(
    client: openai.OpenAI, raw: httpx.Client, path: str, params: dict[str, str], param: str
) -> None:
    ev = new_eval(client, OPEN)
    run = client.evals.runs.create(ev.id, data_source=content({"q": 1}))  # type: ignore[arg-type]
    url = path.format(eval=f"/evals/{ev.id}", run=f"/evals/{ev.id}/runs/{run.id}")
    err = envelope(raw.get(url, params=params))
    assert err["param"] == param and param in err["message"], err


def test_another_projects_ids_answer_as_missing_ones(
    client: openai.OpenAI, server: RunningServer, spec_checker: SpecChecker, raw: httpx.Client
) -> None:
    ev = new_eval(client, OPEN)
    run = client.evals.runs.create(ev.id, data_source=content({"q": 1}))  # type: ignore[arg-type]
    http = httpx.Client(
        base_url=server.v1,
        headers={"authorization": f"Bearer {server.new_key('intruder')}"},
        timeout=30,
        event_hooks={"response": [spec_checker.hook]},
    )
    with http:
        for theirs, missing in (
            (f"/evals/{ev.id}", "/evals/eval_doesnotexist000000000000000000"),
            (f"/evals/{ev.id}/runs", "/evals/eval_doesnotexist000000000000000000/runs"),
        ):
            a, b = envelope(http.get(theirs), 404), envelope(http.get(missing), 404)
            assert a["param"] == b["param"] == "eval_id"
            assert a["message"].replace(ev.id, "ID") == b["message"].replace(
                "eval_doesnotexist000000000000000000", "ID"
            )
        mine = http.post(
            "/evals", json={"data_source_config": {"type": "custom", "item_schema": {}}, "testing_criteria": [SC]}
        )
        assert mine.status_code == 201
        mine_id = mine.json()["id"]
        a = envelope(http.get(f"/evals/{mine_id}/runs/{run.id}"), 404)  # their run under my eval
        b = envelope(http.get(f"/evals/{mine_id}/runs/evalrun_nope"), 404)
        assert a["param"] == b["param"] == "run_id" and a["message"].replace(run.id, "ID") == b["message"].replace(
            "evalrun_nope", "ID"
        )
        for method, path in (
            ("POST", f"/evals/{ev.id}"),
            ("DELETE", f"/evals/{ev.id}"),
            ("POST", f"/evals/{ev.id}/runs/{run.id}/cancel"),
        ):
            envelope(http.request(method, path, json={"name": "mine now"} if method == "POST" else None), 404)
    assert client.evals.retrieve(ev.id).name == ev.name
    assert client.evals.runs.retrieve(run.id, eval_id=ev.id).status in ("queued", "in_progress", "completed")


def test_a_refused_update_changes_nothing(client: openai.OpenAI, raw: httpx.Client) -> None:
    ev = client.evals.create(
        name="kept",
        metadata={"k": "v"},
        data_source_config={"type": "custom", "item_schema": {}},
        testing_criteria=[SC],  # type: ignore[list-item]
    )
    for body in (
        {"name": "changed", "metadata": {"k": 1}},
        {"name": "changed", "metadata": {f"k{i}": "v" for i in range(17)}},
        {"name": "x" * 100_000},
        {"name": "changed", "data_source_config": {"type": "custom", "item_schema": {}}},
    ):
        envelope(raw.post(f"/evals/{ev.id}", json=body))
    envelope(raw.post(f"/evals/{ev.id}", content=b'{"name": "changed", "metadata": {"k": "\\ud800"}}'))
    after = client.evals.retrieve(ev.id)
    assert (after.name, after.metadata) == ("kept", {"k": "v"})
