"""Waiting for an eval run through the SDK, as the tests that execute runs do."""

from __future__ import annotations

from typing import Any

import openai

from service.protocol.evals import FINISHED_RUN_STATUSES
from tests.harness.waiting import wait_until


def wait_for_run(client: openai.OpenAI, eval_id: str, run_id: str, timeout_s: float = 120) -> Any:
    """The run once it is completed, failed or canceled (an AssertionError after ``timeout_s``)."""
    return wait_until(
        lambda: (r := client.evals.runs.retrieve(run_id, eval_id=eval_id)).status in FINISHED_RUN_STATUSES and r,
        f"eval run {run_id} to finish",
        timeout_s=timeout_s,
    )
