"""Claims queued jobs (oldest first, within the concurrency limit) and starts an attempt."""

from __future__ import annotations

import logging

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from contract.blobstore import BlobStore
from contract.layout import JobLayout
from contract.spec import JobSpec
from service.catalog.catalog import Catalog, TrainingResources
from service.config import Settings
from service.db import locks
from service.db.schema import File, FineTunedModel, Job, Project
from service.db.session import Database
from service.jobs import lifecycle
from service.launcher.base import AttemptState, Launcher
from service.models import service as models
from service.protocol.fine_tuning import JobStatus

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(
        self, db: Database, store: BlobStore, catalog: Catalog, launcher: Launcher, settings: Settings
    ) -> None:
        self.db, self.store, self.catalog, self.launcher, self.settings = db, store, catalog, launcher, settings

    def run_once(self) -> int:
        specs = self.claim()
        started = 0
        for spec in specs:
            job_id = spec.job_id
            try:
                self.launcher.start(spec, self.resources(spec.base_model))
                started += 1
                if self.launcher.poll(job_id, spec.attempt).phase == "pending":  # e.g. Kueue has not admitted it
                    with self.db.session() as s:
                        row = lifecycle.job_by_id(s, job_id, for_update=True)
                        if row is not None and row.active_attempt == spec.attempt:
                            lifecycle.attempt_waiting(s, row)
            except Exception as e:  # the launcher's failure is the attempt's failure
                log.exception("launching %s attempt %d failed", job_id, spec.attempt)
                try:  # whatever part of it was created (a Job without its Secret) must not hold resources
                    self.launcher.cancel(job_id, spec.attempt)
                except Exception:
                    log.exception("cleaning up the failed launch of %s attempt %d failed", job_id, spec.attempt)
                with self.db.session() as s:
                    row = lifecycle.job_by_id(s, job_id, for_update=True)  # a cancel meanwhile stands
                    if row is not None and row.active_attempt == spec.attempt:
                        lifecycle.attempt_ended(
                            s, row, AttemptState("failed", detail=f"launch failed: {e}"), self.settings.max_attempts
                        )
        return started

    def resources(self, base_model: str) -> TrainingResources:
        entry = self.catalog.get(base_model)
        if entry is None:
            raise ValueError(f"base model {base_model} is no longer in the catalog")
        return entry.training

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
            ids = list(
                s.scalars(
                    select(Job.id)
                    .where(Job.status == JobStatus.QUEUED, Job.active_attempt.is_(None))
                    .order_by(Job.seq)
                    .limit(free)
                    .with_for_update(skip_locked=True)
                )
            )
            specs = []
            for job_id in ids:
                claimed = lifecycle.claim_launch(s, job_id)
                if claimed is None:
                    continue
                job, token = claimed
                unavailable = self.unavailable_model(s, job)
                if unavailable is not None:  # never loop on a job that cannot run
                    job.active_attempt = None
                    lifecycle.fail(s, job, "model_not_available", unavailable, "model")
                    continue
                try:
                    specs.append(self.build_spec(s, job, token))
                except (ValueError, TypeError) as e:  # e.g. a row its spec cannot be built from: fail it, not the queue
                    log.exception("cannot build the spec of %s", job.id)
                    job.active_attempt = None
                    lifecycle.fail(s, job, "training_failed", f"The job cannot be started: {lifecycle.first_error(e)}")
            return specs

    def unavailable_model(self, s: Session, job: Job) -> str | None:
        """Why the job's model can no longer be trained from, or None: its base left the catalog,
        or the fine-tuned model it continues from was deleted or is no longer shared with the
        job's project (a revoked checkpoint permission stops jobs that had not started yet)."""
        if self.catalog.get(job.base_model) is None:
            return f"Base model {job.base_model} is no longer in this server's catalog."
        if job.init_adapter is not None:
            project = s.get(Project, job.project_id)
            if project is None or models.usable(s, project, job.init_adapter) is None:
                return (
                    f"The model {job.init_adapter} this job continues from was deleted or is no longer "
                    "shared with this project."
                )
        return None

    def build_spec(self, s: Session, job: Job, token: str) -> JobSpec:
        entry = self.catalog.get(job.base_model)
        if entry is None:
            raise ValueError(f"base model {job.base_model} is no longer in the catalog")

        def file_uri(file_id: str | None) -> str | None:
            if file_id is None:
                return None
            key = s.scalar(select(File.storage_key).where(File.id == file_id))
            return self.store.uri(key) if key else None

        newest = lifecycle.newest_checkpoint_uri(s, job.id)
        init = (
            s.scalar(select(FineTunedModel.uri).where(FineTunedModel.name == job.init_adapter))
            if job.init_adapter
            else None
        )
        return JobSpec(
            job_id=job.id,
            attempt=job.attempt,
            project=job.project_id,
            base_model=job.base_model,
            base_model_source=entry.source,
            init_adapter_uri=init,
            method=job.method_type,
            hyperparameters=dict(job.hyperparameters),
            training_file_uri=file_uri(job.training_file) or "",
            validation_file_uri=file_uri(job.validation_file),
            storage_url=self.store.url,
            output_uri=self.store.uri(JobLayout.for_job(job.id).prefix),
            fine_tuned_model=job.planned_model,
            report_url=f"{self.settings.internal_base_url}/internal/v1/jobs/{job.id}",
            report_token=token,
            heartbeat_s=self.settings.attempt_heartbeat_timeout_s / 5,
            seed=job.seed,
            resume_uri=newest,
        )
