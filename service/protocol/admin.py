"""Admin API wire types: projects, their API keys and service accounts, admin API keys, and
usage buckets. Names as in openai-python (``openai.types.admin.organization``)."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer

from service.protocol.common import RequestModel

T = TypeVar("T")

MAX_KEY_LIFETIME_S = 31_536_000  # a year: the spec's bound on expires_in_seconds


class Project(BaseModel):
    id: str
    object: Literal["organization.project"] = "organization.project"
    name: str | None = None
    created_at: int
    archived_at: int | None = None
    status: Literal["active", "archived"] = "active"


class ProjectCreateParams(RequestModel):
    name: str
    residency: str | None = None
    external_key_id: str | None = None


class ProjectUpdateParams(RequestModel):
    name: str | None = None
    external_key_id: str | None = None


class OwnerServiceAccount(BaseModel):
    id: str
    name: str
    created_at: int
    role: str


class Owner(BaseModel):
    """``user`` keys are the ones ``hone keys create`` makes (hone has no user accounts, so no
    ``user`` object); ``service_account`` keys name their account."""

    type: Literal["user", "service_account"]
    service_account: OwnerServiceAccount | None = None

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """The spec's owner objects are not nullable: an absent one is left out, not null."""
        return {k: v for k, v in handler(self).items() if v is not None}


class ProjectAPIKey(BaseModel):
    id: str
    object: Literal["organization.project.api_key"] = "organization.project.api_key"
    name: str
    redacted_value: str
    created_at: int
    last_used_at: int | None = None
    expires_at: int | None = None
    owner: Owner
    owner_project_access: Literal["active", "inactive"]


class APIKeyDeleteResponse(BaseModel):
    id: str
    object: Literal["organization.project.api_key.deleted"] = "organization.project.api_key.deleted"
    deleted: bool = True


ServiceAccountRole = Literal["owner", "member"]


class ProjectServiceAccount(BaseModel):
    id: str
    object: Literal["organization.project.service_account"] = "organization.project.service_account"
    name: str
    role: Literal["owner", "member", "none"]
    created_at: int


class ServiceAccountCreateParams(RequestModel):
    name: str
    create_service_account_only: bool | None = None
    expires_in_seconds: int | None = Field(default=None, ge=1, le=MAX_KEY_LIFETIME_S)


class ServiceAccountUpdateParams(RequestModel):
    name: str | None = None
    role: ServiceAccountRole | None = None


class ServiceAccountAPIKey(BaseModel):
    """The new account's key; ``value`` is the secret, returned this once."""

    id: str
    object: Literal["organization.project.service_account.api_key"] = "organization.project.service_account.api_key"
    name: str
    value: str
    created_at: int
    expires_at: int | None = None


class ServiceAccountAPIKeyCreateParams(RequestModel):
    name: str | None = None
    scopes: list[str] | None = None
    expires_in_seconds: int | None = Field(default=None, ge=1, le=MAX_KEY_LIFETIME_S)


class ServiceAccountCreateResponse(BaseModel):
    id: str
    object: Literal["organization.project.service_account"] = "organization.project.service_account"
    name: str
    role: Literal["member", "none"]
    created_at: int
    api_key: ServiceAccountAPIKey | None


class ServiceAccountDeleteResponse(BaseModel):
    id: str
    object: Literal["organization.project.service_account.deleted"] = "organization.project.service_account.deleted"
    deleted: bool = True


class AdminAPIKeyOwner(BaseModel):
    """hone has no user accounts: an admin key is owned by the organization's operator."""

    type: Literal["user"] = "user"
    object: Literal["organization.user"] = "organization.user"
    role: Literal["owner"] = "owner"


class AdminAPIKey(BaseModel):
    id: str
    object: Literal["organization.admin_api_key"] = "organization.admin_api_key"
    name: str | None = None
    redacted_value: str
    created_at: int
    expires_at: int | None = None
    last_used_at: int | None = None
    owner: AdminAPIKeyOwner = Field(default_factory=AdminAPIKeyOwner)


class AdminAPIKeyCreateResponse(AdminAPIKey):
    value: str


class AdminAPIKeyCreateParams(RequestModel):
    name: str
    expires_in_seconds: int | None = Field(default=None, ge=1, le=MAX_KEY_LIFETIME_S)


class AdminAPIKeyDeleteResponse(BaseModel):
    id: str
    object: Literal["organization.admin_api_key.deleted"] = "organization.admin_api_key.deleted"
    deleted: bool = True


# Usage


class UsageCompletionsResult(BaseModel):
    """Inference tokens the gateway relayed (chat completions, completions, responses)."""

    object: Literal["organization.usage.completions.result"] = "organization.usage.completions.result"
    input_tokens: int
    output_tokens: int
    input_cached_tokens: int
    num_model_requests: int
    project_id: str | None = None
    model: str | None = None
    user_id: None = None
    api_key_id: None = None
    batch: None = None
    service_tier: None = None


class UsageFineTuningResult(BaseModel):
    """hone extension: fine-tuning jobs created in the bucket, by their status now, and the
    tokens they trained."""

    object: Literal["organization.usage.fine_tuning.result"] = "organization.usage.fine_tuning.result"
    num_jobs: int
    jobs_by_status: dict[str, int]
    trained_tokens: int
    project_id: str | None = None
    model: str | None = None


class UsageTimeBucket(BaseModel, Generic[T]):
    object: Literal["bucket"] = "bucket"
    start_time: int
    end_time: int
    results: list[T]


class UsageResponse(BaseModel, Generic[T]):
    object: Literal["page"] = "page"
    data: list[UsageTimeBucket[T]]
    has_more: bool
    next_page: str | None = None
