"""The files and models pages in a real Chromium against a real ``hone serve``: the project's
files listed and paged (never another project's), a download that gives the uploaded bytes, a
delete behind a confirm step that the API then answers with 404; the models page with the base
model, its name to copy and the playground link, and a fine-tuned model deleted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest

from tests.harness.browser import needs_browser, shoot, sign_in
from tests.harness.jobs import jsonl, upload, wait_status
from tests.harness.process import ServerProcess

pytestmark = [*needs_browser(), pytest.mark.db_incidental, pytest.mark.slow]

ROWS = [
    {"messages": [{"role": "user", "content": f"Say {i}."}, {"role": "assistant", "content": f"{i}."}]}
    for i in range(10)
]


def client_for(hone: ServerProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=hone.base_url + "/v1", api_key=key, max_retries=0)


def file_row(page: Any, file_id: str) -> Any:
    return page.locator("tbody tr").filter(has_text=file_id)


def test_files_list_download_and_delete(page: Any, hone: ServerProcess, tmp_path: Path) -> None:
    key = hone.new_key("files-ui")
    mine = client_for(hone, key)
    data = jsonl(ROWS)
    kept = upload(mine, data, name="kept.jsonl")
    doomed = upload(mine, jsonl(ROWS[:3]), name="doomed.jsonl")
    theirs = upload(client_for(hone, hone.new_key("files-ui-other")), ROWS, name="theirs.jsonl")
    sign_in(page, hone.base_url, key, "#/files")
    file_row(page, kept).wait_for()
    assert "kept.jsonl" in file_row(page, kept).inner_text() and "fine-tune" in file_row(page, kept).inner_text()
    assert file_row(page, doomed).count() == 1 and file_row(page, theirs).count() == 0
    assert "theirs.jsonl" not in page.locator("main").inner_text()
    shoot(page, "files")

    with page.expect_download() as info:
        page.get_by_role("button", name="Download kept.jsonl").click()
    download = info.value
    assert download.suggested_filename == "kept.jsonl"
    saved = tmp_path / "saved.jsonl"
    download.save_as(saved)
    assert saved.read_bytes() == data

    page.get_by_role("button", name="Delete doomed.jsonl").click()
    page.get_by_role("button", name="Cancel").click()  # the first thought: nothing deleted
    assert mine.files.retrieve(doomed).id == doomed
    page.get_by_role("button", name="Delete doomed.jsonl").click()
    page.get_by_role("button", name="Yes, delete").click()
    file_row(page, doomed).wait_for(state="detached")
    with pytest.raises(openai.NotFoundError):
        mine.files.retrieve(doomed)
    assert file_row(page, kept).count() == 1


def test_files_page_on_with_load_more(page: Any, hone: ServerProcess) -> None:
    key = hone.new_key("files-ui-many")
    mine = client_for(hone, key)
    ids = [upload(mine, ROWS[:2], name=f"f{i:02d}.jsonl") for i in range(23)]
    sign_in(page, hone.base_url, key, "#/files")
    file_row(page, ids[-1]).wait_for()  # newest first
    assert page.locator("tbody tr").count() == 20 and file_row(page, ids[0]).count() == 0
    page.get_by_role("button", name="Load more").click()
    file_row(page, ids[0]).wait_for()
    assert page.locator("tbody tr").count() == 23
    assert page.get_by_role("button", name="Load more").is_hidden()


def test_models_page_lists_copies_links_and_deletes(page: Any, hone: ServerProcess) -> None:
    key = hone.new_key("models-ui")
    mine = client_for(hone, key)
    job = mine.fine_tuning.jobs.create(
        model="hone-tiny",
        training_file=upload(mine, ROWS),
        suffix="ui",
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1}}},
    )
    done = wait_status(mine, job.id)
    assert done.status == "succeeded" and done.fine_tuned_model
    model = done.fine_tuned_model
    sign_in(page, hone.base_url, key, "#/models")
    base_row = page.locator("tbody tr").filter(has_text="hone-tiny").first
    base_row.wait_for()
    tuned = page.locator("tbody tr").filter(has_text=model).first
    tuned.wait_for()
    shoot(page, "models")
    assert base_row.get_by_role("button", name="Delete").count() == 0  # base models are the server's

    page.get_by_role("button", name=f"Copy name: {model}").click()
    assert page.evaluate("navigator.clipboard.readText()") == model
    link = tuned.get_by_role("link", name="Open in playground")
    assert link.get_attribute("href") == "#/playground?model=" + model.replace(":", "%3A")

    tuned.get_by_role("button", name=f"Delete {model}").click()
    page.get_by_role("button", name="Yes, delete").click()
    page.locator("tbody tr").filter(has_text=model).first.wait_for(state="detached")
    with pytest.raises(openai.NotFoundError):
        mine.models.retrieve(model)
