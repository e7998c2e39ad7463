"""Validates every JSON response the SDK receives against the official OpenAPI spec
(``tests/data/openai-openapi.yaml``, vendored verbatim from openai/openai-openapi).

Hooked into the SDK's httpx client, so contract tests check shapes on every call they make
without asking for it. Where the spec and the real API disagree, the real API wins; each such
relaxation is listed in ``ERRATA`` with what the real API does.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from service.protocol.fine_tuning import JobStatus

SPEC_PATH = Path(__file__).parent.parent / "data" / "openai-openapi.yaml"
SPEC_URI = "urn:openai-openapi"

# The graders a multi grader combines (the spec's GraderMulti.graders).
MULTI_INNER = [
    {"$ref": f"#/components/schemas/Grader{name}"}
    for name in ("StringCheck", "TextSimilarity", "Python", "ScoreModel", "LabelModel")
]
# (schema, property path) -> replacement. Every entry is a documented deviation of the spec.
ERRATA: dict[tuple[str, str], dict[str, Any]] = {
    # Real API responses send "expires_at": null and "status_details": null.
    ("OpenAIFile", "expires_at"): {"anyOf": [{"type": "integer"}, {"type": "null"}]},
    ("OpenAIFile", "status_details"): {"anyOf": [{"type": "string"}, {"type": "null"}]},
    # Files uploaded for the Evals API have purpose "evals" (OpenAI's evals guide uploads them so;
    # the spec's upload purposes have it, the file object's enum does not).
    ("OpenAIFile", "purpose"): {
        "type": "string",
        "enum": [
            "assistants",
            "assistants_output",
            "batch",
            "batch_output",
            "fine-tune",
            "fine-tune-results",
            "vision",
            "user_data",
            "evals",
        ],
    },
    # An empty list has no first/last id.
    ("ListFilesResponse", "first_id"): {"anyOf": [{"type": "string"}, {"type": "null"}]},
    ("ListFilesResponse", "last_id"): {"anyOf": [{"type": "string"}, {"type": "null"}]},
    **{
        (name, field): {"anyOf": [{"type": "string"}, {"type": "null"}]}
        for name in ("EvalList", "EvalRunList", "EvalRunOutputItemList")
        for field in ("first_id", "last_id")
    },
    # The spec's own pause example returns "paused", absent from its enum; "pausing" is hone's
    # state between a pause request and the trainer's checkpoint.
    ("FineTuningJob", "status"): {"type": "string", "enum": [s.value for s in JobStatus]},
    # The real Responses API sends "user": null when none was given, and "usage": null on a
    # response that is still in progress (the response.created / in_progress events).
    ("ModelResponseProperties", "user"): {"anyOf": [{"type": "string"}, {"type": "null"}]},
    ("Response", "usage"): {"anyOf": [{"$ref": "#/components/schemas/ResponseUsage"}, {"type": "null"}]},
    # The Evals API sends "error": null on a run and on a sample that did not fail (the spec's
    # own EvalRun and EvalRunOutputItem examples).
    ("EvalRun", "error"): {"anyOf": [{"$ref": "#/components/schemas/EvalApiError"}, {"type": "null"}]},
    # A multi grader's graders: the spec types one grader, while OpenAI's graders guide (its
    # "multigraders" section) writes a map from the names its formula uses to the graders.
    ("GraderMulti", "graders"): {
        "anyOf": [
            *MULTI_INNER,
            {"type": "object", "additionalProperties": {"oneOf": MULTI_INNER}},
        ]
    },
    ("EvalRunOutputItem", "sample.error"): {"anyOf": [{"$ref": "#/components/schemas/EvalApiError"}, {"type": "null"}]},
}


def _normalize(node: Any) -> Any:
    """The spec is OpenAPI 3.1 but keeps some 3.0 idioms that mean something else in JSON
    Schema 2020-12: boolean ``exclusiveMinimum``/``exclusiveMaximum`` next to ``minimum``/
    ``maximum``, and ``nullable: true``. Rewrite them to their 2020-12 meaning."""
    if isinstance(node, list):
        return [_normalize(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _normalize(v) for k, v in node.items()}
    for excl, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(node.get(excl), bool):
            if node.pop(excl) and bound in node:
                node[excl] = node.pop(bound)
    if node.pop("nullable", False) is True:
        node = {"anyOf": [node, {"type": "null"}]}
    return node


@cache
def _spec() -> dict[str, Any]:
    spec = yaml.load(SPEC_PATH.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    spec["components"] = _normalize(spec["components"])
    schemas = spec["components"]["schemas"]
    for (name, path), replacement in ERRATA.items():
        # the schema's own properties, or those of the allOf member that declares ``prop``;
        # a dotted path walks nested objects' properties
        *outer, prop = path.split(".")
        parts = [schemas[name], *schemas[name].get("allOf", [])]
        properties = next(p["properties"] for p in parts if (outer or [prop])[0] in p.get("properties", {}))
        for key in outer:
            properties = properties[key]["properties"]
        properties[prop] = copy.deepcopy(replacement)
    return spec


@cache
def _registry() -> Registry:
    return Registry().with_resource(SPEC_URI, Resource.from_contents(_spec(), default_specification=DRAFT202012))


def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    out = "".join(("(?:.+)" if p == "{model}" else "[^/]+") if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{out}$")


@cache
def _routes() -> list[tuple[re.Pattern[str], str]]:
    # Literal segments first so /files/{id}/content never matches /files/{id}.
    paths = sorted(_spec()["paths"], key=lambda p: (-p.count("/"), p.count("{")))
    return [(_template_regex(p), p) for p in paths]


# Paths the SDK calls where the spec writes another: openai-python cancels an eval run with
# POST .../runs/{run_id}/cancel, the spec with POST .../runs/{run_id} (hone serves both).
PATH_ALIASES = [(re.compile(r"^(/evals/[^/]+/runs/[^/]+)/cancel$"), r"\1")]


def response_schema(method: str, path: str, status: int, media_type: str = "application/json") -> dict[str, Any] | None:
    for alias, spec_path in PATH_ALIASES:
        path = alias.sub(spec_path, path)
    if status >= 400:
        return {"$ref": f"{SPEC_URI}#/components/schemas/ErrorResponse"}
    for regex, template in _routes():
        if regex.match(path):
            op = _spec()["paths"][template].get(method.lower())
            if op is None:
                continue
            content = op["responses"].get(str(status), {}).get("content", {})
            schema = content.get(media_type, {}).get("schema")
            if schema is None:
                return None
            ref = schema.get("$ref")
            return {"$ref": f"{SPEC_URI}{ref}"} if ref else schema
    raise AssertionError(f"{method} {path} is not in the OpenAI spec")


class SpecChecker:
    """An httpx response hook; ``checked`` counts validated responses so tests can prove the
    hook ran."""

    def __init__(self, prefix: str = "/v1") -> None:
        self.prefix = prefix
        self.checked = 0
        self.statuses: list[int] = []
        self.by_operation: dict[str, int] = {}

    def check(self, method: str, path: str, status: int, content_type: str, body: bytes) -> None:
        if not path.startswith(self.prefix):
            return
        path = path[len(self.prefix) :]
        self.statuses.append(status)
        if path.endswith("/content") and status < 400:
            return  # raw file bytes
        if content_type.startswith("text/event-stream") and status < 400:
            self._check_events(method, path, status, body)
            return
        assert "json" in content_type, f"{method} {path} answered {content_type!r}, not JSON"
        schema = response_schema(method, path, status)
        if schema is None:
            return
        doc = json.loads(body)
        validator = Draft202012Validator(schema, registry=_registry())
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
        assert not errors, f"{method} {path} -> {status} does not match the spec: " + "; ".join(
            f"{list(e.path)}: {e.message}" for e in errors[:5]
        )
        self.checked += 1
        key = f"{method} {re.sub(r'/(file|ftjob|ftckpt|ft:)[^/]*', '/{id}', path)}"
        self.by_operation[key] = self.by_operation.get(key, 0) + 1

    def _check_events(self, method: str, path: str, status: int, body: bytes) -> None:
        """A stream: each event's data against the operation's ``text/event-stream`` schema."""
        schema = response_schema(method, path, status, "text/event-stream")
        assert schema is not None, f"{method} {path} streamed, but the spec has no event schema for it"
        validator = Draft202012Validator(schema, registry=_registry())
        for event in body.decode().split("\n\n"):
            data = "\n".join(line[6:] for line in event.split("\n") if line.startswith("data: "))
            if not data or data == "[DONE]":
                continue
            doc = json.loads(data)
            if "error" in doc and len(doc) == 1:
                validator_error = Draft202012Validator(
                    {"$ref": f"{SPEC_URI}#/components/schemas/Error"}, registry=_registry()
                )
                errors = list(validator_error.iter_errors(doc["error"]))
            else:
                errors = list(validator.iter_errors(doc))
            assert not errors, f"{method} {path} -> event {doc.get('type', '')} does not match the spec: " + "; ".join(
                f"{list(e.path)}: {e.message}" for e in sorted(errors, key=lambda e: list(e.path))[:5]
            )
        self.checked += 1

    def hook(self, response: httpx.Response) -> None:
        response.read()
        self.check(
            response.request.method,
            response.request.url.path,
            response.status_code,
            response.headers.get("content-type", ""),
            response.content,
        )

    async def async_hook(self, response: httpx.Response) -> None:
        await response.aread()
        self.check(
            response.request.method,
            response.request.url.path,
            response.status_code,
            response.headers.get("content-type", ""),
            response.content,
        )
