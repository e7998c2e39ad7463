"""One pydantic config per launcher backend, nested in ``Settings.launcher``.

Environment variables use ``__`` between levels: ``HONE_LAUNCHER__BACKEND=kubernetes``,
``HONE_LAUNCHER__KUBERNETES__NAMESPACE=hone``, ``HONE_LAUNCHER__LOCAL__NPROC_PER_NODE=2``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from service.launcher.registry import BACKENDS, NO_LAUNCHER


class LocalLauncherConfig(BaseModel):
    nproc_per_node: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description=(
            "processes per attempt (torchrun above 1: NCCL on GPUs, gloo on CPU); default: the catalog "
            "entry's gpus on a CUDA machine, 1 on CPU"
        ),
    )
    kill_grace_s: float = Field(default=10.0, gt=0, description="SIGTERM to SIGKILL on cancel")


class KubernetesLauncherConfig(BaseModel):
    namespace: str = "hone"
    trainer_image: str = "ghcr.io/hone/trainer:latest"
    service_account: str = "hone-trainer"
    storage_secret: str | None = Field(
        default="hone-trainer-storage",
        description=("Secret with the trainer's storage env (AWS_* / HONE_S3_ENDPOINT_URL), as envFrom"),
    )
    kueue_queue: str | None = None
    models_pvc: str | None = Field(default="hone-models", description="base weights, mounted read-only at /models")
    image_pull_secrets: list[str] = Field(default_factory=list)
    extra_env: dict[str, str] = Field(default_factory=dict)
    active_deadline_s: int = Field(default=7 * 24 * 3600, ge=60)
    ttl_after_finished_s: int = Field(default=24 * 3600, ge=0)


class LauncherSettings(BaseModel):
    backend: str = Field(
        default="local", description=f"one of {sorted(BACKENDS)} or {NO_LAUNCHER!r} (jobs wait in 'queued')"
    )
    local: LocalLauncherConfig = Field(default_factory=LocalLauncherConfig)
    kubernetes: KubernetesLauncherConfig = Field(default_factory=KubernetesLauncherConfig)

    @model_validator(mode="before")
    @classmethod
    def _backend_name(cls, data: Any) -> Any:
        return {"backend": data} if isinstance(data, str) else data  # Settings(launcher="none")

    @field_validator("backend")
    @classmethod
    def _known(cls, value: str) -> str:
        if value != NO_LAUNCHER and value not in BACKENDS:
            raise ValueError(f"unknown launcher backend {value!r}; use one of {sorted(BACKENDS)} or {NO_LAUNCHER!r}")
        return value
