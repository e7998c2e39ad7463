"""The method registry is the one list of methods: every entry has rules for its data format, a
request field, and a recipe the trainer can import; an unknown method fails loudly everywhere."""

from __future__ import annotations

import importlib

import pydantic
import pytest

from contract.hyperparameters import Hyperparameters
from contract.methods import METHODS, REFUSED, UnknownMethod
from contract.spec import JobSpec
from service.protocol.fine_tuning import FineTuningJobCreateParams, Method
from service.validation.dataset import RULES, validate_dataset
from tests.harness.records import job_spec


@pytest.mark.parametrize("method", list(METHODS), ids=lambda m: m.name)
def test_each_method_is_complete(method) -> None:  # type: ignore[no-untyped-def]
    assert method.data_format in RULES
    assert issubclass(method.hyperparameters, Hyperparameters)
    module, _, function = method.recipe.partition(":")
    assert callable(getattr(importlib.import_module(module), function))
    assert method.name in Method.model_fields  # the API accepts method.<name>.hyperparameters
    request = FineTuningJobCreateParams.model_validate(
        {
            "model": "m",
            "training_file": "f",
            "method": {"type": method.name, method.name: {"hyperparameters": {"n_epochs": 2}}},
        }
    )
    assert getattr(request.method, method.name).hyperparameters.n_epochs == 2


def test_unknown_methods_fail_loudly() -> None:
    with pytest.raises(UnknownMethod, match="unknown fine-tuning method 'orpo'.*'supervised', 'dpo'"):
        METHODS.get("orpo")
    with pytest.raises(pydantic.ValidationError, match="unknown fine-tuning method 'orpo'"):
        job_spec(method="orpo")
    with pytest.raises(UnknownMethod):
        validate_dataset(
            [b'{"messages": []}\n'],
            method="orpo",
            param="training_file",
            counter=None,  # type: ignore[arg-type]
            max_tokens=10,
            min_examples=1,
        )
    assert not set(REFUSED) & set(METHODS.names)


def test_a_spec_needs_resolved_hyperparameters_of_its_method() -> None:
    with pytest.raises(pydantic.ValidationError, match="still 'auto'"):
        job_spec(hyperparameters={"n_epochs": 1})
    spec = job_spec(
        method="dpo", hyperparameters={"n_epochs": 1, "batch_size": 2, "learning_rate_multiplier": 1.0, "beta": 0.2}
    )
    assert type(spec.hyperparameters).__name__ == "DpoHyperparameters"
    again = JobSpec.model_validate_json(spec.model_dump_json())  # the subclass's fields survive the wire
    assert again.hyperparameters.beta == 0.2  # type: ignore[attr-defined]
