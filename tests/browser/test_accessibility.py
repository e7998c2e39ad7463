"""Every page of the dashboard, as a signed-in project sees it in a real Chromium against a real
``hone serve``, passes the accessibility checks of tests/harness/a11y.py (names of controls,
buttons and links, one h1, the document's language, text contrast), and the dashboard works
from the keyboard: the skip link first, then the navigation in order, Enter follows a link, the
focused element shows an outline."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness.a11y import assert_accessible
from tests.harness.browser import needs_browser, sign_in
from tests.harness.jobs import upload, wait_status
from tests.harness.process import ServerProcess

pytestmark = [*needs_browser(), pytest.mark.db_incidental, pytest.mark.slow]

ROUTES = ["#/jobs", "#/new", "#/files", "#/models", "#/playground", "#/evals"]
NAV = ["Jobs", "New job", "Files", "Models", "Playground", "Evals"]
PAIRS = [("What is the secret word?", "Pineapple."), ("Who painted the door?", "Marta did.")]
ROWS = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in PAIRS] * 5


@pytest.fixture(scope="module")
def job_id(hone: ServerProcess) -> Iterator[str]:
    """A finished job of the signed-in project, made through the SDK (it trains the tiny model),
    so the pages show a file, a job with its curves and checkpoints, and a fine-tuned model."""
    client = hone.client()
    file_id = upload(client, ROWS)
    job = client.fine_tuning.jobs.create(model="hone-tiny", training_file=file_id, hyperparameters={"n_epochs": 2})
    assert wait_status(client, job.id).status == "succeeded"
    yield job.id


def settle(page: Any) -> None:
    """Wait until the page has its heading and its first data (no request in flight)."""
    page.locator("main h1").first.wait_for()
    page.wait_for_load_state("networkidle")


def test_the_sign_in_page_is_accessible(page: Any, hone: ServerProcess) -> None:
    page.goto(hone.base_url + "/ui/")
    page.get_by_label("Project API key").wait_for()
    assert_accessible(page)
    page.get_by_label("Project API key").fill("sk-hone-not-a-key")  # and with its error shown
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").wait_for()
    assert_accessible(page)


@pytest.mark.parametrize("route", ROUTES)
def test_each_page_is_accessible(page: Any, hone: ServerProcess, job_id: str, route: str) -> None:
    """With a job and its file in the project, so the lists have rows."""
    sign_in(page, hone.base_url, hone.api_key, route)
    settle(page)
    assert_accessible(page)


def test_the_job_page_is_accessible(page: Any, hone: ServerProcess, job_id: str) -> None:
    sign_in(page, hone.base_url, hone.api_key, f"#/jobs/{job_id}")
    page.get_by_text(job_id).first.wait_for()
    page.locator("main table").first.wait_for()  # its checkpoints and events are in
    settle(page)
    assert_accessible(page)


def test_the_harness_finds_violations(page: Any, hone: ServerProcess) -> None:
    """The checks can fail: a page with each kind of fault reports each one."""
    sign_in(page, hone.base_url, hone.api_key, "#/files")
    settle(page)
    page.evaluate(
        """() => {
          const main = document.getElementById("main");
          const add = (tag, props) => main.append(Object.assign(document.createElement(tag), props));
          add("input", { id: "unnamed" });
          add("button", { className: "faint" });
          add("img", {});
          add("h1", { textContent: "Second heading" });
          const table = document.createElement("table");
          table.createTHead().insertRow().append(Object.assign(document.createElement("th"), { id: "twice" }));
          add("span", { id: "twice" });
          main.append(table);
          const grey = Object.assign(document.createElement("p"), { textContent: "pale text" });
          grey.style.color = "#cccccc";
          main.append(grey);
        }"""
    )
    with pytest.raises(AssertionError) as raised:
        assert_accessible(page)
    report = str(raised.value)
    for expected in (
        "input#unnamed: form control without a label",
        "without an accessible name",
        "image without alt",
        "2 visible <h1> elements",
        '"pale text": contrast 1.6',
        "th#twice: column header without scope=col",
        "#twice: 2 elements share this id",
    ):
        assert expected in report, report


def _focused(page: Any) -> dict[str, Any]:
    return page.evaluate(
        """() => {
          const el = document.activeElement;
          const s = getComputedStyle(el);
          return { text: (el.innerText || el.value || el.getAttribute("aria-label") || "").trim().slice(0, 40),
                   tag: el.tagName, id: el.id,
                   outline: s.outlineStyle !== "none" && parseFloat(s.outlineWidth) > 0 };
        }"""
    )


def test_the_keyboard_reaches_the_skip_link_then_the_navigation(page: Any, hone: ServerProcess) -> None:
    sign_in(page, hone.base_url, hone.api_key, "#/jobs")
    settle(page)
    page.reload()  # focus back at the top of the document
    settle(page)
    page.keyboard.press("Tab")
    first = _focused(page)
    assert first["text"] == "Skip to content" and first["outline"], first
    reached = []
    for _ in NAV:
        page.keyboard.press("Tab")
        focused = _focused(page)
        assert focused["tag"] == "A" and focused["outline"], focused
        reached.append(focused["text"])
    assert reached == NAV
    page.keyboard.press("Shift+Tab")  # back to "Playground"
    page.keyboard.press("Shift+Tab")  # "Models"
    page.keyboard.press("Enter")
    page.get_by_role("heading", level=1, name="Models").wait_for()
    assert page.url.endswith("#/models")


def test_the_skip_link_moves_focus_to_the_page_and_stays_there(page: Any, hone: ServerProcess) -> None:
    sign_in(page, hone.base_url, hone.api_key, "#/files")
    settle(page)
    page.reload()
    settle(page)
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_function("document.activeElement && document.activeElement.id === 'main'")
    assert page.url.endswith("#/files")
    page.get_by_role("heading", level=1, name="Files").wait_for()


@pytest.mark.parametrize("route", ["#/jobs", "#/new", "#/playground", "job"])
def test_every_control_shows_its_focus(page: Any, hone: ServerProcess, job_id: str, route: str) -> None:
    """Tab through the whole page: each element the keyboard reaches draws a focus outline."""
    sign_in(page, hone.base_url, hone.api_key, f"#/jobs/{job_id}" if route == "job" else route)
    settle(page)
    page.reload()
    settle(page)
    seen: list[dict[str, Any]] = []
    for _ in range(200):
        page.keyboard.press("Tab")
        focused = _focused(page)
        if focused["tag"] == "BODY" or (seen and focused["text"] == "Skip to content"):
            break  # round the page once
        seen.append(focused)
    assert len(seen) > len(NAV), seen
    hidden = [f for f in seen if not f["outline"]]
    assert not hidden, f"focus not visible on: {hidden}"
