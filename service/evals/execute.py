"""One eval run's plan (what its rows are, how each is sampled, which graders judge it) and the
execution of one row into the output item the runner records. Data sources are looked up by
``type`` in ``SAMPLERS``: ``jsonl`` rows carry their own sample, ``completions`` rows are sent
to a model through hone's gateway."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select

from service.context import AppContext
from service.db.schema import Eval, EvalRun, Project
from service.errors import HoneError
from service.evals import data_sources
from service.evals.graders import registry
from service.evals.graders.base import (
    GradeResult,
    GraderOptions,
    Judge,
    ModelCallError,
    Namespaces,
    Usage,
)
from service.evals.graders.template import TemplateError, lookup, render_messages, sample_namespace
from service.evals.item_source import DataSourceError, ItemSource, Row, open_source
from service.evals.leases import ItemRecord
from service.evals.models_client import GatewayModels
from service.models import service as models
from service.protocol import evals as wire
from service.protocol.graders import TestingCriterion

log = logging.getLogger(__name__)

_CRITERIA = TypeAdapter(list[TestingCriterion])
# the spec's defaults for a completions run's sampling_params (also what an output item shows)
DEFAULT_SAMPLING = {"temperature": 1.0, "top_p": 1.0, "seed": 42}
# an item's own messages (item_reference) go out as template.render_messages sends a template's:
# OpenAI's developer role as the system prompt of models that have no separate developer role
_ROLES = {"developer": "system"}


@dataclass
class Sampled:
    """A row's sample: the ``sample`` namespace graders read (None: the row has none), the
    output item's ``sample`` (wire shape), the tokens it used, and why it failed if it did."""

    namespace: dict[str, Any] | None
    wire: dict[str, Any]
    usage: list[Usage] = field(default_factory=list)
    error: dict[str, str] | None = None


class Sampler(Protocol):
    async def sample(self, row: Row) -> Sampled: ...


def _wire_sample(**given: Any) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "input": [],
        "output": [],
        "finish_reason": "",
        "model": "",
        "usage": {"total_tokens": 0, "completion_tokens": 0, "prompt_tokens": 0, "cached_tokens": 0},
        "error": None,
        "temperature": None,
        "max_completion_tokens": None,
        "top_p": None,
        "seed": None,
    }
    wire.update(given)
    return wire


def _usage_wire(u: Usage) -> dict[str, int]:
    return {
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "completion_tokens": u.completion_tokens,
        "prompt_tokens": u.prompt_tokens,
        "cached_tokens": u.cached_tokens,
    }


class JsonlSampler:
    """Pre-generated samples: the row's ``sample`` is the namespace (``output_text`` taken from
    it, or from its ``output`` messages; ``output_json`` parsed from the text unless given)."""

    async def sample(self, row: Row) -> Sampled:
        given = row.sample
        if given is None:
            return Sampled(namespace=None, wire=_wire_sample())
        text = given.get("output_text")
        output = given.get("output")
        if not isinstance(text, str):
            texts = [m.get("content") for m in output if isinstance(m, dict)] if isinstance(output, list) else []
            text = "".join(t for t in texts if isinstance(t, str))
        namespace = sample_namespace(text, **{k: v for k, v in given.items() if k != "output_text"})
        inputs = given.get("input")
        wire = _wire_sample(
            input=inputs if isinstance(inputs, list) else [],
            output=[{"role": "assistant", "content": text}],
            finish_reason=str(given.get("finish_reason") or ""),
            model=str(given.get("model") or ""),
        )
        return Sampled(namespace=namespace, wire=wire)


class CompletionsSampler:
    """Each row's messages (the template rendered for the row, or the row's own messages at
    ``item_reference``) sent to ``data_source.model`` through hone's gateway, with the run's
    sampling parameters (``max_completion_tokens`` is sent as vLLM's ``max_tokens``)."""

    def __init__(self, data_source: wire.CompletionsDataSource, gateway: GatewayModels) -> None:
        self.gateway = gateway
        self.model = data_source.model or ""
        given = data_source.input_messages
        self.item_reference = given.item_reference if isinstance(given, wire.ItemReferenceInputMessages) else None
        self.template = given.template if isinstance(given, wire.TemplateInputMessages) else []
        params = data_source.sampling_params or wire.CompletionsSamplingParams()
        self.shown: dict[str, Any] = {
            "temperature": DEFAULT_SAMPLING["temperature"] if params.temperature is None else params.temperature,
            "top_p": DEFAULT_SAMPLING["top_p"] if params.top_p is None else params.top_p,
            "seed": DEFAULT_SAMPLING["seed"] if params.seed is None else params.seed,
            "max_completion_tokens": params.max_completion_tokens,
        }
        self.sent: dict[str, Any] = {k: self.shown[k] for k in DEFAULT_SAMPLING}
        if params.max_completion_tokens is not None:
            self.sent["max_tokens"] = params.max_completion_tokens
        for key in ("reasoning_effort", "response_format", "tools"):
            if getattr(params, key) is not None:
                self.sent[key] = getattr(params, key)

    def messages(self, row: Row) -> list[dict[str, Any]]:
        ns = Namespaces(item=row.item)
        if self.item_reference is None:
            return render_messages(self.template, ns)
        value = lookup(self.item_reference, ns)
        if isinstance(value, str):
            return [{"role": "user", "content": value}]
        if isinstance(value, list) and all(isinstance(m, dict) and "role" in m and "content" in m for m in value):
            return [{**m, "role": _ROLES.get(m["role"], m["role"])} for m in value]
        raise TemplateError(
            f"'{self.item_reference}' (input_messages.item_reference) is neither a string nor a list of "
            "messages with a role and a content"
        )

    async def sample(self, row: Row) -> Sampled:
        base = _wire_sample(model=self.model, **{k: v for k, v in self.shown.items()})
        try:
            messages = self.messages(row)
        except TemplateError as e:
            error = {"code": TemplateError.flag, "message": e.message}
            return Sampled(namespace=None, wire={**base, "error": error}, error=error)
        base["input"] = messages
        try:
            done = await self.gateway.chat({"model": self.model, "messages": messages, **self.sent})
        except ModelCallError as e:
            error = {"code": e.code or _call_error_code(e.status), "message": e.message}
            return Sampled(namespace=None, wire={**base, "error": error}, error=error)
        usage = done.usage(self.model)
        namespace = sample_namespace(done.text, model=self.model, choices=done.doc.get("choices") or [])
        wire = {
            **base,
            "output": [{"role": "assistant", "content": done.text}],
            "finish_reason": done.finish_reason or "",
            "usage": _usage_wire(usage),
        }
        return Sampled(namespace=namespace, wire=wire, usage=[usage])


def _call_error_code(status: int) -> str:
    return {400: "invalid_request", 404: "model_not_found", 429: "rate_limit_exceeded"}.get(status, "model_error")


@dataclass
class RunPlan:
    run_id: str
    project: Project
    criteria: list[Any]  # parsed TestingCriterion specs, in the eval's order
    criteria_names: list[str]  # what per_testing_criteria_results names them by: the stored id, as OpenAI
    sampler: Sampler
    source: ItemSource
    judge: Judge
    options: GraderOptions


SAMPLERS: dict[str, Callable[[Any, GatewayModels], Sampler]] = {
    "jsonl": lambda ds, gateway: JsonlSampler(),
    "completions": CompletionsSampler,
}


def load_plan(ctx: AppContext, run_id: str) -> RunPlan | None:
    """The plan of a run (database reads: call it from a thread); None when the run is gone
    (deleted, or with its eval). Raises DataSourceError for what fails the run before any item
    is read."""
    with ctx.db.session() as s:
        run = s.scalar(select(EvalRun).where(EvalRun.id == run_id))
        if run is None:
            return None
        ev = s.scalar(select(Eval).where(Eval.id == run.eval_id))
        project = s.get(Project, run.project_id)
        if ev is None or project is None:  # the foreign keys make this unreachable; never loop on it
            raise DataSourceError("eval_not_found", f"The eval {run.eval_id} of this run no longer exists.")
        data_source = data_sources.parse_stored(run.data_source)
        checker = data_sources.checker_for(ev, data_source.type)
        stored_criteria = [dict(c) for c in ev.testing_criteria]
        if isinstance(data_source, wire.CompletionsDataSource):
            try:
                models.servable_base(s, project, ctx.catalog, data_source.model or "")
            except HoneError as e:
                raise DataSourceError("model_not_found", f"data_source.model: {e.message}") from None
    try:
        specs = _CRITERIA.validate_python([{k: v for k, v in c.items() if k != "id"} for c in stored_criteria])
    except ValidationError as e:
        raise DataSourceError("invalid_testing_criteria", f"The eval's testing_criteria do not parse: {e}") from None
    gateway = GatewayModels(ctx, project)
    return RunPlan(
        run_id=run_id,
        project=project,
        criteria=specs,
        criteria_names=[str(c.get("id") or c.get("name")) for c in stored_criteria],
        sampler=SAMPLERS[data_source.type](data_source, gateway),
        source=open_source(ctx, project.id, data_source.source, checker),
        judge=gateway,
        options=GraderOptions.of(ctx.settings.evals),
    )


async def execute_item(plan: RunPlan, row: Row) -> ItemRecord:
    """Sample and grade one row (the graders of one item run at once)."""
    sampled = await plan.sampler.sample(row)
    if sampled.error is not None:
        return ItemRecord(
            datasource_item_id=row.index,
            status="error",
            datasource_item=row.item,
            sample=sampled.wire,
            results=[],
            criteria=[None] * len(plan.criteria),
            usage=sampled.usage,
        )
    ns = Namespaces(item=row.item, sample=sampled.namespace)
    results: Sequence[GradeResult] = await asyncio.gather(
        *(registry.grade(spec, ns, plan.judge, plan.options) for spec in plan.criteria)
    )
    verdicts: list[bool | None] = [r.passed and r.error is None for r in results]
    status = "error" if any(r.error for r in results) else "pass" if all(verdicts) else "fail"
    return ItemRecord(
        datasource_item_id=row.index,
        status=status,
        datasource_item=row.item,
        sample=sampled.wire,
        results=[registry.result_to_wire(r) for r in results],
        criteria=verdicts,
        usage=[*sampled.usage, *(u for r in results for u in r.usage)],
    )
