"""One pydantic config per launcher backend, nested in ``Settings.launcher``.

Environment variables use ``__`` between levels: ``HONE_LAUNCHER__BACKEND=kubernetes``,
``HONE_LAUNCHER__KUBERNETES__NAMESPACE=hone``, ``HONE_LAUNCHER__LOCAL__NPROC_PER_NODE=2``.
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import NoDecode

from service.launcher.registry import BACKENDS, NO_LAUNCHER

try:
    _VERSION = version("hone")
except PackageNotFoundError:  # a source checkout that is not installed
    _VERSION = "0.1.0"


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


TRAINER_UID = 10001  # the user the Dockerfile's images create (useradd --uid 10001) and run as


def comma_separated(value: Any) -> Any:
    """``a,b`` (or a JSON list) from one environment variable."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


class CABundle(BaseModel):
    """A private CA for trainer pods (on-prem S3 behind an internal CA): the bundle in a ConfigMap
    or a Secret is mounted read-only and named by AWS_CA_BUNDLE (boto3), REQUESTS_CA_BUNDLE and
    SSL_CERT_FILE. It replaces the image's bundle for those clients: include every CA needed."""

    model_config = ConfigDict(extra="forbid")

    config_map: str | None = Field(default=None, description="ConfigMap holding the bundle")
    secret: str | None = Field(default=None, description="Secret holding the bundle (instead of a ConfigMap)")
    key: str = Field(default="ca.crt", description="the bundle's key in the ConfigMap or Secret")
    mount_dir: str = Field(default="/etc/hone/ca", description="where the bundle is mounted in trainer pods")

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if self.config_map and self.secret:
            raise ValueError("the CA bundle comes from a ConfigMap or a Secret, not both")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.config_map or self.secret)

    @property
    def path(self) -> str:
        return f"{self.mount_dir.rstrip('/')}/{self.key}"


class KubernetesLauncherConfig(BaseModel):
    namespace: str = "hone"
    trainer_image: str = Field(
        default=f"ghcr.io/hone/trainer:{_VERSION}",
        description="image of trainer Jobs (a catalog entry's training.kubernetes.image overrides it)",
    )
    service_account: str = "hone-trainer"
    storage_secret: str | None = Field(
        default="hone-trainer-storage",
        description=("Secret with the trainer's storage env (AWS_* / HONE_S3_ENDPOINT_URL), as envFrom"),
    )
    storage_config_map: str | None = Field(
        default="hone-storage",
        description=(
            "ConfigMap with the storage env (HONE_STORAGE_URL, HONE_S3_ENDPOINT_URL, AWS_DEFAULT_REGION), as envFrom"
        ),
    )
    kueue_queue: str | None = Field(
        default=None, description="Kueue LocalQueue of trainer Jobs (kueue.x-k8s.io/queue-name); none: no Kueue"
    )
    models_pvc: str | None = Field(default="hone-models", description="base weights, mounted read-only at /models")
    image_pull_secrets: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Secrets for pulling the trainer image: comma-separated names"
    )
    extra_env: dict[str, str] = Field(
        default_factory=dict, description='env of every trainer container, as JSON: {"HTTPS_PROXY": "..."}'
    )
    env_config_map: str | None = Field(
        default=None, description="a ConfigMap whose keys become env of every trainer container (optional)"
    )
    ca_bundle: CABundle = Field(default_factory=CABundle)
    runtime_class_name: str | None = Field(
        default=None,
        description="RuntimeClass of trainer pods (e.g. nvidia, where the NVIDIA runtime is not the node default)",
    )
    run_as_user: int = Field(default=TRAINER_UID, ge=1, description="uid (and gid) trainer pods run as")
    tmp_size: str = Field(default="10Gi", description="size limit of the writable /tmp (TMPDIR) of trainer pods")
    shm_size: str = Field(default="16Gi", description="size limit of /dev/shm (in memory) of trainer pods")
    active_deadline_s: int = Field(
        default=7 * 24 * 3600, ge=60, description="an attempt's Job is stopped after this long (activeDeadlineSeconds)"
    )
    ttl_after_finished_s: int = Field(
        default=24 * 3600, ge=0, description="a finished attempt's Job is deleted after this long"
    )

    @field_validator("image_pull_secrets", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        return comma_separated(value)


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
