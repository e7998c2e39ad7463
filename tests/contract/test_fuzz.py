"""Property-based fuzzing of hone's own OpenAPI document (schemathesis): every operation,
with a valid API key and without one, with requests valid under the schema and requests that
break it, against a real server over loopback HTTP. Every answer
must be below 500, and every error must be the OpenAI envelope. The number of requests sent
is printed (``pytest -s``) and asserted to be substantial, so the suite cannot pass by sending
nothing. Bounded: a fixed number of examples per operation, no shrinking past a deadline."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable

from service.catalog.catalog import BaseModelEntry, Catalog
from tests.fakes.upstream import make_upstream
from tests.harness.server import RunningServer, serve_app, start_server

SENT: Counter[str] = Counter()
EXAMPLES_PER_OPERATION = 20


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory, tiny_model_dir) -> Iterator[RunningServer]:  # type: ignore[no-untyped-def]
    upstream_url, upstream = serve_app(make_upstream("fuzz", chunk_delay_s=0.0))  # chat completions answer, never 503
    catalog = Catalog([BaseModelEntry(name="hone-tiny", source=str(tiny_model_dir), upstreams=[upstream_url])])
    srv = start_server(tmp_path_factory.mktemp("fuzz"), catalog)
    yield srv
    srv.stop()
    upstream.should_exit = True
    print(f"\n[fuzz] requests sent: {sum(SENT.values())} ({dict(SENT)})")


@pytest.fixture(scope="module")
def api_schema(fuzz_server: RunningServer) -> Any:
    return schemathesis.openapi.from_url(fuzz_server.base_url + "/openapi.json")


def _check_envelope(response: Any, case: Any) -> None:
    status = response.status_code
    assert status < 500, f"{case.method} {case.formatted_path} -> {status}: {response.text[:500]}"
    if status >= 400 and not case.path.startswith(("/healthz", "/readyz", "/metrics")):
        body = response.json()
        assert set(body) == {"error"}, body
        assert set(body["error"]) == {"message", "type", "param", "code"}, body
        assert isinstance(body["error"]["message"], str) and body["error"]["message"], body


FUZZ = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
    database=None,
    derandomize=True,  # the same requests every run: a CI failure reproduces
)


def _fuzz_every_operation(schema: Any, server: RunningServer, key: str | None) -> list[str]:
    """Drive hypothesis over each operation's case strategy; returns the operations fuzzed."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    fuzzed = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in schemathesis.GenerationMode:  # valid requests, and requests that break the schema

            @FUZZ
            @given(case=operation.as_strategy(generation_mode=mode))
            def one(case: Any) -> None:
                response = case.call(base_url=server.base_url, headers=headers, timeout=30)
                SENT["key" if key else "none"] += 1
                _check_envelope(response, case)

            try:
                one()
            except Unsatisfiable:  # an operation with no parameters has nothing to break
                assert mode is schemathesis.GenerationMode.NEGATIVE, operation.path
        fuzzed.append(f"{operation.method.upper()} {operation.path}")
    return fuzzed


def test_with_a_valid_key(api_schema: Any, fuzz_server: RunningServer) -> None:
    fuzzed = _fuzz_every_operation(api_schema, fuzz_server, _key(fuzz_server))
    assert "POST /v1/fine_tuning/jobs" in fuzzed and "POST /v1/chat/completions" in fuzzed, fuzzed


def test_without_a_key(api_schema: Any, fuzz_server: RunningServer) -> None:
    _fuzz_every_operation(api_schema, fuzz_server, None)


_KEYS: dict[int, str] = {}


def _key(server: RunningServer) -> str:
    if id(server) not in _KEYS:
        _KEYS[id(server)] = server.new_key("fuzz")
    return _KEYS[id(server)]


def test_the_fuzzing_sent_many_requests() -> None:
    """Runs after the fuzz cases in this module (pytest keeps file order)."""
    assert SENT["key"] >= 400 and SENT["none"] >= 400, dict(SENT)
