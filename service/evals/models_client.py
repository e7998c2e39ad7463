"""Model calls an eval makes (a run's samples, a model grader's judge, the cosine metric's
embeddings), through hone's own gateway exactly as ``POST /v1/chat/completions`` (and
``/v1/embeddings``) makes them for the project: the model is
resolved within the project (its fine-tuned models, those shared with it, the base models),
routed with adapter affinity, failed over between replicas, and counted in the project's
inference usage."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool

from service.context import AppContext
from service.db.schema import Project
from service.errors import HoneError
from service.evals.graders.base import Embeddings, JudgeReply, ModelCallError, Usage
from service.gateway.proxy import Relay
from service.gateway.requests import check_runner
from service.models import service as models


@dataclass(frozen=True)
class Completion:
    """A chat completion's JSON body (``doc``) with what an eval reads from it."""

    doc: dict[str, Any]

    @property
    def text(self) -> str:
        choices = self.doc.get("choices") or [{}]
        message = choices[0].get("message") or {}
        return message.get("content") or ""

    @property
    def finish_reason(self) -> str | None:
        choices = self.doc.get("choices") or [{}]
        return choices[0].get("finish_reason")

    def usage(self, model: str) -> Usage:
        u = self.doc.get("usage") or {}
        details = u.get("prompt_tokens_details") or {}
        return Usage(
            model=model,
            prompt_tokens=int(u.get("prompt_tokens") or 0),
            completion_tokens=int(u.get("completion_tokens") or 0),
            cached_tokens=int(details.get("cached_tokens") or 0),
        )


class GatewayModels:
    """Chat completions and embeddings for one project through the app's gateway. Also the
    ``Judge`` of label_model / score_model graders and of the cosine metric."""

    def __init__(self, ctx: AppContext, project: Project) -> None:
        self.ctx, self.project = ctx, project

    async def chat(self, payload: dict[str, Any]) -> Completion:
        return Completion(await self._call("/v1/chat/completions", {**payload, "stream": False}))

    async def embed(self, model: str, texts: list[str]) -> Embeddings:
        """``texts`` embedded by ``model`` (floats, in the order sent)."""
        doc = await self._call("/v1/embeddings", {"model": model, "input": texts, "encoding_format": "float"})
        try:
            data = sorted(doc["data"], key=lambda d: d["index"])
            vectors = [[float(x) for x in d["embedding"]] for d in data]
        except (KeyError, TypeError, ValueError):
            raise ModelCallError("The inference server sent embeddings hone cannot read.", 502) from None
        if len(vectors) != len(texts):
            raise ModelCallError(f"The inference server sent {len(vectors)} embeddings for {len(texts)} texts.", 502)
        u = doc.get("usage") or {}
        return Embeddings(vectors, Usage(model=model, prompt_tokens=int(u.get("prompt_tokens") or 0)))

    async def _call(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """``payload`` answered by ``path`` through the gateway; a ModelCallError for whatever
        the gateway would have answered a client with an error."""
        model = payload["model"]

        def lookup() -> str:
            with self.ctx.db.session() as s:
                return models.servable_base(s, self.project, self.ctx.catalog, model)

        gateway = self.ctx.gateway
        try:
            base = await run_in_threadpool(lookup)
            entry = self.ctx.catalog.get(base)
            if entry is None or gateway is None:
                raise ModelCallError("The gateway is not running.", 503)
            check_runner(path, entry.runner, model)
            response = await gateway.forward(
                path,
                json.dumps(payload).encode(),
                base=base,
                model=model,
                upstreams=gateway.source.upstreams(entry),
                stream=False,
                relay=Relay(self.project.id, model),
            )
        except HoneError as e:
            raise ModelCallError(e.message, e.status_code, e.code) from None
        try:
            doc = json.loads(bytes(response.body))
        except ValueError:
            raise ModelCallError("The inference server sent a body that is not JSON.", 502) from None
        if response.status_code != 200:
            err = doc.get("error") if isinstance(doc, dict) else None
            message = err.get("message") if isinstance(err, dict) else None
            raise ModelCallError(str(message or f"HTTP {response.status_code}"), response.status_code)
        return doc if isinstance(doc, dict) else {}

    async def complete(
        self,
        model: str,
        messages: list[dict[str, Any]],
        sampling: Mapping[str, Any],
        response_format: dict[str, Any] | None,
    ) -> JudgeReply:
        payload: dict[str, Any] = {"model": model, "messages": messages, **sampling}
        if response_format is not None:
            payload["response_format"] = response_format
        done = await self.chat(payload)
        return JudgeReply(text=done.text, finish_reason=done.finish_reason, usage=done.usage(model))
