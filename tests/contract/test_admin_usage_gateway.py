"""Inference usage end to end: chat completions relayed by the gateway to a FAKE upstream
(tests/fakes/upstream.py, which reports 5 prompt and 4 completion tokens per answer) show up in
``client.admin.organization.usage.completions`` for the calling project and model, through the
SDK with every response checked against the spec."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from service.catalog.catalog import BaseModelEntry, Catalog
from tests.contract.openapi import SpecChecker
from tests.fakes.upstream import make_upstream
from tests.harness.server import RunningServer, serve_app, start_server
from tests.harness.waiting import wait_until


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[RunningServer]:
    url, upstream = serve_app(make_upstream("u1"))
    catalog = Catalog([BaseModelEntry(name="hone-tiny", source=str(tiny_model_dir), upstreams=[url])])
    srv = start_server(tmp_path_factory.mktemp("usage"), catalog)
    yield srv
    srv.stop()
    upstream.should_exit = True


def test_relayed_tokens_appear_in_usage_completions(server: RunningServer, spec_checker: SpecChecker) -> None:
    http = httpx.Client(event_hooks={"response": [spec_checker.hook]}, timeout=60)
    admin = openai.OpenAI(
        base_url=server.v1, api_key="unused", admin_api_key=server.new_admin_key(), max_retries=0, http_client=http
    )
    orgs = admin.admin.organization
    project = orgs.projects.create(name="Usage E2E")
    account = orgs.projects.service_accounts.create(project.id, name="caller")
    assert account.api_key is not None
    start = int(time.time()) - 60
    with openai.OpenAI(base_url=server.v1, api_key=account.api_key.value, max_retries=0) as caller:
        for _ in range(3):
            caller.chat.completions.create(model="hone-tiny", messages=[{"role": "user", "content": "hi"}])

    def counted() -> dict[tuple[str | None, str | None], list[int]] | None:
        page = orgs.usage.completions(
            start_time=start, bucket_width="1m", project_ids=[project.id], group_by=["project_id", "model"]
        )
        totals: dict[tuple[str | None, str | None], list[int]] = {}
        for bucket in page.data:  # the calls may straddle a minute boundary
            for r in bucket.results:
                sums = totals.setdefault((r.project_id, r.model), [0, 0, 0])  # type: ignore[union-attr]
                for i, n in enumerate((r.input_tokens, r.output_tokens, r.num_model_requests)):  # type: ignore[union-attr]
                    sums[i] += n
        done = sum(s[2] for s in totals.values()) >= 3  # a replica flushes its tally every second
        return totals if done else None

    assert wait_until(counted, "the gateway's usage to be written", timeout_s=30) == {
        (project.id, "hone-tiny"): [15, 12, 3]
    }
    admin.close()
