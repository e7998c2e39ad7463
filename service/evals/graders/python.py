"""``python``: the caller's ``grade(sample, item) -> float`` run in hone's sandbox
(service.evals.sandbox: a subprocess with no network, a read-only filesystem, CPU-time, memory
and wall-clock limits). It runs user code, so it is refused unless an operator enables it
(``HONE_EVALS__PYTHON_GRADER__ENABLED=true``). ``image_tag`` names OpenAI's grader images and
is accepted and ignored: the sandbox runs the control plane's own Python.

A grade that raises, returns something other than a finite number, or passes a limit is the
item's ``python_grader_runtime_error``; a sandbox that could not start, a
``python_grader_server_error``. passed: score >= ``pass_threshold`` (1.0 when absent)."""

from __future__ import annotations

import ast
import asyncio
import builtins
import math

from pydantic import BaseModel

from service.errors import InvalidRequest
from service.evals.graders.base import ErrorFlag, GradeError, GradeResult, GraderOptions, Judge, Namespaces, SchemaHints
from service.evals.sandbox import SandboxError, run_python_grade
from service.protocol.graders import PythonGrader

ENABLE_HINT = "the python grader runs user code; an operator enables it with HONE_EVALS__PYTHON_GRADER__ENABLED=true"
FLAGS: dict[str, ErrorFlag] = {
    "runtime": "python_grader_runtime_error",
    "limit": "python_grader_runtime_error",
    "server": "python_grader_server_error",
}


class Python:
    type = "python"
    wire: builtins.type[BaseModel] = PythonGrader

    def check(self, spec: PythonGrader, hints: SchemaHints, options: GraderOptions, param: str) -> None:
        if not options.python.enabled:
            raise InvalidRequest(f"Invalid '{param}.type': {ENABLE_HINT}.", param=f"{param}.type")
        where = f"{param}.source"
        try:
            tree = ast.parse(spec.source)
        except SyntaxError as e:
            raise InvalidRequest(f"Invalid '{where}': line {e.lineno}: {e.msg}.", param=where) from None
        if not any(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == "grade" for n in tree.body):
            raise InvalidRequest(
                f"Invalid '{where}': define a function grade(sample: dict, item: dict) -> float.", param=where
            )

    async def grade(
        self, spec: PythonGrader, ns: Namespaces, judge: Judge | None, options: GraderOptions
    ) -> GradeResult:
        sample = dict(ns.sample) if ns.sample is not None else None
        try:
            score = await asyncio.to_thread(run_python_grade, spec.source, sample, dict(ns.item), options.python)
        except SandboxError as e:
            flag = FLAGS.get(e.kind, "python_grader_server_error")
            return GradeResult(spec.name, self.type, 0.0, False, error=GradeError(flag, e.message))
        if not math.isfinite(score):
            error = GradeError("python_grader_runtime_error", f"grade() returned {score}, not a finite number")
            return GradeResult(spec.name, self.type, 0.0, False, error=error)
        threshold = 1.0 if spec.pass_threshold is None else spec.pass_threshold
        return GradeResult(spec.name, self.type, float(score), score >= threshold)
