"""All settings in one place (pydantic-settings, environment prefix ``HONE_``)."""

from __future__ import annotations

import shutil
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.evals.config import EvalSettings
from service.gateway.config import GatewaySettings
from service.launcher.config import LauncherSettings, comma_separated

MB = 1024 * 1024


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HONE_", env_nested_delimiter="__", env_file=None, extra="ignore")

    data_dir: Path = Field(default=Path.home() / ".hone", description="Embedded state: SQLite, blobs, models")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default sqlite in data_dir")
    storage_url: str | None = Field(default=None, description="Blob store URL (file://...); default data_dir/blobs")
    catalog_path: Path | None = Field(
        default=None, description="YAML base-model catalog; default: the built-in models of HONE_MODELS"
    )
    models: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["hone-tiny"],
        description=(
            "built-in models the default catalog offers (without HONE_CATALOG_PATH), each built once into "
            "data_dir/models: comma-separated names from service/catalog/builtin.py (hone-tiny, smollm2-135m-instruct)"
        ),
    )
    public_url: str | None = Field(default=None, description="URL trainers use to reach the internal API")

    host: str = "127.0.0.1"
    port: int = 8000

    max_upload_bytes: int = 512 * MB
    upload_max_bytes: int = Field(default=8 * 1024 * MB, description="largest Upload (POST /v1/uploads; OpenAI: 8 GB)")
    upload_part_max_bytes: int = Field(default=64 * MB, description="largest Part of an Upload (OpenAI: 64 MB)")
    upload_expiry_s: int = Field(default=3600, description="an Upload not completed this long after creation expires")
    max_line_bytes: int = 64 * MB
    min_training_examples: int = 10
    validation_batch_size: int = 256
    dataset_check_concurrency: int = Field(
        default=2,
        ge=1,
        description="dataset checks (POST /v1/fine_tuning/dataset_checks) one process runs at once; more are 429",
    )

    # Training
    launcher: LauncherSettings = Field(
        default_factory=LauncherSettings,
        description=("how trainer attempts run: HONE_LAUNCHER__BACKEND and one section per backend"),
    )
    stop_trainers_on_exit: bool = Field(
        default=False,
        description="stop running trainers when the API stops (hone up); otherwise a restarted API adopts them",
    )
    keep_checkpoints: int = Field(default=3, description="newest checkpoints kept per job (OpenAI: 3)")
    trainer_accelerator: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="what trainers run on; 'auto': cuda when nvidia-smi is present"
    )

    # Gateway
    gateway: GatewaySettings = Field(
        default_factory=GatewaySettings,
        description="how the gateway finds and calls vLLM replicas: HONE_GATEWAY__DISCOVERY, HONE_GATEWAY__...",
    )
    evals: EvalSettings = Field(
        default_factory=EvalSettings,
        description="how eval runs execute and what graders may do: HONE_EVALS__RUN_CONCURRENCY, HONE_EVALS__...",
    )
    max_request_bytes: int = Field(default=16 * MB, description="largest chat/completions request body")
    request_threads: int = Field(
        default=8,
        ge=1,
        le=1000,
        description=(
            "threads that run blocking route work (database calls); fewer threads contend less for the GIL: "
            "bench/load.py measured 282 job lists/s at concurrency 200 with 8, 225 with anyio's default 40"
        ),
    )
    auth_cache_s: float = Field(
        default=1.0,
        ge=0,
        description=(
            "how long an authenticated API key is remembered per process (a revoked key works at most this long)"
        ),
    )
    max_json_bytes: int = Field(default=1 * MB, description="largest JSON body of the other /v1 routes")
    max_report_bytes: int = Field(default=8 * MB, description="largest trainer report body (/internal/v1)")
    upstream_timeout_s: float = Field(default=600.0, description="read timeout for inference upstreams")

    # Background loops
    loop_interval_s: float = 1.0
    max_running_jobs: int = 1
    max_attempts: int = 3
    validation_lease_s: float = Field(
        default=30.0,
        gt=0,
        description=("a validating replica's claim on a job, renewed every third of it; a dead replica's lapses"),
    )
    attempt_heartbeat_timeout_s: float = Field(
        default=900.0,
        gt=0,
        description=(
            "a running attempt that reports nothing for this long (hung, stopped, cut off) is stopped and retried; "
            "trainers send a heartbeat every fifth of it"
        ),
    )
    launch_grace_s: float = Field(
        default=120.0, description="how long a claimed attempt may be unknown to the launcher"
    )
    run_loops: bool = True

    @field_validator("models", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        """``HONE_MODELS=hone-tiny,smollm2-135m-instruct`` (or a JSON list)."""
        return comma_separated(value)

    @cached_property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'hone.db'}"

    @cached_property
    def resolved_storage_url(self) -> str:
        return self.storage_url or (self.data_dir / "blobs").resolve().as_uri()

    @cached_property
    def accelerator(self) -> str:
        if self.trainer_accelerator != "auto":
            return self.trainer_accelerator
        return "cuda" if shutil.which("nvidia-smi") else "cpu"

    @cached_property
    def internal_base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")
