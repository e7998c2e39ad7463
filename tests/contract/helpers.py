"""Small builders shared by the contract tests."""

from __future__ import annotations

from typing import Any

from tests.harness.jobs import jsonl, upload, wait_status

__all__ = ["chat_line", "dpo_line", "jsonl", "upload", "wait_status"]


def chat_line(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": f"What is {i} plus {i}?"},
            {"role": "assistant", "content": f"{2 * i}."},
        ],
        **extra,
    }


def dpo_line(i: int) -> dict[str, Any]:
    return {
        "input": {"messages": [{"role": "user", "content": f"Say {i}."}]},
        "preferred_output": [{"role": "assistant", "content": f"{i}."}],
        "non_preferred_output": [{"role": "assistant", "content": "No."}],
    }
