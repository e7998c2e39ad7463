"""The templating engine: rendering, lookups, creation-time reference checks, chat messages."""

from __future__ import annotations

import pytest

from service.errors import InvalidRequest
from service.evals.graders.base import Namespaces, SchemaHints
from service.evals.graders.template import (
    TemplateError,
    check_messages,
    check_references,
    lookup,
    references,
    render,
    render_messages,
    sample_namespace,
)
from service.protocol.graders import EvalItem

NS = Namespaces(
    item={"question": "2+2?", "answer": 4, "meta": {"tags": ["math", "easy"], "level": {"n": 1}}},
    sample=sample_namespace('{"answer": "4", "steps": [1, 2]}'),
)


def test_references_are_the_stripped_paths_in_order() -> None:
    assert references("Q: {{ item.question }} A: {{sample.output_text}}") == ["item.question", "sample.output_text"]
    assert references("no templates here") == []


def test_render_fills_nested_keys_indexes_and_json_values() -> None:
    text = "{{item.question}} | {{ item.answer }} | {{item.meta.tags.1}} | {{item.meta.tags[0]}} | {{item.meta.level}}"
    assert render(text, NS) == '2+2? | 4 | easy | math | {"n": 1}'
    assert render("{{sample.output_json.answer}}/{{sample.output_json.steps}}", NS) == "4/[1, 2]"


def test_text_outside_the_braces_is_kept_verbatim() -> None:
    assert render("  {single} braces, {{item.answer}}\n  tail ", NS) == "  {single} braces, 4\n  tail "


def test_a_missing_field_names_the_path_and_where_it_stopped() -> None:
    with pytest.raises(TemplateError) as e:
        render("{{item.meta.level.m}}", NS)
    assert "item.meta.level.m" in e.value.message and "item.meta.level has no field 'm'" in e.value.message
    assert e.value.flag == "invalid_variable_error"
    with pytest.raises(TemplateError, match="has no field 5"):
        lookup("item.meta.tags.5", NS)


def test_unknown_namespace_and_absent_sample_are_errors() -> None:
    with pytest.raises(TemplateError, match="Unknown namespace 'items'"):
        render("{{items.question}}", NS)
    with pytest.raises(TemplateError, match="this data source has none"):
        render("{{sample.output_text}}", Namespaces(item={}))
    with pytest.raises(TemplateError, match="not a variable reference"):
        render("{{ item.a + 1 }}", NS)


def test_sample_namespace_parses_json_output_only_when_valid() -> None:
    assert sample_namespace('{"a": 1}', model="m") == {"output_text": '{"a": 1}', "output_json": {"a": 1}, "model": "m"}
    assert sample_namespace("plain words")["output_json"] is None


def test_render_messages_joins_text_parts_and_maps_developer_to_system() -> None:
    messages = [
        EvalItem(role="developer", content="Grade {{item.question}}"),
        EvalItem(role="user", content={"type": "input_text", "text": "Answer: {{sample.output_text}}"}),
        EvalItem(
            role="assistant",
            content=[{"type": "output_text", "text": "first"}, {"type": "input_text", "text": "{{item.answer}}"}],
        ),
    ]
    assert render_messages(messages, NS) == [
        {"role": "system", "content": "Grade 2+2?"},
        {"role": "user", "content": 'Answer: {"answer": "4", "steps": [1, 2]}'},
        {"role": "assistant", "content": "first\n4"},
    ]


def test_images_are_refused_at_render_and_at_check() -> None:
    msg = EvalItem(role="user", content=[{"type": "input_image", "image_url": "https://x/y.png"}])
    with pytest.raises(TemplateError, match="input_image content is not supported"):
        render_messages([msg], NS)
    with pytest.raises(InvalidRequest) as e:
        check_messages([msg], SchemaHints(None, True), "testing_criteria[0].input")
    assert e.value.param == "testing_criteria[0].input[0].content[0]"


SCHEMA = {
    "type": "object",
    "properties": {
        "question": {"type": "string"},
        "meta": {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}}},
        "extra": {"type": "object"},
    },
    "required": ["question"],
}


def test_check_references_accepts_what_the_schema_allows() -> None:
    hints = SchemaHints(SCHEMA, has_sample=True)
    text = "{{item.question}} {{item.meta.tags.0}} {{item.extra.anything}} {{sample.output_json.x}}"
    check_references(text, hints, "p")
    check_references("{{item.whatever.deep}}", SchemaHints(None, has_sample=False), "p")  # no schema: anything goes


@pytest.mark.parametrize(
    ("text", "hints", "says"),
    [
        ("{{item.questoin}}", SchemaHints(SCHEMA, True), "the item schema has no field 'questoin' under item"),
        ("{{item.meta.tgas}}", SchemaHints(SCHEMA, True), "no field 'tgas' under item.meta"),
        ("{{item.question.len}}", SchemaHints(SCHEMA, True), "item.question is a string"),
        ("{{sample.output_text}}", SchemaHints(SCHEMA, False), "refers to the sample, but this eval has none"),
        ("{{input.question}}", SchemaHints(None, True), "unknown namespace 'input'"),
        ("{{item..x}}", SchemaHints(None, True), "not a variable reference"),
    ],
)
def test_check_references_refuses_what_cannot_resolve(text: str, hints: SchemaHints, says: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        check_references(text, hints, "testing_criteria[1].reference")
    assert e.value.param == "testing_criteria[1].reference"
    assert e.value.message.startswith("Invalid 'testing_criteria[1].reference': ")
    assert says in e.value.message


def test_open_schemas_allow_unlisted_fields() -> None:
    open_schema = {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": True}
    check_references("{{item.b}}", SchemaHints(open_schema, False), "p")
    schema_extra = {"type": "object", "properties": {"a": {}}, "additionalProperties": {"type": "string"}}
    check_references("{{item.b}}", SchemaHints(schema_extra, False), "p")
