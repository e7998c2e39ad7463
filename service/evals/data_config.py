"""An eval's ``data_source_config``: what a run's items (and samples) look like.

Only ``custom`` is served: the caller states the item's JSON schema. ``logs`` and
``stored_completions`` select rows of OpenAI's own request logs and stored chat completions;
hone keeps neither, so they are refused by name. The stored (and returned) config is OpenAI's
``EvalCustomDataSourceConfig``: the item schema wrapped in an object schema with the ``item``
namespace and, with ``include_sample_schema``, the ``sample`` namespace a model's answer fills."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import regex  # type: ignore[import-untyped]
from jsonschema import Draft202012Validator, validators  # type: ignore[import-untyped]
from jsonschema.exceptions import SchemaError, ValidationError  # type: ignore[import-untyped]
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from service.errors import InvalidRequest, shown
from service.evals.graders.base import SchemaHints
from service.protocol import evals as wire

# The ``sample`` namespace of one completion, as graders read it ({{sample.output_text}},
# {{sample.output_json.x}}); the same fields OpenAI's schema for it declares.
SAMPLE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "model": {"type": "string"},
        "choices": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "message": {
                        "type": "object",
                        "properties": {
                            "role": {"type": "string", "enum": ["assistant"]},
                            "content": {"type": ["string", "null"]},
                            "refusal": {"type": ["string", "null"]},
                            "tool_calls": {"type": ["array", "null"], "items": {"type": "object"}},
                        },
                        "required": ["role"],
                    },
                    "finish_reason": {"type": "string"},
                },
                "required": ["message", "finish_reason"],
            },
        },
        "output_text": {"type": "string"},
        "output_json": {"type": "object"},
        "output_tools": {"type": "array", "items": {"type": "object"}},
    },
}


# ----------------------------------------------------------------------------- JSON values

# Nesting a stored value may have: deeper, checking a schema exhausts Python's recursion and
# the value cannot be written back out (pydantic's serializer stops at its own depth).
MAX_DEPTH = 64


def json_problem(value: Any, where: str = "", depth: int = 0) -> tuple[str, str] | None:
    """(where, why) ``value`` cannot be stored and sent back as JSON, None when it can: a
    NaN or Infinity (Python's JSON parser takes them; PostgreSQL and JSON do not), a lone
    surrogate (``"\\ud800"``: no UTF-8 encodes it), a NUL (PostgreSQL stores none), or nesting
    beyond MAX_DEPTH."""
    if depth > MAX_DEPTH:
        return where, f"it is nested more than {MAX_DEPTH} levels deep"
    if isinstance(value, float) and not math.isfinite(value):
        return where, f"{'NaN' if math.isnan(value) else '-Infinity' if value < 0 else 'Infinity'} is not a JSON number"
    if isinstance(value, str):
        return _text_problem(value, where)
    children: Iterator[tuple[str, Any]] = iter(())
    if isinstance(value, Mapping):
        for key in value:
            problem = _text_problem(str(key), f"{where}[{shown(str(key), 64)!r}]")
            if problem:
                return problem
        children = ((f"{where}[{shown(str(k), 64)!r}]", v) for k, v in value.items())
    elif isinstance(value, list):
        children = ((f"{where}[{i}]", v) for i, v in enumerate(value))
    for at, child in children:
        problem = json_problem(child, at, depth + 1)
        if problem:
            return problem
    return None


def _text_problem(text: str, where: str) -> tuple[str, str] | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return where, f"it holds a lone surrogate (\\u{ord(text[e.start]):04x}), which is not valid Unicode"
    if "\x00" in text:  # a runner writing it under its lease would fail the run with internal_error
        return where, "it holds a NUL character (\\u0000), which PostgreSQL cannot store"
    return None


def refuse_bad_json(value: Any, param: str) -> None:
    """400 at ``param`` (and the path below it) for what ``json_problem`` finds."""
    problem = json_problem(value)
    if problem:
        where, why = problem
        raise InvalidRequest(
            f"Invalid '{param}': {why}" + (f" (at {param}{where})" if where else "") + ".", param=param
        )


# ----------------------------------------------------------------------------- item schemas

# A ``pattern`` gets this long on one string. jsonschema matches with Python's ``re``, which
# backtracks without bound and cannot be interrupted: ``^(a+)+$`` on 40 characters would hold
# a worker for hours. Patterns are matched with the ``regex`` module (the same syntax) under
# this time limit instead; a match that runs out fails the row (PatternTimeout).
PATTERN_TIMEOUT_S = 0.1
# keywords whose values are data, not schemas (their objects are not walked for keywords)
_DATA = frozenset({"const", "enum", "default", "examples"})
# keywords whose value maps names to schemas
_NAMED = frozenset({"properties", "$defs", "definitions", "dependentSchemas"})


class PatternTimeout(Exception):
    """A ``pattern`` that did not finish matching within PATTERN_TIMEOUT_S."""

    def __init__(self, pattern: str) -> None:
        super().__init__(
            f"the item schema's pattern {shown(pattern, 64)!r} did not finish matching within "
            f"{PATTERN_TIMEOUT_S:g} s (a pattern that backtracks catastrophically)"
        )


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "string"):
        return
    try:
        found = regex.search(pattern, instance, timeout=PATTERN_TIMEOUT_S)
    except TimeoutError:
        raise PatternTimeout(pattern) from None
    except regex.error as e:  # a schema stored before creation compiled its patterns with regex
        yield ValidationError(f"the item schema's pattern {pattern!r} does not compile: {e}")
        return
    if found is None:
        yield ValidationError(f"{shown(instance, 64)!r} does not match {pattern!r}")


# Draft 2020-12 with ``pattern`` matched under a time limit.
_ItemValidator = validators.extend(Draft202012Validator, {"pattern": _pattern})


def item_validator(schema: Mapping[str, Any]) -> Any:
    """The validator of items against an eval's item schema. Its registry is empty and never
    retrieves: jsonschema's default fetches a ``$ref`` to an http(s) URL over the network
    (creation refuses such refs; this makes sure no stored schema can reach out)."""
    return _ItemValidator(schema, registry=Registry())


def _refuse(where: str, why: str) -> InvalidRequest:
    param = "data_source_config.item_schema"
    return InvalidRequest(
        f"Invalid '{param}': {why}" + (f" (at item_schema{where})" if where else "") + ".", param=param
    )


def _walk_schema(node: Any, resolver: Any, where: str) -> None:
    """Refuse what an item schema must not do on this server: ``$ref`` outside the schema
    itself (hone never fetches schemas), a same-document ``$ref`` that resolves to nothing
    (every item check would fail on it), ``patternProperties`` (jsonschema matches them with
    ``re`` in places a time limit cannot reach), and a ``pattern`` the matcher cannot compile."""
    if isinstance(node, list):
        for i, child in enumerate(node):
            _walk_schema(child, resolver, f"{where}[{i}]")
        return
    if not isinstance(node, Mapping):
        return
    if isinstance(node.get("$id"), str):
        resolver = resolver.in_subresource(DRAFT202012.create_resource(node))
    for keyword in ("$ref", "$dynamicRef"):
        ref = node.get(keyword)
        if not isinstance(ref, str):
            continue
        if not ref.startswith("#"):
            raise _refuse(
                f"{where}[{keyword!r}]",
                f"{keyword} {shown(ref, 64)!r} points outside the item schema; hone does not fetch schemas: "
                "put the definition under '$defs' and refer to it as '#/$defs/<name>'",
            )
        try:
            resolver.lookup(ref)
        except Unresolvable:
            raise _refuse(
                f"{where}[{keyword!r}]", f"{keyword} {shown(ref, 64)!r} resolves to nothing in the item schema"
            ) from None
    if "patternProperties" in node:
        raise _refuse(
            f"{where}['patternProperties']",
            "'patternProperties' is not supported (its regular expressions would run without a time limit); "
            "list the properties, or use 'propertyNames' with a 'pattern'",
        )
    if isinstance(node.get("pattern"), str):
        try:
            regex.compile(node["pattern"])
        except regex.error as e:
            raise _refuse(f"{where}['pattern']", f"the pattern does not compile: {e}") from None
    for key, value in node.items():
        if key in _DATA:
            continue
        if key in _NAMED and isinstance(value, Mapping):
            for name, child in value.items():
                _walk_schema(child, resolver, f"{where}[{key!r}][{shown(str(name), 64)!r}]")
        else:
            _walk_schema(value, resolver, f"{where}[{key!r}]")


def _refuse_ref_cycles(schema: Mapping[str, Any]) -> None:
    """A ``$ref`` cycle that consumes nothing of the item (``{"$ref": "#"}``, ``a: {allOf: [$ref a]}``)
    recurses until Python stops it on every item. Checked here on one value of each JSON type;
    a cycle only some items reach is refused row by row (data_sources.RowChecker)."""
    validator = item_validator(schema)
    probes: tuple[Any, ...] = ({}, [], "", 0, None, True)
    for probe in probes:
        try:
            for _ in validator.iter_errors(probe):
                pass
        except RecursionError:
            raise _refuse("", "it refers to itself without end (a $ref cycle that never reaches a value)") from None
        except PatternTimeout:
            pass


def _custom(config: wire.CustomDataSourceConfigParams) -> dict[str, Any]:
    problem = json_problem(config.item_schema)
    if problem:
        raise _refuse(*problem)
    try:
        Draft202012Validator.check_schema(config.item_schema)
    except SchemaError as e:
        where = "".join(f"[{p!r}]" for p in e.path)
        raise InvalidRequest(
            f"Invalid 'data_source_config.item_schema': not a valid JSON Schema ({e.message}"
            + (f" at {where}" if where else "")
            + ").",
            param="data_source_config.item_schema",
        ) from None
    _walk_schema(config.item_schema, Registry().resolver_with_root(DRAFT202012.create_resource(config.item_schema)), "")
    _refuse_ref_cycles(config.item_schema)
    properties: dict[str, Any] = {"item": config.item_schema}
    required = ["item"]
    if config.include_sample_schema:
        properties["sample"] = SAMPLE_SCHEMA
        required.append("sample")
    return {"type": "custom", "schema": {"type": "object", "properties": properties, "required": required}}


def _refused(kind: str) -> Callable[[Any], dict[str, Any]]:
    def refuse(_: Any) -> dict[str, Any]:
        raise InvalidRequest(
            f"Invalid 'data_source_config.type': {kind!r} is not supported. It selects rows of OpenAI's own "
            "request logs and stored completions; hone stores no completions. Use 'custom' with an 'item_schema' "
            "and run the eval on a file or inline content.",
            param="data_source_config.type",
        )

    return refuse


# By type: how a config is stored (or why it is refused).
_KINDS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "custom": _custom,
    "logs": _refused("logs"),
    "stored_completions": _refused("stored_completions"),
}


def expand(config: wire.DataSourceConfigParams) -> dict[str, Any]:
    """The stored ``data_source_config`` of a create request's config (400 if refused)."""
    return _KINDS[config.type](config)


def item_schema(stored: Mapping[str, Any]) -> dict[str, Any]:
    return dict(stored["schema"]["properties"]["item"])


def has_sample(stored: Mapping[str, Any]) -> bool:
    return "sample" in stored["schema"]["properties"]


def hints(stored: Mapping[str, Any]) -> SchemaHints:
    """What graders' creation checks know about this config's namespaces."""
    return SchemaHints(item_schema=item_schema(stored), has_sample=has_sample(stored))
