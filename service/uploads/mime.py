"""The MIME types an Upload may declare, per purpose (OpenAI checks ``mime_type`` against the
purpose: JSONL for fine-tuning, batch and evals, images for vision). Parameters such as
``; charset=utf-8`` are ignored; purposes without a list take any well-formed ``type/subtype``."""

from __future__ import annotations

import re

from service.errors import InvalidRequest

JSONL = (
    "text/jsonl",
    "application/jsonl",
    "application/x-jsonl",
    "application/jsonlines",
    "application/x-jsonlines",
    "application/json-lines",
    "application/x-ndjson",
    "application/ndjson",
)
IMAGES = ("image/png", "image/jpeg", "image/gif", "image/webp")
ACCEPTED: dict[str, tuple[str, ...] | None] = {
    "fine-tune": JSONL,
    "batch": JSONL,
    "evals": JSONL,
    "vision": IMAGES,
    "assistants": None,
    "user_data": None,
}
_TOKEN = r"[A-Za-z0-9!#$&^_.+-]+"
_MIME = re.compile(rf"^{_TOKEN}/{_TOKEN}$")


def check_mime_type(purpose: str, mime_type: str) -> None:
    essence = mime_type.split(";", 1)[0].strip().lower()
    accepted = ACCEPTED.get(purpose)
    if not _MIME.fullmatch(essence) or (accepted is not None and essence not in accepted):
        allowed = ", ".join(accepted) if accepted else "a type/subtype MIME type"
        raise InvalidRequest(
            f"Invalid 'mime_type': {mime_type[:128]!r} is not supported for purpose {purpose!r} "
            f"(supported: {allowed}).",
            param="mime_type",
        )
