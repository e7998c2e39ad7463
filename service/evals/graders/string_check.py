"""``string_check``: compare the rendered ``input`` with the rendered ``reference``.

eq / ne: exact (case-sensitive) equality / inequality; like: the input contains the reference
(case-sensitive); ilike: the same, ignoring case. Score 1.0 or 0.0; passed when the score is 1."""

from __future__ import annotations

import builtins
from collections.abc import Callable

from pydantic import BaseModel

from service.evals.graders.base import GradeResult, GraderOptions, Judge, Namespaces, SchemaHints
from service.evals.graders.template import check_references, render
from service.protocol.graders import StringCheckGrader

OPERATIONS: dict[str, Callable[[str, str], bool]] = {
    "eq": lambda text, ref: text == ref,
    "ne": lambda text, ref: text != ref,
    "like": lambda text, ref: ref in text,
    "ilike": lambda text, ref: ref.casefold() in text.casefold(),
}


class StringCheck:
    type = "string_check"
    wire: builtins.type[BaseModel] = StringCheckGrader

    def check(self, spec: StringCheckGrader, hints: SchemaHints, options: GraderOptions, param: str) -> None:
        check_references(spec.input, hints, f"{param}.input")
        check_references(spec.reference, hints, f"{param}.reference")

    async def grade(
        self, spec: StringCheckGrader, ns: Namespaces, judge: Judge | None, options: GraderOptions
    ) -> GradeResult:
        ok = OPERATIONS[spec.operation](render(spec.input, ns), render(spec.reference, ns))
        return GradeResult(name=spec.name, type=self.type, score=1.0 if ok else 0.0, passed=ok)
