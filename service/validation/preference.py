"""Rules for preference lines (DPO method), built on the chat message rules.

A line is ``{"input": {"messages", "tools"?, "parallel_tool_calls"?}, "preferred_output":
[assistant message], "non_preferred_output": [assistant message]}``; the spec's
``preferred_completion``/``non_preferred_completion`` spellings are accepted as aliases
(OpenAI's ``FineTunePreferenceRequestInput``). Each line yields two conversations to count: the
prompt followed by each output.
"""

from __future__ import annotations

from typing import Any

from .chat import MISSING, Labeled, check_keys, check_message, check_messages, check_options, conversation, show, typed
from .errors import Problem

OUTPUTS = (("preferred_output", "preferred_completion"), ("non_preferred_output", "non_preferred_completion"))
EXAMPLE_KEYS = ("input", *(name for pair in OUTPUTS for name in pair))
INPUT_KEYS = ("messages", "tools", "parallel_tool_calls")


def check_output(obj: dict[str, Any], key: str, alias: str) -> dict[str, Any]:
    """``preferred_output`` (or its alias): a list of exactly one assistant message."""
    if key in obj and alias in obj:
        raise Problem(f"example has both '{key}' and '{alias}'; use one")
    name = alias if alias in obj else key
    if name not in obj:
        raise Problem(f"example is missing key '{key}'")
    value = typed(obj[name], "array", name)
    if len(value) != 1:
        raise Problem(f"'{name}' must hold exactly one assistant message, got {len(value)}")
    msg, where = value[0], f"{name} message 1"
    if isinstance(msg, dict):
        if msg.get("role", "assistant") != "assistant":
            raise Problem(f"'role' must be 'assistant', got {show(msg['role'])}", where)
        if "weight" in msg:
            raise Problem(f"'weight' is not allowed in {name}", where)
    return check_message(msg, where)


def check_preference_example(obj: dict[str, Any]) -> list[Labeled]:
    if "input" not in obj:
        hint = (
            " (this looks like a chat example, but the job's method trains on preference pairs)"
            if "messages" in obj
            else ""
        )
        raise Problem(f"example is missing key 'input'{hint}")
    check_keys(obj, EXAMPLE_KEYS, "the example")
    prompt_obj = typed(obj["input"], "object", "input")
    check_keys(prompt_obj, INPUT_KEYS, "'input'")
    prompt = check_messages(prompt_obj.get("messages", MISSING), "input.messages", "input.messages ")
    tools = check_options(prompt_obj, "input.")
    return [
        (f"input.messages + {key}", conversation([*prompt, check_output(obj, key, alias)], tools))
        for key, alias in OUTPUTS
    ]
