"""A run's ``data_source``: checked at creation against its eval, stored as the run echoes it,
and read back by the runner.

Types, by ``type`` (``KINDS``): ``jsonl`` (items with pre-generated samples) and
``completions`` (items a project model answers). ``responses`` is refused: hone's gateway
serves /v1/responses, but a run samples through chat completions, so ``completions`` says the
same thing. Sources: ``file_content`` (checked here, item by item, against the eval's item
schema), ``file_id`` (a File of the project; its lines are checked by the runner, which fails
the run naming the line), ``stored_completions`` refused (hone stores no completions)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema.exceptions import best_match  # type: ignore[import-untyped]
from referencing.exceptions import Unresolvable
from sqlalchemy.orm import Session

from service.catalog.catalog import Catalog
from service.db.schema import Eval, Project
from service.errors import InvalidRequest, NotFound, shown
from service.evals import data_config
from service.evals.config import EvalSettings
from service.evals.graders import template
from service.evals.graders.base import SchemaHints
from service.files import service as files
from service.models.service import servable_base
from service.param_errors import missing
from service.protocol import evals as wire
from service.protocol.graders import EvalItem

# Purposes of a File a run may read: OpenAI's "evals", and the JSONL purposes a team already
# holds its data under.
FILE_PURPOSES = ("evals", "fine-tune", "user_data")
SOURCE = "data_source.source"


@dataclass(frozen=True)
class Row:
    """One data source line: the ``item`` namespace and, for jsonl runs, the ``sample``."""

    item: dict[str, Any]
    sample: dict[str, Any] | None = None


@dataclass(frozen=True)
class Checked:
    """A run's data source as stored (``data_source``) and the model it evaluates."""

    data_source: dict[str, Any]
    model: str | None


@dataclass(frozen=True)
class Checks:
    session: Session
    project: Project
    catalog: Catalog
    settings: EvalSettings
    eval: Eval


# ----------------------------------------------------------------------------- rows


def criteria_read_sample(criteria: Iterable[Mapping[str, Any]]) -> bool:
    """Whether any testing criterion's template reads the ``sample`` namespace."""

    def strings(node: Any) -> Iterable[str]:
        if isinstance(node, str):
            yield node
        elif isinstance(node, Mapping):
            for value in node.values():
                yield from strings(value)
        elif isinstance(node, list):
            for value in node:
                yield from strings(value)

    return any(
        ref.split(".", 1)[0].split("[", 1)[0] == "sample"
        for criterion in criteria
        for text in strings(criterion)
        for ref in template.references(text)
    )


class RowChecker:
    """Checks rows against an eval: the item against its item schema, and a sample present
    where the testing criteria read one (``needs_sample``)."""

    def __init__(self, item_schema: Mapping[str, Any], needs_sample: bool) -> None:
        self.validator = data_config.item_validator(item_schema)
        self.needs_sample = needs_sample

    def problem(self, row: Row) -> tuple[str, str] | None:
        """(field, message) of what is wrong with ``row``, None when it is fine."""
        for field, value in (("item", row.item), ("sample", row.sample)):
            bad = data_config.json_problem(value)
            if bad is not None:
                return field, f"{bad[1]}" + (f" (at {field}{bad[0]})" if bad[0] else "")
        try:
            error = best_match(self.validator.iter_errors(row.item))
        except data_config.PatternTimeout as e:
            return "item", str(e)
        except Unresolvable as e:  # a schema stored before creation refused unresolvable refs
            return "item", f"the eval's item schema has a $ref that resolves to nothing ({e})"
        except RecursionError:  # a $ref cycle that consumes no part of the item ({"$ref": "#"})
            return "item", "the eval's item schema refers to itself without end ($ref cycle) on this item"
        if error is not None:
            where = "".join(f"[{p!r}]" for p in error.absolute_path)
            return "item", f"it does not match the eval's item schema: {error.message}" + (
                f" (at item{where})" if where else ""
            )
        if self.needs_sample and row.sample is None:
            return "sample", "the eval's testing criteria read {{sample.*}}, and this row has no 'sample'"
        return None


def parse_line(line: str | bytes, lineno: int, checker: RowChecker) -> Row:
    """One line of a ``file_id`` source (``{"item": {...}, "sample": {...}}``); raises
    InvalidRequest naming the line (the runner fails the run with its message)."""
    try:
        doc = json.loads(line)
    except ValueError as e:
        raise InvalidRequest(f"Line {lineno} of the data source file is not JSON: {e}.", param=f"{SOURCE}.id") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("item"), dict):
        raise InvalidRequest(
            f"Line {lineno} of the data source file is not an object with an 'item' object.", param=f"{SOURCE}.id"
        )
    sample = doc.get("sample")
    if sample is not None and not isinstance(sample, dict):
        raise InvalidRequest(f"Line {lineno} of the data source file: 'sample' is not an object.", param=f"{SOURCE}.id")
    row = Row(item=doc["item"], sample=sample)
    problem = checker.problem(row)
    if problem is not None:
        raise InvalidRequest(f"Line {lineno} of the data source file: {problem[1]}.", param=f"{SOURCE}.id")
    return row


def checker_for(eval_row: Eval, data_source_type: str) -> RowChecker:
    needs = data_source_type == "jsonl" and criteria_read_sample(eval_row.testing_criteria)
    return RowChecker(data_config.item_schema(eval_row.data_source_config), needs)


# ----------------------------------------------------------------------------- sources


def _check_source(source: Any, data_source_type: str, c: Checks) -> None:
    if isinstance(source, wire.StoredCompletionsSource):
        raise InvalidRequest(
            f"Invalid '{SOURCE}.type': 'stored_completions' is not supported; it selects OpenAI's stored chat "
            "completions, and hone stores no completions. Use 'file_content' or 'file_id'.",
            param=f"{SOURCE}.type",
        )
    if isinstance(source, wire.FileIdSource):
        try:
            file = files.get(c.session, c.project, source.id)
        except NotFound:
            raise NotFound(f"No such File object: {shown(source.id)}", param=f"{SOURCE}.id") from None
        if file.purpose not in FILE_PURPOSES:
            raise InvalidRequest(
                f"Invalid '{SOURCE}.id': File {file.id} has purpose {file.purpose!r}; a run reads files with purpose "
                + ", ".join(repr(p) for p in FILE_PURPOSES[:-1])
                + f" or {FILE_PURPOSES[-1]!r}.",
                param=f"{SOURCE}.id",
            )
        return
    content: list[wire.FileContentRow] = source.content
    if not content:
        raise InvalidRequest(f"Invalid '{SOURCE}.content': it holds no items.", param=f"{SOURCE}.content")
    if len(content) > c.settings.max_items:
        raise InvalidRequest(
            f"Invalid '{SOURCE}.content': {len(content)} items, more than the {c.settings.max_items} a run may hold.",
            param=f"{SOURCE}.content",
        )
    checker = checker_for(c.eval, data_source_type)
    for i, line in enumerate(content):
        problem = checker.problem(Row(item=line.item, sample=line.sample))
        if problem is not None:
            field, message = problem
            param = f"{SOURCE}.content[{i}].{field}"
            raise InvalidRequest(f"Invalid '{param}': {message}.", param=param)


# ----------------------------------------------------------------------------- completions


def _normalized(message: EvalItem) -> dict[str, Any]:
    """A template message as OpenAI echoes it: ``type: message`` and a text ``content`` as an
    ``input_text`` part (``output_text`` for the assistant), which is also the one reading of
    it the spec's ``oneOf`` (EasyInputMessage or EvalItem) allows."""
    out = message.model_dump(mode="json", exclude_none=True)
    out["type"] = "message"
    if isinstance(message.content, str):
        kind = "output_text" if message.role == "assistant" else "input_text"
        out["content"] = {"type": kind, "text": message.content}
    return out


def _completions(ds: wire.CompletionsDataSource, c: Checks) -> Checked:
    if ds.model is None:
        raise missing("data_source.model")
    try:
        servable_base(c.session, c.project, c.catalog, ds.model)
    except NotFound as e:
        raise InvalidRequest(e.message, param="data_source.model", code=e.code) from None
    if ds.input_messages is None:
        raise missing("data_source.input_messages")
    _check_source(ds.source, "completions", c)
    hints = SchemaHints(item_schema=data_config.item_schema(c.eval.data_source_config), has_sample=False)
    stored = ds.model_dump(mode="json", exclude_unset=True)
    messages = ds.input_messages
    if isinstance(messages, wire.TemplateInputMessages):
        if not messages.template:  # every call would go out with no messages, and every item error
            param = "data_source.input_messages.template"
            raise InvalidRequest(f"Invalid '{param}': give at least one message.", param=param)
        template.check_messages(messages.template, hints, "data_source.input_messages.template")
        stored["input_messages"]["template"] = [_normalized(m) for m in messages.template]
    else:
        param = "data_source.input_messages.item_reference"
        ref = messages.item_reference.strip()
        if not ref.startswith("item."):
            raise InvalidRequest(
                f"Invalid '{param}': {shown(ref)!r} is not a reference into the item namespace (e.g. 'item.messages').",
                param=param,
            )
        template.check_references("{{" + ref + "}}", hints, param)
    return Checked(data_source=stored, model=ds.model)


def _jsonl(ds: wire.JsonlDataSource, c: Checks) -> Checked:
    _check_source(ds.source, "jsonl", c)
    return Checked(data_source=ds.model_dump(mode="json", exclude_unset=True), model=None)


def _responses(_: wire.ResponsesDataSource, c: Checks) -> Checked:
    raise InvalidRequest(
        "Invalid 'data_source.type': 'responses' is not supported. hone's runs sample through chat completions; "
        "use type 'completions' with the same model, input_messages and sampling_params.",
        param="data_source.type",
    )


KINDS: dict[str, Callable[[Any, Checks], Checked]] = {
    "jsonl": _jsonl,
    "completions": _completions,
    "responses": _responses,
}


def check(data_source: wire.RunDataSource, c: Checks) -> Checked:
    """Check a create request's data source against its eval (400 naming the field)."""
    checked = KINDS[data_source.type](data_source, c)
    # the rest (e.g. a NaN in sampling_params.tools) before the JSON dump turns NaN into null
    data_config.refuse_bad_json(data_source.model_dump(exclude_unset=True), "data_source")
    return checked


def parse_stored(data_source: Mapping[str, Any]) -> wire.JsonlDataSource | wire.CompletionsDataSource:
    """A stored run's data source as its model (the runner reads it)."""
    if data_source.get("type") == "completions":
        return wire.CompletionsDataSource.model_validate(data_source)
    return wire.JsonlDataSource.model_validate(data_source)
