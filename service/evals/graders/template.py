"""The one templating engine of graders and runs: ``{{ item.x }}``, ``{{ sample.output_text }}``,
``{{ sample.output_json.answer }}``, nested keys and list indexes (``item.choices.0`` or
``item.choices[0]``, the same path). Text outside ``{{ }}`` is kept verbatim; a value that is
not a string is written as JSON.

Two moments use it: a creation-time ``check_references`` refuses what the eval's item schema
says cannot exist (a 400 naming the field), and grading-time ``render`` raises
``TemplateError`` for a field an item lacks, which the grader reports as an errored item
(``invalid_variable_error``) instead of failing the run."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from service.errors import InvalidRequest, shown
from service.evals.graders.base import Namespaces, SchemaHints
from service.protocol.graders import EvalItem, InputAudio, InputImage

NAMESPACES = ("item", "sample")
_SEGMENT = re.compile(r"\.([^.\[\]\s]+)|\[(\d+)\]")
_HEAD = re.compile(r"[^.\[\]\s]+")
# small open models' chat templates know system/user/assistant; OpenAI's developer role is
# the system prompt of models that have no separate developer role
_ROLES = {"developer": "system"}


class TemplateError(Exception):
    """A template that cannot be filled for this item: an errored item, not a failed request."""

    flag = "invalid_variable_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _tag(path: str) -> str:
    return "{{" + shown(path, 64) + "}}"


def _tags(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, inside) of each ``{{ ... }}`` in ``text``: the first ``}}`` after each ``{{``
    closes it. A scan with ``str.find``, linear in the text: the regex ``\\{\\{(.*?)\\}\\}`` it
    replaces rescanned the rest of the text from every unclosed ``{{`` (quadratic; a template of
    50,000 ``{{`` held a worker for minutes)."""
    pos = 0
    while (start := text.find("{{", pos)) >= 0:
        end = text.find("}}", start + 2)
        if end < 0:
            return
        yield start, end + 2, text[start + 2 : end]
        pos = end + 2


def references(text: str) -> list[str]:
    """The paths between ``{{`` and ``}}`` in ``text``, stripped, in order of appearance."""
    return [inside.strip() for _, _, inside in _tags(text)]


def parse_path(path: str) -> list[str | int]:
    """``item.a.0`` / ``item.a[0]`` -> ``["item", "a", 0]``; a digit segment is an index into a
    list (and a key into an object). Raises TemplateError for what is not a path."""
    bad = TemplateError(f"'{_tag(path)}' is not a variable reference (expected item.x or sample.x)")
    head = _HEAD.match(path)
    if head is None:
        raise bad
    parts: list[str | int] = [head.group(0)]
    pos = head.end()
    while pos < len(path):
        m = _SEGMENT.match(path, pos)
        if m is None:
            raise bad
        key, index = m.group(1), m.group(2)
        parts.append(int(index) if index is not None else int(key) if key.isdigit() else key)
        pos = m.end()
    return parts


def lookup(path: str, ns: Namespaces) -> Any:
    """The value at ``path`` (``item.question``, ``sample.output_json.a.0``)."""
    parts = parse_path(path)
    head = parts[0]
    if head not in NAMESPACES:
        raise TemplateError(f"Unknown namespace '{head}' in '{_tag(path)}': use item or sample")
    value: Any = ns.item if head == "item" else ns.sample
    if value is None:
        raise TemplateError(f"'{_tag(path)}' refers to the sample, and this data source has none")
    walked = str(head)
    for part in parts[1:]:
        found, value = _step(value, part)
        if not found:
            raise TemplateError(f"'{shown(path, 64)}' not found: {walked} has no field {part!r}")
        walked = f"{walked}.{part}"
    return value


def _step(value: Any, part: str | int) -> tuple[bool, Any]:
    if isinstance(value, Mapping):
        key = str(part)
        return (True, value[key]) if key in value else (False, None)
    if isinstance(value, Sequence) and not isinstance(value, str | bytes) and isinstance(part, int):
        return (True, value[part]) if 0 <= part < len(value) else (False, None)
    return False, None


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def render(text: str, ns: Namespaces) -> str:
    """``text`` with each ``{{ path }}`` replaced by its value."""
    out: list[str] = []
    pos = 0
    for start, end, inside in _tags(text):
        out += (text[pos:start], as_text(lookup(inside.strip(), ns)))
        pos = end
    out.append(text[pos:])
    return "".join(out)


def message_text(message: EvalItem, ns: Namespaces) -> str:
    content = message.content
    parts = content if isinstance(content, list) else [content]
    texts: list[str] = []
    for part in parts:
        if isinstance(part, str):
            texts.append(render(part, ns))
        elif isinstance(part, InputImage | InputAudio):
            raise TemplateError(f"{part.type} content is not supported: hone's models take text only")
        else:
            texts.append(render(part.text, ns))
    return "\n".join(texts)


def render_messages(messages: Sequence[EvalItem], ns: Namespaces) -> list[dict[str, Any]]:
    """Chat messages for the gateway: each message's content rendered to one string (an array
    of text parts joined with newlines), ``developer`` sent as ``system``."""
    return [{"role": _ROLES.get(m.role, m.role), "content": message_text(m, ns)} for m in messages]


def sample_namespace(output_text: str, **extra: Any) -> dict[str, Any]:
    """The ``sample`` namespace of one model output: ``output_json`` is the parsed text when it
    is valid JSON (None otherwise), plus whatever else the caller knows (model, choices...)."""
    try:
        output_json: Any = json.loads(output_text)
    except ValueError:
        output_json = None
    return {"output_text": output_text, "output_json": output_json, **extra}


# -- creation-time checks ---------------------------------------------------------------


def check_references(text: str, hints: SchemaHints, param: str) -> None:
    """Refuse (400, ``param``) a reference that cannot resolve for any item: not a path, an
    unknown namespace, ``sample.*`` where the eval has no samples, or an ``item`` field the
    item schema rules out (declared ``properties`` without it and no ``additionalProperties``)."""
    for path in references(text):
        try:
            parts = parse_path(path)
        except TemplateError as e:
            raise InvalidRequest(f"Invalid '{param}': {e.message}", param=param) from None
        head = parts[0]
        if head not in NAMESPACES:
            raise InvalidRequest(
                f"Invalid '{param}': unknown namespace '{shown(str(head), 64)}' in '{_tag(path)}'; "
                "templates may use item.* and sample.*",
                param=param,
            )
        if head == "sample" and not hints.has_sample:
            raise InvalidRequest(
                f"Invalid '{param}': '{_tag(path)}' refers to the sample, but this eval has none "
                "(set include_sample_schema, or grade item fields only)",
                param=param,
            )
        if head == "item" and hints.item_schema is not None:
            problem = _schema_problem(hints.item_schema, parts[1:])
            if problem:
                raise InvalidRequest(f"Invalid '{param}': '{_tag(path)}': {problem}", param=param)


def _schema_problem(schema: Mapping[str, Any], parts: Sequence[str | int]) -> str | None:
    """Why ``parts`` cannot exist under ``schema`` (None when it may). Only what the schema
    states rules a field out; anything open or unknown passes."""
    node: Any = schema
    walked = "item"
    for part in parts:
        if not isinstance(node, Mapping):
            return None
        props = node.get("properties")
        items = node.get("items")
        kind = node.get("type")
        if isinstance(props, Mapping) and str(part) in props:
            node = props[str(part)]
        elif isinstance(part, int) and isinstance(items, Mapping):
            node = items
        elif isinstance(props, Mapping) and props and _closed(node):
            return f"the item schema has no field '{shown(str(part), 64)}' under {walked}"
        elif isinstance(kind, str) and kind in ("string", "number", "integer", "boolean", "null"):
            return f"{walked} is a {kind} in the item schema; it has no field '{shown(str(part), 64)}'"
        else:
            return None
        walked = f"{walked}.{part}"
    return None


def _closed(node: Mapping[str, Any]) -> bool:
    """An object schema that lists its properties and allows no others (``additionalProperties``
    absent or false, no ``patternProperties``): eval item schemas are written this way."""
    return node.get("additionalProperties", False) is False and "patternProperties" not in node


def check_messages(messages: Sequence[EvalItem], hints: SchemaHints, param: str) -> None:
    """``check_references`` over every text of ``messages`` (``param[i].content...``), and
    refuse image and audio parts, which hone's text models cannot take."""
    for i, message in enumerate(messages):
        content = message.content
        if isinstance(content, str):
            check_references(content, hints, f"{param}[{i}].content")
            continue
        parts = content if isinstance(content, list) else [content]
        for j, part in enumerate(parts):
            where = f"{param}[{i}].content" + (f"[{j}]" if isinstance(content, list) else "")
            if isinstance(part, InputImage | InputAudio):
                raise InvalidRequest(
                    f"Invalid '{where}': {part.type} content is not supported: hone's models take text only",
                    param=where,
                )
            check_references(part.text, hints, f"{where}.text")
