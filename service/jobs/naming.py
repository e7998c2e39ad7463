"""Fine-tuned model names (DESIGN.md §3): ``ft:{base}:{project}:{suffix}:{shortid}``, with
``::`` when there is no suffix, and ``...:{shortid}:ckpt-step-{n}`` for checkpoints."""

from __future__ import annotations

import re

from service import ids

SUFFIX = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
FT_NAME = re.compile(
    r"^ft:(?P<base>[A-Za-z0-9][A-Za-z0-9._\-]{0,127}):(?P<project>[a-z0-9][a-z0-9\-_]{0,62}):"
    r"(?P<suffix>[A-Za-z0-9._\-]{0,64}):(?P<short>[A-Za-z0-9]{8})(?::ckpt-step-(?P<step>\d{1,10}))?$")


def final_name(base: str, project: str, suffix: str | None) -> str:
    return f"ft:{base}:{project}:{suffix or ''}:{ids.model_short_id()}"


def checkpoint_name(base: str, project: str, suffix: str | None, step: int) -> str:
    return f"ft:{base}:{project}:{suffix or ''}:{ids.model_short_id()}:ckpt-step-{step}"


def is_fine_tuned_name(name: str) -> bool:
    return FT_NAME.fullmatch(name) is not None
