"""``hone eval compare`` against a real hone (no vLLM): what it sends is accepted as the API
defines it (the eval with each of its criteria, the graders on their own, the completions run),
and a job it cannot compare is refused with one line and exit code 2. The whole loop on real
vLLM is tests/e2e/test_evals.py."""

from __future__ import annotations

import json

import openai
import pytest

from service.evals import compare
from tests.harness.cli import run_cli
from tests.harness.jobs import upload

ROWS = [
    {"messages": [{"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": f"Answer {i}."}]}
    for i in range(10)
]


@pytest.mark.parametrize("grader", ["string_check", "fuzzy_match"])
def test_the_eval_and_run_compare_creates_are_accepted(client: openai.OpenAI, grader: str) -> None:
    criterion = compare.testing_criterion(grader, 0.9)
    assert client.fine_tuning.alpha.graders.validate(grader=criterion).grader is not None  # type: ignore[arg-type]
    ev = client.evals.create(
        name="compare shapes",
        data_source_config={"type": "custom", "item_schema": compare.ITEM_SCHEMA, "include_sample_schema": True},
        testing_criteria=[criterion],  # type: ignore[list-item]
    )
    assert ev.testing_criteria[0].type == criterion["type"]
    items = compare.held_out_items("\n".join(json.dumps(r) for r in ROWS), "file-x")
    run = client.evals.runs.create(
        ev.id,
        name="base",
        data_source=compare.completions_source("hone-tiny", items, 8),  # type: ignore[arg-type]
    )
    assert run.data_source.type == "completions" and run.model == "hone-tiny"
    client.evals.runs.cancel(run.id, eval_id=ev.id)


def test_a_job_that_has_not_succeeded_is_refused(server, api_key: str, client: openai.OpenAI, capsys) -> None:  # type: ignore[no-untyped-def]
    job = client.fine_tuning.jobs.create(model="hone-tiny", training_file=upload(client, ROWS))
    argv = ["eval", "compare", job.id, "--base-url", server.v1, "--api-key", api_key]
    assert run_cli(argv) == 2
    err = capsys.readouterr().err
    status = client.fine_tuning.jobs.retrieve(job.id).status
    assert status != "succeeded" and "only a succeeded job has a model to compare" in err
    assert run_cli(["eval", "compare", "ftjob-nothere", "--base-url", server.v1, "--api-key", api_key]) == 2
    assert "GET /fine_tuning/jobs/ftjob-nothere: HTTP 404" in capsys.readouterr().err
