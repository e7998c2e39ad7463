"""The eval runner end to end through the official SDK against a real hone server: runs created
with ``client.evals.runs.create`` are executed in the background and read back with
``runs.retrieve`` / ``runs.output_items.list`` (every response checked against the spec).

Model calls go through hone's gateway to a FAKE vLLM (``fake_vllm`` below: a real HTTP server
that answers chat completions as vLLM would in shape; "say X" is answered "X"). It counts the
requests per prompt and the most it had in flight at once, so the tests can check the runner's
bounded concurrency and that a run taken over after a restart samples no recorded item again.
The same runs against real vLLM are in tests/e2e/test_evals.py."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select, update

from service import ids
from service.catalog.catalog import BaseModelEntry, Catalog
from service.db.schema import Eval, EvalOutputItem, EvalRun
from service.evals.config import EvalSettings
from tests.contract.openapi import SpecChecker
from tests.harness.evals import wait_for_run
from tests.harness.server import RunningServer, serve_app, start_server
from tests.harness.waiting import wait_until

CONCURRENCY = 3
USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7, "prompt_tokens_details": {"cached_tokens": 1}}
SCHEMA = {
    "type": "object",
    "properties": {"word": {"type": "string"}, "expected": {"type": "string"}},
    "required": ["word", "expected"],
}
ECHO = {
    "type": "string_check",
    "name": "echo",
    "input": "{{sample.output_text}}",
    "reference": "{{item.expected}}",
    "operation": "eq",
}


def fake_vllm() -> FastAPI:
    """A FAKE vLLM chat completions server. A prompt holding FAIL is refused with vLLM's 400."""
    app = FastAPI()
    app.state.delay_s = 0.0
    app.state.calls = Counter()
    app.state.in_flight = 0
    app.state.most_in_flight = 0

    @app.post("/v1/chat/completions")
    async def complete(request: Request) -> Any:
        body = await request.json()
        prompt = body["messages"][-1]["content"]
        app.state.calls[prompt] += 1
        app.state.last_body = body
        app.state.in_flight += 1
        app.state.most_in_flight = max(app.state.most_in_flight, app.state.in_flight)
        try:
            await asyncio.sleep(app.state.delay_s)
        finally:
            app.state.in_flight -= 1
        if "FAIL" in prompt:
            error = {"message": "The prompt is refused.", "type": "BadRequestError", "param": None, "code": 400}
            return JSONResponse({"object": "error", **error}, status_code=400)
        text = prompt.removeprefix("say ")
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": USAGE,
        }

    return app


@pytest.fixture(scope="module")
def spec_checker() -> SpecChecker:
    return SpecChecker()


@pytest.fixture(scope="module")
def vllm() -> Iterator[tuple[str, FastAPI]]:
    app = fake_vllm()
    url, running = serve_app(app)
    yield url, app
    running.should_exit = True


@pytest.fixture
def fake(vllm: tuple[str, FastAPI]) -> FastAPI:
    app = vllm[1]
    app.state.delay_s, app.state.calls, app.state.most_in_flight = 0.0, Counter(), 0
    return app


@pytest.fixture(scope="module")
def catalog_with_upstream(tiny_model_dir: Path, vllm: tuple[str, FastAPI]) -> Catalog:
    return Catalog(
        [
            BaseModelEntry(name=name, source=str(tiny_model_dir), upstreams=[vllm[0]])
            for name in ("hone-tiny", "hone-judge")
        ]
    )


def _start(data_dir: Path, catalog: Catalog, **overrides: Any) -> RunningServer:
    evals = EvalSettings(run_concurrency=CONCURRENCY, run_lease_s=overrides.pop("run_lease_s", 1.5), max_running_runs=4)
    return start_server(data_dir, catalog, evals=evals, loop_interval_s=0.1, **overrides)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, catalog_with_upstream: Catalog) -> Iterator[RunningServer]:
    srv = _start(tmp_path_factory.mktemp("eval-runner"), catalog_with_upstream)
    yield srv
    srv.stop()


def _client(server: RunningServer, key: str, spec_checker: SpecChecker) -> openai.OpenAI:
    http = httpx.Client(event_hooks={"response": [spec_checker.hook]}, timeout=60)
    return openai.OpenAI(base_url=server.v1, api_key=key, max_retries=0, http_client=http)


@pytest.fixture(scope="module")
def key(server: RunningServer) -> str:
    return server.new_key("runner")


@pytest.fixture
def client(server: RunningServer, key: str, spec_checker: SpecChecker) -> Iterator[openai.OpenAI]:
    with _client(server, key, spec_checker) as c:
        yield c


def _eval(client: openai.OpenAI) -> str:
    config = {"type": "custom", "item_schema": SCHEMA, "include_sample_schema": True}
    return client.evals.create(name="echo", data_source_config=config, testing_criteria=[ECHO]).id  # type: ignore[arg-type, list-item]


def _items(words: list[str], wrong: Collection[str] = ()) -> list[dict[str, Any]]:
    return [{"item": {"word": w, "expected": "nope" if w in wrong else w}} for w in words]


def _completions(content: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "completions",
        "model": "hone-tiny",
        "input_messages": {"type": "template", "template": [{"role": "user", "content": "say {{item.word}}"}]},
        "sampling_params": {"max_completion_tokens": 16, "temperature": 0},
        "source": {"type": "file_content", "content": content},
    }


def _output_items(client: openai.OpenAI, eval_id: str, run_id: str, **kw: Any) -> list[Any]:
    return list(client.evals.runs.output_items.list(run_id, eval_id=eval_id, limit=100, **kw))


def _rows(server: RunningServer, run_id: str) -> list[EvalOutputItem]:
    with server.ctx.db.session() as s:
        return list(s.scalars(select(EvalOutputItem).where(EvalOutputItem.run_id == run_id)))


def test_jsonl_file_content_run_with_samples_counts_every_item(client: openai.OpenAI, fake: FastAPI) -> None:
    eval_id = _eval(client)
    rows = [
        {"item": {"word": w, "expected": e}, "sample": {"output_text": o}}
        for w, e, o in [("a", "a", "a"), ("b", "b", "x"), ("c", "c", "c"), ("d", "d", "d"), ("e", "e", "E")]
    ]
    source = {"type": "file_content", "content": rows}
    run = client.evals.runs.create(eval_id, data_source={"type": "jsonl", "source": source})  # type: ignore[arg-type, typeddict-item]
    done = wait_for_run(client, eval_id, run.id)
    assert done.status == "completed" and done.error is None
    assert done.result_counts.model_dump() == {"total": 5, "errored": 0, "failed": 2, "passed": 3}
    [criterion] = done.per_testing_criteria_results
    assert criterion.testing_criteria.startswith("echo-")  # the criterion's id, as OpenAI names it
    assert (criterion.passed, criterion.failed) == (3, 2)
    assert done.per_model_usage == []  # nothing was sampled
    items = _output_items(client, eval_id, run.id)
    assert sorted(i.datasource_item_id for i in items) == [0, 1, 2, 3, 4]
    by_id = {i.datasource_item_id: i for i in items}
    assert [by_id[n].status for n in range(5)] == ["pass", "fail", "pass", "pass", "fail"]
    assert by_id[1].datasource_item == {"word": "b", "expected": "b"}
    assert by_id[1].results[0].model_dump()["passed"] is False
    assert by_id[1].sample.output[0].content == "x"
    assert {i.datasource_item_id for i in _output_items(client, eval_id, run.id, status="fail")} == {1, 4}
    assert sum(fake.state.calls.values()) == 0


def test_completions_run_samples_through_the_gateway_and_sums_usage(client: openai.OpenAI, fake: FastAPI) -> None:
    eval_id = _eval(client)
    words = ["red", "green", "blue", "cyan", "pink", "gold"]
    run = client.evals.runs.create(eval_id, data_source=_completions(_items(words, wrong={"pink"})))  # type: ignore[arg-type]
    done = wait_for_run(client, eval_id, run.id)
    assert done.status == "completed"
    assert done.result_counts.model_dump() == {"total": 6, "errored": 0, "failed": 1, "passed": 5}
    usage_keys = (
        "model_name",
        "invocation_count",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "cached_tokens",
    )
    assert [{k: getattr(u, k) for k in usage_keys} for u in done.per_model_usage] == [
        {
            "model_name": "hone-tiny",
            "invocation_count": 6,
            "prompt_tokens": 30,
            "completion_tokens": 12,
            "total_tokens": 42,
            "cached_tokens": 6,
        }
    ]
    assert fake.state.calls == Counter({f"say {w}": 1 for w in words})
    sent = {k: v for k, v in fake.state.last_body.items() if k != "messages"}  # vLLM's names, the spec's defaults
    assert sent == {"model": "hone-tiny", "max_tokens": 16, "temperature": 0, "top_p": 1.0, "seed": 42, "stream": False}
    items = {i.datasource_item["word"]: i for i in _output_items(client, eval_id, run.id)}
    blue = items["blue"].sample
    assert [m.model_dump() for m in blue.input] == [{"role": "user", "content": "say blue"}]
    assert [m.model_dump() for m in blue.output] == [{"role": "assistant", "content": "blue"}]
    assert (blue.model, blue.finish_reason, blue.max_completion_tokens, blue.temperature) == (
        "hone-tiny",
        "stop",
        16,
        0,
    )
    assert blue.usage.model_dump() == {
        "total_tokens": 7,
        "completion_tokens": 2,
        "prompt_tokens": 5,
        "cached_tokens": 1,
    }
    assert items["pink"].status == "fail" and items["blue"].status == "pass"


def test_judge_models_are_counted_in_per_model_usage(client: openai.OpenAI, fake: FastAPI) -> None:
    judge = {
        "type": "label_model",
        "name": "judge",
        "model": "hone-judge",
        # the fake answers "say X" with X: here the judge's structured answer naming the sample
        "input": [{"role": "user", "content": 'say {"result": "{{sample.output_text}}"}'}],
        "labels": ["tea", "cup"],
        "passing_labels": ["tea"],
    }
    config = {"type": "custom", "item_schema": SCHEMA, "include_sample_schema": True}
    eval_id = client.evals.create(data_source_config=config, testing_criteria=[ECHO, judge]).id  # type: ignore[arg-type, list-item]
    run = client.evals.runs.create(eval_id, data_source=_completions(_items(["tea", "cup", "tea"])))  # type: ignore[arg-type]
    done = wait_for_run(client, eval_id, run.id)
    assert done.result_counts.model_dump() == {"total": 3, "errored": 0, "failed": 1, "passed": 2}
    assert [(c.testing_criteria.split("-")[0], c.passed, c.failed) for c in done.per_testing_criteria_results] == [
        ("echo", 3, 0),
        ("judge", 2, 1),
    ]
    usage = {u.model_name: (u.invocation_count, u.prompt_tokens, u.completion_tokens) for u in done.per_model_usage}
    assert usage == {"hone-tiny": (3, 15, 6), "hone-judge": (3, 15, 6)}
    cup = next(i for i in _output_items(client, eval_id, run.id) if i.datasource_item["word"] == "cup")
    assert cup.status == "fail"
    assert [(r.name, r.passed) for r in cup.results] == [("echo", True), ("judge", False)]


def test_item_reference_sends_the_items_own_messages(client: openai.OpenAI, fake: FastAPI) -> None:
    schema = {
        "type": "object",
        "properties": {"prompt": {"type": ["array", "string"]}, "expected": {"type": "string"}},
        "required": ["prompt", "expected"],
    }
    config = {"type": "custom", "item_schema": schema, "include_sample_schema": True}
    eval_id = client.evals.create(data_source_config=config, testing_criteria=[ECHO]).id  # type: ignore[arg-type, list-item]
    conversation = [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "say tea"}]
    content = [
        {"item": {"prompt": conversation, "expected": "tea"}},
        {"item": {"prompt": "say cup", "expected": "cup"}},
    ]
    data_source = {
        "type": "completions",
        "model": "hone-tiny",
        "input_messages": {"type": "item_reference", "item_reference": "item.prompt"},
        "source": {"type": "file_content", "content": content},
    }
    run = client.evals.runs.create(eval_id, data_source=data_source)  # type: ignore[arg-type]
    assert wait_for_run(client, eval_id, run.id).result_counts.passed == 2
    assert fake.state.calls == Counter({"say tea": 1, "say cup": 1})
    inputs = {i.datasource_item["expected"]: i.sample.input for i in _output_items(client, eval_id, run.id)}
    assert [m.model_dump() for m in inputs["tea"]] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "say tea"},
    ]
    assert [m.model_dump() for m in inputs["cup"]] == [{"role": "user", "content": "say cup"}]


def test_items_in_flight_never_exceed_run_concurrency(client: openai.OpenAI, fake: FastAPI) -> None:
    fake.state.delay_s = 0.05
    eval_id = _eval(client)
    words = [f"w{i}" for i in range(30)]
    run = client.evals.runs.create(eval_id, data_source=_completions(_items(words)))  # type: ignore[arg-type]
    assert wait_for_run(client, eval_id, run.id).result_counts.passed == 30
    assert 1 < fake.state.most_in_flight <= CONCURRENCY


def test_a_model_call_error_errors_the_item_not_the_run(client: openai.OpenAI, fake: FastAPI) -> None:
    eval_id = _eval(client)
    run = client.evals.runs.create(eval_id, data_source=_completions(_items(["ok", "FAIL1", "fine", "FAIL2"])))  # type: ignore[arg-type]
    done = wait_for_run(client, eval_id, run.id)
    assert done.status == "completed" and done.error is None
    assert done.result_counts.model_dump() == {"total": 4, "errored": 2, "failed": 0, "passed": 2}
    assert done.per_model_usage[0].invocation_count == 2  # the refused calls used no tokens
    errored = [i for i in _output_items(client, eval_id, run.id) if i.status == "error"]
    assert sorted(i.datasource_item["word"] for i in errored) == ["FAIL1", "FAIL2"]
    for item in errored:
        assert item.results == []
        assert item.sample.error is not None and "refused" in item.sample.error.message
    # an errored item counts for no criterion
    assert [(c.passed, c.failed) for c in done.per_testing_criteria_results] == [(2, 0)]


def _upload(client: openai.OpenAI, lines: list[str]) -> str:
    return client.files.create(file=("rows.jsonl", "\n".join(lines).encode() + b"\n"), purpose="user_data").id


def test_file_id_source_is_streamed_and_a_bad_line_fails_the_run_naming_it(
    client: openai.OpenAI, server: RunningServer
) -> None:
    eval_id = _eval(client)
    good = ['{"item": {"word": "a", "expected": "a"}, "sample": {"output_text": "a"}}'] * 3
    ok = client.evals.runs.create(
        eval_id,
        data_source={"type": "jsonl", "source": {"type": "file_id", "id": _upload(client, good)}},  # type: ignore[typeddict-item]
    )
    assert wait_for_run(client, eval_id, ok.id).result_counts.passed == 3
    bad_lines = [good[0], good[0], "{not json", good[0]]
    bad = client.evals.runs.create(
        eval_id,
        data_source={"type": "jsonl", "source": {"type": "file_id", "id": _upload(client, bad_lines)}},  # type: ignore[typeddict-item]
    )
    failed = wait_for_run(client, eval_id, bad.id)
    assert failed.status == "failed"
    assert failed.error is not None and failed.error.code == "invalid_data_source"
    assert "Line 3" in failed.error.message
    assert _rows(server, bad.id) == []  # the first pass checks every line before any item is sampled
    schema_lines = [good[0], '{"item": {"word": 7, "expected": "a"}, "sample": {"output_text": "a"}}']
    mismatch = client.evals.runs.create(
        eval_id,
        data_source={"type": "jsonl", "source": {"type": "file_id", "id": _upload(client, schema_lines)}},  # type: ignore[typeddict-item]
    )
    failed = wait_for_run(client, eval_id, mismatch.id)
    assert failed.status == "failed" and failed.error is not None
    assert "Line 2" in failed.error.message and "item schema" in failed.error.message
    no_sample = client.evals.runs.create(
        eval_id,
        data_source={
            "type": "jsonl",
            "source": {"type": "file_id", "id": _upload(client, [good[0], '{"item": {"word": "a", "expected": "a"}}'])},
        },  # type: ignore[typeddict-item]
    )
    failed = wait_for_run(client, eval_id, no_sample.id)
    assert failed.status == "failed" and failed.error is not None
    assert "Line 2" in failed.error.message and "'sample'" in failed.error.message


def _queue_directly(server: RunningServer, eval_id: str, data_source: dict[str, Any]) -> str:
    """A run stored as the API stores one, for what the API refuses at creation but can become
    true by the time the run executes (its model or file gone)."""
    run_id = ids.eval_run_id()
    with server.ctx.db.session() as s:
        project_id = s.scalar(select(Eval.project_id).where(Eval.id == eval_id))
        s.add(
            EvalRun(
                id=run_id,
                eval_id=eval_id,
                project_id=project_id,
                name="direct",
                model=data_source.get("model"),
                status="queued",
                data_source=data_source,
                metadata_={},
                result_counts={"total": 0, "errored": 0, "failed": 0, "passed": 0},
                per_model_usage=[],
                per_testing_criteria_results=[],
                created_at=int(time.time()),
            )
        )
    assert server.ctx.eval_runner is not None
    server.ctx.eval_runner.kick()
    return run_id


def test_a_model_or_file_gone_by_execution_fails_the_run(client: openai.OpenAI, server: RunningServer) -> None:
    eval_id = _eval(client)
    stored = client.evals.runs.create(eval_id, data_source=_completions(_items(["a"]))).data_source.to_dict()  # type: ignore[arg-type]
    no_model = {**stored, "model": "ft:hone-tiny:runner::Gone0001"}  # as the API stores one, for a model gone since
    failed = wait_for_run(client, eval_id, _queue_directly(server, eval_id, no_model))
    assert failed.status == "failed" and failed.error is not None
    assert failed.error.code == "model_not_found" and "ft:hone-tiny:runner::Gone0001" in failed.error.message
    line = '{"item": {"word": "a", "expected": "a"}, "sample": {"output_text": "a"}}'
    file_id = _upload(client, [line])
    assert client.files.delete(file_id).deleted
    no_file = {"type": "jsonl", "source": {"type": "file_id", "id": file_id}}
    failed = wait_for_run(client, eval_id, _queue_directly(server, eval_id, no_file))
    assert failed.status == "failed" and failed.error is not None
    assert failed.error.code == "file_not_found" and file_id in failed.error.message


def test_cancel_stops_the_run_before_its_next_item(client: openai.OpenAI, fake: FastAPI, server: RunningServer) -> None:
    fake.state.delay_s = 0.3
    eval_id = _eval(client)
    run = client.evals.runs.create(eval_id, data_source=_completions(_items([f"c{i}" for i in range(40)])))  # type: ignore[arg-type]
    wait_until(lambda: len(_rows(server, run.id)) >= 2, "the first items", timeout_s=60)
    assert client.evals.runs.cancel(run.id, eval_id=eval_id).status == "canceled"
    recorded = len(_output_items(client, eval_id, run.id))
    wait_until(lambda: fake.state.in_flight == 0, "the cancelled run's calls to end", timeout_s=30)
    calls = sum(fake.state.calls.values())
    time.sleep(1.0)  # several runner ticks and lease renewals
    after = client.evals.runs.retrieve(run.id, eval_id=eval_id)
    assert after.status == "canceled"
    assert len(_output_items(client, eval_id, run.id)) == recorded < 40
    assert sum(after.result_counts.model_dump()[k] for k in ("passed", "failed", "errored")) == recorded
    assert sum(fake.state.calls.values()) == calls  # nothing more was sampled


def test_a_deleted_run_stops_being_executed(client: openai.OpenAI, fake: FastAPI, server: RunningServer) -> None:
    fake.state.delay_s = 0.3
    eval_id = _eval(client)
    run = client.evals.runs.create(eval_id, data_source=_completions(_items([f"d{i}" for i in range(40)])))  # type: ignore[arg-type]
    runner = server.ctx.eval_runner
    assert runner is not None
    wait_until(lambda: len(_rows(server, run.id)) >= 1, "the first item", timeout_s=60)
    assert client.evals.runs.delete(run.id, eval_id=eval_id).deleted
    wait_until(lambda: run.id not in runner.running, "the runner to let the deleted run go", timeout_s=30)
    wait_until(lambda: fake.state.in_flight == 0, "the deleted run's calls to end", timeout_s=30)
    calls = sum(fake.state.calls.values())
    time.sleep(1.0)  # several runner ticks
    assert sum(fake.state.calls.values()) == calls < 40
    assert _rows(server, run.id) == []


def test_a_run_survives_a_restart_without_grading_an_item_twice(
    tmp_path: Path, catalog_with_upstream: Catalog, fake: FastAPI, spec_checker: SpecChecker
) -> None:
    fake.state.delay_s = 0.3
    first = _start(tmp_path, catalog_with_upstream)
    key = first.new_key("restart")
    words = [f"r{i}" for i in range(30)]
    with _client(first, key, spec_checker) as c:
        eval_id = _eval(c)
        run_id = c.evals.runs.create(eval_id, data_source=_completions(_items(words))).id  # type: ignore[arg-type]
        wait_until(lambda: len(_rows(first, run_id)) >= 4, "some items before the stop", timeout_s=60)
    first.stop()
    before = {row.datasource_item["word"] for row in _rows(first, run_id)}
    assert 4 <= len(before) < len(words)
    # as if the first server had died holding the run: its lease lapses instead of being released
    with first.ctx.db.session() as s:
        s.execute(update(EvalRun).where(EvalRun.id == run_id).values(lease_owner="dead", lease_until=time.time() + 1))
    second = _start(tmp_path, catalog_with_upstream, database_url=first.settings.database_url, run_lease_s=0.6)
    try:
        with _client(second, key, spec_checker) as c:
            done = wait_for_run(c, eval_id, run_id)
            assert done.status == "completed"
            assert done.result_counts.model_dump() == {"total": 30, "errored": 0, "failed": 0, "passed": 30}
            assert done.per_model_usage[0].invocation_count == 30
            items = _output_items(c, eval_id, run_id)
        ids = [i.datasource_item_id for i in items]
        assert sorted(ids) == list(range(30))  # every item once
        assert all(fake.state.calls[f"say {w}"] == 1 for w in before)  # recorded before the stop: not sampled again
        assert all(fake.state.calls[f"say {w}"] >= 1 for w in words)
    finally:
        second.stop()


def test_two_replicas_on_one_database_grade_each_item_once(
    tmp_path: Path, catalog_with_upstream: Catalog, fake: FastAPI, spec_checker: SpecChecker
) -> None:
    fake.state.delay_s = 0.02
    one = _start(tmp_path, catalog_with_upstream)
    two = _start(tmp_path, catalog_with_upstream, database_url=one.settings.database_url)
    try:
        key = one.new_key("replicas")
        with _client(one, key, spec_checker) as c:
            eval_id = _eval(c)
            run_ids = [
                c.evals.runs.create(eval_id, data_source=_completions(_items([f"{n}-{i}" for i in range(12)]))).id  # type: ignore[arg-type]
                for n in range(4)
            ]
            assert two.ctx.eval_runner is not None
            two.ctx.eval_runner.kick()
            for run_id in run_ids:
                assert wait_for_run(c, eval_id, run_id).result_counts.passed == 12
        for run_id in run_ids:  # each item recorded once, whichever replica graded it
            assert sorted(r.datasource_item_id for r in _rows(one, run_id)) == list(range(12))
    finally:
        two.stop()
        one.stop()
