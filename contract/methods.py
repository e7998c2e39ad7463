"""The method registry: one entry per training method, and everything else derives from it.

An entry names the method's data format (which per-line rules the validator applies), its
typed hyperparameters (``contract.hyperparameters``: defaults, ranges, ``"auto"`` rules) and
the trainer recipe that runs it (``module:function``, imported by the trainer only). The API's
request types, the validator's rules, the defaults a job is created with, the trainer's
dispatch and the table in docs/hyperparameters.md are all read from here, so adding a method
is one entry here plus one recipe (docs/extending.md walks through it). An unknown method is
an error everywhere; nothing falls back to another method.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from contract.hyperparameters import AUTO, AUTO_RULES, DpoHyperparameters, Hyperparameters, SupervisedHyperparameters


class DataFormat(StrEnum):
    """The shape of one training line (OpenAI's fine-tuning formats)."""

    CHAT = "chat"  # {"messages": [...], "tools"?: [...]}
    PREFERENCE = (
        "preference"  # {"input": {"messages": [...]}, "preferred_output": [...], "non_preferred_output": [...]}
    )


@dataclass(frozen=True)
class MethodSpec:
    name: str  # OpenAI's ``method.type``
    data_format: DataFormat
    hyperparameters: type[Hyperparameters]
    recipe: str  # "module:function" the trainer runs: function(attempt) -> None
    summary: str


class UnknownMethod(ValueError):
    pass


SUPERVISED = MethodSpec(
    "supervised",
    DataFormat.CHAT,
    SupervisedHyperparameters,
    "trainer.sft:run",
    "supervised fine-tuning on chat conversations; loss on assistant turns",
)
DPO = MethodSpec(
    "dpo",
    DataFormat.PREFERENCE,
    DpoHyperparameters,
    "trainer.dpo:run",
    "Direct Preference Optimization on preferred / non-preferred answer pairs",
)

# OpenAI methods this server knows but does not run, with the reason the API gives.
REFUSED: dict[str, str] = {
    "reinforcement": "reinforcement fine-tuning needs graders and an online sampling loop, which this "
    "server does not run",
}
DEFAULT_METHOD = SUPERVISED.name  # what a request without ``method`` trains (OpenAI's legacy shape)


class MethodRegistry:
    def __init__(self, *methods: MethodSpec) -> None:
        self._methods = {m.name: m for m in methods}

    def __iter__(self) -> Iterator[MethodSpec]:
        return iter(self._methods.values())

    def __contains__(self, name: object) -> bool:
        return name in self._methods

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._methods)

    def get(self, name: str) -> MethodSpec:
        method = self._methods.get(name)
        if method is None:
            known = ", ".join(repr(n) for n in self._methods)
            raise UnknownMethod(f"unknown fine-tuning method {name!r} (known: {known})")
        return method


METHODS = MethodRegistry(SUPERVISED, DPO)


@dataclass(frozen=True)
class HyperparameterDoc:
    """One hyperparameter as documented: docs/hyperparameters.md's tables and the API's
    methods listing (GET /v1/fine_tuning/methods) both read these."""

    name: str
    default: object
    values: str
    description: str
    auto: str | None  # how "auto" resolves; None when the field takes no "auto"


def hyperparameter_docs(method: MethodSpec) -> list[HyperparameterDoc]:
    docs = []
    for name, field in method.hyperparameters.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        auto = AUTO_RULES.get(name) if field.default == AUTO else None
        docs.append(
            HyperparameterDoc(name, field.default, str(extra.get("x-values", "")), field.description or "", auto)
        )
    return docs


def hyperparameter_table(method: MethodSpec) -> str:
    """The Markdown table of one method's hyperparameters, as docs/hyperparameters.md shows it."""
    rows = ["| name | default | values | what it does |", "|---|---|---|---|"]
    for doc in hyperparameter_docs(method):
        default = "null" if doc.default is None else f"`{doc.default}`"
        rows.append(f"| `{doc.name}` | {default} | {doc.values} | {doc.description} |")
    return "\n".join(rows)
