"""Level-triggered: compares every job that may have a live attempt with the launcher's
truth and applies the difference (attempt ended, job cancelled while still running)."""

from __future__ import annotations

import logging
import time

from service.config import Settings
from service.db import locks
from service.db.session import Database
from service.jobs import lifecycle, states
from service.launcher.base import AttemptState, Launcher
from service.protocol.fine_tuning import JobStatus

log = logging.getLogger(__name__)


class Reconciler:
    def __init__(self, db: Database, launcher: Launcher, settings: Settings) -> None:
        self.db, self.launcher, self.settings = db, launcher, settings

    def run_once(self) -> int:
        """One replica at a time (advisory lock held for the tick), so two replicas never apply
        the same attempt's end twice or fight over a job."""
        with self.db.session() as lock_session:
            if not locks.try_lock(lock_session, "reconciler"):
                return 0
            return self._reconcile()

    def _reconcile(self) -> int:
        with self.db.session() as s:
            active = [(j.id, j.active_attempt, j.attempt_claimed_at) for j in lifecycle.active_jobs(s)]
        timeout = self.settings.attempt_heartbeat_timeout_s
        changed = 0
        for job_id, attempt, claimed_at in active:
            assert attempt is not None
            state = self.launcher.poll(job_id, attempt)
            if state.phase == "missing" and time.time() - (claimed_at or 0) < self.settings.launch_grace_s:
                continue  # claimed but maybe not started yet (the dispatcher commits, then launches)
            with self.db.session() as s:
                job = lifecycle.job_by_id(s, job_id, for_update=True)
                if job is None or job.active_attempt != attempt:
                    continue
                if state.phase == "pending" and job.status == JobStatus.PAUSING:
                    self.launcher.cancel(job_id, attempt)  # nothing runs that could save a checkpoint
                    continue
                if state.phase == "pending" and job.status in (JobStatus.RUNNING, JobStatus.QUEUED):
                    changed += lifecycle.attempt_waiting(s, job)
                    continue
                if state.phase == "running" and lifecycle.attempt_admitted(s, job):
                    changed += 1
                    continue
                if state.alive and job.status in states.ACTIVE:
                    # Only once the attempt has spoken: a pod waiting for a GPU, an image or Kueue is not silent.
                    silent = time.time() - job.last_report_at if job.last_report_at is not None else 0.0
                    if silent <= timeout:
                        continue
                    log.warning("%s attempt %d sent nothing for %.0f s; stopping it", job_id, attempt, silent)
                    self.launcher.cancel(job_id, attempt)
                    state = AttemptState(
                        "failed",
                        detail=f"TrainerSilent: the trainer sent no report for {silent:.0f} s "
                        "(hung, stopped or cut off from the control plane); it was stopped",
                    )
                elif state.alive:
                    self.launcher.cancel(job_id, attempt)
                    continue
                lifecycle.attempt_ended(s, job, state, self.settings.max_attempts)
                changed += 1
        return changed
