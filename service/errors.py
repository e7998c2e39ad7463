"""Typed exceptions. ``service.api.errors`` translates them, once, into the OpenAI envelope
``{"error": {"message", "type", "param", "code"}}`` with the status the SDK maps to its
exception classes (400 BadRequestError, 401 AuthenticationError, 404 NotFoundError, ...)."""

from __future__ import annotations


class HoneError(Exception):
    status_code = 500
    type = "server_error"

    def __init__(
        self, message: str, *, param: str | None = None, code: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}


class InvalidRequest(HoneError):
    status_code = 400
    type = "invalid_request_error"


class AuthenticationFailed(HoneError):
    status_code = 401
    type = "invalid_request_error"


class PermissionDenied(HoneError):
    status_code = 403
    type = "invalid_request_error"


class NotFound(HoneError):
    status_code = 404
    type = "invalid_request_error"


class Conflict(HoneError):
    status_code = 409
    type = "invalid_request_error"


class PayloadTooLarge(HoneError):
    status_code = 413
    type = "invalid_request_error"


class RateLimited(HoneError):
    """Too many requests of a kind at once; the SDK retries after ``retry-after``."""

    status_code = 429
    type = "requests"  # OpenAI's type for rate_limit_exceeded


class ServiceUnavailable(HoneError):
    status_code = 503
    type = "server_error"


class DatabaseUnavailable(ServiceUnavailable):
    """The database cannot be reached (or is too busy to answer): retry shortly."""

    def __init__(self) -> None:
        super().__init__(
            "The database is unavailable; retry shortly.", code="database_unavailable", headers={"retry-after": "5"}
        )


def shown(value: str, limit: int = 128) -> str:
    """A caller's value as an error message repeats it: never longer than ``limit``."""
    return value if len(value) <= limit else value[: limit - 3] + "..."


def file_not_found(file_id: str) -> NotFound:
    return NotFound(f"No such File object: {shown(file_id)}", param="id")


def job_not_found(job_id: str) -> NotFound:
    return NotFound(
        f"Fine-tuning job {shown(job_id)} not found.", param="fine_tuning_job_id", code="fine_tuning_job_not_found"
    )


def model_not_found(model: str) -> NotFound:
    return NotFound(
        f"The model `{shown(model)}` does not exist or you do not have access to it.", code="model_not_found"
    )
