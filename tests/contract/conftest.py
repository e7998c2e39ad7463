from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.contract.openapi import SpecChecker


@pytest.fixture(scope="module")
def spec_checker() -> SpecChecker:
    return SpecChecker()


@pytest.fixture(scope="module")
def api_key(server) -> str:  # type: ignore[no-untyped-def]
    return server.new_key("acme")


@pytest.fixture(scope="module")
def client(server, api_key: str, spec_checker: SpecChecker) -> Iterator[openai.OpenAI]:  # type: ignore[no-untyped-def]
    http = httpx.Client(event_hooks={"response": [spec_checker.hook]}, timeout=60)
    with openai.OpenAI(base_url=server.base_url + "/v1", api_key=api_key, max_retries=0, http_client=http) as c:
        yield c


@pytest.fixture
async def async_client(server, api_key: str, spec_checker: SpecChecker):  # type: ignore[no-untyped-def]
    http = httpx.AsyncClient(event_hooks={"response": [spec_checker.async_hook]}, timeout=60)
    async with openai.AsyncOpenAI(
        base_url=server.base_url + "/v1", api_key=api_key, max_retries=0, http_client=http
    ) as c:
        yield c
