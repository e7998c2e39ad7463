"""Building the objects tests and benches need without running a trainer: a resolved
``JobSpec``, and the rows a succeeded job leaves behind (so a model name is servable)."""

from __future__ import annotations

import time
from typing import Any

from contract.hyperparameters import SupervisedHyperparameters
from contract.spec import JobSpec
from service import auth
from service.db.schema import FineTunedModel, Job, Project
from service.db.session import Database
from service.protocol.fine_tuning import JobStatus


def job_spec(job_id: str = "ftjob-AbCdEfGhIjKlMnOpQrStUvWx", **overrides: Any) -> JobSpec:
    """A valid spec for one supervised attempt on S3 URIs; any field can be overridden."""
    fields: dict[str, Any] = {
        "job_id": job_id,
        "attempt": 1,
        "project": "proj_x",
        "base_model": "hone-tiny",
        "base_model_source": "/models/hone-tiny",
        "method": "supervised",
        "hyperparameters": SupervisedHyperparameters(n_epochs=1).resolve(100),
        "training_file_uri": "s3://b/files/file-1",
        "storage_url": "s3://b",
        "output_uri": f"s3://b/jobs/{job_id}",
        "fine_tuned_model": "ft:hone-tiny:acme::AbCdEfGh",
        "report_url": f"http://hone-api/internal/v1/jobs/{job_id}",
        "report_token": "secret-token",
        "seed": 1,
    }
    return JobSpec(**{**fields, **overrides})


def job_row(project: Project, job_id: str, status: str, planned_model: str, **overrides: Any) -> Job:
    """A supervised job row on hone-tiny, as an older server or another replica left it; any
    column can be overridden."""
    fields: dict[str, Any] = {
        "id": job_id,
        "project_id": project.id,
        "project_name": project.name,
        "model": "hone-tiny",
        "base_model": "hone-tiny",
        "training_file": "file-x",
        "method_type": "supervised",
        "hyperparameters": {"n_epochs": 1, "batch_size": 1, "learning_rate_multiplier": 1.0},
        "seed": 1,
        "status": status,
        "planned_model": planned_model,
        "result_files": [],
        "created_at": int(time.time()),
    }
    return Job(**{**fields, **overrides})


def register_finished_model(
    db: Database,
    project: str,
    name: str,
    uri: str,
    *,
    job_id: str,
    base_model: str = "hone-tiny",
    deleted: bool = False,
) -> None:
    """The rows of a succeeded job and its final model ``name`` (adapter at ``uri``), written
    directly: standing in for a trainer's completion report."""
    now = int(time.time())
    with db.session() as s:
        p = auth.get_or_create_project(s, project)
        s.add(
            job_row(
                p,
                job_id,
                JobStatus.SUCCEEDED.value,
                name,
                model=base_model,
                base_model=base_model,
                hyperparameters={},
                fine_tuned_model=name,
                created_at=now,
                finished_at=now,
            )
        )
        s.flush()
        s.add(
            FineTunedModel(
                name=name,
                project_id=p.id,
                job_id=job_id,
                base_model=base_model,
                kind="final",
                uri=uri,
                created_at=now,
                deleted=deleted,
            )
        )
