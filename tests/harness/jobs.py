"""Uploading data and waiting on jobs through the official SDK."""

from __future__ import annotations

import json
import time
from typing import Any

import openai

from service.jobs.states import TERMINAL
from service.protocol.fine_tuning import JobStatus

TERMINAL_STATUSES: frozenset[str] = frozenset(s.value for s in TERMINAL)


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return ("\n".join(json.dumps(r) for r in rows) + "\n").encode()


def upload(client: openai.OpenAI, rows: list[dict[str, Any]] | bytes, name: str = "train.jsonl") -> str:
    """Upload JSONL rows (or raw bytes) as a ``fine-tune`` file; returns its id."""
    data = rows if isinstance(rows, bytes) else jsonl(rows)
    return client.files.create(file=(name, data), purpose="fine-tune").id


def wait_status(
    client: openai.OpenAI, job_id: str, until: set[str] | frozenset[str] = TERMINAL_STATUSES, timeout: float = 300
) -> Any:
    """Poll the job until its status is one of ``until``; fail the test after ``timeout`` s."""
    deadline = time.time() + timeout
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in until:
            return job
        if time.time() > deadline:
            raise AssertionError(f"job {job_id} stuck in {job.status}, wanted {sorted(until)}")
        time.sleep(0.1)


__all__ = ["TERMINAL_STATUSES", "JobStatus", "jsonl", "upload", "wait_status"]
