"""One bad file per validation rule, through the SDK: the job fails with OpenAI's error code,
the right ``param``, and a message naming the line; the server never answers 5xx."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.contract.helpers import chat_line, dpo_line, jsonl, wait_status

GOOD = [chat_line(i) for i in range(11)]


def _with_bad(bad: Any, at: int = 4) -> bytes:
    """Eleven good lines with ``bad`` (a dict, or raw bytes) as line ``at``."""
    lines = [json.dumps(r).encode() for r in GOOD]
    lines.insert(at - 1, bad if isinstance(bad, bytes) else json.dumps(bad).encode())
    return b"\n".join(lines) + b"\n"


def msg(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"messages": list(messages), **extra}


U = {"role": "user", "content": "hi"}
A = {"role": "assistant", "content": "hello"}

# Lines that are not JSON objects never get this far: the upload refuses them (test_files.py).
SFT_CASES: list[tuple[str, bytes, str]] = [
    ("missing messages", _with_bad({"prompt": "x", "completion": "y"}), "messages"),
    ("empty messages", _with_bad(msg()), "messages"),
    ("unknown role", _with_bad(msg({"role": "bot", "content": "x"}, A)), "role"),
    ("missing role", _with_bad(msg({"content": "x"}, A)), "role"),
    ("unknown message key", _with_bad(msg({**U, "mood": "happy"}, A)), "mood"),
    ("no assistant message", _with_bad(msg(U, U)), "assistant"),
    ("only weight-0 assistant", _with_bad(msg(U, {**A, "weight": 0})), "assistant"),
    ("weight not 0/1", _with_bad(msg(U, {**A, "weight": 2})), "weight"),
    ("weight on user", _with_bad(msg({**U, "weight": 1}, A)), "weight"),
    ("content missing", _with_bad(msg({"role": "user"}, A)), "content"),
    ("content empty", _with_bad(msg({"role": "user", "content": ""}, A)), "content"),
    ("content wrong type", _with_bad(msg({"role": "user", "content": 5}, A)), "content"),
    ("bad content part", _with_bad(msg({"role": "user", "content": [{"type": "text"}]}, A)), "text"),
    (
        "image part",
        _with_bad(msg({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}, A)),
        "image",
    ),
    (
        "bad tool_calls",
        _with_bad(msg(U, {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function"}]})),
        "function",
    ),
    (
        "tool without tool_call_id",
        _with_bad(
            msg(
                U,
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
                },
                {"role": "tool", "content": "1"},
                A,
            )
        ),
        "tool_call_id",
    ),
    ("bad tools", _with_bad(msg(U, A, tools=[{"type": "function"}])), "tools"),
    ("unknown top-level key", _with_bad(msg(U, A, extra_field=1)), "extra_field"),
    ("too many tokens", _with_bad(msg({"role": "user", "content": "word " * 5000}, A)), "token"),
]


@pytest.fixture(scope="module")
def good_file(client: openai.OpenAI) -> str:
    return client.files.create(file=("good.jsonl", jsonl(GOOD)), purpose="fine-tune").id


def _fail(
    client: openai.OpenAI, content: bytes, *, validation: bool = False, method: Any = None, good_file: str | None = None
) -> Any:
    fid = client.files.create(file=("data.jsonl", content), purpose="fine-tune").id
    kwargs: dict[str, Any] = {"model": "hone-tiny", "training_file": good_file if validation else fid}
    if validation:
        kwargs["validation_file"] = fid
    if method:
        kwargs["method"] = method
    job = client.fine_tuning.jobs.create(**kwargs)
    job = wait_status(client, job.id, {"queued", "failed"})
    assert job.status == "failed", f"expected failure, got {job.status}"
    return job


@pytest.mark.parametrize(("name", "content", "field"), SFT_CASES, ids=[c[0] for c in SFT_CASES])
def test_training_file_rule(client: openai.OpenAI, name: str, content: bytes, field: str) -> None:
    job = _fail(client, content)
    assert job.error.code == "invalid_training_file", job.error
    assert job.error.param == "training_file"
    assert "line 4" in job.error.message.lower(), job.error.message
    assert field.lower() in job.error.message.lower(), job.error.message
    last = client.fine_tuning.jobs.list_events(job.id, limit=1).data[0]
    assert (last.level, last.message) == ("error", job.error.message)


def test_validation_file_rule(client: openai.OpenAI, good_file: str) -> None:
    job = _fail(client, _with_bad(msg(U, {**A, "weight": 3}), at=2), validation=True, good_file=good_file)
    assert (job.error.code, job.error.param) == ("invalid_validation_file", "validation_file")
    assert "line 2" in job.error.message.lower() and "weight" in job.error.message


def test_too_few_examples(client: openai.OpenAI) -> None:
    job = _fail(client, jsonl(GOOD[:7]))
    assert (job.error.code, job.error.param) == ("invalid_n_examples", "training_file")
    assert job.error.message == "Training file has 7 example(s), but must have at least 10 examples"


def test_dpo_rules(client: openai.OpenAI) -> None:
    dpo = {"type": "dpo"}
    good = [dpo_line(i) for i in range(10)]
    sft_file = jsonl(GOOD)
    job = _fail(client, sft_file, method=dpo)
    assert job.error.code == "invalid_training_file" and "line 1" in job.error.message.lower()
    assert "input" in job.error.message
    bad = dict(good[0], preferred_output=[{"role": "user", "content": "x"}])
    job = _fail(client, jsonl(good[:2] + [bad] + good[2:]), method=dpo)
    assert "line 3" in job.error.message.lower() and "preferred_output" in job.error.message
    two = dict(good[0], non_preferred_output=[A, A])
    job = _fail(client, jsonl([two] + good), method=dpo)
    assert "line 1" in job.error.message.lower() and "non_preferred_output" in job.error.message
    # And the SFT job refuses the DPO format.
    job = _fail(client, jsonl(good))
    assert "messages" in job.error.message


def test_no_5xx_on_any_bad_input(client: openai.OpenAI, spec_checker) -> None:  # type: ignore[no-untyped-def]
    # Every response in this module was validated by the spec hook; none may be a 5xx.
    assert spec_checker.checked > 50
    assert spec_checker.statuses and max(spec_checker.statuses) < 500
