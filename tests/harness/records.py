"""Building the objects tests and benches need without running a trainer: a resolved
``JobSpec``, and the rows a succeeded job leaves behind (so a model name is servable)."""

from __future__ import annotations

import time
from typing import Any

from contract.hyperparameters import SupervisedHyperparameters
from contract.spec import JobSpec
from service import auth
from service.db.schema import FineTunedModel, Job
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
            Job(
                id=job_id,
                project_id=p.id,
                project_name=p.name,
                model=base_model,
                base_model=base_model,
                training_file="file-x",
                method_type="supervised",
                hyperparameters={},
                seed=1,
                status=JobStatus.SUCCEEDED.value,
                planned_model=name,
                fine_tuned_model=name,
                result_files=[],
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
