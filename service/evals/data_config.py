"""An eval's ``data_source_config``: what a run's items (and samples) look like.

Only ``custom`` is served: the caller states the item's JSON schema. ``logs`` and
``stored_completions`` select rows of OpenAI's own request logs and stored chat completions;
hone keeps neither, so they are refused by name. The stored (and returned) config is OpenAI's
``EvalCustomDataSourceConfig``: the item schema wrapped in an object schema with the ``item``
namespace and, with ``include_sample_schema``, the ``sample`` namespace a model's answer fills."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]

from service.errors import InvalidRequest
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


def _custom(config: wire.CustomDataSourceConfigParams) -> dict[str, Any]:
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
