"""The new-job page in a real Chromium against a real ``hone serve``: a file uploaded through the
file input (progress bar to its end), the dataset check's verdict (counts and tokens for a good
file, the first problems with their line numbers for a bad one), "auto" explained from the API,
the API's error shown when creation is refused, and a started job that exists with what was
chosen."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.harness.browser import needs_browser, shoot, sign_in
from tests.harness.jobs import jsonl, upload
from tests.harness.process import ServerProcess

pytestmark = [*needs_browser(), pytest.mark.db_incidental, pytest.mark.slow]

FILLER = " ".join(f"word{i}" for i in range(150))


def row(i: int, filler: str = "") -> dict[str, Any]:
    return {
        "messages": [
            {"role": "user", "content": f"What is {i} plus {i}? {filler}"},
            {"role": "assistant", "content": f"{2 * i}."},
        ]
    }


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 2 MB of valid examples: large enough for the upload to report progress."""
    path = tmp_path_factory.mktemp("data") / "big.jsonl"
    path.write_bytes(jsonl([row(i, FILLER) for i in range(1700)]))
    return path


def progress_done(page: Any, selector: str) -> None:
    page.wait_for_function(
        "s => { const p = document.querySelector(s); return p && !p.hidden && p.value > 0 && p.value === p.max; }",
        arg=selector,
    )


def test_a_good_file_uploads_with_progress_and_is_valid(page: Any, hone: ServerProcess, big_file: Path) -> None:
    sign_in(page, hone.base_url, hone.api_key, "#/new")
    page.get_by_label("Training file: upload a JSONL file").set_input_files(str(big_file))
    progress_done(page, "#training-progress")
    assert (
        page.evaluate("document.querySelector('#training-progress').max") >= big_file.stat().st_size
    )  # the multipart body
    verdict = page.locator(".verdict-valid")
    verdict.wait_for()
    assert "1,700 examples" in verdict.inner_text()
    check = page.get_by_role("region", name="Dataset check").inner_text()
    assert "Tokens" in check and "Longest example" in check
    # the uploaded file is the one the job would use, and the SDK sees it
    uploaded = [f for f in hone.client().files.list(purpose="fine-tune") if f.filename == "big.jsonl"]
    assert uploaded and uploaded[0].bytes == big_file.stat().st_size
    # "auto" is explained beside the field (from GET /v1/fine_tuning/methods), with this file's value
    epochs = page.get_by_label("n_epochs", exact=True)
    assert epochs.input_value() == "auto"
    help_id = epochs.get_attribute("aria-describedby")
    help_text = page.locator(f"#{help_id}").inner_text()
    assert "auto: 3; if 3n < 100" in help_text and "For this file's 1,700 examples: 3." in help_text
    assert page.get_by_role("button", name="Start job").is_enabled()
    shoot(page, "new-job")


def test_a_bad_file_shows_its_first_errors_by_line(page: Any, hone: ServerProcess, tmp_path: Path) -> None:
    lines = [json.dumps(row(i)) for i in range(14)]
    lines[1] = json.dumps({"prompt": "x", "completion": "y"})  # line 2: no messages
    lines[4] = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "x"}]})
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    sign_in(page, hone.base_url, hone.api_key, "#/new")
    page.get_by_label("Training file: upload a JSONL file").set_input_files(str(bad))
    page.locator(".verdict-invalid").wait_for()
    rows = page.get_by_role("region", name="Dataset check").locator("tbody tr")
    assert rows.count() == 2
    first, second = rows.nth(0).locator("td"), rows.nth(1).locator("td")
    assert first.nth(0).inner_text() == "2" and "messages" in first.nth(3).inner_text()
    assert second.nth(0).inner_text() == "5" and second.nth(1).inner_text() == "message 2"
    assert "Line 5" in second.nth(3).inner_text()
    assert page.get_by_role("button", name="Start job").is_disabled()
    shoot(page, "new-job-errors")
    # DPO data is judged by the DPO rules once that method is chosen: still not valid here
    page.get_by_label("Method", exact=True).select_option("dpo")
    page.wait_for_function("() => document.querySelector('.verdict tbody td')?.textContent === '1'")
    assert "input" in page.locator(".verdict tbody tr").first.inner_text()


def test_start_a_job_with_chosen_settings(page: Any, hone: ServerProcess, tmp_path: Path) -> None:
    client = hone.client()
    validation_id = upload(client, [row(100 + i) for i in range(4)], name="held-out.jsonl")
    train = tmp_path / "train.jsonl"
    train.write_bytes(jsonl([row(i) for i in range(12)]))
    sign_in(page, hone.base_url, hone.api_key, "#/new")
    page.get_by_label("Training file: upload a JSONL file").set_input_files(str(train))
    page.locator(".verdict-valid").wait_for()
    page.get_by_label("Base model").select_option("hone-tiny")
    page.get_by_label("n_epochs", exact=True).fill("1")
    page.get_by_label("Validation file: or pick an uploaded file (optional)").select_option(validation_id)
    page.get_by_label("Seed (optional)").fill("7")
    # a suffix the API refuses: its message and field are shown, nothing is created
    page.get_by_label("Suffix (optional)").fill("not ok!")
    before = {j.id for j in client.fine_tuning.jobs.list()}
    page.get_by_role("button", name="Start job").click()
    alert = page.locator("form .alert[role=alert]")
    alert.wait_for()
    assert "(field: suffix)" in alert.inner_text()
    assert {j.id for j in client.fine_tuning.jobs.list()} == before
    page.get_by_label("Suffix (optional)").fill("ui-test")
    page.get_by_role("button", name="Start job").click()
    page.wait_for_url("**/ui/#/jobs/ftjob-*")
    job_id = page.url.rsplit("/", 1)[-1]
    job = client.fine_tuning.jobs.retrieve(job_id)
    assert job.user_provided_suffix == "ui-test" and job.seed == 7 and job.model == "hone-tiny"
    assert job.validation_file == validation_id
    assert job.method is not None and job.method.type == "supervised"
    assert job.method.supervised is not None and job.method.supervised.hyperparameters is not None
    assert job.method.supervised.hyperparameters.n_epochs == 1
    training = client.files.retrieve(job.training_file)
    assert training.filename == "train.jsonl"
