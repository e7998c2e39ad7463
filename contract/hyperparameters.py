"""Typed hyperparameters, one pydantic model per method (``contract.methods`` names which).

The same model is the API's request type (OpenAI's fields accept ``"auto"``), what the job
stores, and what the trainer reads from its ``JobSpec`` once every ``"auto"`` is resolved
(``resolve(n_examples)``, when validation has counted the training examples). Every value is
bounded and finite, and a wrong value gets a message that names the field and its range
("n_epochs must be an integer from 1 to 50, or 'auto'").

OpenAI's fields: ``batch_size``, ``learning_rate_multiplier``, ``n_epochs`` (and ``beta`` for
DPO). hone's extensions (LoRA shape, training type, checkpoints, warmup, micro-batch size) sit
beside them with defaults, so a request written for OpenAI means the same thing here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StrictBool,
    ValidationInfo,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

Auto = Literal["auto"]
AUTO: Auto = "auto"
TrainingType = Literal["lora", "qlora", "full"]
_MODULE = re.compile(r"^[A-Za-z0-9_.]{1,64}$")
MAX_TARGET_MODULES = 64


@dataclass(frozen=True)
class _Checked:
    """A field's whole validation (one function, so the message can name the range) and the
    JSON schema it stands for in hone's OpenAPI document."""

    check: Callable[[Any, ValidationInfo], Any]
    schema: dict[str, Any]

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.with_info_plain_validator_function(self.check)

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return dict(self.schema)


def _fail(info: ValidationInfo, expected: str, problem: str = "value") -> PydanticCustomError:
    """``problem`` says what kind of wrong (``type``, ``below``, ``above`` or ``value``) for the
    API's error code; the message is the same rule either way."""
    return PydanticCustomError(
        "hyperparameter_range",
        "{field} must be {expected}",
        {"field": info.field_name or "value", "expected": expected, "problem": problem},
    )


def _fmt(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


def _number(
    kind: type,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    high_open: bool = False,
    auto: bool = False,
    optional: bool = False,
) -> Any:
    """An int or float field bounded to [low, high] (open ends where asked), finite, never a
    bool; ``auto`` also accepts the string "auto", ``optional`` also accepts null."""
    noun = "an integer" if kind is int else "a number"
    lower = f"greater than {_fmt(low)}" if low_open else f"from {_fmt(low)}"
    upper = (
        f"up to (not including) {_fmt(high)}"
        if high_open
        else f"and at most {_fmt(high)}"
        if low_open
        else f"to {_fmt(high)}"
    )
    expected = f"{noun} {lower} {upper}" + (", or 'auto'" if auto else "") + (", or null" if optional else "")

    def check(value: Any, info: ValidationInfo) -> Any:
        if auto and value == AUTO:
            return value
        if optional and value is None:
            return value
        numeric = (int,) if kind is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, numeric):
            raise _fail(info, expected, "value" if auto and isinstance(value, str) else "type")
        if math.isnan(value):
            raise _fail(info, expected)
        if value < low or (low_open and value == low):
            raise _fail(info, expected, "below")
        if value > high or (high_open and value == high):
            raise _fail(info, expected, "above")
        return kind(value)

    number: dict[str, Any] = {"type": "integer" if kind is int else "number"}
    number["exclusiveMinimum" if low_open else "minimum"] = low
    number["exclusiveMaximum" if high_open else "maximum"] = high
    options = (
        [number] + ([{"type": "string", "enum": [AUTO]}] if auto else []) + ([{"type": "null"}] if optional else [])
    )
    schema = options[0] if len(options) == 1 else {"anyOf": options}
    return _Checked(check, schema)


def _choice(*words: str, steps: bool = False) -> _Checked:
    """One of ``words``, or (``steps``) a positive step count."""
    expected = " or ".join(f"'{w}'" for w in words) + (" or a positive integer number of steps" if steps else "")

    def check(value: Any, info: ValidationInfo) -> Any:
        if value in words and isinstance(value, str):
            return value
        if steps and isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 10**9:
            return value
        a_step = steps and isinstance(value, int) and not isinstance(value, bool)
        wrong_type = not isinstance(value, str) and not a_step
        raise _fail(info, expected, "type" if wrong_type else "value")

    options: list[dict[str, Any]] = [{"type": "string", "enum": list(words)}]
    if steps:
        options.append({"type": "integer", "minimum": 1, "maximum": 10**9})
    return _Checked(check, options[0] if len(options) == 1 else {"anyOf": options})


def _target_modules() -> _Checked:
    expected = (
        f"'all-linear' or a list of 1 to {MAX_TARGET_MODULES} module names "
        "(letters, digits, '_' and '.', at most 64 characters each)"
    )

    def check(value: Any, info: ValidationInfo) -> Any:
        if value == "all-linear":
            return value
        if (
            isinstance(value, list)
            and 1 <= len(value) <= MAX_TARGET_MODULES
            and all(isinstance(v, str) and _MODULE.fullmatch(v) for v in value)
        ):
            return list(value)
        raise _fail(info, expected, "value" if isinstance(value, (str, list)) else "type")

    schema = {
        "anyOf": [
            {"type": "string", "enum": ["all-linear"]},
            {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_TARGET_MODULES,
                "items": {"type": "string", "pattern": _MODULE.pattern},
            },
        ]
    }
    return _Checked(check, schema)


def _doc(text: str, values: str) -> Any:
    """Field documentation: what it does, and the values it takes (docs/hyperparameters.md)."""
    return Field(description=text, json_schema_extra={"x-values": values})


class Hyperparameters(BaseModel):
    """What every method takes. Subclasses add their own fields and ``"auto"`` rules."""

    model_config = ConfigDict(extra="forbid")

    # OpenAI's
    batch_size: Annotated[
        int | Auto, _number(int, 1, 256, auto=True), _doc("examples per optimizer step", "1-256 or auto")
    ] = AUTO
    learning_rate_multiplier: Annotated[
        float | Auto,
        _number(float, 0, 10, low_open=True, auto=True),
        _doc("multiplies the method's base learning rate", "(0, 10] or auto"),
    ] = AUTO
    n_epochs: Annotated[
        int | Auto, _number(int, 1, 50, auto=True), _doc("passes over the training file", "1-50 or auto")
    ] = AUTO
    # hone's extensions
    training_type: Annotated[
        TrainingType,
        _choice("lora", "qlora", "full"),
        _doc(
            "LoRA, QLoRA (4-bit base, CUDA only) or full fine-tuning; qlora is refused "
            "with 400 where trainers run on CPU",
            "lora, qlora, full",
        ),
    ] = "lora"
    lora_rank: Annotated[
        int,
        _number(int, 1, 1024),
        _doc("LoRA rank; above the base model's max_lora_rank is refused (serving could not load it)", "1-1024"),
    ] = 16
    lora_alpha: Annotated[
        float,
        _number(float, 0, 4096, low_open=True),
        _doc("LoRA scaling numerator (scale = alpha / rank)", "(0, 4096]"),
    ] = 32.0
    lora_dropout: Annotated[float, _number(float, 0, 1, high_open=True), _doc("dropout on the LoRA path", "[0, 1)")] = (
        0.05
    )
    target_modules: Annotated[
        str | list[str],
        _target_modules(),
        _doc(
            "layers that get LoRA adapters; lm_head and embeddings are refused (vLLM cannot hot-swap them)",
            "all-linear or a list of module names",
        ),
    ] = "all-linear"
    checkpoint_interval: Annotated[
        str | int,
        _choice("epoch", steps=True),
        _doc(
            "a checkpoint (with everything a resume needs) at each interval; the newest 3 are kept",
            "epoch or a step count",
        ),
    ] = "epoch"
    warmup_ratio: Annotated[
        float,
        _number(float, 0, 1, high_open=True),
        _doc("share of the steps with a linear learning-rate warmup, then linear decay to 0", "[0, 1)"),
    ] = 0.03
    max_tokens_per_micro_batch: Annotated[
        int | None,
        _number(int, 128, 1 << 20, optional=True),
        _doc(
            "tokens in one packed forward pass; null lets the trainer's memory plan pick "
            "(at most 2,048 on SDPA, 16,384 with FlashAttention-2)",
            "128-1,048,576 or null",
        ),
    ] = None
    gradient_checkpointing: Annotated[
        StrictBool | None,
        _doc(
            "recompute each layer's activations in the backward pass instead of keeping them "
            "(about a third more compute, a fraction of the memory); null lets the memory plan decide",
            "true, false or null",
        ),
    ] = None

    @property
    def unresolved(self) -> list[str]:
        return [name for name in type(self).model_fields if getattr(self, name) == AUTO]

    def resolve(self, n_examples: int) -> Self:
        """Every ``"auto"`` replaced by its rule's value for a training file of ``n_examples``
        (OpenAI's published heuristics; docs/hyperparameters.md); explicit values kept."""
        values = self.auto_values(n_examples)
        return self.model_copy(update={k: v for k, v in values.items() if getattr(self, k) == AUTO})

    def auto_values(self, n_examples: int) -> dict[str, Any]:
        n_epochs = auto_n_epochs(n_examples) if self.n_epochs == AUTO else self.n_epochs
        batch = auto_batch_size(n_examples) if self.batch_size == AUTO else self.batch_size
        return {
            "n_epochs": n_epochs,
            "batch_size": batch,
            "learning_rate_multiplier": auto_learning_rate_multiplier(int(batch)),
        }

    def require_resolved(self) -> Self:
        if self.unresolved:
            raise ValueError(f"hyperparameters {self.unresolved} are still 'auto'; resolve them first")
        return self


class SupervisedHyperparameters(Hyperparameters):
    pass


class DpoHyperparameters(Hyperparameters):
    beta: Annotated[
        float | Auto,
        _number(float, 0, 2, low_open=True, auto=True),
        _doc("strength of the KL penalty towards the reference model", "(0, 2] or auto"),
    ] = AUTO

    def auto_values(self, n_examples: int) -> dict[str, Any]:
        return {**super().auto_values(n_examples), "beta": DEFAULT_BETA}


# The "auto" rules (OpenAI's published heuristic for n_epochs).
TARGET_EPOCHS, MIN_TARGET_EXAMPLES, MAX_TARGET_EXAMPLES = 3, 100, 25000
MIN_DEFAULT_EPOCHS, MAX_DEFAULT_EPOCHS = 1, 25
DEFAULT_BETA = 0.1


def auto_n_epochs(n: int) -> int:
    if n * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        return min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // max(n, 1))
    if n * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        return max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n)
    return TARGET_EPOCHS


def auto_batch_size(n: int) -> int:
    return max(1, min(256, math.ceil(n / 500), n))


def auto_learning_rate_multiplier(batch_size: int) -> float:
    if batch_size <= 4:
        return 2.0
    return 1.0 if batch_size <= 32 else 0.5


# How each "auto" resolves, in words (n = the training examples validation counts): what the API's
# methods listing (GET /v1/fine_tuning/methods) and the dashboard show beside each field.
AUTO_RULES: dict[str, str] = {
    "n_epochs": (
        f"{TARGET_EPOCHS}; if {TARGET_EPOCHS}n < {MIN_TARGET_EXAMPLES}: "
        f"min({MAX_DEFAULT_EPOCHS}, {MIN_TARGET_EXAMPLES} // n); if {TARGET_EPOCHS}n > {MAX_TARGET_EXAMPLES}: "
        f"max({MIN_DEFAULT_EPOCHS}, {MAX_TARGET_EXAMPLES} // n), where n is the number of training examples "
        "(OpenAI's published heuristic)"
    ),
    "batch_size": "ceil(n / 500) clamped to 1-256 and at most n, where n is the number of training examples",
    "learning_rate_multiplier": "2.0 if the batch size is at most 4, 1.0 if at most 32, else 0.5",
    "beta": f"{DEFAULT_BETA}",
}
