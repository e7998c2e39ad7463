"""``multi``: several graders on the same item, their scores combined by ``calculate_output``,
a formula over the inner graders' names (each the key of ``graders``; a single grader sent
without a map is named by its own ``name``). The formula is evaluated by simpleeval: numbers,
``+ - * / ^`` (``^`` is a power, as OpenAI's formulas write it; ``**`` works too), parentheses,
comparisons, and the functions min, max, abs, floor, ceil, exp, sqrt, log. Nothing else: no
attribute access, no other names.

``reward`` is the formula's value, ``sub_rewards`` each inner grader's score; passed when every
inner grader passed (multi has no pass threshold of its own)."""

from __future__ import annotations

import ast
import asyncio
import builtins
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel
from simpleeval import DEFAULT_OPERATORS, SimpleEval  # type: ignore[import-untyped]

from service.errors import InvalidRequest, shown
from service.evals.graders.base import GradeError, GradeResult, GraderOptions, Judge, Namespaces, SchemaHints
from service.protocol.graders import MultiGrader, TestingCriterion

FUNCTIONS: dict[str, Callable[..., Any]] = {
    "min": min,
    "max": max,
    "abs": abs,
    "floor": math.floor,
    "ceil": math.ceil,
    "exp": math.exp,
    "sqrt": math.sqrt,
    "log": math.log,
}


def _in_floats(op: Callable[[float, float], float]) -> Callable[[Any, Any], float]:
    """``op`` on floats: a formula's literals are Python ints, and int arithmetic is exact and
    unbounded (``3999999 ** 3999999`` held the event loop for minutes; simpleeval's own guard
    allows it). In floats every step is O(1) and an overflow is an OverflowError."""
    return lambda a, b: op(float(a), float(b))


OPERATORS: dict[type, Any] = {
    **DEFAULT_OPERATORS,
    ast.Add: _in_floats(operator.add),
    ast.Sub: _in_floats(operator.sub),
    ast.Mult: _in_floats(operator.mul),
    ast.Div: _in_floats(operator.truediv),
    ast.FloorDiv: _in_floats(operator.floordiv),
    ast.Mod: _in_floats(operator.mod),
    ast.Pow: _in_floats(operator.pow),
}


def _python(formula: str) -> str:
    """The formula in Python's syntax: OpenAI's ``^`` is a power, which binds tighter than
    ``*`` as ``**`` does (Python's ``^``, a bitwise xor, binds looser than ``+``)."""
    return formula.strip().replace("^", "**")


class FormulaError(Exception):
    pass


def inner_graders(spec: MultiGrader) -> dict[str, TestingCriterion]:
    """The inner graders by the name the formula uses."""
    graders = spec.graders
    if isinstance(graders, Mapping):
        return dict(graders)
    return {graders.name: graders}


def formula_names(formula: str) -> tuple[set[str], set[str]]:
    """(variables, functions) the formula uses. Raises FormulaError when it does not parse."""
    try:
        tree = ast.parse(_python(formula), mode="eval")
    except SyntaxError as e:
        at = f" at column {e.offset}" if e.offset is not None else ""
        raise FormulaError(f"the formula does not parse: {e.msg}{at}") from None
    except (RecursionError, MemoryError):  # e.g. 100,000 terms "a+a+...": the parser's own limits
        raise FormulaError("the formula does not parse: it is nested too deeply") from None
    except ValueError as e:  # a NUL character
        raise FormulaError(f"the formula does not parse: {e}") from None
    called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    return names - called, called


def evaluate(formula: str, scores: Mapping[str, float]) -> float:
    """The formula's value with each name bound to its grader's score."""
    evaluator = SimpleEval(operators=OPERATORS, functions=FUNCTIONS, names=dict(scores))
    try:
        value = evaluator.eval(_python(formula))
    except Exception as e:  # simpleeval's own errors and arithmetic (ZeroDivisionError, math domain)
        raise FormulaError(f"the formula could not be computed: {e}") from None
    try:
        number = float(value) if isinstance(value, int | float) else math.nan  # bool is an int
    except OverflowError:  # an int beyond floats (floor(), a bare literal)
        number = math.inf
    if not math.isfinite(number):
        raise FormulaError(f"the formula gave {shown(repr(value), 64)}, not a finite number")
    return number


class Multi:
    type = "multi"
    wire: builtins.type[BaseModel] = MultiGrader

    def check(self, spec: MultiGrader, hints: SchemaHints, options: GraderOptions, param: str) -> None:
        from service.evals.graders import registry  # the registry holds this grader too

        inner = inner_graders(spec)
        if not inner:
            raise InvalidRequest(f"Invalid '{param}.graders': give at least one grader.", param=f"{param}.graders")
        for key, grader in inner.items():
            where = f"{param}.graders.{key}" if isinstance(spec.graders, Mapping) else f"{param}.graders"
            registry.check(grader, hints, options, where)
        where = f"{param}.calculate_output"
        try:
            variables, called = formula_names(spec.calculate_output)
        except FormulaError as e:
            raise InvalidRequest(f"Invalid '{where}': {e}", param=where) from None
        unknown_functions = sorted(called - set(FUNCTIONS))
        if unknown_functions:
            raise InvalidRequest(
                f"Invalid '{where}': unknown function '{shown(unknown_functions[0], 64)}'; use {', '.join(FUNCTIONS)}.",
                param=where,
            )
        unknown = sorted(variables - set(inner))
        if unknown:
            raise InvalidRequest(
                f"Invalid '{where}': '{shown(unknown[0], 64)}' is not a grader of this multi grader "
                f"(its graders: {shown(', '.join(inner))}).",
                param=where,
            )

    async def grade(
        self, spec: MultiGrader, ns: Namespaces, judge: Judge | None, options: GraderOptions
    ) -> GradeResult:
        from service.evals.graders import registry

        inner = inner_graders(spec)
        graded = await asyncio.gather(*(registry.grade(g, ns, judge, options) for g in inner.values()))
        results = dict(zip(inner, graded, strict=True))
        scores = {key: r.score for key, r in results.items()}
        usage = [u for r in results.values() for u in r.usage]
        samples = {key: r.sample for key, r in results.items() if r.sample is not None}
        out = GradeResult(spec.name, self.type, 0.0, False, sample=samples or None, usage=usage, sub_rewards=scores)
        failed = next(((key, r.error) for key, r in results.items() if r.error is not None), None)
        if failed is not None:
            key, error = failed
            out.error = GradeError(error.flag, f"grader {key!r}: {error.message}")
            return out
        try:
            out.score = evaluate(spec.calculate_output, scores)
        except FormulaError as e:
            out.error = GradeError("formula_parse_error", str(e))
            return out
        out.passed = all(r.passed for r in results.values())
        return out
