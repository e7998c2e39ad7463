"""Small builders shared by the contract tests."""

from __future__ import annotations

import json
import time
from typing import Any

import openai


def chat_line(i: int, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "system", "content": "You are terse."},
                         {"role": "user", "content": f"What is {i} plus {i}?"},
                         {"role": "assistant", "content": f"{2 * i}."}], **extra}


def dpo_line(i: int) -> dict[str, Any]:
    return {"input": {"messages": [{"role": "user", "content": f"Say {i}."}]},
            "preferred_output": [{"role": "assistant", "content": f"{i}."}],
            "non_preferred_output": [{"role": "assistant", "content": "No."}]}


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return ("\n".join(json.dumps(r) for r in rows) + "\n").encode()


def upload(client: openai.OpenAI, rows: list[dict[str, Any]] | bytes, name: str = "train.jsonl") -> str:
    data = rows if isinstance(rows, bytes) else jsonl(rows)
    return client.files.create(file=(name, data), purpose="fine-tune").id


def wait_status(client: openai.OpenAI, job_id: str, until: set[str], timeout: float = 60) -> Any:
    deadline = time.time() + timeout
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in until:
            return job
        if time.time() > deadline:
            raise AssertionError(f"job {job_id} stuck in {job.status}, wanted {until}")
        time.sleep(0.1)
