"""The describer of parameter errors (service.param_errors): every kind of wrong value a
pydantic request model can meet, worded as OpenAI words it, on real pydantic errors."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field, ValidationError, field_validator

from contract.methods import METHODS
from service.errors import InvalidRequest
from service.param_errors import (
    ParamError,
    describe,
    expectation,
    from_validation_error,
    invalid_choice,
    out_of_range,
    param_path,
    schema_at,
)
from service.protocol.common import Metadata, RequestModel
from service.protocol.fine_tuning import FineTuningJobCreateParams


class Inner(RequestModel):
    name: str
    size: Annotated[int, Field(ge=1, le=10)] = 1


class Body(RequestModel):
    count: Annotated[int, Field(ge=0, le=100)] = 0
    ratio: Annotated[float, Field(gt=0, le=2)] = 1.0
    flag: bool = False
    label: Annotated[str, Field(min_length=1, max_length=8)] = "x"
    kind: Literal["alpha", "beta", "gamma"] = "alpha"
    epochs: Annotated[int, Field(ge=1, le=50)] | Literal["auto"] = "auto"
    names: str | list[str] = "a"
    items: list[Inner] = []
    inner: Inner | None = None
    metadata: Metadata | None = None


def _error(data: Any, model: type[BaseModel] = Body) -> ParamError:
    with pytest.raises(ValidationError) as e:
        model.model_validate(data)
    return describe(e.value.errors(), schema=model.model_json_schema())


TYPE = "invalid_type"  # OpenAI's code for a value of the wrong JSON type
CASES = [
    # wrong JSON types: OpenAI's invalid_type
    (
        {"count": "3"},
        "count",
        "invalid_type",
        "Invalid type for 'count': expected an integer, but got a string instead.",
    ),
    (
        {"count": True},
        "count",
        "invalid_type",
        "Invalid type for 'count': expected an integer, but got a boolean instead.",
    ),
    (
        {"count": 2.5},
        "count",
        "invalid_type",
        "Invalid type for 'count': expected an integer, but got a number instead.",
    ),
    (
        {"ratio": True},
        "ratio",
        "invalid_type",
        "Invalid type for 'ratio': expected a number, but got a boolean instead.",
    ),
    ({"flag": 1}, "flag", TYPE, "Invalid type for 'flag': expected a boolean, but got an integer instead."),
    (
        {"flag": "true"},
        "flag",
        "invalid_type",
        "Invalid type for 'flag': expected a boolean, but got a string instead.",
    ),
    ({"label": None}, "label", TYPE, "Invalid type for 'label': expected a string, but got null instead."),
    ({"items": {}}, "items", TYPE, "Invalid type for 'items': expected an array, but got an object instead."),
    ({"inner": []}, "inner", TYPE, "Invalid type for 'inner': expected an object, but got an array instead."),
    # numeric bounds: OpenAI's integer_/decimal_ below_min / above_max
    (
        {"count": -1},
        "count",
        "integer_below_min_value",
        "Invalid 'count': integer below minimum value. Expected a value >= 0, but got -1 instead.",
    ),
    (
        {"count": 101},
        "count",
        "integer_above_max_value",
        "Invalid 'count': integer above maximum value. Expected a value <= 100, but got 101 instead.",
    ),
    (
        {"ratio": 0},
        "ratio",
        "integer_below_min_value",
        "Invalid 'ratio': integer below minimum value. Expected a value > 0, but got 0 instead.",
    ),
    (
        {"ratio": 2.5},
        "ratio",
        "decimal_above_max_value",
        "Invalid 'ratio': decimal above maximum value. Expected a value <= 2, but got 2.5 instead.",
    ),
    # strings
    (
        {"label": "x" * 9},
        "label",
        "string_above_max_length",
        "Invalid 'label': string too long. Expected a string with maximum length 8, "
        "but got a string with length 9 instead.",
    ),
    (
        {"label": ""},
        "label",
        None,
        "Invalid 'label': string too short. Expected a string with minimum length 1, but got an empty string instead.",
    ),
    # choices
    (
        {"kind": "delta"},
        "kind",
        "invalid_value",
        "Invalid value for 'kind': 'delta'. Supported values are: 'alpha', 'beta', and 'gamma'.",
    ),
    # a union is described by the field's declared constraints (its JSON schema)
    (
        {"epochs": 60},
        "epochs",
        "integer_above_max_value",
        "Invalid value for 'epochs': expected an integer from 1 to 50, or 'auto', but got 60 instead.",
    ),
    (
        {"epochs": "many"},
        "epochs",
        "invalid_value",
        "Invalid value for 'epochs': expected an integer from 1 to 50, or 'auto', but got 'many' instead.",
    ),
    (
        {"epochs": True},
        "epochs",
        "invalid_type",
        "Invalid type for 'epochs': expected an integer from 1 to 50, or 'auto', but got a boolean instead.",
    ),
    (
        {"names": 5},
        "names",
        "invalid_type",
        "Invalid type for 'names': expected a string, or an array, but got an integer instead.",
    ),
    # inside the branch the value took: the inner error, at its own path
    (
        {"names": ["a", 5]},
        "names[1]",
        "invalid_type",
        "Invalid type for 'names[1]': expected a string, but got an integer instead.",
    ),
    # nested fields, list indexes in brackets (as OpenAI's param shows them)
    (
        {"items": [{"name": "a"}, {"name": "b", "size": 11}]},
        "items[1].size",
        "integer_above_max_value",
        "Invalid 'items[1].size': integer above maximum value. Expected a value <= 10, but got 11 instead.",
    ),
    ({"items": [{}]}, "items[0].name", "missing_required_parameter", "Missing required parameter: 'items[0].name'."),
    (
        {"inner": {"name": "a", "colour": 1}},
        "inner.colour",
        None,
        "Unrecognized request argument supplied: inner.colour",
    ),
    # missing and unknown
    ({"colour": 1}, "colour", None, "Unrecognized request argument supplied: colour"),
    # the metadata map: pairs, key and value lengths, value types
    (
        {"metadata": {f"k{i}": "v" for i in range(17)}},
        "metadata",
        None,
        "Invalid 'metadata': too many keys. Expected an object with at most 16 keys, but got 17 instead.",
    ),
    (
        {"metadata": {"k" * 65: "v"}},
        "metadata." + "k" * 65,
        "string_above_max_length",
        "Invalid key in 'metadata': string too long. Expected a string with maximum length 64, "
        "but got a string with length 65 instead.",
    ),
    (
        {"metadata": {"k": "v" * 513}},
        "metadata.k",
        "string_above_max_length",
        "Invalid 'metadata.k': string too long. Expected a string with maximum length 512, "
        "but got a string with length 513 instead.",
    ),
    (
        {"metadata": {"k": 1}},
        "metadata.k",
        "invalid_type",
        "Invalid type for 'metadata.k': expected a string, but got an integer instead.",
    ),
]


@pytest.mark.parametrize(("data", "param", "code", "message"), CASES, ids=[str(c[0])[:40] for c in CASES])
def test_each_kind_of_wrong_value(data: dict[str, Any], param: str, code: str | None, message: str) -> None:
    error = _error(data)
    assert (error.param, error.code, error.message) == (param, code, message)


def test_missing_top_level_field() -> None:
    error = _error({}, Inner)
    assert (error.message, error.param, error.code) == (
        "Missing required parameter: 'name'.",
        "name",
        "missing_required_parameter",
    )


def test_fastapi_locations_drop_their_source_and_query_values_are_shown() -> None:
    query = [{"type": "int_parsing", "loc": ("query", "limit"), "msg": "...", "input": "ten"}]
    error = describe(query)
    assert (error.param, error.code) == ("limit", "invalid_type")
    assert error.message == "Invalid 'limit': expected an integer, but got 'ten' instead."
    empty = [{"type": "missing", "loc": ("body",), "msg": "...", "input": None}]
    assert (describe(empty).message, describe(empty).param) == (
        "The request body is missing: send a JSON object.",
        None,
    )
    body = [{"type": "model_attributes_type", "loc": ("body",), "msg": "...", "input": [1]}]
    assert describe(body).message == "The request body must be a JSON object."
    broken = [{"type": "json_invalid", "loc": ("body", 5), "msg": "...", "input": {}, "ctx": {"error": "bad"}}]
    assert describe(broken).message == "We could not parse the JSON body of your request: bad."


def test_a_custom_validator_message_is_kept() -> None:
    class Validated(RequestModel):
        name: str

        @field_validator("name")
        @classmethod
        def _check(cls, v: str) -> str:
            if v == "bad":
                raise ValueError("name may not be 'bad'")
            return v

    error = _error({"name": "bad"}, Validated)
    assert error.message == "Invalid value for 'name': name may not be 'bad'."
    assert error.param == "name"


# --------------------------------------------------------------------------- hyperparameters


@pytest.mark.parametrize(
    ("hyperparameters", "code", "message"),
    [
        (
            {"n_epochs": 60},
            "integer_above_max_value",
            "Invalid 'method.supervised.hyperparameters.n_epochs': n_epochs must be an integer from 1 to 50, "
            "or 'auto', but got 60 instead.",
        ),
        (
            {"n_epochs": 0},
            "integer_below_min_value",
            "Invalid 'method.supervised.hyperparameters.n_epochs': n_epochs must be an integer from 1 to 50, "
            "or 'auto', but got 0 instead.",
        ),
        (
            {"batch_size": "8"},
            "invalid_value",
            "Invalid value for 'method.supervised.hyperparameters.batch_size': batch_size must be an integer "
            "from 1 to 256, or 'auto', but got '8' instead.",
        ),
        (
            {"lora_rank": "8"},
            "invalid_type",
            "Invalid type for 'method.supervised.hyperparameters.lora_rank': lora_rank must be an integer "
            "from 1 to 1,024, but got a string instead.",
        ),
        (
            {"batch_size": True},
            "invalid_type",
            "Invalid type for 'method.supervised.hyperparameters.batch_size': batch_size must be an integer "
            "from 1 to 256, or 'auto', but got a boolean instead.",
        ),
        (
            {"learning_rate_multiplier": 0},
            "integer_below_min_value",
            "Invalid 'method.supervised.hyperparameters.learning_rate_multiplier': learning_rate_multiplier must "
            "be a number greater than 0 and at most 10, or 'auto', but got 0 instead.",
        ),
        (
            {"learning_rate_multiplier": 10.5},
            "decimal_above_max_value",
            "Invalid 'method.supervised.hyperparameters.learning_rate_multiplier': learning_rate_multiplier must "
            "be a number greater than 0 and at most 10, or 'auto', but got 10.5 instead.",
        ),
        (
            {"training_type": "adapter"},
            "invalid_value",
            "Invalid value for 'method.supervised.hyperparameters.training_type': training_type must be 'lora' "
            "or 'qlora' or 'full', but got 'adapter' instead.",
        ),
        (
            {"checkpoint_interval": 2.5},
            "invalid_type",
            "Invalid type for 'method.supervised.hyperparameters.checkpoint_interval': checkpoint_interval must "
            "be 'epoch' or a positive integer number of steps, but got a number instead.",
        ),
    ],
)
def test_hyperparameter_messages_name_the_range(hyperparameters: dict[str, Any], code: str, message: str) -> None:
    body = {
        "model": "m",
        "training_file": "file-x",
        "method": {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}},
    }
    error = _error(body, FineTuningJobCreateParams)
    assert (error.code, error.message) == (code, message)
    assert error.param == "method.supervised.hyperparameters." + next(iter(hyperparameters))


def test_a_model_validated_later_is_told_like_the_same_model_in_a_body() -> None:
    """The method registry's hyperparameters validated from a dict (as a service does with a
    stored or separately sent value) get the same message and path as inside the request."""
    model = METHODS.get("dpo").hyperparameters
    with pytest.raises(ValidationError) as e:
        model.model_validate({"beta": 3})
    prefix = ("method", "dpo", "hyperparameters")
    later = from_validation_error(e.value, prefix=prefix)
    assert isinstance(later, InvalidRequest)
    body = {"model": "m", "training_file": "f", "method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 3}}}}
    inline = _error(body, FineTuningJobCreateParams)
    assert (later.message, later.param, later.code) == (inline.message, inline.param, inline.code)
    assert later.message == (
        "Invalid 'method.dpo.hyperparameters.beta': beta must be a number greater than 0 and at most 2, "
        "or 'auto', but got 3 instead."
    )


def test_a_tagged_unions_tag_is_not_a_field() -> None:
    """pydantic puts a discriminated union's tag value in the error location
    (``grader.string_check.operation``); the param names the field as OpenAI does, at any depth."""
    from service.protocol.graders import ValidateGraderParams

    inner = {"type": "string_check", "name": "s", "input": "a", "reference": "b", "operation": "regex"}
    top = _error({"grader": inner}, ValidateGraderParams)
    assert (top.param, top.code) == ("grader.operation", "invalid_value")
    nested = {"type": "multi", "name": "m", "calculate_output": "s", "graders": {"s": inner}}
    assert _error({"grader": nested}, ValidateGraderParams).param == "grader.graders.s.operation"
    unknown = _error({"grader": {**inner, "type": "regex"}}, ValidateGraderParams)
    assert (unknown.param, unknown.code) == ("grader.type", "invalid_value")
    assert unknown.message.startswith("Invalid value for 'grader.type': 'regex'. Supported values are: 'string_check',")
    untagged = _error({"grader": {"name": "s"}}, ValidateGraderParams)
    assert (untagged.param, untagged.message) == ("grader.type", "Missing required parameter: 'grader.type'.")


# --------------------------------------------------------------------------- builders and schema words


def test_builders_for_checks_done_by_hand() -> None:
    low = out_of_range("limit", 0, minimum=1, maximum=100)
    assert (low.message, low.param, low.code) == (
        "Invalid 'limit': integer below minimum value. Expected a value >= 1, but got 0 instead.",
        "limit",
        "integer_below_min_value",
    )
    high = out_of_range("limit", 101, minimum=1, maximum=100)
    assert high.code == "integer_above_max_value" and "Expected a value <= 100, but got 101" in high.message
    with pytest.raises(ValueError):
        out_of_range("limit", 5, minimum=1, maximum=100)
    choice = invalid_choice("order", "up", ("asc", "desc"))
    assert (choice.message, choice.param, choice.code) == (
        "Invalid value for 'order': 'up'. Supported values are: 'asc' and 'desc'.",
        "order",
        "invalid_value",
    )


def test_param_paths() -> None:
    assert param_path(("integrations", 0, "wandb", "project")) == "integrations[0].wandb.project"
    assert param_path(("metadata", "a.b")) == "metadata.a.b"
    assert param_path(()) is None
    long = param_path(("x" * 10_000,))
    assert long is not None and len(long) == 256 and long.endswith("...")


def test_schema_words() -> None:
    schema = Body.model_json_schema()
    assert expectation(schema_at(schema, ("count",))) == "an integer from 0 to 100"
    assert expectation(schema_at(schema, ("ratio",))) == "a number greater than 0 and at most 2"
    assert expectation(schema_at(schema, ("label",))) == "a string of 1 to 8 characters"
    assert expectation(schema_at(schema, ("kind",))) == "one of 'alpha', 'beta', 'gamma'"
    assert expectation(schema_at(schema, ("inner", "size"))) == "an integer from 1 to 10"
    assert expectation(schema_at(schema, ("items", 3, "name"))) == "a string"
    assert expectation(schema_at(schema, ("inner",))) == "an object, or null"
    assert schema_at(schema, ("nothing",)) is None
    hp = FineTuningJobCreateParams.model_json_schema()
    path = ("method", "supervised", "hyperparameters", "n_epochs")
    assert expectation(schema_at(hp, path)) == "an integer from 1 to 50, or 'auto'"


# --------------------------------------------------------------------------- every request model


def _request_models() -> list[type[BaseModel]]:
    """The body model of every public route of every router in service/api (new ones included)."""
    import importlib
    import pkgutil

    from fastapi.routing import APIRoute

    import service.api

    found: dict[str, type[BaseModel]] = {}
    for info in pkgutil.iter_modules(service.api.__path__):
        router = getattr(importlib.import_module(f"service.api.{info.name}"), "router", None)
        for route in getattr(router, "routes", []):
            if not isinstance(route, APIRoute) or route.path.startswith("/internal/"):
                continue  # the trainer's reports: not an OpenAI surface, extra fields allowed
            field = route.body_field
            model = getattr(getattr(field, "field_info", None), "annotation", None)
            if isinstance(model, type) and issubclass(model, BaseModel):
                found[f"{model.__module__}.{model.__qualname__}"] = model
    return [found[k] for k in sorted(found)]


_WRONG: list[Any] = [{"x": 1}, 12345, "x", True, [1], None, 1.5]


@pytest.mark.parametrize("model", _request_models(), ids=lambda m: m.__name__)
def test_every_request_model_words_every_wrong_value(model: type[BaseModel]) -> None:
    """Each field of each request body, given each kind of JSON value it refuses, is told in
    OpenAI's words at its own param (never pydantic's "Input should ..."); unknown fields are
    refused by name."""
    assert model.model_config.get("extra") == "forbid", f"{model.__name__} accepts unknown fields"
    with pytest.raises(ValidationError) as e:
        model.model_validate({"__unknown__": 1})
    extra = [err for err in e.value.errors() if err["type"] == "extra_forbidden"]
    assert describe(extra).message == "Unrecognized request argument supplied: __unknown__"
    schema = model.model_json_schema()
    told = 0
    for name, field in model.model_fields.items():
        key = field.alias or name
        for value in _WRONG:
            try:
                model.model_validate({key: value})
                continue
            except ValidationError as exc:
                errors = [err for err in exc.errors() if err["loc"][:1] == (key,)]
            if not errors:
                continue  # this value is fine for the field (another field's absence was the error)
            error = describe(errors, schema=schema)
            assert error.param is not None and error.param.split(".")[0].split("[")[0] == key, (key, value, error)
            assert error.message.startswith(("Invalid ", "Missing required parameter", "Unrecognized")), error
            for pydantic_words in ("Input should", "should have", "Value error", "valid dictionary"):
                assert pydantic_words not in error.message, (key, value, error)
            told += 1
    assert told > 0


def test_request_models_take_json_values_as_they_are() -> None:
    """RequestModel bodies never coerce: ``true`` is not 1, ``"5"`` is not 5, 1.5 is not an
    integer (pydantic's lax mode takes all three), in nested request models too."""
    for bad in ({"seed": True}, {"seed": "5"}, {"seed": 1.5}):
        error = _error({"model": "m", "training_file": "f", **bad}, FineTuningJobCreateParams)
        assert (error.param, error.code) == ("seed", "invalid_type")
    nested = {"model": "m", "training_file": "f", "integrations": [{"type": "wandb", "wandb": {"project": 5}}]}
    error = _error(nested, FineTuningJobCreateParams)
    assert (error.param, error.code) == ("integrations[0].wandb.project", "invalid_type")
    assert FineTuningJobCreateParams.model_validate({"model": "m", "training_file": "f", "seed": 5}).seed == 5
