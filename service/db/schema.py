"""Tables. Portable SQL only (SQLite embedded, PostgreSQL in the cluster).

Every resource row has an integer ``seq`` (insertion order, the pagination key) and its
public ``id``; every tenant-owned row carries ``project_id`` and every query filters on it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only autoincrements INTEGER PRIMARY KEY; BigInteger elsewhere.
SeqType = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    archived_at: Mapped[int | None] = mapped_column(BigInteger, default=None)  # archived: its keys stop working
    # The Admin API's free-text name; ``name`` stays the slug in the project's model names.
    display_name: Mapped[str | None] = mapped_column(String(256), default=None)


class AdminApiKey(Base):
    """An organization admin key (``sk-admin-...``): manages projects, keys and checkpoint
    sharing through the Admin API; it can call no project endpoint. Stored as its sha256."""

    __tablename__ = "admin_api_keys"
    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(256))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex
    redacted_value: Mapped[str] = mapped_column(String(32))  # "sk-admin-ab...yz"
    created_at: Mapped[int] = mapped_column(BigInteger)
    last_used_at: Mapped[int | None] = mapped_column(BigInteger, default=None)
    expires_at: Mapped[int | None] = mapped_column(BigInteger, default=None)


class ServiceAccount(Base):
    """A project's service account (``svc_acct_...``): a bot identity that owns API keys."""

    __tablename__ = "service_accounts"
    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    name: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[int] = mapped_column(BigInteger)
    deleted_at: Mapped[int | None] = mapped_column(BigInteger, default=None)  # deleted: its keys are revoked
    __table_args__ = (Index("ix_service_accounts_project_seq", "project_id", "seq"),)


class ApiKey(Base):
    __tablename__ = "api_keys"
    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex
    display: Mapped[str] = mapped_column(String(32))  # "sk-hone-ab...yz"
    created_at: Mapped[int] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger, default=None)
    id: Mapped[str] = mapped_column(String(64), unique=True)  # "key_..." (the Admin API's id)
    name: Mapped[str] = mapped_column(String(256), default="Secret key")
    # The service account the key belongs to; None: a user's key (the CLI's, hone has no user accounts)
    service_account_id: Mapped[str | None] = mapped_column(ForeignKey("service_accounts.id"), default=None)
    last_used_at: Mapped[int | None] = mapped_column(BigInteger, default=None)  # updated at most once a minute
    expires_at: Mapped[int | None] = mapped_column(BigInteger, default=None)


class File(Base):
    __tablename__ = "files"
    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    filename: Mapped[str] = mapped_column(String(512))
    purpose: Mapped[str] = mapped_column(String(32))
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int | None] = mapped_column(BigInteger, default=None)
    status: Mapped[str] = mapped_column(String(16), default="processed")
    __table_args__ = (Index("ix_files_project_seq", "project_id", "seq"),)


class Job(Base):
    __tablename__ = "jobs"
    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    project_name: Mapped[str] = mapped_column(String(64))  # the project segment of the job's model names
    model: Mapped[str] = mapped_column(String(256))  # as requested (base or ft: name)
    base_model: Mapped[str] = mapped_column(String(128))  # catalog short name
    init_adapter: Mapped[str | None] = mapped_column(String(256), default=None)  # continued training
    training_file: Mapped[str] = mapped_column(String(64))
    validation_file: Mapped[str | None] = mapped_column(String(64), default=None)
    method_type: Mapped[str] = mapped_column(String(16))
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSON)  # "auto" until resolved
    suffix: Mapped[str | None] = mapped_column(String(64), default=None)
    seed: Mapped[int] = mapped_column(BigInteger)
    job_metadata: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON, default=None)
    integrations: Mapped[list[Any] | None] = mapped_column(JSON, default=None)
    status: Mapped[str] = mapped_column(String(24), index=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    planned_model: Mapped[str] = mapped_column(String(256))  # name of the final adapter
    fine_tuned_model: Mapped[str | None] = mapped_column(String(256), default=None)
    result_files: Mapped[list[Any]] = mapped_column(JSON, default=list)
    trained_tokens: Mapped[int | None] = mapped_column(BigInteger, default=None)
    estimated_finish: Mapped[int | None] = mapped_column(BigInteger, default=None)
    n_examples: Mapped[int | None] = mapped_column(Integer, default=None)
    n_tokens: Mapped[int | None] = mapped_column(BigInteger, default=None)
    created_at: Mapped[int] = mapped_column(BigInteger)
    finished_at: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # Scheduling state (internal): attempts launched, the attempt that may still be alive,
    # the hash of its report token, a validation lease, and requests the trainer must see.
    attempt: Mapped[int] = mapped_column(Integer, default=0)  # attempts launched (a resume launches one too)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # against HONE_MAX_ATTEMPTS
    active_attempt: Mapped[int | None] = mapped_column(Integer, default=None)
    attempt_claimed_at: Mapped[float | None] = mapped_column(Float, default=None)
    last_report_at: Mapped[float | None] = mapped_column(Float, default=None)  # the active attempt's last word
    report_token_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    lease_owner: Mapped[str | None] = mapped_column(String(64), default=None)
    lease_until: Mapped[float | None] = mapped_column(Float, default=None)
    __table_args__ = (Index("ix_jobs_project_seq", "project_id", "seq"),)


class JobEvent(Base):
    __tablename__ = "job_events"
    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    client_id: Mapped[str | None] = mapped_column(String(128), default=None)
    created_at: Mapped[int] = mapped_column(BigInteger)
    level: Mapped[str] = mapped_column(String(8))
    message: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(16), default="message")
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    __table_args__ = (
        UniqueConstraint("job_id", "client_id", name="uq_job_events_client"),
        Index("ix_job_events_job_seq", "job_id", "seq"),
    )


class Checkpoint(Base):
    __tablename__ = "checkpoints"
    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    client_id: Mapped[str] = mapped_column(String(128))
    step_number: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    model_name: Mapped[str] = mapped_column(String(256))
    uri: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[int] = mapped_column(BigInteger)
    __table_args__ = (
        UniqueConstraint("job_id", "client_id", name="uq_checkpoints_client"),
        Index("ix_checkpoints_job_step", "job_id", "step_number"),
    )


class FineTunedModel(Base):
    """A servable adapter name: a job's final model or one of its checkpoints."""

    __tablename__ = "fine_tuned_models"
    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"))
    base_model: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))  # "final" | "checkpoint"
    uri: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[int] = mapped_column(BigInteger)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)


class CheckpointPermission(Base):
    """A fine-tuned model (final or checkpoint) shared with another project: that project may
    serve it and fine-tune from it, and sees nothing else of the owner's. Revoking deletes the row."""

    __tablename__ = "checkpoint_permissions"
    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)  # "cp_..."
    model_name: Mapped[str] = mapped_column(ForeignKey("fine_tuned_models.name"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)  # the grantee
    created_at: Mapped[int] = mapped_column(BigInteger)
    __table_args__ = (UniqueConstraint("model_name", "project_id", name="uq_checkpoint_permissions_model_project"),)


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_records"
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[int] = mapped_column(BigInteger)


class InferenceUsage(Base):
    """Tokens the gateway relayed, per project, model (as the caller named it) and UTC minute
    (``bucket_start``: epoch seconds, a multiple of 60). Rows are added to, never rewritten:
    service.gateway.usage upserts increments. Read by the Admin API's usage endpoints."""

    __tablename__ = "inference_usage"
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    model: Mapped[str] = mapped_column(String(256), primary_key=True)
    bucket_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    input_cached_tokens: Mapped[int] = mapped_column(BigInteger, default=0)  # when the upstream reports them
    num_model_requests: Mapped[int] = mapped_column(BigInteger, default=0)
    __table_args__ = (Index("ix_inference_usage_bucket", "bucket_start"),)


class Upload(Base):
    """An OpenAI Upload (``POST /v1/uploads``): a File assembled from Parts. ``completing_at`` is
    set while one completion request assembles it (parts, cancel and a second completion wait);
    ``file_expires_after_s`` is the expiry the File gets when it is created."""

    __tablename__ = "uploads"
    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    filename: Mapped[str] = mapped_column(String(512))
    purpose: Mapped[str] = mapped_column(String(32))
    mime_type: Mapped[str] = mapped_column(String(255))
    bytes: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))  # pending | completed | cancelled | expired
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    file_expires_after_s: Mapped[int | None] = mapped_column(BigInteger, default=None)
    completing_at: Mapped[int | None] = mapped_column(BigInteger, default=None)
    file_id: Mapped[str | None] = mapped_column(String(64), default=None)
    __table_args__ = (
        Index("ix_uploads_project_seq", "project_id", "seq"),
        Index("ix_uploads_status_expires", "status", "expires_at"),
    )


class UploadPart(Base):
    """A Part of an Upload: its bytes are the blob ``storage_key`` until the Upload completes
    (then they are in the File) or is cancelled or expires (then the janitor deletes them)."""

    __tablename__ = "upload_parts"
    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    upload_id: Mapped[str] = mapped_column(ForeignKey("uploads.id", ondelete="CASCADE"), index=True)
    bytes: Mapped[int] = mapped_column(BigInteger)
    storage_key: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[int] = mapped_column(BigInteger)


class Eval(Base):
    """An OpenAI Eval: a data source config and testing criteria, stored as the wire shapes
    the API returns (``data_source_config`` already expanded to its ``schema``).
    ``updated_at`` orders ``GET /v1/evals?order_by=updated_at``; a deleted eval's row goes
    with its runs and output items."""

    __tablename__ = "evals"
    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    name: Mapped[str] = mapped_column(String(512))
    data_source_config: Mapped[dict[str, Any]] = mapped_column(JSON)
    testing_criteria: Mapped[list[Any]] = mapped_column(JSON)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    __table_args__ = (Index("ix_evals_project_seq", "project_id", "seq"),)


class EvalRun(Base):
    """A run of an eval over one data source. ``status``: queued | in_progress | completed |
    failed | canceled. The counters (``result_counts``, ``per_model_usage``,
    ``per_testing_criteria_results``) change only in the transaction that inserts an output
    item, so an item is counted exactly once. A runner holds a run while ``lease_until`` is in
    the future (``lease_owner``: which process); a run whose lease lapsed (its process died) is
    taken over and continues after the items already recorded."""

    __tablename__ = "eval_runs"
    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    eval_id: Mapped[str] = mapped_column(ForeignKey("evals.id", ondelete="CASCADE"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    name: Mapped[str] = mapped_column(String(512))
    model: Mapped[str | None] = mapped_column(String(256), default=None)
    status: Mapped[str] = mapped_column(String(16))
    data_source: Mapped[dict[str, Any]] = mapped_column(JSON)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    result_counts: Mapped[dict[str, Any]] = mapped_column(JSON)  # total, errored, failed, passed
    per_model_usage: Mapped[list[Any]] = mapped_column(JSON)
    per_testing_criteria_results: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[int] = mapped_column(BigInteger)
    finished_at: Mapped[int | None] = mapped_column(BigInteger, default=None)
    lease_owner: Mapped[str | None] = mapped_column(String(64), default=None)
    lease_until: Mapped[float | None] = mapped_column(Float, default=None)
    __table_args__ = (
        Index("ix_eval_runs_eval_seq", "eval_id", "seq"),
        Index("ix_eval_runs_status", "status"),
    )


class EvalOutputItem(Base):
    """One graded data-source item of a run. ``(run_id, datasource_item_id)`` is unique: a
    runner that takes over a run never records an item twice."""

    __tablename__ = "eval_output_items"
    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("eval_runs.id", ondelete="CASCADE"))
    eval_id: Mapped[str] = mapped_column(String(64))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    datasource_item_id: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # pass | fail | error
    datasource_item: Mapped[dict[str, Any]] = mapped_column(JSON)
    results: Mapped[list[Any]] = mapped_column(JSON)
    sample: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[int] = mapped_column(BigInteger)
    __table_args__ = (
        UniqueConstraint("run_id", "datasource_item_id", name="uq_eval_output_items_run_item"),
        Index("ix_eval_output_items_run_seq", "run_id", "seq"),
    )
