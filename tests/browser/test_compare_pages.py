"""The eval comparison and the playground in a real Chromium against a real ``hone serve``
without vLLM (tests/e2e/test_serving.py runs both against real models): two jsonl runs of one
eval side by side, with their pass rates per criterion and the items whose verdict differs; a
model the gateway does not know is reported on its own side of the playground. Both pages pass
the accessibility checks with their data on them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness.a11y import assert_accessible
from tests.harness.browser import needs_browser, sign_in
from tests.harness.evals import wait_for_run
from tests.harness.process import ServerProcess

pytestmark = [*needs_browser(), pytest.mark.db_incidental]

ITEMS = [{"question": f"q{i}", "answer": f"a{i}"} for i in range(4)]


def jsonl_run(client: Any, eval_id: str, outputs: list[str]) -> Any:
    content = [{"item": item, "sample": {"output_text": out}} for item, out in zip(ITEMS, outputs, strict=True)]
    return client.evals.runs.create(
        eval_id, data_source={"type": "jsonl", "source": {"type": "file_content", "content": content}}
    )


def test_two_runs_of_an_eval_side_by_side(page: Any, hone: ServerProcess) -> None:
    from playwright.sync_api import expect

    client = hone.client()
    ev = client.evals.create(
        name="answers",
        data_source_config={
            "type": "custom",
            "item_schema": {"type": "object", "properties": {"question": {}, "answer": {}}},
            "include_sample_schema": True,
        },
        testing_criteria=[
            {
                "type": "string_check",
                "name": "exact",
                "input": "{{sample.output_text}}",
                "reference": "{{item.answer}}",
                "operation": "eq",
            }
        ],
    )
    a = wait_for_run(client, ev.id, jsonl_run(client, ev.id, ["a0", "a1", "wrong", "wrong"]).id)  # 2/4
    b = jsonl_run(client, ev.id, ["a0", "wrong", "a2", "a3"])  # 3/4: items 1, 2, 3 differ
    # opened while B may still be queued: the page refreshes until both runs have finished
    sign_in(page, hone.base_url, hone.api_key, f"#/evals/{ev.id}?a={a.id}&b={b.id}")
    expect(page.locator("#ev-diff")).to_contain_text("3 of 4 items graded in both runs differ")
    cells = page.locator("#ev-criteria tbody tr td").all_inner_texts()
    assert cells == ["exact", "50.0% (2/4)", "75.0% (3/4)", "+25.0 pp"]
    rows = page.locator("#ev-diff tbody tr")
    expect(rows).to_have_count(3)
    assert rows.locator("td:first-child").all_inner_texts() == ["1", "2", "3"]
    assert rows.nth(0).locator(".badge").all_inner_texts() == ["pass", "fail"]
    assert rows.nth(1).locator(".badge").all_inner_texts() == ["fail", "pass"]
    assert "q1" in rows.nth(0).inner_text() and "wrong" in rows.nth(0).inner_text()
    assert_accessible(page)

    # choosing another pair of runs moves to its page: the same run twice differs nowhere
    page.get_by_label("Run B").select_option(a.id)
    expect(page.locator("#ev-diff")).to_contain_text("0 of 4 items graded in both runs differ")
    assert page.url.endswith(f"#/evals/{ev.id}?a={a.id}&b={a.id}")

    page.get_by_role("link", name="All evals").click()
    row = page.get_by_role("row").filter(has_text="answers")
    expect(row).to_contain_text("2")
    row.get_by_role("link", name="Compare these two").click()
    expect(page.locator("#ev-run-a")).to_have_value(a.id)
    expect(page.locator("#ev-run-b")).to_have_value(b.id)


def test_an_unknown_eval_shows_the_api_error(page: Any, hone: ServerProcess) -> None:
    sign_in(page, hone.base_url, hone.api_key, "#/evals/eval_nope")
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "eval_nope" in alert.inner_text()


def test_the_playground_reports_each_sides_error(page: Any, hone: ServerProcess) -> None:
    from playwright.sync_api import expect

    sign_in(page, hone.base_url, hone.api_key, "#/playground?model=ft:hone-tiny:big:nope:ckpt-step-1")
    right = page.get_by_label("Fine-tuned or checkpoint model", exact=True)
    expect(right).to_have_value("ft:hone-tiny:big:nope:ckpt-step-1")
    expect(page.get_by_label("Base model", exact=True)).to_have_value("hone-tiny")
    page.get_by_label("Base model", exact=True).fill("no-such-model")
    page.get_by_label("User prompt").fill("Hello?")
    page.get_by_role("button", name="Run").click()
    alerts = page.locator("#pg-left-meta ~ div [role=alert], #pg-right-meta ~ div [role=alert]")
    expect(alerts).to_have_count(2)
    assert "no-such-model" in alerts.nth(0).inner_text()
    assert "ft:hone-tiny:big:nope:ckpt-step-1" in alerts.nth(1).inner_text()
    expect(page.get_by_role("button", name="Run")).to_be_enabled()
    assert page.get_by_role("button", name="Stop").is_disabled()
    assert_accessible(page)

    page.get_by_label("User prompt").fill("")
    page.get_by_role("button", name="Run").click()
    expect(page.get_by_role("alert").filter(has_text="Write a user prompt")).to_be_visible()
