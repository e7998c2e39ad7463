"""Rules for chat-format lines (supervised method), also used for DPO messages.

Each rule is a small function that raises ``Problem`` on the first thing wrong. Checked
messages come back normalised for the token counter: ``content`` as one string (text parts
concatenated, as the bundled ChatML template does; missing/null content as ``""``).
Shapes follow OpenAI's ``FineTuneChatRequestInput`` in the official OpenAPI spec.
"""

from __future__ import annotations

from typing import Any

import orjson

from .errors import Problem
from .tokens import Conversation

ROLES = ("system", "developer", "user", "assistant", "tool")  # + legacy "function"
MESSAGE_KEYS = ("role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call", "refusal")
ASSISTANT_ONLY_KEYS = ("weight", "tool_calls", "function_call", "refusal")
EXAMPLE_KEYS = ("messages", "tools", "parallel_tool_calls", "functions")
IMAGE_PART_TYPES = ("image_url", "input_image", "image")
MISSING: Any = object()

Labeled = tuple[str, Conversation]  # (what the token limit message calls it, conversation)


def json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def show(value: object) -> str:
    """A short rendering of a value for a message: 'bot', 2, true, {...}."""
    if isinstance(value, str):
        text = f"'{value}'"
    else:
        try:
            text = orjson.dumps(value).decode()
        except TypeError:
            text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def typed(value: Any, expected: str, field: str, where: str | None = None) -> Any:
    """Return ``value`` if its JSON type is ``expected``; ``MISSING`` means absent."""
    if value is MISSING:
        raise Problem(f"'{field}' is missing", where)
    if json_type(value) != expected:
        article = "an" if expected[0] in "aeiou" else "a"
        raise Problem(f"'{field}' must be {article} {expected}, got {json_type(value)}", where)
    return value


def check_keys(obj: dict[str, Any], allowed: tuple[str, ...], what: str, where: str | None = None) -> None:
    unknown = [key for key in obj if key not in allowed]
    if unknown:
        names = ", ".join(show(key) for key in unknown)
        raise Problem(f"unknown key {names} in {what}; allowed keys are {', '.join(allowed)}", where)


def check_function_def(fn: Any, field: str, where: str | None = None) -> None:
    typed(fn, "object", field, where)
    name = typed(fn.get("name", MISSING), "string", f"{field}.name", where)
    if not name:
        raise Problem(f"'{field}.name' must not be empty", where)
    if "description" in fn:
        typed(fn["description"], "string", f"{field}.description", where)
    if "parameters" in fn:
        typed(fn["parameters"], "object", f"{field}.parameters", where)


def check_tools(tools: Any, field: str) -> list[dict[str, Any]]:
    typed(tools, "array", field)
    for i, tool in enumerate(tools):
        typed(tool, "object", f"{field}[{i}]")
        if tool.get("type") != "function":
            raise Problem(f"'{field}[{i}].type' must be 'function', got {show(tool.get('type'))}")
        check_function_def(tool.get("function", MISSING), f"{field}[{i}].function")
    return tools


def check_options(obj: dict[str, Any], prefix: str = "") -> list[dict[str, Any]] | None:
    """Checks ``tools``, ``parallel_tool_calls`` and ``functions``; returns the tools."""
    if "parallel_tool_calls" in obj:
        typed(obj["parallel_tool_calls"], "boolean", f"{prefix}parallel_tool_calls")
    if "functions" in obj:
        for i, fn in enumerate(typed(obj["functions"], "array", f"{prefix}functions")):
            check_function_def(fn, f"{prefix}functions[{i}]")
    return check_tools(obj["tools"], f"{prefix}tools") if "tools" in obj else None


def check_call(call: Any, field: str, where: str) -> None:
    """A ``function_call`` or a tool call's ``function``: {name: str, arguments: str}."""
    typed(call, "object", field, where)
    typed(call.get("name", MISSING), "string", f"{field}.name", where)
    typed(call.get("arguments", MISSING), "string", f"{field}.arguments", where)


def check_tool_calls(calls: Any, where: str) -> None:
    for i, call in enumerate(typed(calls, "array", "tool_calls", where)):
        field = f"tool_calls[{i}]"
        typed(call, "object", field, where)
        typed(call.get("id", MISSING), "string", f"{field}.id", where)
        if call.get("type") != "function":
            raise Problem(f"'{field}.type' must be 'function', got {show(call.get('type'))}", where)
        check_call(call.get("function", MISSING), f"{field}.function", where)


def check_weight(weight: Any, where: str) -> None:
    if isinstance(weight, bool) or not isinstance(weight, int) or weight not in (0, 1):
        raise Problem(f"'weight' must be 0 or 1, got {show(weight)}", where)


def part_text(part: Any, i: int, where: str) -> str:
    typed(part, "object", f"content[{i}]", where)
    kind = part.get("type")
    if kind in IMAGE_PART_TYPES:
        raise Problem(
            f"'content[{i}]' is an image part; images are not supported: this server fine-tunes text-only models", where
        )
    if kind != "text":
        raise Problem(f"'content[{i}].type' must be 'text', got {show(kind)}", where)
    return typed(part.get("text", MISSING), "string", f"content[{i}].text", where)


def content_text(msg: dict[str, Any], optional: bool, where: str) -> str:
    content = msg.get("content")
    if content is None:
        if optional:
            return ""
        raise Problem("'content' is missing" if "content" not in msg else "'content' must not be null", where)
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = "".join(part_text(part, i, where) for i, part in enumerate(content))
    else:
        raise Problem(f"'content' must be a string or a list of text parts, got {json_type(content)}", where)
    if not text and not optional:
        raise Problem("'content' must not be empty", where)
    return text


def check_message(msg: Any, where: str) -> dict[str, Any]:
    """Check one message; return it with ``content`` as a plain string."""
    typed(msg, "object", "message", where)
    check_keys(msg, MESSAGE_KEYS, "a message", where)
    role = msg.get("role", MISSING)
    if role is MISSING:
        raise Problem("'role' is missing", where)
    if role not in ROLES and role != "function":
        raise Problem(f"'role' must be one of {', '.join(ROLES)}; got {show(role)}", where)
    if role != "assistant":
        for key in ASSISTANT_ONLY_KEYS:
            if key in msg:
                raise Problem(f"'{key}' is only allowed on assistant messages, not on {role} messages", where)
    if "tool_call_id" in msg and role != "tool":
        raise Problem(f"'tool_call_id' is only allowed on tool messages, not on {role} messages", where)
    if "name" in msg or role == "function":
        typed(msg.get("name", MISSING), "string", "name", where)
    if role == "tool":
        typed(msg.get("tool_call_id", MISSING), "string", "tool_call_id", where)
    calls = False
    if role == "assistant":
        if "weight" in msg:
            check_weight(msg["weight"], where)
        if msg.get("refusal") is not None:
            typed(msg["refusal"], "string", "refusal", where)
        if "tool_calls" in msg:
            check_tool_calls(msg["tool_calls"], where)
        if msg.get("function_call") is not None:
            check_call(msg["function_call"], "function_call", where)
        calls = bool(msg.get("tool_calls") or msg.get("function_call"))
    text = content_text(msg, calls, where)
    return msg if msg.get("content") is text else {**msg, "content": text}


def check_messages(messages: Any, field: str, where_prefix: str) -> list[dict[str, Any]]:
    if not typed(messages, "array", field):
        raise Problem(f"'{field}' must not be empty")
    return [check_message(msg, f"{where_prefix}message {i}") for i, msg in enumerate(messages, 1)]


def conversation(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> Conversation:
    return {"messages": messages, "tools": tools} if tools else {"messages": messages}


def is_trainable(msg: dict[str, Any]) -> bool:
    return msg["role"] == "assistant" and msg.get("weight", 1) != 0


def check_chat_example(obj: dict[str, Any]) -> list[Labeled]:
    """One supervised line: {messages, tools?, parallel_tool_calls?, functions?}."""
    if "messages" not in obj:
        hint = (
            " (this looks like a preference pair, but the job's method trains on chat examples)"
            if "input" in obj
            else ""
        )
        raise Problem(f"example is missing key 'messages'{hint}")
    check_keys(obj, EXAMPLE_KEYS, "the example")
    messages = check_messages(obj["messages"], "messages", "")
    tools = check_options(obj)
    if not any(is_trainable(msg) for msg in messages):
        raise Problem('example has no assistant message to train on (one without "weight": 0 is needed)')
    return [("example", conversation(messages, tools))]
