"""The dataset check (``POST /v1/fine_tuning/dataset_checks``, a hone extension): a job's data
validation run on demand, before a job exists, showing the first problems instead of the first
one. It is the job validator's scan (``service.validation.dataset.scan_dataset``) with the same
rules, token limit and minimum example count; only the number of problems kept differs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from contract.blobstore import BlobStore
from contract.methods import DEFAULT_METHOD, METHODS, REFUSED, MethodSpec, hyperparameter_docs
from service.catalog.catalog import Catalog
from service.config import Settings
from service.db.schema import Project
from service.db.session import Database
from service.errors import InvalidRequest, NotFound, RateLimited
from service.files import service as files
from service.jobs import service as jobs
from service.param_errors import invalid_choice
from service.protocol.fine_tuning_extensions import (
    DatasetCheck,
    DatasetCheckParams,
    DatasetProblem,
    HyperparameterInfo,
    MethodInfo,
    MethodList,
)
from service.validation import TokenCounters, TokenizerUnavailable
from service.validation.dataset import scan_dataset

MAX_PROBLEMS = 10


@contextmanager
def slot(running: threading.BoundedSemaphore, limit: int) -> Iterator[None]:
    """Hold one of the ``limit`` places for a check, or refuse at once with 429: a check reads
    and tokenizes a whole file (up to the upload limit), so a queue would only hold threads."""
    if not running.acquire(blocking=False):
        raise RateLimited(
            f"{limit} dataset check(s) are already running in this server; retry shortly.",
            code="rate_limit_exceeded",
            headers={"retry-after": "2"},
        )
    try:
        yield
    finally:
        running.release()


def _method(name: str) -> MethodSpec:
    if name in REFUSED:
        raise InvalidRequest(
            f"method.type {name!r} is not supported: {REFUSED[name]}.", param="method.type", code="unsupported_method"
        )
    if name not in METHODS:
        raise invalid_choice("method.type", name, METHODS.names)
    return METHODS.get(name)


def check(
    db: Database,
    store: BlobStore,
    catalog: Catalog,
    settings: Settings,
    counters: TokenCounters,
    project: Project,
    params: DatasetCheckParams,
) -> DatasetCheck:
    method = _method(params.method.type if params.method else DEFAULT_METHOD)
    with db.session() as s:
        try:
            row = files.get(s, project, params.training_file)
        except NotFound as e:  # unknown, expired or another project's: named as the job's field
            raise NotFound(e.message, param="training_file", code="file_not_found") from None
        jobs.check_file(s, project, row.id, "training_file")
        base, _ = jobs.base_model_of(s, project, params.model, catalog)
        key = row.storage_key
    entry = catalog.get(base)
    if entry is None:
        raise InvalidRequest(
            f"Base model {base} is no longer in the catalog.", param="model", code="model_not_available"
        )
    max_tokens = entry.resolved_context_length()
    try:
        scan = scan_dataset(
            store.read(key),
            method=method.name,
            param="training_file",
            counter=counters.get(entry.source),
            max_tokens=max_tokens,
            min_examples=settings.min_training_examples,
            max_line_bytes=settings.max_line_bytes,
            batch_size=settings.validation_batch_size,
            max_problems=MAX_PROBLEMS,
        )
    except TokenizerUnavailable as e:
        raise InvalidRequest(
            f"The base model {base} cannot be used: its tokenizer does not load from {e.source} ({e.reason}).",
            param="model",
            code="model_not_available",
        ) from None
    n = scan.stats.n_examples
    return DatasetCheck(
        file_id=row.id,
        model=params.model,
        method=method.name,
        valid=not scan.problems,
        n_examples=n,
        n_tokens=scan.stats.n_tokens,
        max_example_tokens=scan.stats.max_example_tokens,
        max_tokens=max_tokens,
        min_examples=max(settings.min_training_examples, 1),
        errors=[
            DatasetProblem(line=p.line, where=p.where, param=p.param, code=p.code, message=p.message)
            for p in scan.problems
        ],
        truncated=scan.stopped,
        auto_hyperparameters=method.hyperparameters().auto_values(max(n, 1)),
    )


def methods() -> MethodList:
    """The registry (contract.methods) as the API lists it: each method's hyperparameters with
    their defaults, values, descriptions and how "auto" resolves (contract.hyperparameters)."""
    data = []
    for method in METHODS:
        schema = method.hyperparameters.model_json_schema()["properties"]
        fields = [
            HyperparameterInfo(
                name=d.name,
                default=d.default,
                values=d.values,
                description=d.description,
                auto=d.auto,
                json_schema=schema[d.name],
            )
            for d in hyperparameter_docs(method)
        ]
        data.append(
            MethodInfo(
                name=method.name,
                summary=method.summary,
                data_format=method.data_format.value,
                default=method.name == DEFAULT_METHOD,
                hyperparameters=fields,
            )
        )
    return MethodList(data=data, refused=dict(REFUSED))
