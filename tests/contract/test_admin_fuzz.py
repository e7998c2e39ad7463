"""Property-based fuzzing (schemathesis) of the Admin API's operations in hone's own OpenAPI
document, with an organization admin key (the module-wide fuzz in test_fuzz.py sends a project
key, which these routes refuse before they read anything): valid and schema-breaking requests,
every answer below 500 and every error the OpenAI envelope. Bounded and derandomized like it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import given
from hypothesis.errors import Unsatisfiable

from tests.contract.test_fuzz import FUZZ, _check_envelope
from tests.harness.server import RunningServer, start_server

pytestmark = pytest.mark.slow  # about 800 requests


@pytest.fixture(scope="module")
def admin_server(tmp_path_factory, catalog) -> Iterator[RunningServer]:  # type: ignore[no-untyped-def]
    srv = start_server(tmp_path_factory.mktemp("admin-fuzz"), catalog)
    yield srv
    srv.stop()


def test_admin_operations_with_an_admin_key(admin_server: RunningServer) -> None:
    schema = schemathesis.openapi.from_url(admin_server.base_url + "/openapi.json")
    headers = {"Authorization": f"Bearer {admin_server.new_admin_key('fuzz')}"}
    admin_server.new_key("fuzzed-project")  # a project to find, besides the ones the fuzz creates
    fuzzed, sent = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if not operation.path.startswith("/v1/organization/"):
            continue
        for mode in schemathesis.GenerationMode:

            @FUZZ
            @given(case=operation.as_strategy(generation_mode=mode))
            def one(case: Any) -> None:
                nonlocal sent
                response = case.call(base_url=admin_server.base_url, headers=headers, timeout=30)
                sent += 1
                _check_envelope(response, case)

            try:
                one()
            except Unsatisfiable:
                assert mode is schemathesis.GenerationMode.NEGATIVE, operation.path
        fuzzed.append(f"{operation.method.upper()} {operation.path}")
    assert "POST /v1/organization/projects" in fuzzed and "GET /v1/organization/usage/completions" in fuzzed, fuzzed
    assert sent >= 20 * len(fuzzed), sent
