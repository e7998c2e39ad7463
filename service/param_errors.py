"""What a wrong request parameter is told, in OpenAI's words: one describer for every pydantic
validation error (FastAPI's body, query and path parsing, and any model validated later from a
dict) and the builders the services use for the checks pydantic cannot express.

The messages follow the ones OpenAI sends: ``Missing required parameter: 'x'.``,
``Invalid type for 'x': expected an integer, but got a string instead.``,
``Invalid 'x': integer above maximum value. Expected a value <= 50, but got 60 instead.``,
``Invalid value: 'foo'. Supported values are: 'a' and 'b'.``; ``param`` is the dotted path
with list indexes in brackets (``integrations[0].type``), as OpenAI reports it. A value that
fails every branch of a union (``int | Literal["auto"]``) is described by the field's declared
constraints, read from its JSON schema ("expected an integer from 1 to 50, or 'auto'"), so a
new request model gets good messages without per-field code.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from service.errors import InvalidRequest, shown

# Pydantic puts union-branch and validator tags into error locations; they are not fields.
_TAG = re.compile(
    r"^(int|float|str|bool|none|is-instance\[.*|literal\[.*|constrained-.*|function-.*|union\[.*|tagged-union\[.*|.*\[.*\].*)$"
)
_SOURCES = ("body", "query", "path", "header", "cookie")
_PHRASE = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "string_type": "a string",
    "bool_type": "a boolean",
    "bool_parsing": "a boolean",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "dataclass_type": "an object",
    "list_type": "an array",
    "tuple_type": "an array",
    "set_type": "an array",
    "none_required": "null",
}
_TAG_PHRASE = {"int": "an integer", "float": "a number", "str": "a string", "bool": "a boolean", "none": "null"}
_CHOICE_KINDS = ("literal_error", "enum")
_BOUNDS = {
    "greater_than_equal": (">=", "ge", "below minimum"),
    "greater_than": (">", "gt", "below minimum"),
    "less_than_equal": ("<=", "le", "above maximum"),
    "less_than": ("<", "lt", "above maximum"),
}


@dataclass(frozen=True)
class ParamError:
    """One described error: what the envelope carries."""

    message: str
    param: str | None
    code: str | None = None

    def exception(self) -> InvalidRequest:
        return InvalidRequest(self.message, param=self.param, code=self.code)


# ----------------------------------------------------------------------------- values


def json_type(value: Any) -> str:
    """The JSON kind of a caller's value, as a message names it ("a string", "an array")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "an array"
    return "a value"


def show(value: Any) -> str:
    """A caller's value as a message repeats it: strings quoted, long ones cut, containers named."""
    if isinstance(value, str):
        return repr(shown(value, 64))
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (int, float)):
        return _num(value)
    return json_type(value)


def _num(x: Any) -> str:
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return f"{x:g}" if isinstance(x, float) else str(x)


def _choices(values: Sequence[str]) -> str:
    """OpenAI's list: 'a', 'b', and 'c' (two: 'a' and 'b')."""
    if len(values) <= 1:
        return "".join(values)
    if len(values) == 2:
        return f"{values[0]} and {values[1]}"
    return ", ".join(values[:-1]) + ", and " + values[-1]


def _alternatives(parts: Sequence[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + ", or " + parts[-1]


# ----------------------------------------------------------------------------- builders


def param_path(path: Iterable[Any]) -> str | None:
    """``("integrations", 0, "type")`` -> ``integrations[0].type`` (cut to 256 characters: an
    unknown field's name is the caller's text)."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return shown(out, 256) if out else None


def out_of_range(
    param: str, value: float, *, minimum: float | None = None, maximum: float | None = None, got: str | None = None
) -> InvalidRequest:
    """A number outside ``[minimum, maximum]`` (query limits and other checks done by hand);
    ``got`` is how to show it when not as ``value`` (text too long to be a number here)."""
    integer = isinstance(value, int)
    if minimum is not None and value < minimum:
        op, bound, where = ">=", minimum, "below minimum"
    elif maximum is not None and value > maximum:
        op, bound, where = "<=", maximum, "above maximum"
    else:
        raise ValueError(f"{value} is within [{minimum}, {maximum}]")
    return _bound_error(param, value, op, bound, where, integer, got).exception()


def invalid_choice(param: str, value: Any, choices: Sequence[Any]) -> InvalidRequest:
    """A value that is not one of ``choices`` (OpenAI's ``invalid_value``)."""
    return _not_a_choice(param, value, choices).exception()


def _not_a_choice(param: str, value: Any, choices: Sequence[Any]) -> ParamError:
    return ParamError(
        f"Invalid value for '{param}': {show(value)}. Supported values are: {_choices([show(c) for c in choices])}.",
        param,
        "invalid_value",
    )


def missing(param: str) -> InvalidRequest:
    """A required parameter that was not sent (form fields and other hand-read input)."""
    return ParamError(f"Missing required parameter: '{param}'.", param, "missing_required_parameter").exception()


def not_an_integer(param: str, text: str) -> InvalidRequest:
    """Text (a form field, a query value) that should have been an integer."""
    return ParamError(
        f"Invalid '{param}': expected an integer, but got {show(text)} instead.", param, "invalid_type"
    ).exception()


def _bound_error(
    param: str | None, value: Any, op: str, bound: Any, where: str, integer: bool, got: str | None = None
) -> ParamError:
    kind = "integer" if integer else "decimal"
    code = f"{kind}_{'below_min' if where.startswith('below') else 'above_max'}_value"
    return ParamError(
        f"Invalid '{param}': {kind} {where} value. "
        f"Expected a value {op} {_num(bound)}, but got {got or show(value)} instead.",
        param,
        code,
    )


# ----------------------------------------------------------------------------- the describer


@dataclass(frozen=True)
class _Err:
    kind: str
    source: str | None
    path: tuple[Any, ...]  # fields and indexes, tags removed
    anchor: tuple[Any, ...]  # the path up to the first union tag (== path without one)
    branch: str | None  # the first union tag, if any
    is_key: bool  # the error is about a mapping's key, not its value
    input: Any
    ctx: Mapping[str, Any]
    msg: str

    @property
    def at_anchor(self) -> bool:
        return self.path == self.anchor


def _discriminated(node: Mapping[str, Any] | None, part: Any, defs: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The branch ``part`` names when ``node`` is a discriminated union (pydantic puts the tag's
    value, e.g. ``string_check``, in the error location); None otherwise."""
    node = _resolve(node, defs)
    if node is None or not isinstance(part, str):
        return None
    for option in (node, *node.get("anyOf", ())):
        option = _resolve(option, defs)
        mapping = (option or {}).get("discriminator", {}).get("mapping", {})
        if part in mapping:
            return _resolve({"$ref": mapping[part]}, defs)
    return None


def _parse(err: Mapping[str, Any], prefix: tuple[Any, ...], schema: Mapping[str, Any] | None = None) -> _Err:
    loc = tuple(err.get("loc", ()))
    source = loc[0] if loc and loc[0] in _SOURCES else None
    if source is not None:
        loc = loc[1:]
    path: list[Any] = list(prefix)
    anchor: tuple[Any, ...] | None = None
    branch = None
    is_key = False
    defs = (schema or {}).get("$defs", {})
    node = schema_at(schema, prefix) if schema is not None else None  # walked alongside the location
    for part in loc:
        if (chosen := _discriminated(node, part, defs)) is not None:  # a tagged union's tag: not a field
            node = chosen
            continue
        node = _child(_resolve(node, defs), part, defs) if not (isinstance(part, str) and _TAG.match(part)) else node
        if isinstance(part, str) and _TAG.match(part):
            if part == "[key]":
                is_key = True
            elif anchor is None:
                anchor, branch = tuple(path), part
            continue
        path.append(part)
    return _Err(
        kind=str(err.get("type", "")),
        source=source,
        path=tuple(path),
        anchor=anchor if anchor is not None else tuple(path),
        branch=branch,
        is_key=is_key,
        input=err.get("input"),
        ctx=err.get("ctx") or {},
        msg=str(err.get("msg", "invalid value")),
    )


def describe(
    errors: Sequence[Mapping[str, Any]], *, schema: Mapping[str, Any] | None = None, prefix: Sequence[Any] = ()
) -> ParamError:
    """The one error a request is told about: the first one pydantic found, or, when that one
    is a branch of a union, the union as a whole. ``schema`` is the JSON schema of the model
    the errors' locations walk (for describing a union by its declared constraints);
    ``prefix`` is prepended to every location (a model validated as part of a larger body)."""
    if not errors:
        return ParamError("Invalid request.", None)
    parsed = [_parse(e, tuple(prefix), schema) for e in errors]
    first = parsed[0]
    if first.branch is None:
        return _single(first)
    group = [e for e in parsed if e.branch is not None and e.anchor == first.anchor]
    branches: dict[str, list[_Err]] = {}
    for e in group:
        branches.setdefault(e.branch or "", []).append(e)
    # A branch the value got into (the right type, a wrong part inside) is what went wrong.
    inside = [errs for errs in branches.values() if any(not e.at_anchor for e in errs)]
    if len(inside) == 1:
        return _single(inside[0][0])
    return _union(first.anchor, group, list(branches), schema, first.source)


def from_validation_error(
    exc: ValidationError, *, prefix: Sequence[Any] = (), schema: Mapping[str, Any] | None = None
) -> InvalidRequest:
    """A model validated outside FastAPI's parsing (a stored dict, a form field) told exactly
    as the same model in a request body would be."""
    return describe(exc.errors(), schema=schema, prefix=prefix).exception()


def _single(e: _Err) -> ParamError:
    param = param_path(e.path)
    kind, ctx = e.kind, e.ctx
    if kind == "json_invalid":
        return ParamError(
            f"We could not parse the JSON body of your request: {ctx.get('error', 'invalid JSON')}.", None
        )
    if kind == "missing" and param is None:
        return ParamError("The request body is missing: send a JSON object.", None)
    if kind == "missing":
        return ParamError(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")
    if kind == "extra_forbidden":
        return ParamError(f"Unrecognized request argument supplied: {param}", param)
    if kind in ("union_tag_invalid", "union_tag_not_found"):  # a tagged union's tag: told at the tag's own field
        tag = str(ctx.get("discriminator", "type")).strip("'")
        at = param_path((*e.path, tag))
        if kind == "union_tag_not_found":
            return ParamError(f"Missing required parameter: '{at}'.", at, "missing_required_parameter")
        expected = [t.strip().strip("'") for t in str(ctx.get("expected_tags", "")).split(",") if t.strip()]
        return _not_a_choice(str(at), ctx.get("tag"), expected)
    if kind in ("model_attributes_type", "dict_type", "model_type") and param is None:
        return ParamError("The request body must be a JSON object.", None)
    what = f"key in '{param_path(e.path[:-1])}'" if e.is_key else f"'{param}'"
    if kind in _PHRASE:
        if e.source in ("query", "path", "header"):  # always text on the wire: show the text
            return ParamError(
                f"Invalid {what}: expected {_PHRASE[kind]}, but got {show(e.input)} instead.", param, "invalid_type"
            )
        return ParamError(
            f"Invalid type for {what}: expected {_PHRASE[kind]}, but got {json_type(e.input)} instead.",
            param,
            "invalid_type",
        )
    if kind in _CHOICE_KINDS:
        return ParamError(
            f"Invalid value for {what}: {show(e.input)}. "
            f"Supported values are: {_choices(_quoted(ctx.get('expected')))}.",
            param,
            "invalid_value",
        )
    if kind in _BOUNDS:
        op, key, where = _BOUNDS[kind]
        integer = isinstance(e.input, int) and not isinstance(e.input, bool)
        return _bound_error(param, e.input, op, ctx.get(key), where, integer)
    if kind in ("string_too_long", "string_too_short"):
        return _length(e, what, param)
    if kind in ("too_long", "too_short"):
        return _size(e, what, param)
    if kind == "string_pattern_mismatch":
        return ParamError(
            f"Invalid value for {what}: {show(e.input)} does not match the pattern {ctx.get('pattern')}.",
            param,
            "invalid_value",
        )
    if kind == "hyperparameter_range":
        return _checked(e, param)
    message = e.msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return ParamError(f"Invalid value for {what}: {message.rstrip('.')}.", param)


def _quoted(expected: Any) -> list[str]:
    text = str(expected or "")
    found = re.findall(r"'(?:[^'\\]|\\.)*'", text)
    return found or [text]


def _length(e: _Err, what: str, param: str | None) -> ParamError:
    n = len(e.input) if isinstance(e.input, str) else 0
    if e.kind == "string_too_long":
        limit = e.ctx.get("max_length")
        return ParamError(
            f"Invalid {what}: string too long. Expected a string with maximum length {limit}, "
            f"but got a string with length {n} instead.",
            param,
            "string_above_max_length",
        )
    limit = e.ctx.get("min_length")
    got = "an empty string" if n == 0 else f"a string with length {n}"
    return ParamError(
        f"Invalid {what}: string too short. Expected a string with minimum length {limit}, but got {got} instead.",
        param,
    )


def _size(e: _Err, what: str, param: str | None) -> ParamError:
    is_object = isinstance(e.input, Mapping)
    noun, unit = ("an object", "keys") if is_object else ("an array", "items")
    actual = e.ctx.get("actual_length")
    if actual is None:
        actual = len(e.input) if hasattr(e.input, "__len__") else "more"
    if e.kind == "too_long":
        return ParamError(
            f"Invalid {what}: too many {unit}. Expected {noun} with at most {e.ctx.get('max_length')} {unit}, "
            f"but got {actual} instead.",
            param,
        )
    return ParamError(
        f"Invalid {what}: too few {unit}. Expected {noun} with at least {e.ctx.get('min_length')} {unit}, "
        f"but got {actual} instead.",
        param,
    )


def _checked(e: _Err, param: str | None) -> ParamError:
    """A field whose model checks it in one function (contract.hyperparameters): the message
    names its whole range; the code says what kind of wrong it is."""
    rule = f"{e.ctx.get('field', param)} must be {e.ctx.get('expected', 'valid')}"
    problem = e.ctx.get("problem")
    if problem == "type":
        return ParamError(
            f"Invalid type for '{param}': {rule}, but got {json_type(e.input)} instead.", param, "invalid_type"
        )
    if problem in ("below", "above"):
        kind = "integer" if isinstance(e.input, int) else "decimal"
        code = f"{kind}_{'below_min' if problem == 'below' else 'above_max'}_value"
        return ParamError(f"Invalid '{param}': {rule}, but got {show(e.input)} instead.", param, code)
    return ParamError(f"Invalid value for '{param}': {rule}, but got {show(e.input)} instead.", param, "invalid_value")


def _union(
    anchor: tuple[Any, ...],
    group: list[_Err],
    branches: list[str],
    schema: Mapping[str, Any] | None,
    source: str | None,
) -> ParamError:
    param = param_path(anchor)
    value = group[0].input
    expected = expectation(schema_at(schema, anchor)) if schema is not None else None
    if expected is None:
        parts: list[str] = []
        for e in group:
            phrase = _error_phrase(e) if e.at_anchor else _tag_phrase(e.branch or "")
            if phrase not in parts:
                parts.append(phrase)
        expected = _alternatives(parts)
    if all(e.kind in _PHRASE or e.kind in _CHOICE_KINDS for e in group) and not (
        isinstance(value, str) and any(e.kind in _CHOICE_KINDS for e in group)
    ):
        got = show(value) if source in ("query", "path", "header") else json_type(value)
        message = f"Invalid type for '{param}': expected {expected}, but got {got} instead."
        return ParamError(message, param, "invalid_type")
    bound = next((e for e in group if e.kind in _BOUNDS), None)
    code = "invalid_value"
    if bound is not None:
        kind = "integer" if isinstance(value, int) and not isinstance(value, bool) else "decimal"
        code = f"{kind}_{'below_min' if _BOUNDS[bound.kind][2].startswith('below') else 'above_max'}_value"
    return ParamError(f"Invalid value for '{param}': expected {expected}, but got {show(value)} instead.", param, code)


def _error_phrase(e: _Err) -> str:
    if e.kind in _PHRASE:
        return _PHRASE[e.kind]
    if e.kind in _CHOICE_KINDS:
        return " or ".join(_quoted(e.ctx.get("expected")))
    if e.kind in _BOUNDS:
        op, key, _ = _BOUNDS[e.kind]
        noun = _tag_phrase(e.branch or "")
        return f"{noun} {op} {_num(e.ctx.get(key))}"
    return _tag_phrase(e.branch or "")


def _tag_phrase(tag: str) -> str:
    base = tag.removeprefix("constrained-")
    if base in _TAG_PHRASE:
        return _TAG_PHRASE[base]
    if base.startswith(("list[", "tuple[", "set[")):
        return "an array"
    if base.startswith("literal["):
        return " or ".join(re.findall(r"'(?:[^'\\]|\\.)*'", base)) or base
    if base.startswith("dict[") or base[:1].isupper():
        return "an object"
    return base


# ----------------------------------------------------------------------------- JSON schema


def schema_at(schema: Mapping[str, Any] | None, path: Sequence[Any]) -> Mapping[str, Any] | None:
    """The JSON schema of the value at ``path`` inside ``schema`` (following $ref, optional
    wrappers, object properties, array items and map values); None where it cannot tell."""
    if schema is None:
        return None
    defs = schema.get("$defs", {})
    node: Mapping[str, Any] | None = schema
    for part in path:
        node = _child(_resolve(node, defs), part, defs)
        if node is None:
            return None
    resolved = _resolve(node, defs)
    return {**resolved, "$defs": defs} if resolved is not None else None


def _resolve(node: Mapping[str, Any] | None, defs: Mapping[str, Any]) -> Mapping[str, Any] | None:
    while node is not None and "$ref" in node:
        node = defs.get(str(node["$ref"]).rsplit("/", 1)[-1])
    return node


def _child(node: Mapping[str, Any] | None, part: Any, defs: Mapping[str, Any]) -> Mapping[str, Any] | None:
    if node is None:
        return None
    for option in node.get("anyOf", node.get("oneOf", [])):
        found = _child(_resolve(option, defs), part, defs)
        if found is not None:
            return found
    if isinstance(part, int) and "items" in node:
        return node["items"]
    if isinstance(part, str):
        if part in node.get("properties", {}):
            return node["properties"][part]
        extra = node.get("additionalProperties")
        if isinstance(extra, Mapping):
            return extra
    return None


def expectation(schema: Mapping[str, Any] | None) -> str | None:
    """What a JSON schema accepts, in words: "an integer from 1 to 50, or 'auto'"."""
    if schema is None:
        return None
    defs = schema.get("$defs", {})
    node = _resolve(schema, defs)
    if node is None:
        return None
    options = node.get("anyOf", node.get("oneOf"))
    if options:
        parts = [expectation({**o, "$defs": defs}) for o in options]
        return _alternatives([p for p in parts if p]) if all(parts) else None
    if "const" in node:
        return show(node["const"])
    if "enum" in node:
        values = [show(v) for v in node["enum"]]
        return values[0] if len(values) == 1 else "one of " + ", ".join(values)
    kind = node.get("type")
    if isinstance(kind, list):
        parts = [expectation({**node, "type": k, "$defs": defs}) for k in kind]
        return _alternatives([p for p in parts if p])
    if kind in ("integer", "number"):
        return ("an integer" if kind == "integer" else "a number") + _range(node)
    if kind == "string":
        low, high = node.get("minLength"), node.get("maxLength")
        if high is not None:
            return f"a string of {low or 0} to {high} characters" if low else f"a string of at most {high} characters"
        return f"a string of at least {low} characters" if low else "a string"
    if kind == "boolean":
        return "a boolean"
    if kind == "null":
        return "null"
    if kind == "array":
        return "an array"
    if kind == "object" or "properties" in node:
        return "an object"
    return None


def _range(node: Mapping[str, Any]) -> str:
    low, low_open = (node["exclusiveMinimum"], True) if "exclusiveMinimum" in node else (node.get("minimum"), False)
    high, high_open = (node["exclusiveMaximum"], True) if "exclusiveMaximum" in node else (node.get("maximum"), False)
    if low is not None and high is not None:
        if not low_open and not high_open:
            return f" from {_num(low)} to {_num(high)}"
        lower = f"greater than {_num(low)}" if low_open else f"at least {_num(low)}"
        upper = f"less than {_num(high)}" if high_open else f"at most {_num(high)}"
        return f" {lower} and {upper}"
    if low is not None:
        return f" greater than {_num(low)}" if low_open else f" of at least {_num(low)}"
    if high is not None:
        return f" less than {_num(high)}" if high_open else f" of at most {_num(high)}"
    return ""
