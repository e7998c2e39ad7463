"""Validates the data of jobs in ``validating_files`` (streaming, batched token counting)."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import select

from contract.blobstore import BlobNotFound, BlobStore
from service.catalog.catalog import Catalog
from service.config import Settings
from service.db.schema import File, Job
from service.db.session import Database
from service.jobs import lifecycle
from service.validation import (
    DatasetStats,
    DataValidationError,
    HFTokenCounter,
    TokenCounters,
    TokenizerUnavailable,
    validate_dataset,
)
from service.validation.dataset import Param

log = logging.getLogger(__name__)


class JobValidator:
    def __init__(
        self,
        db: Database,
        store: BlobStore,
        catalog: Catalog,
        settings: Settings,
        counters: TokenCounters,
    ) -> None:
        """``counters``: the process's tokenizers, shared with the dataset check."""
        self.db, self.store, self.catalog, self.settings = db, store, catalog, settings
        self.owner = f"validator-{uuid.uuid4().hex[:12]}"
        self.counters = counters

    def counter(self, base_model: str) -> HFTokenCounter:
        entry = self.catalog.get(base_model)
        assert entry is not None, f"base model {base_model} left the catalog"
        return self.counters.get(entry.source)

    def run_once(self) -> int:
        with self.db.session() as s:
            ids = list(s.scalars(select(Job.id).where(Job.status == "validating_files").order_by(Job.seq).limit(16)))
        done = 0
        for job_id in ids:
            with self.db.session() as s:
                if not lifecycle.claim_validation(s, job_id, self.owner, self.settings.validation_lease_s):
                    continue
            with self._renewing(job_id):
                self.validate(job_id)
            done += 1
        return done

    @contextmanager
    def _renewing(self, job_id: str) -> Iterator[None]:
        """Renew the lease every third of its length while the job is validated, so a long file
        is never claimed twice and a dead replica's claim lapses within one short lease."""
        lease_s = self.settings.validation_lease_s
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(lease_s / 3):
                try:
                    with self.db.session() as s:
                        if not lifecycle.renew_validation(s, job_id, self.owner, lease_s):
                            return
                except Exception:  # a failed renewal is retried at the next beat; the lease is still ours
                    log.exception("renewing the validation lease of %s failed", job_id)

        beat = threading.Thread(target=renew, name=f"lease-{job_id}", daemon=True)
        beat.start()
        try:
            yield
        finally:
            stop.set()
            beat.join()

    def validate(self, job_id: str) -> None:
        with self.db.session() as s:
            job = lifecycle.job_by_id(s, job_id)
            assert job is not None
            method, base = job.method_type, job.base_model
            inputs: list[tuple[str | None, Param]] = [
                (job.training_file, "training_file"),
                (job.validation_file, "validation_file"),
            ]
            keys = {
                fid: s.scalar(select(File.storage_key).where(File.id == fid, File.project_id == job.project_id))
                for fid, _ in inputs
                if fid
            }
        entry = self.catalog.get(base)
        try:
            if entry is None:
                raise DataValidationError(
                    "model_not_available", f"Base model {base} is no longer in the catalog.", "model"
                )
            stats: DatasetStats | None = None
            for file_id, param in inputs:
                if file_id is None:
                    continue
                key = keys.get(file_id)
                if key is None:
                    raise DataValidationError(
                        f"invalid_{param}", f"The {param.replace('_', ' ')} {file_id} was deleted.", param
                    )
                try:
                    result = validate_dataset(
                        self.store.read(key),
                        method=method,
                        param=param,
                        counter=self.counter(base),
                        max_tokens=entry.resolved_context_length(),
                        min_examples=self.settings.min_training_examples,
                        max_line_bytes=self.settings.max_line_bytes,
                        batch_size=self.settings.validation_batch_size,
                    )
                except BlobNotFound:
                    raise DataValidationError(
                        f"invalid_{param}", f"The {param.replace('_', ' ')} {file_id} was deleted.", param
                    ) from None
                except TokenizerUnavailable as e:  # the job fails with the path named; it never loops
                    log.error("base model %s: tokenizer unavailable at %s: %s", base, e.source, e.reason)
                    raise DataValidationError(
                        "model_not_available",
                        f"The base model {base} cannot be used: its tokenizer does not load from {e.source} "
                        f"({e.reason}). The server's model catalog or models volume is misconfigured.",
                        "model",
                    ) from None
                if param == "training_file":
                    stats = result
            assert stats is not None
        except DataValidationError as e:
            with self.db.session() as s:
                lifecycle.validation_failed(s, job_id, self.owner, e.code, e.message, e.param)
            return
        with self.db.session() as s:
            lifecycle.validation_passed(s, job_id, self.owner, stats.n_examples, stats.n_tokens)
