"""Claims queued jobs (oldest first, within the concurrency limit) and starts an attempt."""

from __future__ import annotations

import logging

from sqlalchemy import func, select

from service.blobstore import BlobStore
from service.catalog.catalog import Catalog
from service.config import Settings
from service.db.schema import Checkpoint, File, FineTunedModel, Job
from service.db import locks
from service.db.session import Database
from service.jobs import lifecycle, reports
from service.launcher.base import AttemptState, Launcher
from trainer.spec import JobSpec

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(self, db: Database, store: BlobStore, catalog: Catalog, launcher: Launcher,
                 settings: Settings) -> None:
        self.db, self.store, self.catalog, self.launcher, self.settings = db, store, catalog, launcher, settings

    def run_once(self) -> int:
        specs = self.claim()
        started = 0
        for spec in specs:
            job_id = spec.job_id
            try:
                self.launcher.start(spec)
                started += 1
            except Exception as e:  # the launcher's failure is the attempt's failure
                log.exception("launching %s attempt %d failed", job_id, spec.attempt)
                with self.db.session() as s:
                    row = lifecycle.job_by_id(s, job_id)
                    if row is not None and row.active_attempt == spec.attempt:
                        lifecycle.attempt_ended(s, row, AttemptState("failed", detail=f"launch failed: {e}"),
                                                self.settings.max_attempts)
        return started

    def claim(self) -> list[JobSpec]:
        """Claim queued jobs up to the concurrency limit, oldest first, in one transaction.

        The advisory lock makes the limit hold across replicas; ``FOR UPDATE SKIP LOCKED`` lets
        a replica pass over rows another transaction is claiming instead of waiting for them, and
        the compare-and-set in ``claim_launch`` makes a double launch impossible regardless.
        """
        with self.db.session() as s:
            if not locks.try_lock(s, "dispatcher"):
                return []
            running = s.scalar(select(func.count()).select_from(Job).where(Job.active_attempt.is_not(None))) or 0
            free = self.settings.max_running_jobs - running
            if free <= 0:
                return []
            ids = list(s.scalars(select(Job.id).where(Job.status == "queued").order_by(Job.seq)
                                 .limit(free).with_for_update(skip_locked=True)))
            specs = []
            for job_id in ids:
                claimed = lifecycle.claim_launch(s, job_id)
                if claimed is not None:
                    specs.append(self.build_spec(s, *claimed))
            return specs

    def build_spec(self, s, job: Job, token: str) -> JobSpec:  # type: ignore[no-untyped-def]
        entry = self.catalog.get(job.base_model)
        assert entry is not None

        def file_uri(file_id: str | None) -> str | None:
            if file_id is None:
                return None
            key = s.scalar(select(File.storage_key).where(File.id == file_id))
            return self.store.uri(key) if key else None

        newest = s.scalar(select(Checkpoint.uri).where(Checkpoint.job_id == job.id)
                          .order_by(Checkpoint.step_number.desc(), Checkpoint.seq.desc()).limit(1))
        init = (s.scalar(select(FineTunedModel.uri).where(FineTunedModel.name == job.init_adapter))
                if job.init_adapter else None)
        return JobSpec(
            job_id=job.id, attempt=job.attempt, project=job.project_id, base_model=job.base_model,
            base_model_source=entry.source, init_adapter_uri=init, method=job.method_type,  # type: ignore[arg-type]
            hyperparameters=dict(job.hyperparameters),
            training_file_uri=file_uri(job.training_file) or "",
            validation_file_uri=file_uri(job.validation_file),
            storage_url=self.store.url, output_uri=self.store.uri(reports.output_key(job.id)), fine_tuned_model=job.planned_model,
            report_url=f"{self.settings.internal_base_url}/internal/v1/jobs/{job.id}",
            report_token=token, seed=job.seed, resume_uri=newest)
