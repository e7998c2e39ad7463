"""Unit tests for ``service.validation``: one bad file per rule, good files, streaming.

Token counts here come from ``WordCountFake``, a fake counter (not a tokenizer): a
conversation's "tokens" are its messages' whitespace-separated content words plus one per
message. The real ``HFTokenCounter`` is tested in ``test_validation_tokens.py``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import orjson
import pytest

from service.validation import Conversation, DatasetStats, DataValidationError, RenderError, validate_dataset


class WordCountFake:
    """Fake TokenCounter: words in every message's content + 1 per message. Records batches."""

    def __init__(self) -> None:
        self.batches: list[list[Conversation]] = []

    def count(self, examples: Sequence[Conversation]) -> list[int]:
        self.batches.append(list(examples))
        return [sum(len(m["content"].split()) + 1 for m in ex["messages"]) for ex in examples]


def user(text: str = "hi there") -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant(text: str = "hello you", **extra: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": text, **extra}


def sft(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"messages": list(messages or (user(), assistant())), **extra}


def dpo(
    prompt: list[dict[str, Any]] | None = None, preferred: Any = None, rejected: Any = None, **extra: Any
) -> dict[str, Any]:
    return {
        "input": {"messages": prompt or [user()]},
        "preferred_output": preferred or [assistant("good answer")],
        "non_preferred_output": rejected or [assistant("bad")],
        **extra,
    }


def jsonl(*lines: Any) -> bytes:
    return b"".join((line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n" for line in lines)


def run(
    data: bytes, method: str = "supervised", param: str = "training_file", counter: Any = None, **kw: Any
) -> DatasetStats:
    kw = {"max_tokens": 10_000, "min_examples": 1, **kw}
    return validate_dataset(
        [data],
        method=method,
        param=param,  # type: ignore[arg-type]
        counter=counter or WordCountFake(),
        **kw,
    )


def fails(data: bytes, method: str = "supervised", param: str = "training_file", **kw: Any) -> DataValidationError:
    with pytest.raises(DataValidationError) as info:
        run(data, method, param, **kw)
    return info.value


# (rule, bad line placed as line 3 after two good lines, fragments the message must contain)
SFT_CASES: list[tuple[str, Any, list[str]]] = [
    ("invalid_json", b'{"messages": [', ["cannot be parsed as JSON"]),
    ("invalid_utf8", b'{"messages": "\xff"}', ["cannot be parsed as JSON", "UTF-8"]),
    ("not_object", b"[1, 2]", ["must be a JSON object, got array"]),
    ("missing_messages", {"prompt": "a", "completion": "b"}, ["is missing key 'messages'"]),
    ("dpo_line_in_sft_job", dpo(), ["is missing key 'messages'", "looks like a preference pair"]),
    ("messages_not_list", {"messages": "hi"}, ["'messages' must be an array"]),
    ("messages_empty", {"messages": []}, ["'messages' must not be empty"]),
    ("message_not_object", sft(user(), "hi"), ["message 2", "'message' must be an object"]),
    ("role_missing", sft({"content": "x"}, assistant()), ["message 1", "'role' is missing"]),
    (
        "role_unknown",
        sft({"role": "bot", "content": "x"}, assistant()),
        ["message 1", "'role' must be one of system, developer, user, assistant, tool; got 'bot'"],
    ),
    ("message_unknown_key", sft(user(), assistant(foo=1)), ["message 2", "unknown key 'foo'"]),
    ("content_missing", sft({"role": "user"}, assistant()), ["message 1", "'content' is missing"]),
    ("content_null", sft({"role": "user", "content": None}, assistant()), ["message 1", "'content' must not be null"]),
    ("content_empty", sft(user(""), assistant()), ["message 1", "'content' must not be empty"]),
    ("content_wrong_type", sft(user(), assistant(3)), ["message 2", "'content' must be a string"]),
    ("assistant_without_content_or_calls", sft(user(), {"role": "assistant"}), ["message 2", "'content' is missing"]),
    (
        "image_part",
        sft({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}, assistant()),
        ["message 1", "'content[0]'", "images are not supported"],
    ),
    (
        "part_type",
        sft({"role": "user", "content": [{"type": "input_audio"}]}, assistant()),
        ["message 1", "'content[0].type' must be 'text', got 'input_audio'"],
    ),
    (
        "part_text",
        sft({"role": "user", "content": [{"type": "text", "text": 5}]}, assistant()),
        ["message 1", "'content[0].text' must be a string"],
    ),
    (
        "weight_on_user",
        sft({**user(), "weight": 1}, assistant()),
        ["message 1", "'weight' is only allowed on assistant messages"],
    ),
    ("weight_2", sft(user(), assistant(weight=2)), ["message 2", "'weight' must be 0 or 1, got 2"]),
    ("weight_bool", sft(user(), assistant(weight=True)), ["'weight' must be 0 or 1, got true"]),
    ("weight_float", sft(user(), assistant(weight=1.0)), ["'weight' must be 0 or 1, got 1.0"]),
    ("no_trainable_assistant", sft(user(), assistant(weight=0)), ["no assistant message to train on", "weight"]),
    ("no_assistant", sft(user()), ["no assistant message to train on"]),
    (
        "tool_calls_not_list",
        sft(user(), {"role": "assistant", "tool_calls": {}}),
        ["message 2", "'tool_calls' must be an array"],
    ),
    (
        "tool_call_id_missing",
        sft(
            user(),
            {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        ),
        ["message 2", "'tool_calls[0].id' is missing"],
    ),
    (
        "tool_call_type",
        sft(
            user(),
            {
                "role": "assistant",
                "tool_calls": [{"id": "c", "type": "code", "function": {"name": "f", "arguments": "{}"}}],
            },
        ),
        ["message 2", "'tool_calls[0].type' must be 'function'"],
    ),
    (
        "tool_call_arguments",
        sft(
            user(),
            {
                "role": "assistant",
                "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}],
            },
        ),
        ["message 2", "'tool_calls[0].function.arguments' must be a string, got object"],
    ),
    (
        "tool_calls_on_user",
        sft({**user(), "tool_calls": []}, assistant()),
        ["message 1", "'tool_calls' is only allowed on assistant messages"],
    ),
    (
        "function_call_bad",
        sft(user(), {"role": "assistant", "function_call": {"name": "f"}}),
        ["message 2", "'function_call.arguments' is missing"],
    ),
    (
        "tool_message_without_id",
        sft(user(), assistant(), {"role": "tool", "content": "21"}),
        ["message 3", "'tool_call_id' is missing"],
    ),
    (
        "tool_call_id_on_user",
        sft({**user(), "tool_call_id": "c"}, assistant()),
        ["message 1", "'tool_call_id' is only allowed on tool messages"],
    ),
    (
        "function_message_without_name",
        sft(user(), {"role": "function", "content": "21"}, assistant()),
        ["message 2", "'name' is missing"],
    ),
    ("name_not_string", sft({**user(), "name": 7}, assistant()), ["message 1", "'name' must be a string"]),
    ("tools_not_list", sft(tools={"type": "function"}), ["'tools' must be an array"]),
    ("tool_type", sft(tools=[{"type": "retrieval"}]), ["'tools[0].type' must be 'function'"]),
    ("tool_function_name", sft(tools=[{"type": "function", "function": {}}]), ["'tools[0].function.name' is missing"]),
    (
        "tool_parameters",
        sft(tools=[{"type": "function", "function": {"name": "f", "parameters": "x"}}]),
        ["'tools[0].function.parameters' must be an object"],
    ),
    ("parallel_tool_calls", sft(parallel_tool_calls="no"), ["'parallel_tool_calls' must be a boolean, got string"]),
    ("functions_not_list", sft(functions={"name": "f"}), ["'functions' must be an array"]),
    ("unknown_top_level_key", sft(metadata={}), ["unknown key 'metadata'"]),
]

DPO_CASES: list[tuple[str, Any, list[str]]] = [
    ("sft_line_in_dpo_job", sft(), ["is missing key 'input'", "looks like a chat example"]),
    ("input_not_object", {**dpo(), "input": []}, ["'input' must be an object, got array"]),
    ("input_messages_missing", {**dpo(), "input": {}}, ["'input.messages' is missing"]),
    ("input_messages_empty", {**dpo(), "input": {"messages": []}}, ["'input.messages' must not be empty"]),
    (
        "input_message_bad",
        dpo([{"role": "bot", "content": "x"}]),
        ["input.messages message 1", "'role' must be one of"],
    ),
    ("input_unknown_key", {**dpo(), "input": {"messages": [user()], "extra": 1}}, ["unknown key 'extra' in 'input'"]),
    (
        "input_tools",
        {**dpo(), "input": {"messages": [user()], "tools": [{"type": "x"}]}},
        ["'input.tools[0].type' must be 'function'"],
    ),
    ("unknown_top_level_key", dpo(extra=1), ["unknown key 'extra'"]),
    (
        "preferred_missing",
        {"input": {"messages": [user()]}, "non_preferred_output": [assistant()]},
        ["is missing key 'preferred_output'"],
    ),
    ("preferred_not_list", dpo(preferred=assistant()), ["'preferred_output' must be an array, got object"]),
    (
        "preferred_two_messages",
        dpo(preferred=[assistant(), assistant()]),
        ["'preferred_output' must hold exactly one assistant message, got 2"],
    ),
    (
        "preferred_role",
        dpo(preferred=[user()]),
        ["preferred_output message 1", "'role' must be 'assistant', got 'user'"],
    ),
    (
        "non_preferred_weight",
        dpo(rejected=[assistant(weight=1)]),
        ["non_preferred_output message 1", "'weight' is not allowed"],
    ),
    (
        "non_preferred_empty_content",
        dpo(rejected=[assistant("")]),
        ["non_preferred_output message 1", "'content' must not be empty"],
    ),
    ("alias_and_canonical", dpo(preferred_completion=[assistant()]), ["'preferred_output' and 'preferred_completion'"]),
]


@pytest.mark.parametrize(
    "param,code", [("training_file", "invalid_training_file"), ("validation_file", "invalid_validation_file")]
)
@pytest.mark.parametrize("rule,bad,fragments", SFT_CASES, ids=[c[0] for c in SFT_CASES])
def test_sft_rule(rule: str, bad: Any, fragments: list[str], param: str, code: str) -> None:
    err = fails(jsonl(sft(), sft(), bad, sft()), param=param)
    assert (err.code, err.param, err.line) == (code, param, 3)
    assert err.message.startswith("Invalid file format. Line 3")
    for fragment in fragments:
        assert fragment in err.message


@pytest.mark.parametrize("rule,bad,fragments", DPO_CASES, ids=[c[0] for c in DPO_CASES])
def test_dpo_rule(rule: str, bad: Any, fragments: list[str]) -> None:
    err = fails(jsonl(dpo(), dpo(), bad, dpo()), method="dpo")
    assert (err.code, err.param, err.line) == ("invalid_training_file", "training_file", 3)
    assert err.message.startswith("Invalid file format. Line 3")
    for fragment in fragments:
        assert fragment in err.message


def test_message_format_names_line_and_message() -> None:
    err = fails(jsonl(sft(), sft(user(), assistant(weight=2))))
    assert err.message == "Invalid file format. Line 2, message 2: 'weight' must be 0 or 1, got 2"


def test_line_too_long() -> None:
    err = fails(jsonl(sft(), sft(user("word " * 100), assistant())), max_line_bytes=200)
    assert (err.code, err.line) == ("invalid_training_file", 2)
    assert "Line 2: line is longer than the limit of 200 bytes" in err.message


def test_token_limit_sft() -> None:
    err = fails(jsonl(sft(), sft(user("w " * 30), assistant())), max_tokens=20)
    assert (err.code, err.param, err.line) == ("invalid_training_file", "training_file", 2)
    assert "Line 2: example has 34 tokens, more than the limit of 20 tokens" in err.message


def test_token_limit_dpo_names_the_pair() -> None:
    err = fails(jsonl(dpo(), dpo(rejected=[assistant("w " * 30)])), method="dpo", max_tokens=20)
    assert err.line == 2
    assert "input.messages + non_preferred_output has 34 tokens" in err.message
    assert "limit of 20 tokens" in err.message


def test_first_problem_by_line_order_token_before_later_format_error() -> None:
    # line 2 is too long (found only when its batch is counted), line 4 is malformed
    err = fails(jsonl(sft(), sft(user("w " * 30), assistant()), sft(), b"{"), max_tokens=20)
    assert err.line == 2


def test_first_problem_by_line_order_format_before_later_token_error() -> None:
    err = fails(jsonl(sft(), b"[]", sft(user("w " * 30), assistant())), max_tokens=20)
    assert err.line == 2


class RefusingFake(WordCountFake):
    """Fake counter whose 'chat template' refuses a conversation containing the word 'REFUSE'."""

    def count(self, examples: Sequence[Conversation]) -> list[int]:
        for i, ex in enumerate(examples):
            if any("REFUSE" in m["content"] for m in ex["messages"]):
                raise RenderError(i, "Conversation roles must alternate")
        return super().count(examples)


def test_template_render_error_names_the_line() -> None:
    err = fails(jsonl(sft(), sft(), sft(user("REFUSE"), assistant())), counter=RefusingFake())
    assert (err.code, err.line) == ("invalid_training_file", 3)
    assert "chat template cannot render" in err.message and "alternate" in err.message


def test_template_render_error_after_earlier_token_error() -> None:
    data = jsonl(sft(user("w " * 30), assistant()), sft(user("REFUSE"), assistant()))
    assert fails(data, counter=RefusingFake(), max_tokens=20).line == 1


@pytest.mark.parametrize("param,kind", [("training_file", "Training"), ("validation_file", "Validation")])
def test_too_few_examples(param: str, kind: str) -> None:
    err = fails(jsonl(*[sft()] * 7), param=param, min_examples=10)
    assert (err.code, err.param) == ("invalid_n_examples", param)
    assert err.message == f"{kind} file has 7 example(s), but must have at least 10 examples"


@pytest.mark.parametrize("data", [b"", b"\n\n  \n"], ids=["empty", "blank_lines"])
def test_empty_file(data: bytes) -> None:
    err = fails(data, min_examples=0)
    assert (err.code, err.param) == ("invalid_n_examples", "training_file")
    assert err.message.startswith("Training file has 0 example(s)")


GOOD_SFT = [
    # system + user + assistant: 4+1 + 2+1 + 2+1 = 11
    sft({"role": "system", "content": "you are Marv ok"}, user(), assistant()),
    # weights, developer role: 2+1 + 1+1 + 1+1 + 1+1 + 1+1 = 11
    sft(
        {"role": "developer", "content": "be terse"},
        user("q1"),
        assistant("Paris", weight=0),
        user("q2"),
        assistant("Paris!", weight=1),
    ),
    # content parts concatenated: (2+1) + (1+1) = 5
    sft(
        {"role": "user", "content": [{"type": "text", "text": "a b"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "c"}]},
    ),
    # tool calls, tool result, tools, parallel_tool_calls: (1+1) + (0+1) + (1+1) + (3+1) = 9
    sft(
        user("weather?"),
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "SF"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "21.0"},
        assistant("It is 21"),
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Get weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ],
        parallel_tool_calls=False,
    ),
    # legacy functions: (1+1) + (0+1) + (1+1) + (1+1) = 7
    sft(
        user("weather?"),
        {"role": "assistant", "content": None, "function_call": {"name": "get_weather", "arguments": "{}"}},
        {"role": "function", "name": "get_weather", "content": "21.0"},
        assistant("warm"),
        functions=[{"name": "get_weather", "parameters": {"type": "object"}}],
    ),
    # assistant with a refusal and a name: (2+1) + (1+1) = 5
    sft(user(), {"role": "assistant", "content": "no", "refusal": None, "name": "bot"}),
]


def test_good_sft_file() -> None:
    counter = WordCountFake()
    data = b"\xef\xbb\xbf" + jsonl(*GOOD_SFT).replace(b"\n", b"\r\n", 2) + b"\n\n"
    stats = run(data, counter=counter, min_examples=6, max_tokens=11)
    assert stats == DatasetStats(n_examples=6, n_tokens=11 + 11 + 5 + 9 + 7 + 5, max_example_tokens=11)
    sent = [conv for batch in counter.batches for conv in batch]
    assert sent[2]["messages"][0]["content"] == "a b"
    assert sent[3]["tools"][0]["function"]["name"] == "get_weather"
    assert sent[3]["messages"][1]["content"] == ""  # normalised for the chat template
    assert "tools" not in sent[0]


def test_good_dpo_file() -> None:
    lines = [
        dpo(),  # prompt 2+1, preferred 2+1 -> 6; rejected 1+1 -> 5
        {
            "input": {
                "messages": [{"role": "system", "content": "be nice"}, user()],
                "tools": [],
                "parallel_tool_calls": True,
            },
            "preferred_completion": [assistant("sure thing friend")],  # 3+3+4 = 10
            "non_preferred_completion": [assistant("no")],
        },  # 3+3+2 = 8
    ]
    counter = WordCountFake()
    stats = run(jsonl(*lines), method="dpo", counter=counter, min_examples=2, max_tokens=10)
    assert stats == DatasetStats(n_examples=2, n_tokens=6 + 5 + 10 + 8, max_example_tokens=10)
    sent = [conv for batch in counter.batches for conv in batch]
    assert [m["content"] for m in sent[0]["messages"]] == ["hi there", "good answer"]


def test_validation_file_param() -> None:
    stats = run(jsonl(sft()), param="validation_file")
    assert stats.n_examples == 1


def odd_chunks(data: bytes, sizes: tuple[int, ...] = (1, 7, 333, 4096, 65_537)) -> Iterator[bytes]:
    pos, i = 0, 0
    while pos < len(data):
        size = sizes[i % len(sizes)]
        yield data[pos : pos + size]
        pos, i = pos + size, i + 1


def test_streaming_many_chunks_odd_boundaries() -> None:
    n = 200_000
    lines = (orjson.dumps(sft(user(f"question {i} é"), assistant("answer ✓"))) + b"\n" for i in range(n))

    def chunks() -> Iterator[bytes]:
        block: list[bytes] = []
        for line in lines:
            block.append(line)
            if len(block) == 1000:
                yield from odd_chunks(b"".join(block))
                block.clear()
        yield from odd_chunks(b"".join(block))

    counter = WordCountFake()
    counter.batches = _Discard()  # type: ignore[assignment]  # keep memory flat
    stats = validate_dataset(
        chunks(),
        method="supervised",
        param="training_file",
        counter=counter,
        max_tokens=100,
        min_examples=10,
        batch_size=100,
    )
    assert stats == DatasetStats(n_examples=n, n_tokens=n * 7, max_example_tokens=7)
    assert counter.batches.max_len == 100


class _Discard(list):  # type: ignore[type-arg]
    """Stands in for ``WordCountFake.batches``: remembers only the largest batch size."""

    max_len = 0

    def append(self, batch: Any) -> None:
        self.max_len = max(self.max_len, len(batch))
