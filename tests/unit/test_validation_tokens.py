"""``HFTokenCounter`` against the real tokenizer and ChatML template of hone's tiny model.

The tiny model is built once per session with ``service.catalog.tiny.build_tiny_model``
(no network, no torch). Counts must equal the length of ``apply_chat_template(...,
tokenize=True)``, i.e. what the template and tokenizer produce for the same conversation.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from service.catalog.tiny import build_tiny_model
from service.validation import Conversation, DataValidationError, HFTokenCounter, RenderError, validate_dataset

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]

CONVERSATIONS: list[Conversation] = [
    {
        "messages": [
            {"role": "user", "content": "What's the capital of France?"},
            {"role": "assistant", "content": "Paris, as if everyone doesn't know."},
        ]
    },
    {
        "messages": [
            {"role": "system", "content": "Marv is sarcastic."},
            {"role": "user", "content": "Héllo ✓ 你好"},
            {"role": "assistant", "content": "Hi.", "weight": 0},
            {"role": "user", "content": "More?"},
            {"role": "assistant", "content": "Fine. Hi again.", "weight": 1},
        ]
    },
    {
        "messages": [
            {"role": "user", "content": "Weather in SF?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "SF"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "21.0"},
            {"role": "assistant", "content": "It is 21 degrees."},
        ],
        "tools": TOOLS,
    },
]


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tokenizer(tiny_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_dir))


def reference_count(tokenizer: Any, conv: Conversation) -> int:
    out = tokenizer.apply_chat_template(conv["messages"], tools=conv.get("tools"), tokenize=True)
    return len(out["input_ids"] if hasattr(out, "keys") else out)


def test_counts_match_chat_template_tokenization(tiny_dir: Path, tokenizer: Any) -> None:
    counts = HFTokenCounter(str(tiny_dir)).count(CONVERSATIONS)
    assert counts == [reference_count(tokenizer, conv) for conv in CONVERSATIONS]
    assert counts[2] > counts[0] + 50  # the tools block is rendered and counted


def test_empty_batch(tiny_dir: Path) -> None:
    assert HFTokenCounter(str(tiny_dir)).count([]) == []


def test_loads_lazily_and_once_across_threads(tiny_dir: Path, tokenizer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers

    loads: list[str] = []
    real = transformers.AutoTokenizer.from_pretrained

    def counting(source: str, *args: Any, **kwargs: Any) -> Any:
        loads.append(source)
        return real(source, *args, **kwargs)

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", counting)
    counter = HFTokenCounter(str(tiny_dir))
    assert loads == []  # nothing loaded at construction
    results: list[list[int]] = []
    threads = [threading.Thread(target=lambda: results.append(counter.count(CONVERSATIONS))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loads == [str(tiny_dir)]
    assert results == [[reference_count(tokenizer, c) for c in CONVERSATIONS]] * 8


def test_template_refusal_is_a_render_error_with_index(tiny_dir: Path) -> None:
    bad: Conversation = {"messages": [{"role": "narrator", "content": "x"}]}
    with pytest.raises(RenderError) as info:
        HFTokenCounter(str(tiny_dir)).count([CONVERSATIONS[0], bad])
    assert info.value.index == 1 and "Unknown role" in info.value.reason


def test_validate_dataset_stats_match_template(tiny_dir: Path, tokenizer: Any) -> None:
    lines = [{k: v for k, v in conv.items()} for conv in CONVERSATIONS] * 4
    data = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    stats = validate_dataset(
        [data],
        method="supervised",
        param="training_file",
        counter=HFTokenCounter(str(tiny_dir)),
        max_tokens=2048,
        min_examples=10,
        batch_size=5,
    )
    expected = [reference_count(tokenizer, c) for c in CONVERSATIONS] * 4
    assert (stats.n_examples, stats.n_tokens, stats.max_example_tokens) == (12, sum(expected), max(expected))


def test_too_long_example_fails_with_token_message(tiny_dir: Path, tokenizer: Any) -> None:
    long_conv: Conversation = {
        "messages": [
            {"role": "user", "content": "tell me a long story " * 40},
            {"role": "assistant", "content": "once upon a time"},
        ]
    }
    n = reference_count(tokenizer, long_conv)
    data = b"".join(orjson.dumps(line) + b"\n" for line in [CONVERSATIONS[0], long_conv])
    with pytest.raises(DataValidationError) as info:
        validate_dataset(
            [data],
            method="supervised",
            param="validation_file",
            counter=HFTokenCounter(str(tiny_dir)),
            max_tokens=100,
            min_examples=1,
        )
    err = info.value
    assert (err.code, err.param, err.line) == ("invalid_validation_file", "validation_file", 2)
    assert err.message == (f"Invalid file format. Line 2: example has {n} tokens, more than the limit of 100 tokens")


def test_validation_package_imports_neither_torch_nor_transformers() -> None:
    code = "import sys, service.validation; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.stdout.strip() == "[]"


def test_a_hub_id_that_keeps_failing_is_retried_for_a_while_then_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hub id may fail for a moment (retried), but not forever: after ``retry_for_s`` of
    failing it is TokenizerUnavailable, which fails the job. (The hub call is replaced by a
    FAKE that raises the OSError transformers raises when the hub cannot be reached.)"""
    import transformers

    from service.validation.tokens import TokenizerUnavailable

    def unreachable(*a: Any, **kw: Any) -> Any:
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", unreachable)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    counter = HFTokenCounter("acme/llama", retry_for_s=0.2)
    conversation: Any = {"messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(OSError) as first:
        counter.count([conversation])
    assert not isinstance(first.value, TokenizerUnavailable)  # transient for now: validation is tried again
    time.sleep(0.25)
    with pytest.raises(TokenizerUnavailable, match="acme/llama.*still failing after"):
        counter.count([conversation])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(TokenizerUnavailable, match="hub is offline"):
        HFTokenCounter("acme/llama").count([conversation])
