"""The jobs list and the job page in a real Chromium against a real ``hone serve`` training the
tiny model: the list follows a job's status, the loss curve gains points while it trains, pause
and resume from the page, checkpoints with their metrics (copied, opened in the playground), the
result CSV downloaded, a validation error with its line and field, another project's job unseen."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import pytest

from tests.harness.browser import needs_browser, shoot, sign_in
from tests.harness.jobs import upload, wait_status
from tests.harness.process import ServerProcess
from tests.integration import tuning

pytestmark = [*needs_browser(), pytest.mark.db_incidental, pytest.mark.slow]
TRAINING = 300_000  # ms: how long the page may wait on the tiny model (a loaded 2-core CPU: ~3 s a step)


def _job(hone: ServerProcess, n_epochs: int, suffix: str) -> str:
    client = hone.client()
    train = upload(client, tuning.memorisation_rows())
    return client.fine_tuning.jobs.create(
        model="hone-tiny",
        training_file=train,
        validation_file=train,
        suffix=suffix,
        seed=3,
        method={
            "type": "supervised",
            "supervised": {"hyperparameters": {"n_epochs": n_epochs, "batch_size": 2, "learning_rate_multiplier": 2}},
        },
    ).id


# Line 2 has no assistant message to learn from.
_BAD = [tuning.memorisation_rows(1)[0], {"messages": [{"role": "user", "content": "no answer"}]}]


def _points(page: Any) -> int:
    return int(page.locator("figure.chart").get_attribute("data-points"))


def _checkpoints(page: Any) -> Any:
    return page.locator("table", has=page.get_by_text("Checkpoints, newest first"))


def _status(page: Any) -> Any:
    return page.locator(".job-status .badge")


def test_watch_a_job_train_pause_resume_and_use_its_checkpoints(page: Any, hone: ServerProcess) -> None:
    sign_in(page, hone.base_url, hone.api_key, "#/jobs")
    page.get_by_role("heading", name="Fine-tuning jobs").wait_for()
    job_id = _job(hone, n_epochs=12, suffix="watched")  # 60 steps, a checkpoint every 5
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=job_id))
    row.wait_for()  # the open list refreshes itself
    assert "hone-tiny" in row.inner_text() and "watched" in row.inner_text()
    row.locator(".badge", has_text="running").wait_for(timeout=TRAINING)  # and follows its status
    shoot(page, "jobs")

    # Paused as soon as it runs (however fast this machine trains): the trainer stops after
    # its first step or so and checkpoints on the way out.
    row.get_by_role("link", name=job_id).click()
    assert page.url.endswith(f"#/jobs/{job_id}")
    _status(page).filter(has_text="running").wait_for(timeout=TRAINING)
    page.get_by_role("button", name="Pause").click()
    _status(page).filter(has_text="paused").wait_for(timeout=TRAINING)
    resume = page.get_by_role("button", name="Resume")
    resume.wait_for()
    assert page.get_by_role("button", name="Pause").count() == 0
    assert page.locator("ol.timeline li.current").inner_text() == "paused"
    kept = hone.client().fine_tuning.jobs.checkpoints.list(job_id).data[0]
    paused_at = kept.step_number  # written on the way out
    page.wait_for_function(f"() => +document.querySelector('figure.chart').dataset.points === {paused_at}")
    _checkpoints(page).locator("tbody tr").first.filter(has_text=kept.fine_tuned_model_checkpoint).wait_for()

    # Resumed, the curve gains points while the job runs, then it succeeds.
    resume.click()
    page.wait_for_function(
        "() => document.querySelector('.job-status .badge').textContent === 'running'"
        f" && +document.querySelector('figure.chart').dataset.points > {paused_at}",
        timeout=TRAINING,
    )
    assert "Training loss:" in page.get_by_role("img", name=re.compile("Loss curves")).get_attribute("aria-label")
    _status(page).filter(has_text="succeeded").wait_for(timeout=TRAINING)
    assert _points(page) == 60
    assert page.get_by_role("button", name="Cancel").count() == 0  # nothing to cancel once finished

    checkpoints = hone.client().fine_tuning.jobs.checkpoints.list(job_id).data
    assert checkpoints
    table = _checkpoints(page)
    assert table.locator("tbody tr").count() == len(checkpoints)
    first = table.locator("tbody tr").first
    newest = checkpoints[0]
    assert str(newest.step_number) in first.inner_text()
    assert f"{newest.metrics.train_loss:.4g}"[:4] in first.inner_text()
    shoot(page, "job")
    page.get_by_text("Loss curves: data table").click()  # the text alternative lists every step
    job = hone.client().fine_tuning.jobs.retrieve(job_id)
    steps = len(tuning.metrics(hone.client(), job_id))
    assert page.locator(".chart-table tbody tr").count() == steps == _points(page)
    resolved = page.locator("section", has=page.get_by_role("heading", name="Hyperparameters"))
    for name, value in (("n_epochs", job.hyperparameters.n_epochs), ("batch_size", 2)):
        assert resolved.locator(f"dt:text-is('{name}') + dd").inner_text() == str(value)

    first.get_by_role("button", name=re.compile("Copy name")).click()
    assert page.evaluate("navigator.clipboard.readText()") == newest.fine_tuned_model_checkpoint

    with page.expect_download() as download:
        page.get_by_role("button", name="Download result CSV").click()
    csv = open(download.value.path()).read().splitlines()
    assert csv[0].startswith("step,") and len(csv) == steps + 1

    first.get_by_role("link", name="Open in playground").click()
    page.wait_for_url(re.compile(r"#/playground\?model="))
    assert page.url.endswith(f"#/playground?model={quote(newest.fine_tuned_model_checkpoint, safe='')}")


def test_a_file_that_fails_validation_shows_its_line_and_field(page: Any, hone: ServerProcess) -> None:
    client = hone.client()
    bad = upload(client, _BAD, name="bad.jsonl")
    job = client.fine_tuning.jobs.create(model="hone-tiny", training_file=bad)
    failed = wait_status(client, job.id)
    assert failed.status == "failed" and failed.error.param == "training_file"
    sign_in(page, hone.base_url, hone.api_key, f"#/jobs/{job.id}")
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "Line 2" in alert.inner_text() and "(field: training_file)" in alert.inner_text()
    assert failed.error.message in alert.inner_text()
    _status(page).filter(has_text="failed").wait_for()
    assert page.get_by_role("button", name="Cancel").count() == 0


def test_another_projects_job_is_never_shown(page: Any, hone: ServerProcess) -> None:
    # Jobs that fail validation at once: nothing trains.
    other = hone.client().with_options(api_key=hone.new_key("other"))
    theirs = other.fine_tuning.jobs.create(model="hone-tiny", training_file=upload(other, _BAD)).id
    client = hone.client()
    bad = upload(client, _BAD)
    mine = [client.fine_tuning.jobs.create(model="hone-tiny", training_file=bad).id for _ in range(21)]
    total = len(client.fine_tuning.jobs.list(limit=100).data)
    sign_in(page, hone.base_url, hone.api_key, "#/jobs")
    links = page.get_by_role("link", name=re.compile("^ftjob-"))
    page.get_by_role("link", name=mine[-1]).wait_for()
    assert links.count() == 20 and page.get_by_role("link", name=mine[0]).count() == 0  # a page of 20
    page.get_by_role("button", name="Load more").click()
    page.get_by_role("link", name=mine[0]).wait_for()
    page.wait_for_function(f"() => document.querySelectorAll('a[href^=\"#/jobs/ftjob-\"]').length === {total}")
    assert page.get_by_role("button", name="Load more").count() == 0
    assert page.get_by_role("link", name=theirs).count() == 0
    page.goto(f"{hone.base_url}/ui/#/jobs/{theirs}")
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert f"Fine-tuning job {theirs} not found." in alert.inner_text()
    assert page.locator(".job-status").count() == 0 and page.get_by_role("button", name="Cancel").count() == 0
